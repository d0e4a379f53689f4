{#-
    The folder of this run's report and pictures: <reports_root>/<name>/,
    where <reports_root> is the var `reports_root`, by default
    reports/clustering in the dbt project being run (its --project-dir, else
    the directory dbt runs in, which is then the project; the host project
    when this one is installed as a package), made absolute against the
    shell's working directory ($PWD), so the folder is the same whatever
    directory dbt is started from. <name> is the var `report_name`, or
    by default `sample` for the project's own sample database
    (data/pipeline.duckdb) and the pipeline's DuckDB file name without its
    extension for any other file (`pipeline` for /x/pipeline.duckdb). So
    the sample and a pipeline never share a folder, and two pipelines only
    when their files share a name (then set report_name). The name is a folder name, never a path: characters
    other than letters, digits, '.', '_' and '-' become '_' (and the var
    itself is checked by validate_settings). rpt_clustering_figures
    creates the folder when it is missing; rpt_clustering_summary, which runs
    after it, writes the JSON there.
-#}
{% macro report_name() -%}
    {%- set given = mdc_setting('report_name') -%}
    {%- if given is not none -%}
        {%- set name = given | string -%}
    {%- elif target.path == sample_database_path() -%}
        {%- set name = 'sample' -%}
    {%- else -%}
        {%- set name = (target.path | string).replace('\\', '/').split('/')[-1] -%}
        {%- if '.' in name[1:] -%}
            {%- set name = name.rsplit('.', 1)[0] -%}
        {%- endif -%}
    {%- endif -%}
    {%- set name = modules.re.sub('[^A-Za-z0-9._-]', '_', name).replace('..', '_') -%}
    {%- if not modules.re.match('^[A-Za-z0-9]', name) -%}
        {%- set name = 'pipeline_' ~ name -%}
    {%- endif -%}
    {{ return(name[:100]) }}
{%- endmacro %}

{% macro report_dir() -%}
    {%- set root = mdc_setting('reports_root') -%}
    {%- if root is none -%}
        {%- set project = (invocation_args_dict or {}).get('project_dir') or '' -%}
        {%- set root = (project | string).rstrip('/') ~ '/reports/clustering' if project else 'reports/clustering' -%}
    {%- endif -%}
    {%- set root = root | string -%}
    {%- if not root.startswith('/') and env_var('PWD', '') -%}
        {%- set root = env_var('PWD').rstrip('/') ~ '/' ~ root -%}
    {%- endif -%}
    {{ return(root.rstrip('/') ~ '/' ~ report_name()) }}
{%- endmacro %}

{#- On-run-end: the report's and the browser's paths, as the run's last log lines, when the report was written. -#}
{% macro announce_report(results) -%}
    {%- if execute -%}
        {%- set written = results | selectattr('node.name', 'equalto', 'rpt_clustering_summary')
            | selectattr('status', 'equalto', 'success') | list -%}
        {%- if written -%}
            {%- set folder = report_dir() -%}
            {{ log('report: ' ~ folder ~ '/clustering_report.json', info=true) }}
            {%- if mdc_setting('figures') -%}
                {{ log('cluster browser: ' ~ folder ~ '/cluster_browser.html', info=true) }}
            {%- endif -%}
        {%- endif -%}
    {%- endif -%}
    select 1
{%- endmacro %}
