{#- One row per 4D dataclass landed in this run: its mode and whether its key set is complete. -#}
with

batches as (
    select
        run_id,
        table_name,
        mode,
        strategy,
        complete_key_set,
        records_landed,
        source_count
    from {{ source('legacy_sync', 'landing_batch') }}
    where run_id = {{ current_run_id() }}
),

final as (
    select
        run_id,
        table_name,
        mode,
        strategy,
        complete_key_set,
        records_landed,
        source_count
    from batches
)

select * from final
