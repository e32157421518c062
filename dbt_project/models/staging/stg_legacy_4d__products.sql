{#- One 4D Products entity per row: this run's last landed version, wire types checked. -#}
{%- set fields = [
    ('ProductName', 'text', 'product_name'),
    ('Description', 'text', 'description'),
    ('SKU', 'text', 'sku'),
    ('Category', 'text', 'category'),
    ('Price', 'number', 'price'),
    ('Cost', 'number', 'cost'),
    ('TaxRate', 'number', 'tax_rate'),
    ('IsPurchased', 'boolean', 'is_purchased'),
    ('IsManufactured', 'boolean', 'is_manufactured'),
    ('Color', 'text', 'color'),
    ('Weight', 'number', 'weight'),
    ('SellStartDate', 'date', 'sell_start_date'),
    ('SellEndDate', 'date', 'sell_end_date'),
    ('DiscontinuedDate', 'date', 'discontinued_date'),
    ('ModifiedDate', 'date', 'modified_date'),
    ('ModifiedTime', 'time', 'modified_time'),
] -%}

with

landed as (
    {{ fourd_current_run_rows('products_raw', 'Products') }}
),

latest as (
    select
        run_id,
        legacy_id,
        payload,
        row_hash,
        extracted_at
    from landed
    where version_rank = 1
),

checked as (
    select
        latest.run_id,
        latest.legacy_id,
        latest.payload,
        latest.row_hash,
        latest.extracted_at,
        {{- fourd_column_names(fields, 'parsed_fields') }}
        parsed_fields.parse_errors
    from latest
    cross join lateral (
        {{ fourd_parsed_fields(fields, 'latest.payload') }}
    ) as parsed_fields
),

final as (
    select
        checked.run_id,
        checked.legacy_id,
        case
            when checked.legacy_id ~ '^[0-9]{1,18}$' then checked.legacy_id::bigint
        end as legacy_key,
        checked.product_name,
        checked.description,
        checked.sku,
        checked.category,
        checked.price,
        checked.cost,
        checked.tax_rate,
        checked.is_purchased,
        checked.is_manufactured,
        checked.color,
        checked.weight,
        checked.sell_start_date,
        checked.sell_end_date,
        checked.discontinued_date,
        checked.modified_date,
        checked.modified_time,
        checked.parse_errors,
        checked.payload as record_data,
        checked.row_hash as landed_row_hash,
        checked.extracted_at
    from checked
)

select * from final
