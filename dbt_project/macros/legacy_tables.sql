{#- The table registry on the dbt side (macros/generated/legacy_registry.sql holds the data,
    generated from plugins/legacy_sync/registry.py). Kept apart from the macros that call them:
    sqlfluff's jinja templater only honours a `return()` across macro files. -#}

{#- The registry entry of one legacy table (a dict: name, stem, key, fields, erp_columns, ...). -#}
{% macro legacy_table(name) -%}
    {%- set found = legacy_registry() | selectattr('name', 'equalto', name) | list -%}
    {%- if not found -%}
        {{ exceptions.raise_compiler_error("unknown legacy table " ~ name ~ " (see plugins/legacy_sync/registry.py)") }}
    {%- endif -%}
    {{ return(found[0]) }}
{%- endmacro %}

{#- Tags and meta every model of a legacy table carries: the pipeline selects a table's models by
    tag and blames a failed node on the tables in its meta (no guessing from node names). -#}
{% macro legacy_table_config(names) -%}
    {%- set names = [names] if names is string else names -%}
    {%- set tags = [] -%}
    {%- for name in names %}{% do tags.append('legacy:' ~ name) %}{% endfor -%}
    {{ config(tags=tags, meta={'legacy_tables': names}) }}
{%- endmacro %}
