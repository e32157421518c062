{#- Custom schema names are used verbatim (legacy_transform, erp), never prefixed with the
    target schema: the erp tables are a contract other systems read.

    The legacy-vs-ERP diff (plugins/legacy_sync/diff.py) maps 4D's records with these same
    models into a working schema of its own: `--vars '{transform_schema: legacy_diff}'` moves
    the staging and intermediate tables there, so the diff never touches the sync's working
    tables (and needs no ERP lock); `erp` stays `erp`. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- elif custom_schema_name | trim == 'legacy_transform' and var('transform_schema', none) -%}
        {{ var('transform_schema') | trim }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
