-- Every live order's subtotal equals the sum of its live lines' totals, within a cent.
-- A legacy expectation, not an ERP rule: real legacy orders break it (a line edited after the
-- order, an order-level discount), so it only warns. The sync reports the same per record
-- (models/sync/warn_order_totals.sql) for the orders a run touched, so the pipeline skips this
-- whole-table check (tag whole_erp); a plain `dbt test` lists every order to look at.
{{ config(severity='warn', tags=['whole_erp'], meta={'legacy_tables': ['Orders']}) }}
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

final as (
    select
        orders.legacy_id,
        orders.subtotal,
        lines.lines_total
    from orders
    inner join lines
        on orders.id = lines.order_id
    where abs(orders.subtotal - lines.lines_total) > 0.01
)

select * from final
