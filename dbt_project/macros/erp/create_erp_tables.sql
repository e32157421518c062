{#-
    The erp tables' DDL, run by on-run-start. dbt's incremental models then always merge into
    an existing table with real constraints (primary key id, unique legacy_id for the merge,
    not-null audit columns, is_deleted default false), and the intermediate models can read the
    ERP as it stands before this run (stg_erp__business_keys) even on the very first run.
    Keep in step with the erp models: on_schema_change=fail stops the build on a mismatch.
-#}
{% macro erp_business_columns() -%}
    {{ return({
        'categories': [
            ('name', 'text not null'),
            ('description', 'text'),
        ],
        'products': [
            ('name', 'text not null'),
            ('description', 'text'),
            ('sku', 'text not null'),
            ('category_id', 'bigint'),
            ('list_price', 'numeric'),
            ('cost_price', 'numeric'),
            ('tax_rate', 'numeric'),
            ('is_active', 'boolean not null'),
            ('is_purchased', 'boolean not null'),
            ('is_manufactured', 'boolean not null'),
            ('color', 'text'),
            ('weight', 'numeric'),
            ('sell_start_date', 'date'),
            ('sell_end_date', 'date'),
            ('discontinued_date', 'date'),
        ],
        'customers': [
            ('account_number', 'text not null'),
            ('company_name', 'text'),
            ('first_name', 'text'),
            ('last_name', 'text'),
            ('email', 'text'),
            ('phone', 'text'),
            ('customer_type', 'text not null'),
        ],
        'orders': [
            ('order_number', 'text not null'),
            ('customer_id', 'bigint not null'),
            ('order_date', 'date not null'),
            ('due_date', 'date'),
            ('ship_date', 'date'),
            ('status', 'text not null'),
            ('subtotal', 'numeric'),
            ('tax_amount', 'numeric'),
            ('freight', 'numeric'),
            ('total_due', 'numeric'),
        ],
        'order_lines': [
            ('order_id', 'bigint not null'),
            ('product_id', 'bigint not null'),
            ('quantity', 'bigint not null'),
            ('unit_price', 'numeric not null'),
            ('discount_rate', 'numeric not null'),
            ('line_total', 'numeric not null'),
        ],
        'invoices': [
            ('invoice_number', 'text not null'),
            ('order_id', 'bigint not null'),
            ('customer_id', 'bigint not null'),
            ('invoice_date', 'date'),
            ('due_date', 'date'),
            ('amount', 'numeric'),
            ('tax_amount', 'numeric'),
            ('is_paid', 'boolean not null'),
            ('paid_date', 'date'),
        ],
        'inventory': [
            ('product_id', 'bigint not null'),
            ('location', 'text not null'),
            ('shelf', 'text'),
            ('bin', 'bigint'),
            ('quantity', 'bigint not null'),
        ],
        'bill_of_materials': [
            ('parent_product_id', 'bigint'),
            ('component_product_id', 'bigint not null'),
            ('quantity', 'numeric not null'),
            ('unit_of_measure', 'text'),
            ('bom_level', 'bigint'),
            ('valid_from', 'date'),
            ('valid_to', 'date'),
        ],
    }) }}
{%- endmacro %}

{% macro create_erp_tables() -%}
    create schema if not exists erp;
    {%- for table, columns in erp_business_columns().items() %}
    create table if not exists erp.{{ table }} (
        id bigint primary key,
        legacy_id text not null,
        {%- for name, type in columns %}
        {{ name }} {{ type }},
        {%- endfor %}
        created_run_id text not null,
        updated_run_id text not null,
        deleted_run_id text,
        row_hash text not null,
        synced_at timestamptz not null,
        is_deleted boolean not null default false,
        deleted_at timestamptz,
        constraint {{ table }}_legacy_id_key unique (legacy_id)
    );
    create index if not exists {{ table }}_updated_run_idx on erp.{{ table }} (updated_run_id);
    {#- dbt filled its relation cache before this hook ran: tell it the table exists, so the
        incremental materialization merges into it instead of trying to create it. #}
    {%- if execute %}
        {%- do adapter.cache_added(api.Relation.create(
            database=target.database, schema='erp', identifier=table, type='table'
        )) %}
    {%- endif %}
    {%- endfor %}
{%- endmacro %}
