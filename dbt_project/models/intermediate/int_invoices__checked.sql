{#- One row per staged 4D invoice of this run, mapped to ERP columns (order and customer
    resolved to erp ids), with its record and dependency reasons (NULL when valid). Who holds
    each invoice number is decided in int_invoices__claims. -#}
{{ legacy_table_config('Invoices') }}
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
        absent_fields,
        parse_warnings,
        source_stamp,
        source_timestamp,
        record_data
    from {{ ref('stg_legacy_4d__invoices') }}
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
        staged.parse_warnings as warnings,
        staged.source_stamp,
        staged.source_timestamp,
        staged.record_data
    from staged
    left join live_orders
        on cast(staged.order_legacy_id as text) = live_orders.legacy_id
    left join live_customers
        on cast(staged.customer_legacy_id as text) = live_customers.legacy_id
)

select * from final
