{#- One row per staged 4D inventory row of this run, mapped to ERP columns (product resolved to
    erp.products.id), with the verdict (every rejection reason, NULL when valid). -#}
{{ legacy_table_config('Inventory') }}
with

staged as (
    {{ staged_records('Inventory') }}
),

live_products as (
    {{ live_parent('products') }}
),

checked as (
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
            reason_absent('Inventory'),
            reason_required('ProductID', 'integer'),
            reason_required('LocationName'),
            reason_required('Quantity', 'integer'),
            reason_negative('Quantity', 'staged.quantity'),
        ]) }} as record_reasons,
        {{ reason_missing_parent('product', 'staged.product_legacy_id', 'live_products') }}
            as dependency_reasons,
        {{ staged_passthrough() }}
    from staged
    left join live_products
        on cast(staged.product_legacy_id as text) = live_products.legacy_id
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
        {{ verdict_tail('record_reasons', 'dependency_reasons') }}
    from checked
)

select * from final
