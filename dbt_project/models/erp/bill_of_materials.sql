{#- One row per 4D BOM row ever synced (soft-deleted when gone from 4D); merged by
    legacy_id, only new, changed, reappearing and deleted rows are written. -#}
{%- set columns = [
    'parent_product_id',
    'component_product_id',
    'quantity',
    'unit_of_measure',
    'bom_level',
    'valid_from',
    'valid_to',
] -%}

with

validated as (
    select
        legacy_id,
        legacy_key,
        parent_product_id,
        component_product_id,
        quantity,
        unit_of_measure,
        bom_level,
        valid_from,
        valid_to
    from {{ ref('int_bill_of_materials__validated') }}
    where not is_rejected
),

mapped as (
    select
        validated.legacy_id,
        validated.legacy_key,
        validated.parent_product_id,
        validated.component_product_id,
        validated.quantity,
        validated.unit_of_measure,
        validated.bom_level,
        validated.valid_from,
        validated.valid_to,
        {{ erp_row_hash(columns, 'validated') }} as row_hash
    from validated
),

{{ erp_merge_ctes('BillOfMaterials', 'stg_legacy_4d__bill_of_materials', columns) }}

select * from final
