{#-
    Parsers for 4D REST wire values (dates as d!m!yyyy, "0!0!0" for none, times in ms). Each renders an expression
    that can never raise: a value that does not parse yields NULL, and the staging helpers
    (macros/fourd/staging.sql, fourd_parsed_fields) turn "present but NULL" into a reason.

    The parsers work on `raw`, the field's jsonb value (`payload -> 'Field'`), which the staging
    helpers extract once per record into a column, so every reference here is a column read,
    not a new look-up in the payload. Common values take one cheap branch: a JSON number is cast
    directly (jsonb -> numeric keeps its digits), the regular expressions only run on strings.

    Only nested CASE guards a cast: PostgreSQL does not promise the evaluation order of AND
    operands, but it does evaluate CASE branches in order (and drops constant-false branches
    before folding them), so a guarded cast or make_date() never sees a bad value.

    Dates and times parse in two steps (fourd_prepare, then fourd_finish) so that the day/month/
    year parts and the milliseconds are computed once and read as columns by the second step.
-#}

{% macro fourd_raw(field, payload='payload') -%}
    ({{ payload }} -> '{{ field }}')
{%- endmacro %}

{#- A JSON scalar as text, unquoted (NULL for JSON null or SQL NULL). -#}
{% macro fourd_raw_text(raw) -%}
    ({{ raw }} #>> '{}')
{%- endmacro %}

{#- Missing key, JSON null, an empty/blank string (spaces), and for dates the blank date 0!0!0.
    `dmy`: the date's parts from fourd_prepare (a string matching d!m!yyyy whose parts are all
    zero is exactly the blank date), else the blank date is recognised by its pattern. -#}
{% macro fourd_raw_is_blank(raw, type='text', dmy=none) -%}
    (
        coalesce(jsonb_typeof({{ raw }}), 'null') = 'null'
        or (
            jsonb_typeof({{ raw }}) = 'string'
            and (
                btrim({{ fourd_raw_text(raw) }}) = ''
                {%- if type == 'date' and dmy %}
                    or {{ dmy }} = array[0, 0, 0]
                {%- elif type == 'date' %}
                    or btrim({{ fourd_raw_text(raw) }}) ~ '^0{1,2}!0{1,2}!0{1,4}$'
                {%- endif %}
            )
        )
    )
{%- endmacro %}

{#- The same test on a field of a payload (used by the validation rules). -#}
{% macro fourd_is_blank(field, type='text', payload='payload') -%}
    {{ fourd_raw_is_blank(fourd_raw(field, payload), type) }}
{%- endmacro %}

{#- Text: trimmed, CR and CRLF line ends normalised to LF, blank -> NULL. Numbers and booleans
    are accepted as their text; objects and arrays are not text. (CRLF -> LF, then CR -> LF is
    the same as replacing the pattern \r\n? left to right, without a regular expression.) -#}
{% macro fourd_text(raw) -%}
    case
        when jsonb_typeof({{ raw }}) in ('string', 'number', 'boolean')
            then nullif(
                btrim(
                    replace(replace({{ fourd_raw_text(raw) }}, E'\r\n', E'\n'), E'\r', E'\n'),
                    E' \t\n'
                ),
                ''
            )
    end
{%- endmacro %}

{#- Real: a JSON number, or a string holding a plain decimal number. -#}
{% macro fourd_number(raw) -%}
    case jsonb_typeof({{ raw }})
        when 'number' then ({{ raw }})::numeric
        when 'string'
            then
                case
                    when
                        btrim({{ fourd_raw_text(raw) }})
                        ~ '^[+-]?([0-9]+[.]?[0-9]*|[.][0-9]+)([eE][+-]?[0-9]{1,3})?$'
                        then btrim({{ fourd_raw_text(raw) }})::numeric
                end
    end
{%- endmacro %}

{#- Integer/Longint/Word: a number without fraction that fits a bigint (or a string of digits). -#}
{% macro fourd_integer(raw) -%}
    case jsonb_typeof({{ raw }})
        when 'number'
            then
                case
                    when
                        trunc(({{ raw }})::numeric) = ({{ raw }})::numeric
                        and abs(({{ raw }})::numeric) < 1e18
                        then ({{ raw }})::bigint
                end
        when 'string'
            then
                case
                    when btrim({{ fourd_raw_text(raw) }}) ~ '^[+-]?[0-9]{1,18}$'
                        then btrim({{ fourd_raw_text(raw) }})::bigint
                end
    end
{%- endmacro %}

{#- Boolean: true/false; tolerated: "true"/"false" strings and 0/1. -#}
{% macro fourd_boolean(raw) -%}
    case jsonb_typeof({{ raw }})
        when 'boolean' then ({{ raw }})::boolean
        when 'string'
            then
                case lower(btrim({{ fourd_raw_text(raw) }}))
                    when 'true' then true
                    when 'false' then false
                end
        when 'number'
            then
                case {{ fourd_raw_text(raw) }}
                    when '1' then true
                    when '0' then false
                end
    end
{%- endmacro %}

{#- Date, step 1: "d!m!yyyy" (unpadded or padded) as int[] {d, m, y}, NULL for anything else.
    The pattern admits at most 4 digits per part, so the int cast cannot fail. -#}
{% macro fourd_date_parts(raw) -%}
    case
        when jsonb_typeof({{ raw }}) = 'string'
            then
                case
                    when btrim({{ fourd_raw_text(raw) }}) ~ '^[0-9]{1,2}![0-9]{1,2}![0-9]{1,4}$'
                        then string_to_array(btrim({{ fourd_raw_text(raw) }}), '!')::int[]
                end
    end
{%- endmacro %}

{#- Date, step 2: a real calendar date from the parts; "0!0!0" and an impossible day
    (31!2!2020), month or year are NULL. Days per month by the Gregorian rule, which is the
    calendar of PostgreSQL's date type (proleptic, years 1..9999 here). -#}
{% macro fourd_date_from_parts(dmy) -%}
    case
        when
            {{ dmy }}[2] between 1 and 12
            and {{ dmy }}[3] >= 1
            and {{ dmy }}[1] between 1 and case
                when {{ dmy }}[2] = 2
                    then
                        case
                            when
                                {{ dmy }}[3] % 4 = 0
                                and ({{ dmy }}[3] % 100 != 0 or {{ dmy }}[3] % 400 = 0)
                                then 29
                            else 28
                        end
                when {{ dmy }}[2] in (4, 6, 9, 11) then 30
                else 31
            end
            then make_date({{ dmy }}[3], {{ dmy }}[2], {{ dmy }}[1])
    end
{%- endmacro %}

{#- Time (4D duration), step 2: milliseconds since midnight (an integer from fourd_integer),
    0 <= ms < 86,400,000. -#}
{% macro fourd_time_from_ms(ms) -%}
    case
        when {{ ms }} between 0 and 86399999
            then time '00:00' + ({{ ms }}) * interval '1 millisecond'
    end
{%- endmacro %}

{#- Step 1 of a field's parse, from its raw jsonb: the value itself, except dates (their parts)
    and times (the milliseconds as an integer). -#}
{% macro fourd_prepare(raw, type) -%}
    {%- if type == 'text' -%}{{ fourd_text(raw) }}
    {%- elif type == 'number' -%}{{ fourd_number(raw) }}
    {%- elif type in ('integer', 'time') -%}{{ fourd_integer(raw) }}
    {%- elif type == 'boolean' -%}{{ fourd_boolean(raw) }}
    {%- elif type == 'date' -%}{{ fourd_date_parts(raw) }}
    {%- else -%}{{ exceptions.raise_compiler_error("unknown 4D wire type " ~ type) }}
    {%- endif -%}
{%- endmacro %}

{#- Step 2: the parsed value from step 1's column. -#}
{% macro fourd_finish(prepared, type) -%}
    {%- if type == 'date' -%}{{ fourd_date_from_parts(prepared) }}
    {%- elif type == 'time' -%}{{ fourd_time_from_ms(prepared) }}
    {%- else -%}{{ prepared }}
    {%- endif -%}
{%- endmacro %}

{#- The readable reason a present value did not parse, else NULL, from columns already holding
    the raw jsonb, step 1's result and the parsed value. -#}
{% macro fourd_parse_error(field, type, raw, prepared, value) -%}
    {%- set expected = {
        'text': 'text',
        'number': 'a number',
        'integer': 'an integer',
        'boolean': 'a boolean',
        'date': 'a 4D date (d!m!yyyy)',
        'time': 'a 4D time (milliseconds since midnight)',
    }[type] -%}
    case
        when {{ value }} is not null then null
        when {{ fourd_raw_is_blank(raw, type, prepared if type == 'date' else none) }} then null
        else '{{ field }} is not {{ expected }}: ' || left(({{ raw }})::text, 80)
    end
{%- endmacro %}
