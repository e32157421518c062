{#- Who holds each InvoiceNumber after this run (see business_key_claims_model in macros/validation.sql). -#}
{{ business_key_claims_model('Invoices', 'InvoiceNumber', 'invoice') }}
