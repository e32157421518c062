{#- Generic tests written here because dbt hub packages cannot be installed. Every test returns
    whole failing rows, so a failure can name example keys (legacy_id): see
    report_test_failures (on-run-end) and the pipeline's verdicts. -#}

{#- Fails on rows where the column is negative (NULL passes; pair with not_null). -#}
{% test not_negative(model, column_name) %}
    select *
    from {{ model }}
    where {{ column_name }} < 0
{% endtest %}

{#- Fails on rows where the boolean SQL expression is not true. -#}
{% test expression_is_true(model, expression) %}
    select *
    from {{ model }}
    where not coalesce(({{ expression }}), false)
{% endtest %}

{#- Every record this run staged is live in its erp table with this version or a newer one
    (never lost, never an update dropped), or rejected with its erp row left as it was.
    Attached to int_<table>__validated; `erp` is the table's erp model. -#}
{% test staged_records_loaded_or_rejected(model, erp) %}
    select
        validated.legacy_id,
        case
            when validated.is_rejected
                then 'rejected, but its erp row was rewritten by this run'
            when erp_rows.legacy_id is null
                then 'neither loaded into erp nor rejected'
            when erp_rows.is_deleted
                then 'loaded and soft-deleted by the same run'
            else 'an older version than 4D sent stayed in erp (the update was lost)'
        end as problem
    from (select * from {{ model }}) as validated
    left join {{ erp }} as erp_rows
        on validated.legacy_id = erp_rows.legacy_id
    where
        -- the working table holds the last run's records (a plain `dbt test` checks that run)
        validated.run_id = {{ current_run_id() }}
        and case
            when validated.is_rejected
                then coalesce(erp_rows.updated_run_id = {{ current_run_id() }}, false)
                and erp_rows.created_run_id != {{ current_run_id() }}
            else
                erp_rows.legacy_id is null
                or coalesce(erp_rows.deleted_run_id = {{ current_run_id() }}, false)
                or coalesce(erp_rows.source_stamp < validated.source_stamp, false)
        end
{% endtest %}

{#- dbt's not_null and relationships, returning the whole failing rows (dbt's own return only
    the column unless failures are stored), so a failure can show which records. -#}
{% macro default__test_not_null(model, column_name) %}
    select *
    from {{ model }}
    where {{ column_name }} is null
{% endmacro %}

{% macro default__test_relationships(model, column_name, to, field) %}
    select child.*
    from (select * from {{ model }}) as child
    left join {{ to }} as parent
        on child.{{ column_name }} = parent.{{ field }}
    where
        child.{{ column_name }} is not null
        and parent.{{ field }} is null
{% endmacro %}

{#-
    Which rows a data test looks at (dbt's `where` config goes through this macro). When the
    pipeline builds (`--vars '{scope: run}'`), tests on erp tables look only at the rows this run
    wrote (created, changed, deleted or marked): an index scan on the audit run ids, so an hourly
    run's checks cost what it changed. Uniqueness across the whole table is the constraints' job
    (primary key, unique legacy_id, the live business-key exclusion constraint). A plain
    `dbt test` (no scope) checks the whole ERP as it stands.
-#}
{% macro get_where_subquery(relation) -%}
    {%- set filters = [] -%}
    {%- set where = config.get('where', '') -%}
    {%- if where -%}
        {%- do filters.append('(' ~ where ~ ')') -%}
    {%- endif -%}
    {%- if run_scope() == 'run' and relation.schema == 'erp' -%}
        {%- do filters.append(
            '(updated_run_id = ' ~ current_run_id() ~ ' or deleted_run_id = ' ~ current_run_id()
            ~ ' or rejected_since_run_id = ' ~ current_run_id() ~ ')'
        ) -%}
    {%- endif -%}
    {%- if filters -%}
        {%- do return('(select * from ' ~ relation ~ ' where ' ~ filters | join(' and ') ~ ') as dbt_subquery') -%}
    {%- else -%}
        {%- do return(relation) -%}
    {%- endif -%}
{%- endmacro %}
