{#- One row per staged 4D order of this run: mapped ERP columns and the verdict (every
    rejection reason, NULL when valid). -#}
{{ validated_with_claims_model('Orders', [
    'order_number', 'customer_id', 'order_date', 'due_date', 'ship_date', 'status', 'subtotal',
    'tax_amount', 'freight', 'total_due',
]) }}
