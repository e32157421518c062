{#- One row per 4D dataclass landed in this run: its mode, whether it read the complete key set
    (and 4D's count agreed), and whether the landing step asks to hold deletions. -#}
{{ config(tags=['run_context']) }}
with

final as (
    select
        run_id,
        table_name,
        mode,
        strategy,
        complete_key_set,
        records_landed,
        source_count,
        hold_deletes,
        hold_reason,
        started_at
    from {{ source('legacy_sync', 'landing_batch') }}
    where run_id = {{ current_run_id() }}
)

select * from final
