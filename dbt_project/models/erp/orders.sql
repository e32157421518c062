{#- One row per 4D order ever synced (soft-deleted when gone from 4D); merged by
    legacy_id, only new, changed, reappearing and deleted rows are written. -#}
{%- set columns = [
    'order_number',
    'customer_id',
    'order_date',
    'due_date',
    'ship_date',
    'status',
    'subtotal',
    'tax_amount',
    'freight',
    'total_due',
] -%}

with

validated as (
    select
        legacy_id,
        legacy_key,
        order_number,
        customer_id,
        order_date,
        due_date,
        ship_date,
        status,
        subtotal,
        tax_amount,
        freight,
        total_due
    from {{ ref('int_orders__validated') }}
    where not is_rejected
),

mapped as (
    select
        validated.legacy_id,
        validated.legacy_key,
        validated.order_number,
        validated.customer_id,
        validated.order_date,
        validated.due_date,
        validated.ship_date,
        validated.status,
        validated.subtotal,
        validated.tax_amount,
        validated.freight,
        validated.total_due,
        {{ erp_row_hash(columns, 'validated') }} as row_hash
    from validated
),

{{ erp_merge_ctes('Orders', 'stg_legacy_4d__orders', columns) }}

select * from final
