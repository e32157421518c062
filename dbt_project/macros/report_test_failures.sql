{#-
    on-run-end: one line per failed data test, in words a person can act on: the legacy table(s)
    it checks, what it checks, how many records, and example keys -- so a plain `dbt test` in
    dbt_project/ is the ERP's integrity check (the pipeline builds its own verdicts from
    run_results.json the same way, plugins/legacy_sync/transform.py).
-#}
{% macro report_test_failures(results) -%}
    {%- if execute -%}
        {%- for result in results
            if result.node.resource_type == 'test' and result.status in ('fail', 'warn', 'error') -%}
            {%- set node = result.node -%}
            {%- set checked = node.attached_node or (node.depends_on.nodes | first) or node.unique_id -%}
            {%- set model = graph.nodes.get(checked) or {} -%}
            {%- set tables = node.config.meta.get('legacy_tables')
                or model.get('config', {}).get('meta', {}).get('legacy_tables') or [] -%}
            {%- set examples = [] -%}
            {%- set checks = [] -%}
            {%- if result.status != 'error' and node.compiled_code -%}
                {%- set rows = run_query('select * from (' ~ node.compiled_code ~ ') as failing limit 5') -%}
                {%- set column = 'legacy_id' if 'legacy_id' in rows.column_names else rows.column_names[0] -%}
                {%- for row in rows -%}{%- do examples.append(row[column] | string) -%}{%- endfor -%}
                {#- row_checks: which of the model's checks failed, and how often -#}
                {%- if node.test_metadata and node.test_metadata.name == 'row_checks' -%}
                    {%- set found = run_query(
                        'select check_column, problem, count(*) from (' ~ node.compiled_code
                        ~ ') as failing group by check_column, problem order by check_column, problem'
                    ) -%}
                    {%- for row in found -%}
                        {%- do checks.append((row[0] ~ ' ' if row[0] else '') ~ row[1] ~ ' (' ~ row[2] ~ ')') -%}
                    {%- endfor -%}
                {%- endif -%}
            {%- endif -%}
            {{ log(
                result.status | upper ~ ' ' ~ (tables | join(', ') or checked.split('.')[-1]) ~ ': '
                ~ node.name ~ ' found ' ~ (result.failures or 0) ~ ' record(s)'
                ~ (' (e.g. ' ~ examples | join(', ') ~ ')' if examples else '')
                ~ (': ' ~ checks | join('; ') if checks else '')
                ~ (': ' ~ result.message if result.status == 'error' else ''),
                info=true
            ) }}
        {%- endfor -%}
    {%- endif -%}
{%- endmacro %}
