{#- One row per staged 4D inventory record (a product at a location) of this run, mapped to
    ERP columns (product resolved to erp.products.id), with all its rejection reasons. -#}
with

staged as (
    select
        run_id,
        legacy_id,
        legacy_key,
        product_legacy_id,
        location,
        shelf,
        bin,
        quantity,
        parse_errors,
        record_data
    from {{ ref('stg_legacy_4d__inventory') }}
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
        live_products.id as product_id,
        staged.location,
        staged.shelf,
        staged.bin,
        staged.quantity,
        {{ reasons_joined([
            'staged.parse_errors',
            reason_required('ProductID', 'integer'),
            reason_missing_parent(
                'product', 'staged.product_legacy_id', 'live_products', 'rejected_products'
            ),
            reason_required('LocationName'),
            reason_required('Quantity', 'integer'),
            reason_negative('Quantity', 'staged.quantity'),
        ]) }} as rejection_reasons,
        staged.record_data
    from staged
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
        product_id,
        location,
        shelf,
        bin,
        quantity,
        rejection_reasons,
        rejection_reasons is not null as is_rejected,
        record_data
    from validated
)

select * from final
