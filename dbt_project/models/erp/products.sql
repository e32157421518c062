{#- One row per 4D product ever synced (soft-deleted when gone from 4D); merged by legacy_id,
    only new, changed, reappearing and deleted rows are written. -#}
{%- set columns = [
    'name', 'description', 'sku', 'category_id', 'list_price', 'cost_price', 'tax_rate',
    'is_active', 'is_purchased', 'is_manufactured', 'color', 'weight', 'sell_start_date',
    'sell_end_date', 'discontinued_date',
] -%}

with

products as (
    select
        legacy_id,
        legacy_key,
        name,
        description,
        sku,
        category,
        list_price,
        cost_price,
        tax_rate,
        is_active,
        is_purchased,
        is_manufactured,
        color,
        weight,
        sell_start_date,
        sell_end_date,
        discontinued_date
    from {{ ref('int_products__validated') }}
    where not is_rejected
),

categories as (
    select
        id,
        legacy_id
    from {{ ref('categories') }}
),

resolved as (
    select
        products.legacy_id,
        products.legacy_key,
        products.name,
        products.description,
        products.sku,
        categories.id as category_id,
        products.list_price,
        products.cost_price,
        products.tax_rate,
        products.is_active,
        products.is_purchased,
        products.is_manufactured,
        products.color,
        products.weight,
        products.sell_start_date,
        products.sell_end_date,
        products.discontinued_date
    from products
    left join categories
        on products.category = categories.legacy_id
),

mapped as (
    select
        resolved.legacy_id,
        resolved.legacy_key,
        resolved.name,
        resolved.description,
        resolved.sku,
        resolved.category_id,
        resolved.list_price,
        resolved.cost_price,
        resolved.tax_rate,
        resolved.is_active,
        resolved.is_purchased,
        resolved.is_manufactured,
        resolved.color,
        resolved.weight,
        resolved.sell_start_date,
        resolved.sell_end_date,
        resolved.discontinued_date,
        {{ erp_row_hash(columns, 'resolved') }} as row_hash
    from resolved
),

{{ erp_merge_ctes('Products', 'stg_legacy_4d__products', columns) }}

select * from final
