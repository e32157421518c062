{#-
    An erp table's statistics are refreshed after its merge only when they no longer describe it:
    never gathered (the first sync fills the table in one merge, and the next models of the same
    run join against it), or the table has grown by more than a tenth since they were (a large
    backfill). ANALYZE samples up to 30,000 rows whatever the merge changed -- about a second per
    million-row table here, most of an hourly run's cost -- while a run that changed 0.1 % leaves
    the statistics as good as they were; PostgreSQL's autovacuum refreshes them from there on its
    own threshold. Size is read from the table itself (pg_relation_size), not from the statistics
    collector, which may report a merge's changes seconds late.
-#}
{% macro analyze_when_stale(relation) -%}
    {%- set name = relation.include(database=false) -%}
    do $analyze$
    begin
        if (
            select
                table_class.reltuples < 0
                or pg_relation_size(table_class.oid) / current_setting('block_size')::bigint
                > 1.1 * table_class.relpages + 1
            from pg_class as table_class
            where table_class.oid = '{{ name }}'::regclass
        ) then
            analyze {{ name }};
        end if;
    end
    $analyze$
{%- endmacro %}
