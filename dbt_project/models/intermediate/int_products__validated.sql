{#- One row per staged 4D product of this run, mapped to ERP columns, with all its rejection
    reasons (NULL when valid). -#}
with

staged as (
    select
        run_id,
        legacy_id,
        legacy_key,
        product_name,
        description,
        sku,
        category,
        price,
        cost,
        tax_rate,
        is_purchased,
        is_manufactured,
        color,
        weight,
        sell_start_date,
        sell_end_date,
        discontinued_date,
        parse_errors,
        record_data
    from {{ ref('stg_legacy_4d__products') }}
),

checked as (
    select
        staged.run_id,
        staged.legacy_id,
        staged.legacy_key,
        staged.product_name,
        staged.description,
        staged.sku,
        staged.category,
        staged.price,
        staged.cost,
        staged.tax_rate,
        staged.is_purchased,
        staged.is_manufactured,
        staged.color,
        staged.weight,
        staged.sell_start_date,
        staged.sell_end_date,
        staged.discontinued_date,
        staged.record_data,
        {{ reasons_joined([
            'staged.parse_errors',
            reason_required('ProductName'),
            reason_required('SKU'),
            reason_negative('Price', 'staged.price'),
            reason_negative('Cost', 'staged.cost'),
            reason_negative('TaxRate', 'staged.tax_rate'),
            reason_negative('Weight', 'staged.weight'),
        ]) }} as base_reasons
    from staged
),

{{ unique_claim_ctes('Products', 'sku', 'SKU', 'product') }},

final as (
    select
        checked.run_id,
        checked.legacy_id,
        checked.legacy_key,
        checked.product_name as name,
        checked.description,
        checked.sku,
        checked.category,
        checked.price as list_price,
        checked.cost as cost_price,
        checked.tax_rate,
        -- Active unless discontinued or past its sell-end date (as of the run's day).
        (
            coalesce(checked.discontinued_date > current_date, true)
            and coalesce(checked.sell_end_date > current_date, true)
        ) as is_active,
        coalesce(checked.is_purchased, false) as is_purchased,
        coalesce(checked.is_manufactured, false) as is_manufactured,
        checked.color,
        checked.weight,
        checked.sell_start_date,
        checked.sell_end_date,
        checked.discontinued_date,
        {{ reasons_joined(['checked.base_reasons', 'claims.claim_reason']) }} as rejection_reasons,
        {{ reasons_joined(['checked.base_reasons', 'claims.claim_reason']) }} is not null as is_rejected,
        checked.record_data
    from checked
    inner join claims
        on checked.legacy_id = claims.legacy_id
)

select * from final
