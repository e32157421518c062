{#- md5 over the mapped business columns (a row's text form tells NULL from ''), so a change
    of mapping changes the hash too and the row is rewritten once. -#}
{% macro erp_row_hash(columns, relation) -%}
    md5(cast(row(
        {%- for column in columns -%}
            {{ relation }}.{{ column }}{{ ", " if not loop.last }}
        {%- endfor -%}
    ) as text))
{%- endmacro %}

{#-
    The CTEs shared by every erp model after its own `mapped` CTE (legacy_id, legacy_key,
    the business columns, row_hash; valid records of this run only):

    - changed: new records, records whose row_hash changed, and soft-deleted records that
      reappeared (undeleted). Existing rows keep their id; new rows get max(id) + n in key order.
    - deleted: live rows of this table not staged in this run (valid or rejected) that 4D
      reported deleted, or -- when the run landed the table's complete key set -- that no longer
      exist in 4D. Their business columns and row_hash stay as they were.
    Unchanged rows are not selected at all, so the merge does not touch them.
-#}
{% macro erp_merge_ctes(table_name, staged_model, columns) -%}
existing as (
    select
        id,
        legacy_id,
        row_hash,
        is_deleted,
        created_run_id
    from {{ this }}
),

id_base as (
    select coalesce(max(id), 0) as max_id
    from {{ this }}
),

staged_keys as (
    select legacy_id
    from {{ ref(staged_model) }}
),

batch as (
    select complete_key_set
    from {{ ref('stg_legacy_sync__landing_batches') }}
    where table_name = '{{ table_name }}'
),

reported_deleted as (
    select legacy_id
    from {{ ref('stg_legacy_4d__deleted_records') }}
    where table_name = '{{ table_name }}'
),

changed as (
    select
        case
            when existing.id is null
                then
                    id_base.max_id
                    + row_number() over (
                        partition by existing.id is null
                        order by mapped.legacy_key, mapped.legacy_id
                    )
            else existing.id
        end as id,
        mapped.legacy_id,
        {%- for column in columns %}
        mapped.{{ column }},
        {%- endfor %}
        coalesce(existing.created_run_id, {{ current_run_id() }}) as created_run_id,
        {{ current_run_id() }} as updated_run_id,
        cast(null as text) as deleted_run_id,
        mapped.row_hash,
        now() as synced_at,
        false as is_deleted,
        cast(null as timestamptz) as deleted_at
    from mapped
    cross join id_base
    left join existing
        on mapped.legacy_id = existing.legacy_id
    where
        existing.id is null
        or existing.row_hash != mapped.row_hash
        or existing.is_deleted
),

deleted as (
    select
        current_rows.id,
        current_rows.legacy_id,
        {%- for column in columns %}
        current_rows.{{ column }},
        {%- endfor %}
        current_rows.created_run_id,
        current_rows.updated_run_id,
        {{ current_run_id() }} as deleted_run_id,
        current_rows.row_hash,
        now() as synced_at,
        true as is_deleted,
        now() as deleted_at
    from {{ this }} as current_rows
    where
        not current_rows.is_deleted
        and not exists (
            select 1 from staged_keys
            where staged_keys.legacy_id = current_rows.legacy_id
        )
        and (
            exists (
                select 1 from reported_deleted
                where reported_deleted.legacy_id = current_rows.legacy_id
            )
            or exists (select 1 from batch where batch.complete_key_set)
        )
),

final as (
    select
        id,
        legacy_id,
        {%- for column in columns %}
        {{ column }},
        {%- endfor %}
        created_run_id,
        updated_run_id,
        deleted_run_id,
        row_hash,
        synced_at,
        is_deleted,
        deleted_at
    from changed
    union all
    select
        id,
        legacy_id,
        {%- for column in columns %}
        {{ column }},
        {%- endfor %}
        created_run_id,
        updated_run_id,
        deleted_run_id,
        row_hash,
        synced_at,
        is_deleted,
        deleted_at
    from deleted
)
{%- endmacro %}
