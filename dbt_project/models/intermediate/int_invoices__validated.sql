{#- One row per staged 4D invoice of this run: mapped ERP columns and the verdict (every
    rejection reason, NULL when valid). -#}
{{ validated_with_claims_model('Invoices', [
    'invoice_number', 'order_id', 'customer_id', 'invoice_date', 'due_date', 'amount', 'tax_amount',
    'is_paid', 'paid_date',
]) }}
