{#- One row per staged 4D BOM row (a component of an assembly) of this run, mapped to ERP
    columns (parent and component resolved to erp.products.id; ParentProductID 0 or blank is a
    top-level assembly), with the verdict (every rejection reason, NULL when valid). -#}
{{ legacy_table_config('BillOfMaterials') }}
with

staged as (
    select
        run_id,
        legacy_id,
        legacy_key,
        nullif(parent_product_legacy_id, 0) as parent_product_legacy_id,
        component_product_legacy_id,
        quantity,
        unit_of_measure,
        bom_level,
        valid_from,
        valid_to,
        parse_errors,
        absent_fields,
        parse_warnings,
        source_stamp,
        source_timestamp,
        record_data
    from {{ ref('stg_legacy_4d__bill_of_materials') }}
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
            "case when staged.component_product_legacy_id = staged.parent_product_legacy_id"
            ~ " then 'ComponentProductID ' || staged.component_product_legacy_id"
            ~ " || ' is its own parent (a BOM row cannot reference itself)' end",
            reason_required('Quantity', 'number'),
            reason_negative('Quantity', 'staged.quantity'),
            reason_negative('BOMLevel', 'staged.bom_level'),
        ]) }} as record_reasons,
        {{ reasons_joined([
            reason_missing_parent('parent product', 'staged.parent_product_legacy_id', 'parents'),
            reason_missing_parent('component product', 'staged.component_product_legacy_id', 'components'),
        ]) }} as dependency_reasons,
        staged.parse_warnings as warnings,
        staged.source_stamp,
        staged.source_timestamp,
        staged.record_data
    from staged
    left join live_products as parents
        on cast(staged.parent_product_legacy_id as text) = parents.legacy_id
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
        {{ verdict_columns('record_reasons', 'dependency_reasons') }},
        warnings,
        source_stamp,
        source_timestamp,
        record_data
    from checked
)

select * from final
