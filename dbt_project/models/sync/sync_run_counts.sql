{#- One row per 4D dataclass: this run's counts, read from the erp audit columns (created /
    updated / deleted run ids) and the validated records; unchanged = loaded - created - updated. -#}
with

products_staged as (
    select
        legacy_id,
        is_rejected
    from {{ ref('int_products__validated') }}
),

products_erp as (
    select
        legacy_id,
        created_run_id,
        updated_run_id,
        deleted_run_id
    from {{ ref('products') }}
    where
        created_run_id = {{ current_run_id() }}
        or updated_run_id = {{ current_run_id() }}
        or deleted_run_id = {{ current_run_id() }}
),

products_counts as (
    select
        'Products' as table_name,
        (select count(*) from products_staged) as records_staged,
        (
            select count(*) from products_staged
            where is_rejected
        ) as records_rejected,
        (
            select count(*) from products_erp
            where created_run_id = {{ current_run_id() }}
        ) as records_created,
        (
            select count(*) from products_erp
            where
                updated_run_id = {{ current_run_id() }}
                and created_run_id != {{ current_run_id() }}
        ) as records_updated,
        (
            select count(*) from products_erp
            where deleted_run_id = {{ current_run_id() }}
        ) as records_deleted
),

customers_staged as (
    select
        legacy_id,
        is_rejected
    from {{ ref('int_customers__validated') }}
),

customers_erp as (
    select
        legacy_id,
        created_run_id,
        updated_run_id,
        deleted_run_id
    from {{ ref('customers') }}
    where
        created_run_id = {{ current_run_id() }}
        or updated_run_id = {{ current_run_id() }}
        or deleted_run_id = {{ current_run_id() }}
),

customers_counts as (
    select
        'Customers' as table_name,
        (select count(*) from customers_staged) as records_staged,
        (
            select count(*) from customers_staged
            where is_rejected
        ) as records_rejected,
        (
            select count(*) from customers_erp
            where created_run_id = {{ current_run_id() }}
        ) as records_created,
        (
            select count(*) from customers_erp
            where
                updated_run_id = {{ current_run_id() }}
                and created_run_id != {{ current_run_id() }}
        ) as records_updated,
        (
            select count(*) from customers_erp
            where deleted_run_id = {{ current_run_id() }}
        ) as records_deleted
),

orders_staged as (
    select
        legacy_id,
        is_rejected
    from {{ ref('int_orders__validated') }}
),

orders_erp as (
    select
        legacy_id,
        created_run_id,
        updated_run_id,
        deleted_run_id
    from {{ ref('orders') }}
    where
        created_run_id = {{ current_run_id() }}
        or updated_run_id = {{ current_run_id() }}
        or deleted_run_id = {{ current_run_id() }}
),

orders_counts as (
    select
        'Orders' as table_name,
        (select count(*) from orders_staged) as records_staged,
        (
            select count(*) from orders_staged
            where is_rejected
        ) as records_rejected,
        (
            select count(*) from orders_erp
            where created_run_id = {{ current_run_id() }}
        ) as records_created,
        (
            select count(*) from orders_erp
            where
                updated_run_id = {{ current_run_id() }}
                and created_run_id != {{ current_run_id() }}
        ) as records_updated,
        (
            select count(*) from orders_erp
            where deleted_run_id = {{ current_run_id() }}
        ) as records_deleted
),

order_lines_staged as (
    select
        legacy_id,
        is_rejected
    from {{ ref('int_order_lines__validated') }}
),

order_lines_erp as (
    select
        legacy_id,
        created_run_id,
        updated_run_id,
        deleted_run_id
    from {{ ref('order_lines') }}
    where
        created_run_id = {{ current_run_id() }}
        or updated_run_id = {{ current_run_id() }}
        or deleted_run_id = {{ current_run_id() }}
),

order_lines_counts as (
    select
        'OrderLines' as table_name,
        (select count(*) from order_lines_staged) as records_staged,
        (
            select count(*) from order_lines_staged
            where is_rejected
        ) as records_rejected,
        (
            select count(*) from order_lines_erp
            where created_run_id = {{ current_run_id() }}
        ) as records_created,
        (
            select count(*) from order_lines_erp
            where
                updated_run_id = {{ current_run_id() }}
                and created_run_id != {{ current_run_id() }}
        ) as records_updated,
        (
            select count(*) from order_lines_erp
            where deleted_run_id = {{ current_run_id() }}
        ) as records_deleted
),

invoices_staged as (
    select
        legacy_id,
        is_rejected
    from {{ ref('int_invoices__validated') }}
),

invoices_erp as (
    select
        legacy_id,
        created_run_id,
        updated_run_id,
        deleted_run_id
    from {{ ref('invoices') }}
    where
        created_run_id = {{ current_run_id() }}
        or updated_run_id = {{ current_run_id() }}
        or deleted_run_id = {{ current_run_id() }}
),

invoices_counts as (
    select
        'Invoices' as table_name,
        (select count(*) from invoices_staged) as records_staged,
        (
            select count(*) from invoices_staged
            where is_rejected
        ) as records_rejected,
        (
            select count(*) from invoices_erp
            where created_run_id = {{ current_run_id() }}
        ) as records_created,
        (
            select count(*) from invoices_erp
            where
                updated_run_id = {{ current_run_id() }}
                and created_run_id != {{ current_run_id() }}
        ) as records_updated,
        (
            select count(*) from invoices_erp
            where deleted_run_id = {{ current_run_id() }}
        ) as records_deleted
),

inventory_staged as (
    select
        legacy_id,
        is_rejected
    from {{ ref('int_inventory__validated') }}
),

inventory_erp as (
    select
        legacy_id,
        created_run_id,
        updated_run_id,
        deleted_run_id
    from {{ ref('inventory') }}
    where
        created_run_id = {{ current_run_id() }}
        or updated_run_id = {{ current_run_id() }}
        or deleted_run_id = {{ current_run_id() }}
),

inventory_counts as (
    select
        'Inventory' as table_name,
        (select count(*) from inventory_staged) as records_staged,
        (
            select count(*) from inventory_staged
            where is_rejected
        ) as records_rejected,
        (
            select count(*) from inventory_erp
            where created_run_id = {{ current_run_id() }}
        ) as records_created,
        (
            select count(*) from inventory_erp
            where
                updated_run_id = {{ current_run_id() }}
                and created_run_id != {{ current_run_id() }}
        ) as records_updated,
        (
            select count(*) from inventory_erp
            where deleted_run_id = {{ current_run_id() }}
        ) as records_deleted
),

bill_of_materials_staged as (
    select
        legacy_id,
        is_rejected
    from {{ ref('int_bill_of_materials__validated') }}
),

bill_of_materials_erp as (
    select
        legacy_id,
        created_run_id,
        updated_run_id,
        deleted_run_id
    from {{ ref('bill_of_materials') }}
    where
        created_run_id = {{ current_run_id() }}
        or updated_run_id = {{ current_run_id() }}
        or deleted_run_id = {{ current_run_id() }}
),

bill_of_materials_counts as (
    select
        'BillOfMaterials' as table_name,
        (select count(*) from bill_of_materials_staged) as records_staged,
        (
            select count(*) from bill_of_materials_staged
            where is_rejected
        ) as records_rejected,
        (
            select count(*) from bill_of_materials_erp
            where created_run_id = {{ current_run_id() }}
        ) as records_created,
        (
            select count(*) from bill_of_materials_erp
            where
                updated_run_id = {{ current_run_id() }}
                and created_run_id != {{ current_run_id() }}
        ) as records_updated,
        (
            select count(*) from bill_of_materials_erp
            where deleted_run_id = {{ current_run_id() }}
        ) as records_deleted
),

counts as (
    select
        table_name,
        records_staged,
        records_rejected,
        records_created,
        records_updated,
        records_deleted
    from products_counts
    union all
    select
        table_name,
        records_staged,
        records_rejected,
        records_created,
        records_updated,
        records_deleted
    from customers_counts
    union all
    select
        table_name,
        records_staged,
        records_rejected,
        records_created,
        records_updated,
        records_deleted
    from orders_counts
    union all
    select
        table_name,
        records_staged,
        records_rejected,
        records_created,
        records_updated,
        records_deleted
    from order_lines_counts
    union all
    select
        table_name,
        records_staged,
        records_rejected,
        records_created,
        records_updated,
        records_deleted
    from invoices_counts
    union all
    select
        table_name,
        records_staged,
        records_rejected,
        records_created,
        records_updated,
        records_deleted
    from inventory_counts
    union all
    select
        table_name,
        records_staged,
        records_rejected,
        records_created,
        records_updated,
        records_deleted
    from bill_of_materials_counts
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
