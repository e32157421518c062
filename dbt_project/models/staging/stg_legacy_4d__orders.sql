{#- One 4D Orders entity per row: this run's last landed version, wire types checked. -#}
{{ fourd_staging_model('Orders') }}
