{#- One 4D BillOfMaterials entity per row: this run's last landed version, wire types checked. -#}
{%- set fields = [
    ('ParentProductID', 'integer', 'parent_product_legacy_id'),
    ('ComponentProductID', 'integer', 'component_product_legacy_id'),
    ('Quantity', 'number', 'quantity'),
    ('UnitOfMeasure', 'text', 'unit_of_measure'),
    ('BOMLevel', 'integer', 'bom_level'),
    ('StartDate', 'date', 'valid_from'),
    ('EndDate', 'date', 'valid_to'),
    ('ModifiedDate', 'date', 'modified_date'),
    ('ModifiedTime', 'time', 'modified_time'),
] -%}

with

landed as (
    {{ fourd_current_run_rows('bill_of_materials_raw', 'BillOfMaterials') }}
),

latest as (
    select
        run_id,
        legacy_id,
        payload,
        row_hash,
        extracted_at
    from landed
    where version_rank = 1
),

checked as (
    select
        latest.run_id,
        latest.legacy_id,
        latest.payload,
        latest.row_hash,
        latest.extracted_at,
        {{- fourd_column_names(fields, 'parsed_fields') }}
        parsed_fields.parse_errors
    from latest
    cross join lateral (
        {{ fourd_parsed_fields(fields, 'latest.payload') }}
    ) as parsed_fields
),

final as (
    select
        checked.run_id,
        checked.legacy_id,
        case
            when checked.legacy_id ~ '^[0-9]{1,18}$' then checked.legacy_id::bigint
        end as legacy_key,
        checked.parent_product_legacy_id,
        checked.component_product_legacy_id,
        checked.quantity,
        checked.unit_of_measure,
        checked.bom_level,
        checked.valid_from,
        checked.valid_to,
        checked.modified_date,
        checked.modified_time,
        checked.parse_errors,
        checked.payload as record_data,
        checked.row_hash as landed_row_hash,
        checked.extracted_at
    from checked
)

select * from final
