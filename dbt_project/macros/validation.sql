{#- Validation reasons. Each renders a CASE that yields one readable reason or NULL; a model
    joins all of a record's reasons with "; " (reasons_joined) so it gets every reason at once. -#}

{% macro reason_required(field, type='text', payload='staged.record_data') -%}
    case when {{ fourd_is_blank(field, type, payload) }} then '{{ field }} is required' end
{%- endmacro %}

{% macro reason_negative(field, column) -%}
    case
        when {{ column }} < 0
            then '{{ field }} must not be negative (' || {{ column }} || ')'
    end
{%- endmacro %}

{#- A reference to a parent record that is not live in the ERP after the parent's merge, or
    whose staged version was rejected in this run. -#}
{% macro reason_missing_parent(label, legacy_column, live_alias, rejected_alias) -%}
    case
        when
            {{ legacy_column }} is not null
            and ({{ live_alias }}.id is null or {{ rejected_alias }}.legacy_id is not null)
            then '{{ label }} ' || {{ legacy_column }}
            || ' does not exist in the ERP (rejected or never synced)'
    end
{%- endmacro %}

{% macro reasons_joined(reasons) -%}
    nullif(concat_ws(
        '; '
        {%- for reason in reasons %},
        {{ reason }}
        {%- endfor %}
    ), '')
{%- endmacro %}

{#-
    Uniqueness of a business key (SKU, account/order/invoice number), the original design's
    SKU rule: a record claiming a key that another record holds is rejected. The holder is
    (1) a live erp record that keeps its row after this run (not re-staged validly; not
    deleted in this run), else (2) among this run's otherwise-valid claimants the lowest 4D
    key. Reads the CTE `checked` (legacy_id, legacy_key, <claim_column>, base_reasons) and
    defines `claims` (legacy_id, claim_reason).
-#}
{% macro unique_claim_ctes(table_name, claim_column, claim_label, record_label) -%}
reported_deleted as (
    select legacy_id
    from {{ ref('stg_legacy_4d__deleted_records') }}
    where table_name = '{{ table_name }}'
),

batch as (
    select complete_key_set
    from {{ ref('stg_legacy_sync__landing_batches') }}
    where table_name = '{{ table_name }}'
),

key_set as (
    select coalesce(bool_or(complete_key_set), false) as is_complete
    from batch
),

erp_holders as (
    select distinct on (erp_keys.business_key)
        erp_keys.business_key,
        erp_keys.legacy_id
    from {{ ref('stg_erp__business_keys') }} as erp_keys
    cross join key_set
    left join checked
        on erp_keys.legacy_id = checked.legacy_id
    left join reported_deleted
        on erp_keys.legacy_id = reported_deleted.legacy_id
    where
        erp_keys.table_name = '{{ table_name }}'
        and not erp_keys.is_deleted
        and (
            -- not in this run and not deleted by it: keeps its row and its key
            (
                checked.legacy_id is null
                and reported_deleted.legacy_id is null
                and not key_set.is_complete
            )
            -- re-staged but rejected: its erp row stays as it was
            or checked.base_reasons is not null
        )
    order by erp_keys.business_key, erp_keys.legacy_id
),

staged_holders as (
    select distinct on (checked.{{ claim_column }})
        checked.{{ claim_column }} as business_key,
        checked.legacy_id
    from checked
    where
        checked.base_reasons is null
        and checked.{{ claim_column }} is not null
    order by checked.{{ claim_column }}, checked.legacy_key, checked.legacy_id
),

claims as (
    select
        checked.legacy_id,
        case
            when erp_holders.legacy_id != checked.legacy_id
                then '{{ claim_label }} ''' || checked.{{ claim_column }}
                || ''' is already held by {{ record_label }} ' || erp_holders.legacy_id
                || ' in the ERP'
            when erp_holders.legacy_id is null and staged_holders.legacy_id != checked.legacy_id
                then '{{ claim_label }} ''' || checked.{{ claim_column }}
                || ''' is also claimed by {{ record_label }} ' || staged_holders.legacy_id
                || ' in this run (the lowest key keeps it)'
        end as claim_reason
    from checked
    left join erp_holders
        on checked.{{ claim_column }} = erp_holders.business_key
    left join staged_holders
        on checked.{{ claim_column }} = staged_holders.business_key
)
{%- endmacro %}
