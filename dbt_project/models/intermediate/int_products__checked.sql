{#- One row per staged 4D product of this run, mapped to ERP columns, with its record reasons
    (NULL when valid). Who holds each SKU is decided in int_products__claims. -#}
{{ legacy_table_config('Products') }}
with

staged as (
    {{ staged_records('Products') }}
),

final as (
    select
        staged.run_id,
        staged.legacy_id,
        staged.legacy_key,
        staged.product_name as name,
        staged.description,
        staged.sku,
        staged.category,
        staged.price as list_price,
        staged.cost as cost_price,
        staged.tax_rate,
        -- Active unless discontinued or past its sell-end date (as of the run's day).
        (
            coalesce(staged.discontinued_date > current_date, true)
            and coalesce(staged.sell_end_date > current_date, true)
        ) as is_active,
        coalesce(staged.is_purchased, false) as is_purchased,
        coalesce(staged.is_manufactured, false) as is_manufactured,
        staged.color,
        staged.weight,
        staged.sell_start_date,
        staged.sell_end_date,
        staged.discontinued_date,
        {{ reasons_joined([
            'staged.parse_errors',
            reason_absent('Products'),
            reason_required('ProductName'),
            reason_required('SKU'),
            reason_negative('Price', 'staged.price'),
            reason_negative('Cost', 'staged.cost'),
            reason_negative('TaxRate', 'staged.tax_rate'),
            reason_negative('Weight', 'staged.weight'),
        ]) }} as record_reasons,
        cast(null as text) as dependency_reasons,
        {{ staged_passthrough() }}
    from staged
)

select * from final
