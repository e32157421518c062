{#- One 4D Customers entity per row: this run's last landed version, wire types checked. -#}
{{ fourd_staging_model('Customers') }}
