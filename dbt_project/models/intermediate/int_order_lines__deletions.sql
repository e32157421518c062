{#- Live OrderLines rows this run would soft-delete, and whether the circuit breaker holds them. -#}
{{ erp_deletions_model('OrderLines') }}
