{#- One row per staged 4D order of this run, mapped to ERP columns (status word -> name,
    customer resolved to erp.customers.id), with all its rejection reasons (NULL when valid). -#}
with

staged as (
    select
        run_id,
        legacy_id,
        legacy_key,
        order_number,
        customer_legacy_id,
        order_date,
        due_date,
        ship_date,
        status_code,
        case status_code
            when 1 then 'in_process'
            when 2 then 'approved'
            when 3 then 'backordered'
            when 4 then 'rejected'
            when 5 then 'shipped'
            when 6 then 'cancelled'
        end as status,
        subtotal,
        tax_amount,
        freight,
        total_due,
        parse_errors,
        record_data
    from {{ ref('stg_legacy_4d__orders') }}
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
        staged.order_number,
        live_customers.id as customer_id,
        staged.order_date,
        staged.due_date,
        staged.ship_date,
        staged.status,
        staged.subtotal,
        staged.tax_amount,
        staged.freight,
        staged.total_due,
        staged.record_data,
        {{ reasons_joined([
            'staged.parse_errors',
            reason_required('OrderNumber'),
            reason_required('CustomerID', 'integer'),
            reason_missing_parent(
                'customer', 'staged.customer_legacy_id', 'live_customers', 'rejected_customers'
            ),
            reason_required('OrderDate', 'date'),
            reason_required('Status', 'integer'),
            "case when staged.status_code is not null and staged.status is null"
            ~ " then 'Status must be 1..6 (got ' || staged.status_code || ')' end",
            reason_negative('SubTotal', 'staged.subtotal'),
            reason_negative('TaxAmt', 'staged.tax_amount'),
            reason_negative('Freight', 'staged.freight'),
            reason_negative('TotalDue', 'staged.total_due'),
        ]) }} as base_reasons
    from staged
    left join live_customers
        on cast(staged.customer_legacy_id as text) = live_customers.legacy_id
    left join rejected_customers
        on cast(staged.customer_legacy_id as text) = rejected_customers.legacy_id
),

{{ unique_claim_ctes('Orders', 'order_number', 'OrderNumber', 'order') }},

final as (
    select
        checked.run_id,
        checked.legacy_id,
        checked.legacy_key,
        checked.order_number,
        checked.customer_id,
        checked.order_date,
        checked.due_date,
        checked.ship_date,
        checked.status,
        checked.subtotal,
        checked.tax_amount,
        checked.freight,
        checked.total_due,
        {{ reasons_joined(['checked.base_reasons', 'claims.claim_reason']) }} as rejection_reasons,
        {{ reasons_joined(['checked.base_reasons', 'claims.claim_reason']) }} is not null as is_rejected,
        checked.record_data
    from checked
    inner join claims
        on checked.legacy_id = claims.legacy_id
)

select * from final
