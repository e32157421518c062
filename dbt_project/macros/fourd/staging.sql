{#-
    Staging helpers. A staging model declares its 4D fields once, as a list of
    (4D field, wire type, column name); these macros render the parsed columns and the
    collected parse errors from that one declaration.
-#}

{#- Every declared field of one record parsed, plus its `parse_errors`, as a subquery to join
    laterally to the landed rows (`cross join lateral (...) as parsed_fields`). It yields one
    row per record with the declared columns and `parse_errors`.

    Three nested selects, each evaluated once per record and read as columns by the next:
    1. `raw_fields`: one `payload -> 'Field'` look-up per field;
    2. `prepared_fields`: the wire-type parse from that value (dates: their d/m/y parts, times:
       their milliseconds);
    3. `parsed_values`: the final values (dates and times built from step 2).
    The outer select then builds the parse errors from columns only. `offset 0` keeps
    PostgreSQL from flattening a nested select into its parent, which would paste each
    expression into every place its column is read and evaluate it again there. -#}
{% macro fourd_parsed_fields(fields, payload='payload') -%}
    select
        {%- for field, type, column in fields %}
            parsed_values.{{ column }},
        {%- endfor %}
        nullif(
            concat_ws(
                '; ',
                {{ fourd_landing_issues(payload) }}
                {%- for field, type, column in fields %},
                {{ fourd_parse_error(
                    field, type,
                    'parsed_values.raw__' ~ column,
                    'parsed_values.prepared__' ~ column,
                    'parsed_values.' ~ column
                ) }}
                {%- endfor %}
            ),
            ''
        ) as parse_errors
    from (
        select
            {%- for field, type, column in fields %}
                prepared_fields.raw__{{ column }},
                prepared_fields.prepared__{{ column }},
                {{ fourd_finish('prepared_fields.prepared__' ~ column, type) }} as {{ column }}
                {{- "," if not loop.last }}
            {%- endfor %}
        from (
            select
                {%- for field, type, column in fields %}
                    raw_fields.raw__{{ column }},
                    {{ fourd_prepare('raw_fields.raw__' ~ column, type) }} as prepared__{{ column }}
                    {{- "," if not loop.last }}
                {%- endfor %}
            from (
                select
                    {%- for field, type, column in fields %}
                        {{ fourd_raw(field, 'landed_record.payload') }} as raw__{{ column }}
                        {{- "," if not loop.last }}
                    {%- endfor %}
                from (select {{ payload }} as payload) as landed_record
                offset 0
            ) as raw_fields
            offset 0
        ) as prepared_fields
        offset 0
    ) as parsed_values
{%- endmacro %}

{#- The declared columns as `relation.column,` lines (explicit column lists, no select *). -#}
{% macro fourd_column_names(fields, relation) -%}
    {%- for field, type, column in fields %}
        {{ relation }}.{{ column }},
    {%- endfor %}
{%- endmacro %}

{#- What the landing step found wrong with a record before dbt saw it (e.g. NUL characters,
    which PostgreSQL cannot store), from the payload's `__landing_issues` array. Most records
    have none: the key test skips the per-record subquery for them. -#}
{% macro fourd_landing_issues(payload='payload') -%}
    case
        when {{ payload }} ? '__landing_issues'
            then (
                select string_agg(issue.value, '; ')
                from jsonb_array_elements_text({{ payload }} -> '__landing_issues') as issue
            )
    end
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
