{#-
    Parsers for 4D REST wire values (docs/4d-rest-protocol.md §3.4). Each takes the JSON key and
    the jsonb column holding the entity, and renders an expression that can never raise: a value
    that does not parse yields NULL here and a reason from fourd_parse_error().

    Only nested CASE guards a cast: PostgreSQL does not promise the evaluation order of AND
    operands, but it does evaluate CASE branches in order (and drops constant-false branches
    before folding them), so a guarded cast or make_date() never sees a bad value.
-#}

{% macro fourd_raw(field, payload='payload') -%}
    ({{ payload }} -> '{{ field }}')
{%- endmacro %}

{#- The JSON scalar as text, unquoted (NULL for JSON null or a missing key). -#}
{% macro fourd_scalar(field, payload='payload') -%}
    ({{ payload }} ->> '{{ field }}')
{%- endmacro %}

{#- Missing key, JSON null, an empty/blank string, and for dates the blank date 0!0!0. -#}
{% macro fourd_is_blank(field, type='text', payload='payload') -%}
    (
        coalesce(jsonb_typeof({{ fourd_raw(field, payload) }}), 'null') = 'null'
        or (
            jsonb_typeof({{ fourd_raw(field, payload) }}) = 'string'
            and (
                btrim({{ fourd_scalar(field, payload) }}) = ''
                {%- if type == 'date' %}
                    or btrim({{ fourd_scalar(field, payload) }}) ~ '^0{1,2}!0{1,2}!0{1,4}$'
                {%- endif %}
            )
        )
    )
{%- endmacro %}

{#- Text: trimmed, CR and CRLF line ends normalised to LF, blank -> NULL. Numbers and booleans
    are accepted as their text; objects and arrays are not text. -#}
{% macro fourd_text(field, payload='payload') -%}
    case
        when jsonb_typeof({{ fourd_raw(field, payload) }}) in ('string', 'number', 'boolean')
            then nullif(
                btrim(
                    regexp_replace({{ fourd_scalar(field, payload) }}, E'\r\n?', E'\n', 'g'),
                    E' \t\n'
                ),
                ''
            )
    end
{%- endmacro %}

{#- Real: a JSON number, or a string holding a plain decimal number. -#}
{% macro fourd_number(field, payload='payload') -%}
    case jsonb_typeof({{ fourd_raw(field, payload) }})
        when 'number' then ({{ fourd_scalar(field, payload) }})::numeric
        when 'string'
            then
                case
                    when
                        btrim({{ fourd_scalar(field, payload) }})
                        ~ '^[+-]?([0-9]+[.]?[0-9]*|[.][0-9]+)([eE][+-]?[0-9]{1,3})?$'
                        then btrim({{ fourd_scalar(field, payload) }})::numeric
                end
    end
{%- endmacro %}

{#- Integer/Longint/Word: a number without fraction that fits a bigint (or a string of digits). -#}
{% macro fourd_integer(field, payload='payload') -%}
    case jsonb_typeof({{ fourd_raw(field, payload) }})
        when 'number'
            then
                case
                    when
                        ({{ fourd_scalar(field, payload) }})::numeric % 1 = 0
                        and abs(({{ fourd_scalar(field, payload) }})::numeric) < 1e18
                        then ({{ fourd_scalar(field, payload) }})::numeric::bigint
                end
        when 'string'
            then
                case
                    when btrim({{ fourd_scalar(field, payload) }}) ~ '^[+-]?[0-9]{1,18}$'
                        then btrim({{ fourd_scalar(field, payload) }})::bigint
                end
    end
{%- endmacro %}

{#- Boolean: true/false; tolerated: "true"/"false" strings and 0/1. -#}
{% macro fourd_boolean(field, payload='payload') -%}
    case jsonb_typeof({{ fourd_raw(field, payload) }})
        when 'boolean' then ({{ fourd_scalar(field, payload) }})::boolean
        when 'string'
            then
                case lower(btrim({{ fourd_scalar(field, payload) }}))
                    when 'true' then true
                    when 'false' then false
                end
        when 'number'
            then
                case {{ fourd_scalar(field, payload) }}
                    when '1' then true
                    when '0' then false
                end
    end
{%- endmacro %}

{#- Date: "d!m!yyyy", unpadded or padded; "0!0!0" and null are NULL; an impossible day
    (31!2!2020), month or year is unparseable. -#}
{% macro fourd_date(field, payload='payload') -%}
    {%- set s = "btrim(" ~ fourd_scalar(field, payload) ~ ")" -%}
    {%- set d = "split_part(" ~ s ~ ", '!', 1)::int" -%}
    {%- set m = "split_part(" ~ s ~ ", '!', 2)::int" -%}
    {%- set y = "split_part(" ~ s ~ ", '!', 3)::int" -%}
    case
        when
            jsonb_typeof({{ fourd_raw(field, payload) }}) = 'string'
            and {{ s }} ~ '^[0-9]{1,2}![0-9]{1,2}![0-9]{1,4}$'
            then
                case
                    when
                        case
                            when {{ m }} between 1 and 12 and {{ y }} >= 1
                                then
                                    {{ d }} between 1 and extract(
                                        day from make_date({{ y }}, {{ m }}, 1)
                                        + interval '1 month' - interval '1 day'
                                    )
                            else false
                        end
                        then make_date({{ y }}, {{ m }}, {{ d }})
                end
    end
{%- endmacro %}

{#- Time (4D duration): milliseconds since midnight as a JSON number, 0 <= ms < 86,400,000. -#}
{% macro fourd_time(field, payload='payload') -%}
    case
        when {{ fourd_integer(field, payload) }} between 0 and 86399999
            then time '00:00' + ({{ fourd_integer(field, payload) }}) * interval '1 millisecond'
    end
{%- endmacro %}

{% macro fourd_value(field, type, payload='payload') -%}
    {%- if type == 'text' -%}{{ fourd_text(field, payload) }}
    {%- elif type == 'number' -%}{{ fourd_number(field, payload) }}
    {%- elif type == 'integer' -%}{{ fourd_integer(field, payload) }}
    {%- elif type == 'boolean' -%}{{ fourd_boolean(field, payload) }}
    {%- elif type == 'date' -%}{{ fourd_date(field, payload) }}
    {%- elif type == 'time' -%}{{ fourd_time(field, payload) }}
    {%- else -%}{{ exceptions.raise_compiler_error("unknown 4D wire type " ~ type) }}
    {%- endif -%}
{%- endmacro %}

{#- The readable reason a present value did not parse, else NULL. -#}
{% macro fourd_parse_error(field, type, payload='payload', value=none) -%}
    {%- set expected = {
        'text': 'text',
        'number': 'a number',
        'integer': 'an integer',
        'boolean': 'a boolean',
        'date': 'a 4D date (d!m!yyyy)',
        'time': 'a 4D time (milliseconds since midnight)',
    }[type] -%}
    case
        when
            not {{ fourd_is_blank(field, type, payload) }}
            and ({{ value if value else fourd_value(field, type, payload) }}) is null
            then '{{ field }} is not {{ expected }}: '
            || left(({{ fourd_raw(field, payload) }})::text, 80)
    end
{%- endmacro %}
