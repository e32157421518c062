{#- One row per staged 4D product of this run: mapped ERP columns and the verdict (every
    rejection reason, NULL when valid). -#}
{{ validated_with_claims_model('Products', [
    'name', 'description', 'sku', 'category', 'list_price', 'cost_price', 'tax_rate', 'is_active',
    'is_purchased', 'is_manufactured', 'color', 'weight', 'sell_start_date', 'sell_end_date',
    'discontinued_date',
]) }}
