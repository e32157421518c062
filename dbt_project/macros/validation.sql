{#- Validation reasons. Each renders a CASE that yields one readable reason or NULL; a model
    joins all of a record's reasons with "; " (reasons_joined) so it gets every reason at once.

    Reasons come in two kinds, kept apart because they age differently:
    - record reasons: the record itself is wrong (a value that does not parse, a required field
      left empty, a negative amount). Only a new version from 4D can fix it.
    - dependency reasons: the record is fine but another record is not there yet (its parent is
      not in the ERP) or holds its business key. The sync reads such a record again by key on
      every later run until it loads (legacy_sync.open_reject.retry). -#}

{% macro reason_required(field, type='text', payload='staged.record_data') -%}
    case when {{ fourd_is_blank(field, type, payload) }} then '{{ field }} is required' end
{%- endmacro %}

{% macro reason_negative(field, column) -%}
    case
        when {{ column }} < 0
            then '{{ field }} must not be negative (' || {{ column }} || ')'
    end
{%- endmacro %}

{#- Attributes 4D did not send at all: a privilege hides them from the REST user. Merging a
    NULL over the ERP's value would lose data, so the record waits for a complete version. -#}
{% macro reason_absent(table_name, absent_column='staged.absent_fields') -%}
    case
        when {{ absent_column }} is not null
            then {{ absent_column }} || ' not sent by 4D: check that the REST user may read '
            || '{{ table_name }}.' || replace({{ absent_column }}, ', ', ', {{ table_name }}.')
            || ' (4D silently leaves out attributes a privilege hides from it)'
    end
{%- endmacro %}

{#- A reference to a parent record that is not live in the ERP after the parent's merge in this
    build. A parent whose new version was rejected keeps its last good version, which is live. -#}
{% macro reason_missing_parent(label, legacy_column, live_alias) -%}
    case
        when {{ legacy_column }} is not null and {{ live_alias }}.id is null
            then '{{ label }} ' || {{ legacy_column }}
            || ' does not exist in the ERP (rejected or never synced)'
    end
{%- endmacro %}

{#- The live rows of a parent ERP model (after its merge in this build), to resolve FKs. -#}
{% macro live_parent(model) -%}
    select
        id,
        legacy_id
    from {{ ref(model) }}
    where not is_deleted
{%- endmacro %}

{% macro reasons_joined(reasons) -%}
    nullif(concat_ws(
        '; '
        {%- for reason in reasons %},
        {{ reason }}
        {%- endfor %}
    ), '')
{%- endmacro %}

{#- The verdict columns every int_<table>__validated model ends with. -#}
{% macro verdict_columns(record_reasons, dependency_reasons, claim_reason='cast(null as text)') -%}
    {{ reasons_joined([record_reasons, dependency_reasons, claim_reason]) }} as rejection_reasons,
    {{ reasons_joined([record_reasons, dependency_reasons, claim_reason]) }} is not null as is_rejected,
    (
        {{ record_reasons }} is null
        and coalesce({{ dependency_reasons }}, {{ claim_reason }}) is not null
    ) as is_retryable
{%- endmacro %}

{#-
    int_<table>__validated for a table with a unique business key: its checked model (mapping,
    record and dependency reasons) plus the verdict of int_<table>__claims.
    `columns`: the mapped columns the erp model reads.
-#}
{% macro validated_with_claims_model(table_name, columns) -%}
    {%- set stem = legacy_table(table_name).stem -%}
    {{- legacy_table_config(table_name) }}
with

checked as (
    select
        run_id,
        legacy_id,
        legacy_key,
        {%- for column in columns %}
        {{ column }},
        {%- endfor %}
        record_reasons,
        dependency_reasons,
        warnings,
        source_stamp,
        source_timestamp,
        is_retry,
        record_data
    from {{ ref('int_' ~ stem ~ '__checked') }}
),

claims as (
    select
        legacy_id,
        claim_reason
    from {{ ref('int_' ~ stem ~ '__claims') }}
),

final as (
    select
        checked.run_id,
        checked.legacy_id,
        checked.legacy_key,
        {%- for column in columns %}
        checked.{{ column }},
        {%- endfor %}
        {{ verdict_columns('checked.record_reasons', 'checked.dependency_reasons', 'claims.claim_reason') }},
        checked.warnings,
        checked.source_stamp,
        checked.source_timestamp,
        checked.is_retry,
        checked.record_data
    from checked
    left join claims
        on checked.legacy_id = claims.legacy_id
)

select * from final
{%- endmacro %}

{#-
    int_<table>__claims: who may hold each unique business key (SKU, account, order and invoice
    number) after this run. The contract: the live ERP row that holds a key keeps it unless, in
    this run, it validly gives it up (it is re-staged, valid, and its own new claim succeeds);
    a re-staged holder rejected for any reason still holds its key; among newcomers the lowest
    4D key wins. Decided before the merge, so a duplicate never reaches `erp` (the deferred
    exclusion constraint on erp.<table> is the last guard, not the mechanism).

    A claim fails at once when its key is held by a row that does not move, or when a
    lower-keyed newcomer claims the same key. A claim on the key of a holder that moves succeeds
    only if the holder's own claim succeeds: failures propagate along those "waits for" links
    (a recursive CTE), so chains resolve whatever their length, and a cycle nobody blocks (two
    records swapping keys) succeeds as a whole.

    Reads only the ERP rows holding a claimed key (an index scan), never the whole table.
    Not unit-testable (dbt does not unit-test recursive SQL): covered by tests/integration/dbt.
-#}
{% macro business_key_claims_model(table_name, key_label, record_label) -%}
    {%- set table = legacy_table(table_name) -%}
    {%- set key = table.business_key -%}
    {{- legacy_table_config(table_name) }}
with recursive

checked as (
    select
        legacy_id,
        legacy_key,
        {{ key }} as claimed_key,
        record_reasons is null and dependency_reasons is null as is_valid
    from {{ ref('int_' ~ table.stem ~ '__checked') }}
),

deleted_now as (
    select legacy_id
    from {{ ref('int_' ~ table.stem ~ '__deletions') }}
    where not is_held
),

holders as (
    -- Live ERP rows holding a claimed key, as the ERP stands before this run's merge (one per
    -- key; the lowest key should a legacy ERP hold duplicates from before the constraint).
    select distinct on (erp_rows.{{ key }})
        erp_rows.{{ key }} as business_key,
        erp_rows.legacy_id
    from {{ source('erp', table.stem) }} as erp_rows
    where
        not erp_rows.is_deleted
        and erp_rows.{{ key }} in (select checked.claimed_key from checked)
        and not exists (
            select 1 from deleted_now
            where deleted_now.legacy_id = erp_rows.legacy_id
        )
    order by erp_rows.{{ key }}, erp_rows.legacy_id
),

claimants as (
    select
        checked.legacy_id,
        checked.legacy_key,
        checked.claimed_key,
        holders.legacy_id as holder_id,
        coalesce(holders.legacy_id = checked.legacy_id, false) as is_own,
        coalesce(
            holder_state.is_valid and holder_state.claimed_key is distinct from checked.claimed_key,
            false
        ) as holder_moves
    from checked
    left join holders
        on checked.claimed_key = holders.business_key
    left join checked as holder_state
        on holders.legacy_id = holder_state.legacy_id
    where
        checked.is_valid
        and checked.claimed_key is not null
),

ranked as (
    select
        legacy_id,
        claimed_key,
        holder_id,
        is_own,
        holder_moves,
        row_number() over (
            partition by claimed_key, is_own order by legacy_key, legacy_id
        ) as claim_rank,
        first_value(legacy_id) over (
            partition by claimed_key, is_own order by legacy_key, legacy_id
        ) as first_claimant
    from claimants
),

verdicts as (
    select
        legacy_id,
        claimed_key,
        holder_id,
        first_claimant,
        case
            when is_own then null
            when holder_id is not null and not holder_moves then 'held'
            when claim_rank > 1 then 'claimed'
        end as failure,
        case
            when not is_own and holder_moves and claim_rank = 1 then holder_id
        end as waits_for
    from ranked
),

failed (legacy_id) as (
    select legacy_id
    from verdicts
    where failure is not null
    union
    select verdicts.legacy_id
    from verdicts
    inner join failed
        on verdicts.waits_for = failed.legacy_id
),

final as (
    select
        verdicts.legacy_id,
        case
            when failed.legacy_id is null then null
            when verdicts.failure = 'claimed'
                then '{{ key_label }} ''' || verdicts.claimed_key
                || ''' is also claimed by {{ record_label }} ' || verdicts.first_claimant
                || ' in this run (the lowest key keeps it)'
            else '{{ key_label }} ''' || verdicts.claimed_key
                || ''' is already held by {{ record_label }} ' || verdicts.holder_id || ' in the ERP'
        end as claim_reason
    from verdicts
    left join failed
        on verdicts.legacy_id = failed.legacy_id
)

select * from final
{%- endmacro %}

{#-
    int_<table>__deletions: live ERP rows this run would soft-delete, and whether the mass-change
    circuit breaker holds them. A row is a candidate when 4D reported it deleted
    (__DeletedRecords, or gone when read again by key) or, after a read of the table's complete
    key set (one whose size matched 4D's __COUNT), when it is no longer among 4D's keys -- unless
    the ERP row was written after this run began reading (a run that read later created it).
    A key 4D deleted and created again in the same change window is a candidate too: the merge
    writes the new record over it when that record is valid, and otherwise lets the deleted one
    go while the new one waits as an open reject.

    Held when there are more candidates than `delete_hold_min_rows` and they exceed
    `delete_hold_share` of the table's live rows, or when the landing step saw 4D's count of the
    table drop by more than that share since the last run. Held deletes wait for a person
    (legacy_sync.held_delete); the rest of the table's changes merge.
-#}
{% macro erp_deletions_model(table_name) -%}
    {%- set stem = legacy_table(table_name).stem -%}
    {{- legacy_table_config(table_name) }}
with

batch as (
    select
        complete_key_set,
        hold_deletes,
        hold_reason,
        started_at
    from {{ ref('stg_legacy_sync__landing_batches') }}
    where table_name = '{{ table_name }}'
),

staged as (
    select legacy_id
    from {{ ref('stg_legacy_4d__' ~ stem) }}
),

reported as (
    select
        legacy_id,
        stamp
    from {{ ref('stg_legacy_4d__deleted_records') }}
    where table_name = '{{ table_name }}'
),

candidates as (
    select
        erp_rows.legacy_id,
        reported.stamp,
        'reported deleted by 4D' as detected_by
    from reported
    inner join {{ source('erp', stem) }} as erp_rows
        on reported.legacy_id = erp_rows.legacy_id
    where
        not erp_rows.is_deleted
        -- a deletion older than the version the ERP holds was superseded by a re-created record
        and coalesce(erp_rows.source_stamp < reported.stamp, true)
    union all
    select
        erp_rows.legacy_id,
        cast(null as bigint) as stamp,
        'no longer among 4D''s keys' as detected_by
    from {{ source('erp', stem) }} as erp_rows
    where
        -- a one-time filter: incremental runs never scan the table
        (select coalesce(bool_or(batch.complete_key_set), false) from batch)
        and not erp_rows.is_deleted
        and erp_rows.synced_at < (select min(batch.started_at) from batch)
        and not exists (
            select 1 from staged
            where staged.legacy_id = erp_rows.legacy_id
        )
        and not exists (
            select 1 from reported
            where reported.legacy_id = erp_rows.legacy_id
        )
),

sized as (
    select count(*) as candidate_count
    from candidates
),

measured as (
    select
        sized.candidate_count,
        case
            -- counted only when the candidates could be a mass change
            when sized.candidate_count > {{ sync_setting('delete_hold_min_rows') }}
                then (
                    select count(*) from {{ source('erp', stem) }} as live_rows
                    where not live_rows.is_deleted
                )
        end as live_count
    from sized
),

verdict as (
    select
        case
            when coalesce((select bool_or(batch.hold_deletes) from batch), false)
                then (select min(batch.hold_reason) from batch)
            when
                measured.live_count is not null
                and measured.candidate_count > {{ sync_setting('delete_hold_share') }} * measured.live_count
                then 'this run would delete ' || measured.candidate_count || ' of '
                || measured.live_count || ' live rows ('
                || round(100.0 * measured.candidate_count / greatest(measured.live_count, 1), 1)
                || ' %), more than the '
                || round(100 * {{ sync_setting('delete_hold_share') }}, 1) || ' % a run may delete'
        end as hold_reason
    from measured
),

final as (
    select
        candidates.legacy_id,
        candidates.stamp,
        candidates.detected_by,
        verdict.hold_reason is not null as is_held,
        verdict.hold_reason
    from candidates
    cross join verdict
)

select * from final
{%- endmacro %}

{#- The `staged` CTE of an intermediate model: every column of the table's staging model, by name
    (the registry's fields plus the verdict inputs), so each model starts from the same list. -#}
{% macro staged_records(table_name) -%}
    {%- set table = legacy_table(table_name) -%}
    select
        run_id,
        legacy_id,
        legacy_key,
        {%- for field in table.fields %}
        {{ field[2] }},
        {%- endfor %}
        parse_errors,
        absent_fields,
        parse_warnings,
        source_stamp,
        source_timestamp,
        is_retry,
        record_data
    from {{ ref('stg_legacy_4d__' ~ table.stem) }}
{%- endmacro %}

{#- What every checked/validated row carries through unchanged from its staged record. -#}
{% macro staged_passthrough(relation='staged') -%}
    {{ relation }}.parse_warnings as warnings,
    {{ relation }}.source_stamp,
    {{ relation }}.source_timestamp,
    {{ relation }}.is_retry,
    {{ relation }}.record_data
{%- endmacro %}

{#- The last columns of a validated model: the verdict, then what the ledger keeps with it. -#}
{% macro verdict_tail(record_reasons, dependency_reasons, claim_reason='cast(null as text)') -%}
    {{ verdict_columns(record_reasons, dependency_reasons, claim_reason) }},
    warnings,
    source_stamp,
    source_timestamp,
    is_retry,
    record_data
{%- endmacro %}
