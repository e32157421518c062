{#- Who holds each OrderNumber after this run (see business_key_claims_model in macros/validation.sql). -#}
{{ business_key_claims_model('Orders', 'OrderNumber', 'order') }}
