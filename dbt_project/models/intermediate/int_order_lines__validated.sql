{#- One row per staged 4D order line of this run, mapped to ERP columns (order and product
    resolved to erp ids), with all its rejection reasons (NULL when valid). -#}
with

staged as (
    select
        run_id,
        legacy_id,
        legacy_key,
        order_legacy_id,
        product_legacy_id,
        quantity,
        unit_price,
        discount_rate,
        line_total,
        parse_errors,
        record_data
    from {{ ref('stg_legacy_4d__order_lines') }}
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

live_products as (
    select
        id,
        legacy_id
    from {{ ref('products') }}
    where not is_deleted
),

rejected_products as (
    select legacy_id
    from {{ ref('int_products__validated') }}
    where is_rejected
),

validated as (
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
            reason_required('OrderID', 'integer'),
            reason_missing_parent('order', 'staged.order_legacy_id', 'live_orders', 'rejected_orders'),
            reason_required('ProductID', 'integer'),
            reason_missing_parent(
                'product', 'staged.product_legacy_id', 'live_products', 'rejected_products'
            ),
            reason_required('Quantity', 'integer'),
            reason_negative('Quantity', 'staged.quantity'),
            reason_required('UnitPrice', 'number'),
            reason_negative('UnitPrice', 'staged.unit_price'),
            "case when staged.discount_rate not between 0 and 1"
            ~ " then 'UnitPriceDiscount must be a fraction between 0 and 1 (got '"
            ~ " || staged.discount_rate || ')' end",
            reason_required('LineTotal', 'number'),
            reason_negative('LineTotal', 'staged.line_total'),
        ]) }} as rejection_reasons,
        staged.record_data
    from staged
    left join live_orders
        on cast(staged.order_legacy_id as text) = live_orders.legacy_id
    left join rejected_orders
        on cast(staged.order_legacy_id as text) = rejected_orders.legacy_id
    left join live_products
        on cast(staged.product_legacy_id as text) = live_products.legacy_id
    left join rejected_products
        on cast(staged.product_legacy_id as text) = rejected_products.legacy_id
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
        rejection_reasons,
        rejection_reasons is not null as is_rejected,
        record_data
    from validated
)

select * from final
