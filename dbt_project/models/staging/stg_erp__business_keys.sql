{#- One row per erp record that holds a unique business key (SKU, account, order and invoice
    number), as the ERP stands before this run's merge. Read by the uniqueness rules. -#}
with

products as (
    select
        legacy_id,
        sku as business_key,
        is_deleted
    from {{ source('erp', 'products') }}
),

customers as (
    select
        legacy_id,
        account_number as business_key,
        is_deleted
    from {{ source('erp', 'customers') }}
),

orders as (
    select
        legacy_id,
        order_number as business_key,
        is_deleted
    from {{ source('erp', 'orders') }}
),

invoices as (
    select
        legacy_id,
        invoice_number as business_key,
        is_deleted
    from {{ source('erp', 'invoices') }}
),

final as (
    select
        'Products' as table_name,
        legacy_id,
        business_key,
        is_deleted
    from products
    union all
    select
        'Customers' as table_name,
        legacy_id,
        business_key,
        is_deleted
    from customers
    union all
    select
        'Orders' as table_name,
        legacy_id,
        business_key,
        is_deleted
    from orders
    union all
    select
        'Invoices' as table_name,
        legacy_id,
        business_key,
        is_deleted
    from invoices
)

select * from final
