{#- One row per staged 4D customer of this run: mapped ERP columns and the verdict (every
    rejection reason, NULL when valid). -#}
{{ validated_with_claims_model('Customers', [
    'account_number', 'company_name', 'first_name', 'last_name', 'email', 'phone', 'customer_type',
]) }}
