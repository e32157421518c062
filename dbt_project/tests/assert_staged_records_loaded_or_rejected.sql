-- Every record staged in this run is either live in erp or in the rejects (never both
-- changed and rejected, never silently dropped): loaded + rejected = staged, per table.
with

checked as (
    select
        'Products' as table_name,
        staged.legacy_id,
        case
            when rejects.record_id is not null and erp_rows.updated_run_id = {{ current_run_id() }}
                then 'rejected but its erp row was changed by this run'
            when rejects.record_id is null and erp_rows.legacy_id is null
                then 'neither loaded into erp nor rejected'
            when rejects.record_id is null and erp_rows.is_deleted
                then 'loaded but soft-deleted'
        end as problem
    from {{ ref('stg_legacy_4d__products') }} as staged
    left join {{ ref('products') }} as erp_rows
        on staged.legacy_id = erp_rows.legacy_id
    left join {{ ref('sync_rejects') }} as rejects
        on
            rejects.table_name = 'Products'
            and staged.legacy_id = rejects.record_id
    union all
    select
        'Customers' as table_name,
        staged.legacy_id,
        case
            when rejects.record_id is not null and erp_rows.updated_run_id = {{ current_run_id() }}
                then 'rejected but its erp row was changed by this run'
            when rejects.record_id is null and erp_rows.legacy_id is null
                then 'neither loaded into erp nor rejected'
            when rejects.record_id is null and erp_rows.is_deleted
                then 'loaded but soft-deleted'
        end as problem
    from {{ ref('stg_legacy_4d__customers') }} as staged
    left join {{ ref('customers') }} as erp_rows
        on staged.legacy_id = erp_rows.legacy_id
    left join {{ ref('sync_rejects') }} as rejects
        on
            rejects.table_name = 'Customers'
            and staged.legacy_id = rejects.record_id
    union all
    select
        'Orders' as table_name,
        staged.legacy_id,
        case
            when rejects.record_id is not null and erp_rows.updated_run_id = {{ current_run_id() }}
                then 'rejected but its erp row was changed by this run'
            when rejects.record_id is null and erp_rows.legacy_id is null
                then 'neither loaded into erp nor rejected'
            when rejects.record_id is null and erp_rows.is_deleted
                then 'loaded but soft-deleted'
        end as problem
    from {{ ref('stg_legacy_4d__orders') }} as staged
    left join {{ ref('orders') }} as erp_rows
        on staged.legacy_id = erp_rows.legacy_id
    left join {{ ref('sync_rejects') }} as rejects
        on
            rejects.table_name = 'Orders'
            and staged.legacy_id = rejects.record_id
    union all
    select
        'OrderLines' as table_name,
        staged.legacy_id,
        case
            when rejects.record_id is not null and erp_rows.updated_run_id = {{ current_run_id() }}
                then 'rejected but its erp row was changed by this run'
            when rejects.record_id is null and erp_rows.legacy_id is null
                then 'neither loaded into erp nor rejected'
            when rejects.record_id is null and erp_rows.is_deleted
                then 'loaded but soft-deleted'
        end as problem
    from {{ ref('stg_legacy_4d__order_lines') }} as staged
    left join {{ ref('order_lines') }} as erp_rows
        on staged.legacy_id = erp_rows.legacy_id
    left join {{ ref('sync_rejects') }} as rejects
        on
            rejects.table_name = 'OrderLines'
            and staged.legacy_id = rejects.record_id
    union all
    select
        'Invoices' as table_name,
        staged.legacy_id,
        case
            when rejects.record_id is not null and erp_rows.updated_run_id = {{ current_run_id() }}
                then 'rejected but its erp row was changed by this run'
            when rejects.record_id is null and erp_rows.legacy_id is null
                then 'neither loaded into erp nor rejected'
            when rejects.record_id is null and erp_rows.is_deleted
                then 'loaded but soft-deleted'
        end as problem
    from {{ ref('stg_legacy_4d__invoices') }} as staged
    left join {{ ref('invoices') }} as erp_rows
        on staged.legacy_id = erp_rows.legacy_id
    left join {{ ref('sync_rejects') }} as rejects
        on
            rejects.table_name = 'Invoices'
            and staged.legacy_id = rejects.record_id
    union all
    select
        'Inventory' as table_name,
        staged.legacy_id,
        case
            when rejects.record_id is not null and erp_rows.updated_run_id = {{ current_run_id() }}
                then 'rejected but its erp row was changed by this run'
            when rejects.record_id is null and erp_rows.legacy_id is null
                then 'neither loaded into erp nor rejected'
            when rejects.record_id is null and erp_rows.is_deleted
                then 'loaded but soft-deleted'
        end as problem
    from {{ ref('stg_legacy_4d__inventory') }} as staged
    left join {{ ref('inventory') }} as erp_rows
        on staged.legacy_id = erp_rows.legacy_id
    left join {{ ref('sync_rejects') }} as rejects
        on
            rejects.table_name = 'Inventory'
            and staged.legacy_id = rejects.record_id
    union all
    select
        'BillOfMaterials' as table_name,
        staged.legacy_id,
        case
            when rejects.record_id is not null and erp_rows.updated_run_id = {{ current_run_id() }}
                then 'rejected but its erp row was changed by this run'
            when rejects.record_id is null and erp_rows.legacy_id is null
                then 'neither loaded into erp nor rejected'
            when rejects.record_id is null and erp_rows.is_deleted
                then 'loaded but soft-deleted'
        end as problem
    from {{ ref('stg_legacy_4d__bill_of_materials') }} as staged
    left join {{ ref('bill_of_materials') }} as erp_rows
        on staged.legacy_id = erp_rows.legacy_id
    left join {{ ref('sync_rejects') }} as rejects
        on
            rejects.table_name = 'BillOfMaterials'
            and staged.legacy_id = rejects.record_id
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
