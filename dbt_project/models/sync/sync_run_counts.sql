{#- One row per 4D dataclass: this run's counts, read from the erp audit columns (created /
    updated / deleted run ids) and the validated records; unchanged = loaded - created - updated. -#}
with

{% for dataclass, stem in legacy_tables() %}
    {{ stem }}_staged as (
        select
            legacy_id,
            is_rejected
        from {{ ref('int_' ~ stem ~ '__validated') }}
    ),

    {{ stem }}_erp as (
        select
            legacy_id,
            created_run_id,
            updated_run_id,
            deleted_run_id
        from {{ ref(stem) }}
        where
            created_run_id = {{ current_run_id() }}
            or updated_run_id = {{ current_run_id() }}
            or deleted_run_id = {{ current_run_id() }}
    ),

    {{ stem }}_counts as (
        select
            '{{ dataclass }}' as table_name,
            (select count(*) from {{ stem }}_staged) as records_staged,
            (
                select count(*) from {{ stem }}_staged
                where is_rejected
            ) as records_rejected,
            (
                select count(*) from {{ stem }}_erp
                where created_run_id = {{ current_run_id() }}
            ) as records_created,
            (
                select count(*) from {{ stem }}_erp
                where
                    updated_run_id = {{ current_run_id() }}
                    and created_run_id != {{ current_run_id() }}
            ) as records_updated,
            (
                select count(*) from {{ stem }}_erp
                where deleted_run_id = {{ current_run_id() }}
            ) as records_deleted
    ),

{% endfor %}
counts as (
    {% for dataclass, stem in legacy_tables() %}
        select
            table_name,
            records_staged,
            records_rejected,
            records_created,
            records_updated,
            records_deleted
        from {{ stem }}_counts
        {% if not loop.last %}union all{% endif %}
    {% endfor %}
),

final as (
    select
        {{ current_run_id() }} as run_id,
        table_name,
        records_staged,
        records_staged - records_rejected as records_loaded,
        records_rejected,
        records_created,
        records_updated,
        records_staged - records_rejected - records_created - records_updated as records_unchanged,
        records_deleted
    from counts
)

select * from final
