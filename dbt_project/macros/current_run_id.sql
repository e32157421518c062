{#- The Airflow run whose staged rows this build processes, as a quoted SQL literal.
    Required at run time (--vars '{run_id: ...}'); parsing works without it. -#}
{% macro current_run_id() -%}
    {%- set run_id = var('run_id', none) -%}
    {%- if run_id is none -%}
        {%- if execute -%}
            {{ exceptions.raise_compiler_error("var 'run_id' is required: dbt build --vars '{run_id: <airflow run id>}'") }}
        {%- endif -%}
        {%- set run_id = '' -%}
    {%- endif -%}
    '{{ run_id | string | replace("'", "''") }}'
{%- endmacro %}
