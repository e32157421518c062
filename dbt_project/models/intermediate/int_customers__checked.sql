{#- One row per staged 4D customer of this run, mapped to ERP columns, with its record reasons
    (NULL when valid). Who holds each account number is decided in int_customers__claims. -#}
{{ legacy_table_config('Customers') }}
{%- set no_name_reason -%}
    case
        when coalesce(staged.company_name, staged.first_name, staged.last_name) is null
            then 'customer has no name: CompanyName, FirstName and LastName are all empty'
    end
{%- endset %}
with

staged as (
    select
        run_id,
        legacy_id,
        legacy_key,
        account_number,
        company_name,
        first_name,
        last_name,
        email,
        phone,
        parse_errors,
        absent_fields,
        parse_warnings,
        source_stamp,
        source_timestamp,
        record_data
    from {{ ref('stg_legacy_4d__customers') }}
),

final as (
    select
        staged.run_id,
        staged.legacy_id,
        staged.legacy_key,
        staged.account_number,
        staged.company_name,
        staged.first_name,
        staged.last_name,
        staged.email,
        staged.phone,
        case when staged.company_name is not null then 'store' else 'person' end as customer_type,
        {{ reasons_joined([
            'staged.parse_errors',
            reason_absent('Customers'),
            reason_required('AccountNumber'),
            no_name_reason,
        ]) }} as record_reasons,
        cast(null as text) as dependency_reasons,
        staged.parse_warnings as warnings,
        staged.source_stamp,
        staged.source_timestamp,
        staged.record_data
    from staged
)

select * from final
