{#- One row per staged 4D BOM row (a component of an assembly) of this run, mapped to ERP
    columns (parent and component resolved to erp.products.id; ParentProductID 0 or blank is a
    top-level assembly), with all its rejection reasons (NULL when valid). -#}
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
        record_data
    from {{ ref('stg_legacy_4d__bill_of_materials') }}
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
        parents.id as parent_product_id,
        components.id as component_product_id,
        staged.quantity,
        staged.unit_of_measure,
        staged.bom_level,
        staged.valid_from,
        staged.valid_to,
        {{ reasons_joined([
            'staged.parse_errors',
            reason_missing_parent(
                'parent product', 'staged.parent_product_legacy_id', 'parents', 'rejected_parents'
            ),
            reason_required('ComponentProductID', 'integer'),
            reason_missing_parent(
                'component product', 'staged.component_product_legacy_id',
                'components', 'rejected_components'
            ),
            "case when staged.component_product_legacy_id = staged.parent_product_legacy_id"
            ~ " then 'ComponentProductID ' || staged.component_product_legacy_id"
            ~ " || ' is its own parent (a BOM row cannot reference itself)' end",
            reason_required('Quantity', 'number'),
            reason_negative('Quantity', 'staged.quantity'),
            reason_negative('BOMLevel', 'staged.bom_level'),
        ]) }} as rejection_reasons,
        staged.record_data
    from staged
    left join live_products as parents
        on cast(staged.parent_product_legacy_id as text) = parents.legacy_id
    left join rejected_products as rejected_parents
        on cast(staged.parent_product_legacy_id as text) = rejected_parents.legacy_id
    left join live_products as components
        on cast(staged.component_product_legacy_id as text) = components.legacy_id
    left join rejected_products as rejected_components
        on cast(staged.component_product_legacy_id as text) = rejected_components.legacy_id
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
        rejection_reasons,
        rejection_reasons is not null as is_rejected,
        record_data
    from validated
)

select * from final
