{#- One row per staged 4D invoice of this run, mapped to ERP columns (order and customer
    resolved to erp ids), with its record and dependency reasons (NULL when valid). Who holds
    each invoice number is decided in int_invoices__claims. -#}
{{ legacy_table_config('Invoices') }}
with

staged as (
    {{ staged_records('Invoices') }}
),

live_orders as (
    {{ live_parent('orders') }}
),

live_customers as (
    {{ live_parent('customers') }}
),

final as (
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
        {{ reasons_joined([
            'staged.parse_errors',
            reason_absent('Invoices'),
            reason_required('InvoiceNumber'),
            reason_required('OrderID', 'integer'),
            reason_required('CustomerID', 'integer'),
            reason_negative('Amount', 'staged.amount'),
            reason_negative('TaxAmt', 'staged.tax_amount'),
        ]) }} as record_reasons,
        {{ reasons_joined([
            reason_missing_parent('order', 'staged.order_legacy_id', 'live_orders'),
            reason_missing_parent('customer', 'staged.customer_legacy_id', 'live_customers'),
        ]) }} as dependency_reasons,
        {{ staged_passthrough() }}
    from staged
    left join live_orders
        on cast(staged.order_legacy_id as text) = live_orders.legacy_id
    left join live_customers
        on cast(staged.customer_legacy_id as text) = live_customers.legacy_id
)

select * from final
