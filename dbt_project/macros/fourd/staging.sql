{#-
    Staging helpers. A staging model declares its 4D fields once, as a list of
    (4D field, wire type, column name); these macros render the parsed columns and the
    collected parse errors from that one declaration.
-#}

{% macro fourd_columns(fields, payload='payload') -%}
    {%- for field, type, column in fields %}
        {{ fourd_value(field, type, payload) }} as {{ column }}{{ "," if not loop.last }}
    {%- endfor %}
{%- endmacro %}

{#- The declared columns as `relation.column,` lines (explicit column lists, no select *). -#}
{% macro fourd_column_names(fields, relation) -%}
    {%- for field, type, column in fields %}
        {{ relation }}.{{ column }},
    {%- endfor %}
{%- endmacro %}

{#- What the landing step found wrong with a record before dbt saw it (e.g. NUL characters,
    which PostgreSQL cannot store), from the payload's `__landing_issues` array. -#}
{% macro fourd_landing_issues(payload='payload') -%}
    (
        select string_agg(issue.value, '; ')
        from jsonb_array_elements_text(coalesce({{ payload }} -> '__landing_issues', '[]'::jsonb)) as issue
    )
{%- endmacro %}

{#- All parse errors of a record joined with "; " (NULL when every value parsed). -#}
{#- With `parsed`, the alias of a relation already holding the parsed columns, the values are
    not parsed a second time. -#}
{% macro fourd_parse_errors(fields, payload='payload', parsed=none) -%}
    nullif(
        concat_ws(
            '; ',
            {{ fourd_landing_issues(payload) }}
            {%- for field, type, column in fields %},
            {{ fourd_parse_error(field, type, payload, parsed ~ '.' ~ column if parsed else none) }}
            {%- endfor %}
        ),
        ''
    )
{%- endmacro %}

{#- The landed rows of one raw table for the current run, one per legacy_id (the last
    extracted; for a duplicate within one extract the higher __GlobalStamp/__STAMP, the newer
    version of the record), and only when the run has a landing_batch row for the table. -#}
{% macro fourd_current_run_rows(raw_table, table_name) -%}
    select
        raw.run_id,
        raw.legacy_id,
        raw.payload,
        raw.row_hash,
        raw.extracted_at,
        row_number() over (
            partition by raw.legacy_id
            order by
                raw.extracted_at desc,
                raw.payload -> '__GlobalStamp' desc nulls last,
                raw.payload -> '__STAMP' desc nulls last,
                raw.row_hash desc
        ) as version_rank
    from {{ source('legacy_4d', raw_table) }} as raw
    where
        raw.run_id = {{ current_run_id() }}
        and exists (
            select 1
            from {{ source('legacy_sync', 'landing_batch') }} as batch
            where
                batch.run_id = raw.run_id
                and batch.table_name = '{{ table_name }}'
        )
{%- endmacro %}
