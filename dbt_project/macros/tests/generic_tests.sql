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

{#-
    Every per-row check of one model in one query (one dbt node instead of one per check: dbt
    costs ~0.1-0.2 s per node whatever the rows). `checks` is a list of
      {check: not_null | unique | not_negative, column: c}
      {check: accepted_values, column: c, values: [...]}
      {check: relationships, column: c, to: <model name>, field: id}
      {check: expression, expression: <boolean SQL>}
    each meaning what dbt's test of that name means (`unique` ignores NULLs, `accepted_values`
    and `relationships` pass NULLs). The failing rows come back as (legacy_id = the model's
    `key`, check_column, problem in words): a failure names its checks, records and keys
    (plugins/legacy_sync/dbt_build.py, report_test_failures). The model goes through
    get_where_subquery like any test's, so in the pipeline an erp model's checks see only the rows
    the run touched.
-#}
{% test row_checks(model, checks, key='legacy_id') %}
    with checked as (select * from {{ model }})
    {%- for check in checks %}
        {%- set column = check.get('column') %}
        {%- if not loop.first %}
    union all
        {%- endif %}
    select
        checked.{{ key }}::text as legacy_id,
        {{ "'" ~ column ~ "'" if column else 'null' }}::text as check_column,
        {%- if check.check == 'not_null' %}
        'is empty'::text as problem
    from checked
    where checked.{{ column }} is null
        {%- elif check.check == 'unique' %}
        'is not unique'::text as problem
    from checked
    where checked.{{ column }} in (
        select dup.{{ column }} from checked as dup
        where dup.{{ column }} is not null
        group by dup.{{ column }}
        having count(*) > 1
    )
        {%- elif check.check == 'not_negative' %}
        'is negative'::text as problem
    from checked
    where checked.{{ column }} < 0
        {%- elif check.check == 'accepted_values' %}
        {{ "'holds a value outside " ~ (check['values'] | join(', ')) | replace("'", "''") ~ "'" }}::text as problem
    from checked
    where checked.{{ column }}::text not in (
        {%- for value in check['values'] %}'{{ value | replace("'", "''") }}'{{ ", " if not loop.last }}{% endfor -%}
    )
        {%- elif check.check == 'relationships' %}
            {%- set parent = ref(check.to) %}
        {{ "'points to rows missing from " ~ parent.schema ~ "." ~ parent.identifier ~ "'" }}::text as problem
    from checked
    left join {{ parent }} as parent on checked.{{ column }} = parent.{{ check.get('field', 'id') }}
    where checked.{{ column }} is not null and parent.{{ check.get('field', 'id') }} is null
        {%- elif check.check == 'expression' %}
        {{ "'breaks the rule `" ~ check.expression | replace("'", "''") ~ "`'" }}::text as problem
    from checked
    where not coalesce(({{ check.expression }}), false)
        {%- else %}
        {{ exceptions.raise_compiler_error("row_checks: unknown check " ~ check) }}
        {%- endif %}
    {%- endfor %}
{% endtest %}
