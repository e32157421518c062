-- Every record staged in this run is either live in erp or in the rejects (never both
-- changed and rejected, never silently dropped): loaded + rejected = staged, per table.
with

checked as (
    {% for dataclass, stem in legacy_tables() %}
        select
            '{{ dataclass }}' as table_name,
            staged.legacy_id,
            case
                when rejects.record_id is not null and erp_rows.updated_run_id = {{ current_run_id() }}
                    then 'rejected but its erp row was changed by this run'
                when rejects.record_id is null and erp_rows.legacy_id is null
                    then 'neither loaded into erp nor rejected'
                when rejects.record_id is null and erp_rows.is_deleted
                    then 'loaded but soft-deleted'
            end as problem
        from {{ ref('stg_legacy_4d__' ~ stem) }} as staged
        left join {{ ref(stem) }} as erp_rows
            on staged.legacy_id = erp_rows.legacy_id
        left join {{ ref('sync_rejects') }} as rejects
            on
                rejects.table_name = '{{ dataclass }}'
                and staged.legacy_id = rejects.record_id
        {% if not loop.last %}union all{% endif %}
    {% endfor %}
),

final as (
    select
        table_name,
        legacy_id,
        problem
    from checked
    where problem is not null
)

select * from final
