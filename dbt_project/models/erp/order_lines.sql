{#- One row per 4D order line ever synced (soft-deleted when gone from 4D); merged by
    legacy_id, only new, changed, reappearing and deleted rows are written. -#}
{%- set columns = [
    'order_id',
    'product_id',
    'quantity',
    'unit_price',
    'discount_rate',
    'line_total',
] -%}

with

validated as (
    select
        legacy_id,
        legacy_key,
        order_id,
        product_id,
        quantity,
        unit_price,
        discount_rate,
        line_total
    from {{ ref('int_order_lines__validated') }}
    where not is_rejected
),

mapped as (
    select
        validated.legacy_id,
        validated.legacy_key,
        validated.order_id,
        validated.product_id,
        validated.quantity,
        validated.unit_price,
        validated.discount_rate,
        validated.line_total,
        {{ erp_row_hash(columns, 'validated') }} as row_hash
    from validated
),

{{ erp_merge_ctes('OrderLines', 'stg_legacy_4d__order_lines', columns) }}

select * from final
