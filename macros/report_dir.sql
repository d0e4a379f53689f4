{#-
    The folder of this run's report and pictures: reports/clustering/<name>/
    (relative to where dbt runs), where <name> is the var `report_name`, or
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
    {{ return('reports/clustering/' ~ report_name()) }}
{%- endmacro %}
