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
    {{ staged_records('Customers') }}
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
        {{ staged_passthrough() }}
    from staged
)

select * from final
