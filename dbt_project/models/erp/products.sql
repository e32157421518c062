{#- One row per 4D product ever synced (soft-deleted when gone from 4D); merged by legacy_id,
    only new, changed, reappearing, rejected-version and deleted rows are written. -#}
{{ legacy_table_config('Products') }}
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
        discontinued_date,
        source_stamp,
        source_timestamp
    from {{ ref('int_products__validated') }}
    where not is_rejected
),

categories as (
    select
        id,
        legacy_id
    from {{ ref('categories') }}
),

mapped as (
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
        products.discontinued_date,
        products.source_stamp,
        products.source_timestamp
    from products
    left join categories
        on products.category = categories.legacy_id
),

{{ erp_merge_ctes('Products') }}

select * from final
