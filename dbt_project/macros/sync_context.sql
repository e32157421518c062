{#-
    The sync run this build processes, and its settings. The pipeline writes them into
    legacy_sync.transform_context (one row) under its lock before every build
    (plugins/legacy_sync/ledger.py): they are data, not dbt vars, so dbt's partial parsing
    survives from run to run. Unit tests pass `vars: {run_id: ...}` instead.

    `scope`: `run` when the pipeline builds (tests look at the rows this run touched), else the
    whole ERP as it stands -- what a plain `dbt test` checks.
-#}
{#-
    The run id is written into the SQL as a constant when dbt executes: the pipeline passes it
    as LEGACY_SYNC_RUN_ID too (read only at execution, never while dbt parses, so partial parsing
    stays valid). With the subquery alone, PostgreSQL plans `updated_run_id = (select ...)` for
    an average value -- on a table one full sync wrote, every row -- and scanned whole erp tables
    to find the few rows an hourly run touched (3 s of a 1M-record run's checks, growing with the
    ERP). A plain `dbt test` has no such variable and reads transform_context as before.
-#}
{% macro current_run_id() -%}
    {%- set run_id = var('run_id', none) -%}
    {%- if run_id is none and execute -%}
        {%- set run_id = env_var('LEGACY_SYNC_RUN_ID', '') or none -%}
    {%- endif -%}
    {%- if run_id is none -%}
        (select transform_context.run_id from legacy_sync.transform_context as transform_context)
    {%- else -%}
        '{{ run_id | string | replace("'", "''") }}'
    {%- endif -%}
{%- endmacro %}

{#- A numeric setting of the current run (delete_hold_share, delete_hold_min_rows). -#}
{% macro sync_setting(name) -%}
    {%- set value = var(name, none) -%}
    {%- if value is none -%}
        (select transform_context.{{ name }} from legacy_sync.transform_context as transform_context)
    {%- else -%}
        {{ value }}
    {%- endif -%}
{%- endmacro %}

{#- 4D's today when the run began (the server's Date header): no date is "in the future" before it. -#}
{% macro run_window_date() -%}
    {%- set value = var('window_date', none) -%}
    {%- if value is none -%}
        (
            select sync_run.window_date from legacy_sync.sync_run as sync_run
            where sync_run.run_id = {{ current_run_id() }}
        )
    {%- else -%}
        cast('{{ value }}' as date)
    {%- endif -%}
{%- endmacro %}

{% macro run_scope() -%}
    {{ return(var('scope', 'erp')) }}
{%- endmacro %}
