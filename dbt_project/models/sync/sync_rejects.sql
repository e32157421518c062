{#- One row per record of this run rejected by validation: the 4D dataclass, its key, every
    reason (joined with "; ") and the raw 4D payload. The summary task copies
    `where run_id = <run>` into legacy_sync.sync_error. -#}
with

products as (
    select
        run_id,
        'Products' as table_name,
        legacy_id as record_id,
        rejection_reasons as error_message,
        record_data
    from {{ ref('int_products__validated') }}
    where is_rejected
),

customers as (
    select
        run_id,
        'Customers' as table_name,
        legacy_id as record_id,
        rejection_reasons as error_message,
        record_data
    from {{ ref('int_customers__validated') }}
    where is_rejected
),

orders as (
    select
        run_id,
        'Orders' as table_name,
        legacy_id as record_id,
        rejection_reasons as error_message,
        record_data
    from {{ ref('int_orders__validated') }}
    where is_rejected
),

order_lines as (
    select
        run_id,
        'OrderLines' as table_name,
        legacy_id as record_id,
        rejection_reasons as error_message,
        record_data
    from {{ ref('int_order_lines__validated') }}
    where is_rejected
),

invoices as (
    select
        run_id,
        'Invoices' as table_name,
        legacy_id as record_id,
        rejection_reasons as error_message,
        record_data
    from {{ ref('int_invoices__validated') }}
    where is_rejected
),

inventory as (
    select
        run_id,
        'Inventory' as table_name,
        legacy_id as record_id,
        rejection_reasons as error_message,
        record_data
    from {{ ref('int_inventory__validated') }}
    where is_rejected
),

bill_of_materials as (
    select
        run_id,
        'BillOfMaterials' as table_name,
        legacy_id as record_id,
        rejection_reasons as error_message,
        record_data
    from {{ ref('int_bill_of_materials__validated') }}
    where is_rejected
),

final as (
    select
        run_id,
        table_name,
        record_id,
        error_message,
        record_data
    from products
    union all
    select
        run_id,
        table_name,
        record_id,
        error_message,
        record_data
    from customers
    union all
    select
        run_id,
        table_name,
        record_id,
        error_message,
        record_data
    from orders
    union all
    select
        run_id,
        table_name,
        record_id,
        error_message,
        record_data
    from order_lines
    union all
    select
        run_id,
        table_name,
        record_id,
        error_message,
        record_data
    from invoices
    union all
    select
        run_id,
        table_name,
        record_id,
        error_message,
        record_data
    from inventory
    union all
    select
        run_id,
        table_name,
        record_id,
        error_message,
        record_data
    from bill_of_materials
)

select * from final
