{#- One row per staged 4D invoice of this run, mapped to ERP columns (order and customer
    resolved to erp ids), with all its rejection reasons (NULL when valid). -#}
with

staged as (
    select
        run_id,
        legacy_id,
        legacy_key,
        invoice_number,
        order_legacy_id,
        customer_legacy_id,
        invoice_date,
        due_date,
        amount,
        tax_amount,
        is_paid,
        paid_date,
        parse_errors,
        record_data
    from {{ ref('stg_legacy_4d__invoices') }}
),

live_orders as (
    select
        id,
        legacy_id
    from {{ ref('orders') }}
    where not is_deleted
),

rejected_orders as (
    select legacy_id
    from {{ ref('int_orders__validated') }}
    where is_rejected
),

live_customers as (
    select
        id,
        legacy_id
    from {{ ref('customers') }}
    where not is_deleted
),

rejected_customers as (
    select legacy_id
    from {{ ref('int_customers__validated') }}
    where is_rejected
),

checked as (
    select
        staged.run_id,
        staged.legacy_id,
        staged.legacy_key,
        staged.invoice_number,
        live_orders.id as order_id,
        live_customers.id as customer_id,
        staged.invoice_date,
        staged.due_date,
        staged.amount,
        staged.tax_amount,
        coalesce(staged.is_paid, false) as is_paid,
        staged.paid_date,
        staged.record_data,
        {{ reasons_joined([
            'staged.parse_errors',
            reason_required('InvoiceNumber'),
            reason_required('OrderID', 'integer'),
            reason_missing_parent('order', 'staged.order_legacy_id', 'live_orders', 'rejected_orders'),
            reason_required('CustomerID', 'integer'),
            reason_missing_parent(
                'customer', 'staged.customer_legacy_id', 'live_customers', 'rejected_customers'
            ),
            reason_negative('Amount', 'staged.amount'),
            reason_negative('TaxAmt', 'staged.tax_amount'),
        ]) }} as base_reasons
    from staged
    left join live_orders
        on cast(staged.order_legacy_id as text) = live_orders.legacy_id
    left join rejected_orders
        on cast(staged.order_legacy_id as text) = rejected_orders.legacy_id
    left join live_customers
        on cast(staged.customer_legacy_id as text) = live_customers.legacy_id
    left join rejected_customers
        on cast(staged.customer_legacy_id as text) = rejected_customers.legacy_id
),

{{ unique_claim_ctes('Invoices', 'invoice_number', 'InvoiceNumber', 'invoice') }},

final as (
    select
        checked.run_id,
        checked.legacy_id,
        checked.legacy_key,
        checked.invoice_number,
        checked.order_id,
        checked.customer_id,
        checked.invoice_date,
        checked.due_date,
        checked.amount,
        checked.tax_amount,
        checked.is_paid,
        checked.paid_date,
        {{ reasons_joined(['checked.base_reasons', 'claims.claim_reason']) }} as rejection_reasons,
        {{ reasons_joined(['checked.base_reasons', 'claims.claim_reason']) }} is not null as is_rejected,
        checked.record_data
    from checked
    inner join claims
        on checked.legacy_id = claims.legacy_id
)

select * from final
