{#- One row per staged 4D order of this run, mapped to ERP columns (status word -> name,
    customer resolved to erp.customers.id), with its record and dependency reasons (NULL when
    valid). Who holds each order number is decided in int_orders__claims. -#}
{{ legacy_table_config('Orders') }}
with

staged as (
    {{ staged_records('Orders') }}
),

statuses as (
    -- 4D's Status word, 1..6, as the ERP's status names; NULL when out of range.
    select
        staged.legacy_id,
        case staged.status_code
            when 1 then 'in_process'
            when 2 then 'approved'
            when 3 then 'backordered'
            when 4 then 'rejected'
            when 5 then 'shipped'
            when 6 then 'cancelled'
        end as status
    from staged
),

live_customers as (
    {{ live_parent('customers') }}
),

final as (
    select
        staged.run_id,
        staged.legacy_id,
        staged.legacy_key,
        staged.order_number,
        live_customers.id as customer_id,
        staged.order_date,
        staged.due_date,
        staged.ship_date,
        statuses.status,
        staged.subtotal,
        staged.tax_amount,
        staged.freight,
        staged.total_due,
        {{ reasons_joined([
            'staged.parse_errors',
            reason_absent('Orders'),
            reason_required('OrderNumber'),
            reason_required('CustomerID', 'integer'),
            reason_required('OrderDate', 'date'),
            reason_required('Status', 'integer'),
            "case when staged.status_code is not null and statuses.status is null"
            ~ " then 'Status must be 1..6 (got ' || staged.status_code || ')' end",
            reason_negative('SubTotal', 'staged.subtotal'),
            reason_negative('TaxAmt', 'staged.tax_amount'),
            reason_negative('Freight', 'staged.freight'),
            reason_negative('TotalDue', 'staged.total_due'),
        ]) }} as record_reasons,
        {{ reason_missing_parent('customer', 'staged.customer_legacy_id', 'live_customers') }}
            as dependency_reasons,
        {{ staged_passthrough() }}
    from staged
    inner join statuses
        on staged.legacy_id = statuses.legacy_id
    left join live_customers
        on cast(staged.customer_legacy_id as text) = live_customers.legacy_id
)

select * from final
