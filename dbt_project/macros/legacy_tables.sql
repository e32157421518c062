{#- The legacy 4D dataclasses the project maps, as (4D dataclass, model stem), in dependency
    order: the one list the sync models loop over (plugins/legacy_sync/registry.py is its
    Python twin; adding a table means adding it to both). -#}
{% macro legacy_tables() -%}
    {{ return([
        ('Products', 'products'),
        ('Customers', 'customers'),
        ('Orders', 'orders'),
        ('OrderLines', 'order_lines'),
        ('Invoices', 'invoices'),
        ('Inventory', 'inventory'),
        ('BillOfMaterials', 'bill_of_materials'),
    ]) }}
{%- endmacro %}
