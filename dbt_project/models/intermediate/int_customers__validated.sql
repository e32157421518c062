{#- One row per staged 4D customer of this run, mapped to ERP columns, with all its rejection
    reasons (NULL when valid). -#}
{%- set no_name_reason -%}
    case
        when coalesce(staged.company_name, staged.first_name, staged.last_name) is null
            then 'customer has no name: CompanyName, FirstName and LastName are all empty'
    end
{%- endset -%}

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
        record_data
    from {{ ref('stg_legacy_4d__customers') }}
),

checked as (
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
        staged.record_data,
        {{ reasons_joined([
            'staged.parse_errors',
            reason_required('AccountNumber'),
            no_name_reason,
        ]) }} as base_reasons
    from staged
),

{{ unique_claim_ctes('Customers', 'account_number', 'AccountNumber', 'customer') }},

final as (
    select
        checked.run_id,
        checked.legacy_id,
        checked.legacy_key,
        checked.account_number,
        checked.company_name,
        checked.first_name,
        checked.last_name,
        checked.email,
        checked.phone,
        case when checked.company_name is not null then 'store' else 'person' end as customer_type,
        {{ reasons_joined(['checked.base_reasons', 'claims.claim_reason']) }} as rejection_reasons,
        {{ reasons_joined(['checked.base_reasons', 'claims.claim_reason']) }} is not null as is_rejected,
        checked.record_data
    from checked
    inner join claims
        on checked.legacy_id = claims.legacy_id
)

select * from final
