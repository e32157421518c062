{#- One row per 4D customer ever synced (soft-deleted when gone from 4D); merged by
    legacy_id, only new, changed, reappearing and deleted rows are written. -#}
{%- set columns = [
    'account_number',
    'company_name',
    'first_name',
    'last_name',
    'email',
    'phone',
    'customer_type',
] -%}

with

validated as (
    select
        legacy_id,
        legacy_key,
        account_number,
        company_name,
        first_name,
        last_name,
        email,
        phone,
        customer_type
    from {{ ref('int_customers__validated') }}
    where not is_rejected
),

mapped as (
    select
        validated.legacy_id,
        validated.legacy_key,
        validated.account_number,
        validated.company_name,
        validated.first_name,
        validated.last_name,
        validated.email,
        validated.phone,
        validated.customer_type,
        {{ erp_row_hash(columns, 'validated') }} as row_hash
    from validated
),

{{ erp_merge_ctes('Customers', 'stg_legacy_4d__customers', columns) }}

select * from final
