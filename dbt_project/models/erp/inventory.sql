{#- One row per 4D inventory record (a product at a location) ever synced (soft-deleted when gone from 4D); merged by
    legacy_id, only new, changed, reappearing and deleted rows are written. -#}
{%- set columns = [
    'product_id',
    'location',
    'shelf',
    'bin',
    'quantity',
] -%}

with

validated as (
    select
        legacy_id,
        legacy_key,
        product_id,
        location,
        shelf,
        bin,
        quantity
    from {{ ref('int_inventory__validated') }}
    where not is_rejected
),

mapped as (
    select
        validated.legacy_id,
        validated.legacy_key,
        validated.product_id,
        validated.location,
        validated.shelf,
        validated.bin,
        validated.quantity,
        {{ erp_row_hash(columns, 'validated') }} as row_hash
    from validated
),

{{ erp_merge_ctes('Inventory', 'stg_legacy_4d__inventory', columns) }}

select * from final
