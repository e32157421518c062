{#-
    The erp tables' DDL, run by on-run-start. dbt's incremental models then always merge into
    an existing table with real constraints, and the intermediate models can read the ERP as it
    stands before this run even on the very first run:
    - primary key id, unique legacy_id (the merge key), not-null audit columns;
    - a business key (SKU, account/order/invoice number) unique among live rows, as a deferred
      exclusion constraint: checked when the merge commits, so two rows may swap keys inside one
      merge, and a duplicate can never be committed -- the claims model decides who holds a key
      before the merge, this constraint is only the last guard;
    - indexes on the audit run ids, so checks of "the rows this run touched" cost what changed.
    Business columns come from the table registry (macros/generated/legacy_registry.sql); the
    erp models select the same columns (on_schema_change=fail stops the build on a mismatch).
-#}
{% macro erp_audit_columns() -%}
    {{ return([
        ('created_run_id', 'text not null'),
        ('updated_run_id', 'text not null'),
        ('deleted_run_id', 'text'),
        ('row_hash', 'text not null'),
        ('source_stamp', 'bigint'),
        ('source_timestamp', 'text'),
        ('rejected_since_run_id', 'text'),
        ('synced_at', 'timestamptz not null'),
        ('is_deleted', 'boolean not null default false'),
        ('deleted_at', 'timestamptz'),
    ]) }}
{%- endmacro %}

{#- (table, business columns, business key) of every erp table: the legacy tables, and the
    categories derived from Products.Category. -#}
{% macro erp_tables() -%}
    {%- set tables = [('categories', [('name', 'text not null'), ('description', 'text')], 'name')] -%}
    {%- for table in legacy_registry() -%}
        {%- do tables.append((table.stem, table.erp_columns, table.business_key)) -%}
    {%- endfor -%}
    {{ return(tables) }}
{%- endmacro %}

{% macro create_erp_tables() -%}
    create schema if not exists erp;
    {%- for table, columns, business_key in erp_tables() %}
    create table if not exists erp.{{ table }} (
        id bigint primary key,
        legacy_id text not null,
        {%- for name, type in columns + erp_audit_columns() %}
        {{ name }} {{ type }},
        {%- endfor %}
        constraint {{ table }}_legacy_id_key unique (legacy_id)
    );
    {#- Columns added after the first release, for ERPs created before them. #}
    {%- for name, type in erp_audit_columns() if name in ('source_stamp', 'source_timestamp', 'rejected_since_run_id') %}
    alter table erp.{{ table }} add column if not exists {{ name }} {{ type }};
    {%- endfor %}
    create index if not exists {{ table }}_updated_run_idx on erp.{{ table }} (updated_run_id);
    create index if not exists {{ table }}_deleted_run_idx on erp.{{ table }} (deleted_run_id)
        where deleted_run_id is not null;
    create index if not exists {{ table }}_rejected_since_idx on erp.{{ table }} (rejected_since_run_id)
        where rejected_since_run_id is not null;
    {#- Foreign keys: the checks of an order's lines read them by order_id. #}
    {%- for name, type in columns if name.endswith('_id') %}
    create index if not exists {{ table }}_{{ name }}_idx on erp.{{ table }} ({{ name }});
    {%- endfor %}
    {%- if business_key %}
    {{ live_key_constraint(table, business_key) }}
    {%- endif %}
    {#- dbt filled its relation cache before this hook ran: tell it the table exists, so the
        incremental materialization merges into it instead of trying to create it. #}
    {%- if execute %}
        {%- do adapter.cache_added(api.Relation.create(
            database=target.database, schema='erp', identifier=table, type='table'
        )) %}
    {%- endif %}
    {%- endfor %}
{%- endmacro %}

{#- The unique-among-live-rows guard on a business key, added once. An ERP that already holds
    duplicates (let in by a release before this guard) gets a message saying which. -#}
{% macro live_key_constraint(table, column) -%}
    do $guard$
    declare
        duplicates text;
    begin
        if not exists (
            select 1 from pg_constraint
            where conname = '{{ table }}_{{ column }}_live_key' and conrelid = 'erp.{{ table }}'::regclass
        ) then
            select string_agg(quote_literal({{ column }}), ', ') into duplicates
            from (
                select {{ column }} from erp.{{ table }} where not is_deleted
                group by {{ column }} having count(*) > 1 limit 10
            ) as shared;
            if duplicates is not null then
                raise exception 'erp.{{ table }} holds live rows sharing a {{ column }} (%): resolve them '
                    '(soft-delete or change all but one), then run the sync again', duplicates;
            end if;
            alter table erp.{{ table }} add constraint {{ table }}_{{ column }}_live_key
                exclude using btree ({{ column }} with =) where (not is_deleted)
                deferrable initially deferred;
        end if;
    end
    $guard$;
{%- endmacro %}
