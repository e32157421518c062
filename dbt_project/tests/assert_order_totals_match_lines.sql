-- Every live order whose lines are all loaded has a subtotal equal to the sum of its live
-- lines' line totals, within a cent. Orders with a line that is rejected (in this run, or
-- earlier and still not loaded) are left out: their rejects already say what is missing.
with

orders as (
    select
        id,
        legacy_id,
        subtotal
    from {{ ref('orders') }}
    where not is_deleted
),

lines as (
    select
        order_id,
        sum(line_total) as lines_total
    from {{ ref('order_lines') }}
    where not is_deleted
    group by order_id
),

live_lines as (
    select legacy_id
    from {{ ref('order_lines') }}
    where not is_deleted
),

rejected_line_orders as (
    -- rejected in this run ...
    select distinct cast(record_data ->> 'OrderID' as text) as order_legacy_id
    from {{ ref('sync_rejects') }}
    where table_name = 'OrderLines'
    union
    -- ... or in an earlier one and still not loaded (incremental runs do not read them again)
    select distinct cast(sync_error.record_data ->> 'OrderID' as text) as order_legacy_id
    from {{ source('legacy_sync', 'sync_error') }} as sync_error
    inner join {{ source('legacy_sync', 'sync_log') }} as sync_log
        on sync_error.sync_log_id = sync_log.id
    where
        sync_log.table_name = 'OrderLines'
        and sync_error.record_id not in (select cast(live_lines.legacy_id as text) from live_lines)
),

final as (
    select
        orders.legacy_id,
        orders.subtotal,
        lines.lines_total
    from orders
    inner join lines
        on orders.id = lines.order_id
    where
        abs(orders.subtotal - lines.lines_total) > 0.01
        and orders.legacy_id not in (
            select rejected_line_orders.order_legacy_id from rejected_line_orders
        )
)

select * from final
