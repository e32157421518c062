{#- One row per product category name: get-or-create from the distinct non-empty
    Products.Category of this run's valid products; existing categories are never rewritten. -#}
{{ legacy_table_config('Products') }}
with

products as (
    select category
    from {{ ref('int_products__validated') }}
    where
        not is_rejected
        and category is not null
),

existing as (
    select legacy_id
    from {{ this }}
),

id_base as (
    select coalesce(max(id), 0) as max_id
    from {{ this }}
),

new_names as (
    select distinct products.category as name
    from products
    where not exists (
        select 1 from existing
        where existing.legacy_id = products.category
    )
),

new_categories as (
    select
        name,
        'Imported from legacy: ' || name as description
    from new_names
),

final as (
    select
        id_base.max_id + row_number() over (order by new_categories.name) as id,
        new_categories.name as legacy_id,
        new_categories.name,
        new_categories.description,
        {{ current_run_id() }} as created_run_id,
        {{ current_run_id() }} as updated_run_id,
        cast(null as text) as deleted_run_id,
        {{ erp_row_hash(['name', 'description'], 'new_categories') }} as row_hash,
        cast(null as bigint) as source_stamp,
        cast(null as text) as source_timestamp,
        cast(null as text) as rejected_since_run_id,
        now() as synced_at,
        false as is_deleted,
        cast(null as timestamptz) as deleted_at
    from new_categories
    cross join id_base
)

select * from final
