{#- md5 over the mapped business columns (a row's text form tells NULL from ''), so a change
    of mapping changes the hash too and the row is rewritten once. -#}
{% macro erp_row_hash(columns, relation) -%}
    md5(cast(row(
        {%- for column in columns -%}
            {{ relation }}.{{ column }}{{ ", " if not loop.last }}
        {%- endfor -%}
    ) as text))
{%- endmacro %}

{#- True when `staged` is an older version of the record than the one `existing` holds: older by
    4D's stamp and not newer by 4D's modification time (a record deleted and created again
    restarts its __STAMP but not its __TIMESTAMP). Unknown versions are never "older". -#}
{% macro is_older_version(staged, existing) -%}
    coalesce(
        {{ staged }}.source_stamp < {{ existing }}.source_stamp
        and {{ staged }}.source_timestamp <= {{ existing }}.source_timestamp,
        false
    )
{%- endmacro %}

{#- The erp table's columns, in DDL order (id, legacy_id, business columns, audit columns). -#}
{% macro erp_column_list(columns, relation=none) -%}
    {%- set prefix = relation ~ '.' if relation else '' -%}
    {%- for name in ['id', 'legacy_id'] + columns + erp_audit_columns() | map(attribute=0) | list %}
        {{ prefix }}{{ name }}{{ "," if not loop.last }}
    {%- endfor %}
{%- endmacro %}

{#-
    The CTEs every erp model ends with, after its own `mapped` CTE (legacy_id, legacy_key, the
    business columns, source_stamp, source_timestamp; this run's valid records only). They select
    exactly the rows the merge must write, never the whole table:

    - changed: new records, records whose content (row_hash) or 4D version changed, soft-deleted
      records that reappeared, and records whose earlier rejected version is now superseded
      (their rejected_since_run_id is cleared). A staged version older than the one the ERP
      holds (a replay, a run that read before another) is never written. Existing rows keep
      their id; new rows get max(id) + n in 4D key order. updated_run_id moves only when the
      content changes.
    - rejected: live rows whose new version was rejected in this run keep their last good
      version and are marked with rejected_since_run_id (until a later version loads), unless
      4D deleted that record in this window and the rejected one was created again in its place.
    - deleted: the rows int_<table>__deletions lets go (not held by the circuit breaker):
      soft-deleted, business columns kept; a 4D deletion stamp becomes their version.
-#}
{% macro erp_merge_ctes(table_name, columns=none) -%}
    {%- set table = legacy_table(table_name) -%}
    {%- set columns = columns or (table.erp_columns | map(attribute=0) | list) -%}
row_hashed as (
    select
        mapped.legacy_id,
        mapped.legacy_key,
        {%- for column in columns %}
        mapped.{{ column }},
        {%- endfor %}
        {{ erp_row_hash(columns, 'mapped') }} as row_hash,
        mapped.source_stamp,
        mapped.source_timestamp
    from mapped
),

verdicts as (
    select
        legacy_id,
        is_rejected,
        source_stamp,
        source_timestamp
    from {{ ref('int_' ~ table.stem ~ '__validated') }}
),

existing as (
    select
        {{- erp_column_list(columns, 'current_rows') }}
    from {{ this }} as current_rows
    where current_rows.legacy_id in (select verdicts.legacy_id from verdicts)
),

id_base as (
    select coalesce(max(id), 0) as max_id
    from {{ this }}
),

changed as (
    select
        coalesce(
            existing.id,
            id_base.max_id + row_number() over (
                partition by existing.id is null
                order by row_hashed.legacy_key, row_hashed.legacy_id
            )
        ) as id,
        row_hashed.legacy_id,
        {%- for column in columns %}
        row_hashed.{{ column }},
        {%- endfor %}
        coalesce(existing.created_run_id, {{ current_run_id() }}) as created_run_id,
        case
            when existing.id is null or existing.is_deleted or existing.row_hash != row_hashed.row_hash
                then {{ current_run_id() }}
            else existing.updated_run_id
        end as updated_run_id,
        cast(null as text) as deleted_run_id,
        row_hashed.row_hash,
        row_hashed.source_stamp,
        row_hashed.source_timestamp,
        cast(null as text) as rejected_since_run_id,
        now() as synced_at,
        false as is_deleted,
        cast(null as timestamptz) as deleted_at
    from row_hashed
    cross join id_base
    left join existing
        on row_hashed.legacy_id = existing.legacy_id
    where
        (
            existing.id is null
            or existing.is_deleted
            or existing.row_hash != row_hashed.row_hash
            or existing.rejected_since_run_id is not null
            or existing.source_stamp is distinct from row_hashed.source_stamp
        )
        and not {{ is_older_version('row_hashed', 'existing') }}
),

letting_go as (
    -- the deletions the circuit breaker does not hold
    select
        legacy_id,
        stamp
    from {{ ref('int_' ~ table.stem ~ '__deletions') }}
    where not is_held
),

rejected as (
    select
        {%- for name in ['id', 'legacy_id'] + columns + ['created_run_id', 'updated_run_id',
            'deleted_run_id', 'row_hash', 'source_stamp', 'source_timestamp'] %}
        existing.{{ name }},
        {%- endfor %}
        {{ current_run_id() }} as rejected_since_run_id,
        existing.synced_at,
        existing.is_deleted,
        existing.deleted_at
    from verdicts
    inner join existing
        on verdicts.legacy_id = existing.legacy_id
    where
        verdicts.is_rejected
        and not existing.is_deleted
        and existing.rejected_since_run_id is null
        and not {{ is_older_version('verdicts', 'existing') }}
        -- the record 4D deleted goes; its re-created successor waits as an open reject
        and verdicts.legacy_id not in (select letting_go.legacy_id from letting_go)
),

deleted as (
    select
        {%- for name in ['id', 'legacy_id'] + columns + ['created_run_id', 'updated_run_id'] %}
        current_rows.{{ name }},
        {%- endfor %}
        {{ current_run_id() }} as deleted_run_id,
        current_rows.row_hash,
        greatest(current_rows.source_stamp, letting_go.stamp) as source_stamp,
        current_rows.source_timestamp,
        cast(null as text) as rejected_since_run_id,
        now() as synced_at,
        true as is_deleted,
        now() as deleted_at
    from letting_go
    inner join {{ this }} as current_rows
        on letting_go.legacy_id = current_rows.legacy_id
    -- a valid record 4D created again under the deleted key is written over it instead
    where letting_go.legacy_id not in (select changed.legacy_id from changed)
),

final as (
    select {{- erp_column_list(columns) }}
    from changed
    union all
    select {{- erp_column_list(columns) }}
    from rejected
    union all
    select {{- erp_column_list(columns) }}
    from deleted
)
{%- endmacro %}

{#- A whole erp model for a table whose validated model already holds every ERP column. -#}
{% macro erp_model(table_name) -%}
    {%- set table = legacy_table(table_name) -%}
    {{- legacy_table_config(table_name) }}
with

mapped as (
    select
        legacy_id,
        legacy_key,
        {%- for name, type in table.erp_columns %}
        {{ name }},
        {%- endfor %}
        source_stamp,
        source_timestamp
    from {{ ref('int_' ~ table.stem ~ '__validated') }}
    where not is_rejected
),

{{ erp_merge_ctes(table_name) }}

select * from final
{%- endmacro %}
