{#- One row per 4D order ever synced (soft-deleted when gone from 4D); merged by legacy_id,
    only new, changed, reappearing, rejected-version and deleted rows are written. -#}
{{ erp_model('Orders') }}
