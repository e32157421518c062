{#- One row per staged 4D order line of this run, mapped to ERP columns (order and product
    resolved to erp ids), with the verdict (every rejection reason, NULL when valid). -#}
{{ legacy_table_config('OrderLines') }}
with

staged as (
    {{ staged_records('OrderLines') }}
),

live_orders as (
    {{ live_parent('orders') }}
),

live_products as (
    {{ live_parent('products') }}
),

checked as (
    select
        staged.run_id,
        staged.legacy_id,
        staged.legacy_key,
        live_orders.id as order_id,
        live_products.id as product_id,
        staged.quantity,
        staged.unit_price,
        coalesce(staged.discount_rate, 0) as discount_rate,
        staged.line_total,
        {{ reasons_joined([
            'staged.parse_errors',
            reason_absent('OrderLines'),
            reason_required('OrderID', 'integer'),
            reason_required('ProductID', 'integer'),
            reason_required('Quantity', 'integer'),
            reason_negative('Quantity', 'staged.quantity'),
            reason_required('UnitPrice', 'number'),
            reason_negative('UnitPrice', 'staged.unit_price'),
            "case when staged.discount_rate not between 0 and 1"
            ~ " then 'UnitPriceDiscount must be a fraction between 0 and 1 (got '"
            ~ " || staged.discount_rate || ')' end",
            reason_required('LineTotal', 'number'),
            reason_negative('LineTotal', 'staged.line_total'),
        ]) }} as record_reasons,
        {{ reasons_joined([
            reason_missing_parent('order', 'staged.order_legacy_id', 'live_orders'),
            reason_missing_parent('product', 'staged.product_legacy_id', 'live_products'),
        ]) }} as dependency_reasons,
        {{ staged_passthrough() }}
    from staged
    left join live_orders
        on cast(staged.order_legacy_id as text) = live_orders.legacy_id
    left join live_products
        on cast(staged.product_legacy_id as text) = live_products.legacy_id
),

final as (
    select
        run_id,
        legacy_id,
        legacy_key,
        order_id,
        product_id,
        quantity,
        unit_price,
        discount_rate,
        line_total,
        {{ verdict_tail('record_reasons', 'dependency_reasons') }}
    from checked
)

select * from final
