{#-
    Staging: one model per legacy table, rendered from the table registry
    (macros/generated/legacy_registry.sql, generated from plugins/legacy_sync/registry.py).
    A staging model is `{{ fourd_staging_model('Products') }}`: this run's last landed version of
    each record, every declared field parsed by its wire type, and what went wrong with it:

    - parse_errors: values that do not parse (and what the landing step found: NUL, lone
      surrogates, integers wider than 64 bits) -- each a rejection reason;
    - absent_fields: declared attributes 4D did not send at all (a privilege hides them from the
      REST user): a rejection, never a NULL merged over a good ERP value;
    - parse_warnings: problems of fields that are not mapped (ModifiedTime), a ModifiedDate after
      4D's today -- reported, never blocking.
-#}

{% macro fourd_staging_model(table_name) -%}
    {%- set table = legacy_table(table_name) -%}
    {{- legacy_table_config(table_name) }}
with

landed as (
    {{ fourd_current_run_rows(table.stem ~ '_raw', table_name) }}
),

latest as (
    select
        run_id,
        legacy_id,
        payload,
        extracted_at
    from landed
    where version_rank = 1
),

run_context as (
    select {{ run_window_date() }} as window_date
),

checked as (
    select
        latest.run_id,
        latest.legacy_id,
        latest.payload,
        latest.extracted_at,
        {{- fourd_column_names(table.fields, 'parsed_fields') }}
        parsed_fields.parse_errors,
        parsed_fields.absent_fields,
        parsed_fields.parse_warnings
    from latest
    cross join lateral (
        {{ fourd_parsed_fields(table.fields, 'latest.payload') }}
    ) as parsed_fields
),

final as (
    select
        checked.run_id,
        checked.legacy_id,
        case
            when checked.legacy_id ~ '^[0-9]{1,18}$' then checked.legacy_id::bigint
        end as legacy_key,
        {{- fourd_column_names(table.fields, 'checked') }}
        checked.parse_errors,
        checked.absent_fields,
        nullif(concat_ws(
            '; ',
            checked.parse_warnings,
            case
                when checked.modified_date > run_context.window_date
                    then 'ModifiedDate ' || checked.modified_date || ' is after 4D''s today ('
                    || run_context.window_date
                    || '): a typo or a wrong client clock; the record is loaded, the date is not used'
                    || ' as the watermark'
            end
        ), '') as parse_warnings,
        {{ fourd_source_stamp('checked.payload') }} as source_stamp,
        {{ fourd_source_timestamp('checked.payload') }} as source_timestamp,
        coalesce(checked.payload ? '__read_again', false) as is_retry,
        checked.payload as record_data,
        checked.extracted_at
    from checked
    cross join run_context
)

select * from final
{%- endmacro %}

{#- Every declared field of one record parsed, plus its parse_errors / absent_fields /
    parse_warnings, as a subquery to join laterally to the landed rows. `fields` are registry
    tuples (4D field, wire type, column, parent, warn_only).

    Three nested selects, each evaluated once per record and read as columns by the next:
    1. `raw_fields`: one `payload -> 'Field'` look-up per field (SQL NULL when 4D did not send
       the attribute, jsonb 'null' when it sent null: that tells absent from null);
    2. `prepared_fields`: the wire-type parse from that value (dates: their d/m/y parts, times:
       their milliseconds);
    3. `parsed_values`: the final values (dates and times built from step 2).
    The outer select then builds the reasons from columns only. `offset 0` keeps PostgreSQL from
    flattening a nested select into its parent, which would paste each expression into every
    place its column is read and evaluate it again there. -#}
{% macro fourd_parsed_fields(fields, payload='payload') -%}
    select
        {%- for field, type, column, parent, warn_only in fields %}
            parsed_values.{{ column }},
        {%- endfor %}
        nullif(
            concat_ws(
                '; ',
                {{ fourd_landing_notes(payload, '__landing_issues') }}
                {%- for field, type, column, parent, warn_only in fields if not warn_only %},
                {{ fourd_parse_error(
                    field, type,
                    'parsed_values.raw__' ~ column,
                    'parsed_values.prepared__' ~ column,
                    'parsed_values.' ~ column
                ) }}
                {%- endfor %}
            ),
            ''
        ) as parse_errors,
        nullif(
            concat_ws(
                ', '
                {%- for field, type, column, parent, warn_only in fields if not warn_only %},
                case when parsed_values.raw__{{ column }} is null then '{{ field }}' end
                {%- endfor %}
            ),
            ''
        ) as absent_fields,
        nullif(
            concat_ws(
                '; ',
                {{ fourd_landing_notes(payload, '__landing_warnings') }}
                {%- for field, type, column, parent, warn_only in fields if warn_only %},
                case
                    when parsed_values.raw__{{ column }} is null then '{{ field }} was not sent by 4D'
                    else {{ fourd_parse_error(
                        field, type,
                        'parsed_values.raw__' ~ column,
                        'parsed_values.prepared__' ~ column,
                        'parsed_values.' ~ column
                    ) }}
                end
                {%- endfor %}
            ),
            ''
        ) as parse_warnings
    from (
        select
            {%- for field, type, column, parent, warn_only in fields %}
                prepared_fields.raw__{{ column }},
                prepared_fields.prepared__{{ column }},
                {{ fourd_finish('prepared_fields.prepared__' ~ column, type) }} as {{ column }}
                {{- "," if not loop.last }}
            {%- endfor %}
        from (
            select
                {%- for field, type, column, parent, warn_only in fields %}
                    raw_fields.raw__{{ column }},
                    {{ fourd_prepare('raw_fields.raw__' ~ column, type) }} as prepared__{{ column }}
                    {{- "," if not loop.last }}
                {%- endfor %}
            from (
                select
                    {%- for field, type, column, parent, warn_only in fields %}
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
    {%- for field in fields %}
        {{ relation }}.{{ field[2] }},
    {%- endfor %}
{%- endmacro %}

{#- What the landing step noted about a record before dbt saw it, from a payload array:
    `__landing_issues` (rejections: NUL characters, lone surrogates, integers wider than 64 bits)
    or `__landing_warnings`. Most records have none: the key test skips the per-record subquery. -#}
{% macro fourd_landing_notes(payload, key) -%}
    case
        when {{ payload }} ? '{{ key }}'
            then (
                select string_agg(note.value, '; ')
                from jsonb_array_elements_text({{ payload }} -> '{{ key }}') as note
            )
    end
{%- endmacro %}

{#- The record's version in 4D, to never write an older version over a newer one: its
    __GlobalStamp (datastore-wide, survives a delete and re-create) when the table is tracked,
    else its __STAMP (bumped on every save). -#}
{% macro fourd_source_stamp(payload) -%}
    coalesce(
        {{ fourd_stamp_value(payload ~ " -> '__GlobalStamp'") }},
        {{ fourd_stamp_value(payload ~ " -> '__STAMP'") }}
    )
{%- endmacro %}

{#- A positive JSON integer stamp as bigint, else NULL (0 means "change tracking off"). -#}
{% macro fourd_stamp_value(raw) -%}
    case
        when jsonb_typeof({{ raw }}) = 'number'
            then
                case
                    when ({{ raw }})::numeric between 1 and 999999999999999999
                        then trunc(({{ raw }})::numeric)::bigint
                end
    end
{%- endmacro %}

{#- 4D's last-modification time of the record (`__TIMESTAMP`, ISO-8601 UTC), kept as text: the
    fixed format orders correctly as text and no calendar value can make a cast fail. -#}
{% macro fourd_source_timestamp(payload) -%}
    case
        when ({{ payload }} ->> '__TIMESTAMP') ~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z$'
            then {{ payload }} ->> '__TIMESTAMP'
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
