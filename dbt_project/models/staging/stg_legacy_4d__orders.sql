{#- One 4D Orders entity per row: this run's last landed version, wire types checked. -#}
{%- set fields = [
    ('OrderNumber', 'text', 'order_number'),
    ('CustomerID', 'integer', 'customer_legacy_id'),
    ('OrderDate', 'date', 'order_date'),
    ('DueDate', 'date', 'due_date'),
    ('ShipDate', 'date', 'ship_date'),
    ('Status', 'integer', 'status_code'),
    ('SubTotal', 'number', 'subtotal'),
    ('TaxAmt', 'number', 'tax_amount'),
    ('Freight', 'number', 'freight'),
    ('TotalDue', 'number', 'total_due'),
    ('ModifiedDate', 'date', 'modified_date'),
    ('ModifiedTime', 'time', 'modified_time'),
] -%}

with

landed as (
    {{ fourd_current_run_rows('orders_raw', 'Orders') }}
),

latest as (
    select
        run_id,
        legacy_id,
        payload,
        row_hash,
        extracted_at
    from landed
    where version_rank = 1
),

checked as (
    select
        latest.run_id,
        latest.legacy_id,
        latest.payload,
        latest.row_hash,
        latest.extracted_at,
        {{- fourd_column_names(fields, 'parsed_fields') }}
        parsed_fields.parse_errors
    from latest
    cross join lateral (
        {{ fourd_parsed_fields(fields, 'latest.payload') }}
    ) as parsed_fields
),

final as (
    select
        checked.run_id,
        checked.legacy_id,
        case
            when checked.legacy_id ~ '^[0-9]{1,18}$' then checked.legacy_id::bigint
        end as legacy_key,
        checked.order_number,
        checked.customer_legacy_id,
        checked.order_date,
        checked.due_date,
        checked.ship_date,
        checked.status_code,
        checked.subtotal,
        checked.tax_amount,
        checked.freight,
        checked.total_due,
        checked.modified_date,
        checked.modified_time,
        checked.parse_errors,
        checked.payload as record_data,
        checked.row_hash as landed_row_hash,
        checked.extracted_at
    from checked
)

select * from final
