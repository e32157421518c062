{#- One row per (4D dataclass, key) that 4D reported deleted in this run (__DeletedRecords),
    only for tables landed in this run. -#}
{{ config(tags=['run_context']) }}
with

deleted as (
    select
        run_id,
        table_name,
        legacy_id,
        stamp
    from {{ source('legacy_4d', 'deleted_records_raw') }}
    where run_id = {{ current_run_id() }}
),

batches as (
    select
        run_id,
        table_name
    from {{ source('legacy_sync', 'landing_batch') }}
    where run_id = {{ current_run_id() }}
),

final as (
    select
        deleted.run_id,
        deleted.table_name,
        deleted.legacy_id,
        max(deleted.stamp) as stamp
    from deleted
    inner join batches
        on
            deleted.run_id = batches.run_id
            and deleted.table_name = batches.table_name
    group by deleted.run_id, deleted.table_name, deleted.legacy_id
)

select * from final
