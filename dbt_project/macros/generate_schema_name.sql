{#- Custom schema names are used verbatim (legacy_transform, erp), never prefixed with the
    target schema: the erp tables are a contract other systems read. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
