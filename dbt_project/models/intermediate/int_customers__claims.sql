{#- Who holds each AccountNumber after this run (see business_key_claims_model in macros/validation.sql). -#}
{{ business_key_claims_model('Customers', 'AccountNumber', 'customer') }}
