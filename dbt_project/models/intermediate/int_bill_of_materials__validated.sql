{#- One row per staged 4D BOM row (a component of an assembly) of this run, mapped to ERP
    columns (parent and component resolved to erp.products.id; ParentProductID 0 or blank is a
    top-level assembly), with the verdict (every rejection reason, NULL when valid). -#}
{{ legacy_table_config('BillOfMaterials') }}
with

staged as (
    {{ staged_records('BillOfMaterials') }}
),

live_products as (
    {{ live_parent('products') }}
),

checked as (
    select
        staged.run_id,
        staged.legacy_id,
        staged.legacy_key,
        parents.id as parent_product_id,
        components.id as component_product_id,
        staged.quantity,
        staged.unit_of_measure,
        staged.bom_level,
        staged.valid_from,
        staged.valid_to,
        {{ reasons_joined([
            'staged.parse_errors',
            reason_absent('BillOfMaterials'),
            reason_required('ComponentProductID', 'integer'),
            "case when staged.component_product_legacy_id = nullif(staged.parent_product_legacy_id, 0)"
            ~ " then 'ComponentProductID ' || staged.component_product_legacy_id"
            ~ " || ' is its own parent (a BOM row cannot reference itself)' end",
            reason_required('Quantity', 'number'),
            reason_negative('Quantity', 'staged.quantity'),
            reason_negative('BOMLevel', 'staged.bom_level'),
        ]) }} as record_reasons,
        {{ reasons_joined([
            reason_missing_parent('parent product', 'nullif(staged.parent_product_legacy_id, 0)', 'parents'),
            reason_missing_parent('component product', 'staged.component_product_legacy_id', 'components'),
        ]) }} as dependency_reasons,
        {{ staged_passthrough() }}
    from staged
    left join live_products as parents
        on cast(nullif(staged.parent_product_legacy_id, 0) as text) = parents.legacy_id
    left join live_products as components
        on cast(staged.component_product_legacy_id as text) = components.legacy_id
),

final as (
    select
        run_id,
        legacy_id,
        legacy_key,
        parent_product_id,
        component_product_id,
        quantity,
        unit_of_measure,
        bom_level,
        valid_from,
        valid_to,
        {{ verdict_tail('record_reasons', 'dependency_reasons') }}
    from checked
)

select * from final
