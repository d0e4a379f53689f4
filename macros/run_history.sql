{#-
    on-run-end: the seconds each of this package's models took in this run,
    as one JSON object, into this run's row of clustering_state.run_history
    (appended by the model run_history). Does nothing when that model did
    not run successfully in this invocation (then there is no row).
-#}
{% macro record_step_seconds(results) -%}
    {%- if execute and mdc_is_selected() -%}
        {%- set seconds = {} -%}
        {%- set wrote = [] -%}
        {%- for result in results if result.node.package_name == 'mdc_clustering'
                                    and result.node.resource_type == 'model' -%}
            {%- do seconds.update({result.node.name: (result.execution_time | round(3))}) -%}
            {%- if result.node.name == 'run_history' and result.status == 'success' -%}
                {%- do wrote.append(true) -%}
            {%- endif -%}
        {%- endfor -%}
        {%- if wrote -%}
            update clustering_state.run_history
            set step_seconds = '{{ tojson(seconds) }}'
            where run_id = '{{ invocation_id }}'
        {%- else -%}
            select 1 as no_history_row
        {%- endif -%}
    {%- else -%}
        select 1 as nothing_selected
    {%- endif -%}
{%- endmacro %}
