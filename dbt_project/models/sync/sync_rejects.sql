{#- One row per record of this run rejected by validation: the 4D dataclass, its key, every
    reason (joined with "; ") and the raw 4D payload. The summary task copies
    `where run_id = <run>` into legacy_sync.sync_error. -#}
with

{% for dataclass, stem in legacy_tables() %}
    {{ stem }} as (
        select
            run_id,
            '{{ dataclass }}' as table_name,
            legacy_id as record_id,
            rejection_reasons as error_message,
            record_data
        from {{ ref('int_' ~ stem ~ '__validated') }}
        where is_rejected
    ),

{% endfor %}
final as (
    {% for dataclass, stem in legacy_tables() %}
        select
            run_id,
            table_name,
            record_id,
            error_message,
            record_data
        from {{ stem }}
        {% if not loop.last %}union all{% endif %}
    {% endfor %}
)

select * from final
