{#- One 4D Customers entity per row: this run's last landed version, wire types checked. -#}
{%- set fields = [
    ('AccountNumber', 'text', 'account_number'),
    ('CompanyName', 'text', 'company_name'),
    ('FirstName', 'text', 'first_name'),
    ('LastName', 'text', 'last_name'),
    ('Email', 'text', 'email'),
    ('Phone', 'text', 'phone'),
    ('ModifiedDate', 'date', 'modified_date'),
    ('ModifiedTime', 'time', 'modified_time'),
] -%}

with

landed as (
    {{ fourd_current_run_rows('customers_raw', 'Customers') }}
),

latest as (
    select
        run_id,
        legacy_id,
        payload,
        row_hash,
        extracted_at
    from landed
    where version_rank = 1
),

checked as (
    select
        latest.run_id,
        latest.legacy_id,
        latest.payload,
        latest.row_hash,
        latest.extracted_at,
        {{- fourd_column_names(fields, 'parsed_fields') }}
        parsed_fields.parse_errors
    from latest
    cross join lateral (
        {{ fourd_parsed_fields(fields, 'latest.payload') }}
    ) as parsed_fields
),

final as (
    select
        checked.run_id,
        checked.legacy_id,
        case
            when checked.legacy_id ~ '^[0-9]{1,18}$' then checked.legacy_id::bigint
        end as legacy_key,
        checked.account_number,
        checked.company_name,
        checked.first_name,
        checked.last_name,
        checked.email,
        checked.phone,
        checked.modified_date,
        checked.modified_time,
        checked.parse_errors,
        checked.payload as record_data,
        checked.row_hash as landed_row_hash,
        checked.extracted_at
    from checked
)

select * from final
