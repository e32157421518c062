{#- One row per 4D invoice ever synced (soft-deleted when gone from 4D); merged by
    legacy_id, only new, changed, reappearing and deleted rows are written. -#}
{%- set columns = [
    'invoice_number',
    'order_id',
    'customer_id',
    'invoice_date',
    'due_date',
    'amount',
    'tax_amount',
    'is_paid',
    'paid_date',
] -%}

with

validated as (
    select
        legacy_id,
        legacy_key,
        invoice_number,
        order_id,
        customer_id,
        invoice_date,
        due_date,
        amount,
        tax_amount,
        is_paid,
        paid_date
    from {{ ref('int_invoices__validated') }}
    where not is_rejected
),

mapped as (
    select
        validated.legacy_id,
        validated.legacy_key,
        validated.invoice_number,
        validated.order_id,
        validated.customer_id,
        validated.invoice_date,
        validated.due_date,
        validated.amount,
        validated.tax_amount,
        validated.is_paid,
        validated.paid_date,
        {{ erp_row_hash(columns, 'validated') }} as row_hash
    from validated
),

{{ erp_merge_ctes('Invoices', 'stg_legacy_4d__invoices', columns) }}

select * from final
