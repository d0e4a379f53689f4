{#-
    Pause points of the crash-safety tests (tests/python/test_crash_safety.py)
    for SQL writes; the Python side is mdc_clustering.faults. Renders nothing
    (so the hook runs no statement at all) unless the environment variable
    MDC_TEST_PAUSE_AT names this point; then a query that reads the named pipe
    MDC_TEST_PAUSE_FIFO, which blocks until the test kills the run (the
    query reads the content: a bare count(*) would not even open the file).
-#}
{% macro _pause_fifo_read() -%}
    select sum(octet_length(content)) as paused from read_blob('{{ env_var("MDC_TEST_PAUSE_FIFO", "") | replace("'", "''") }}')
{%- endmacro %}

{% macro pause_point_sql(point) -%}
    {%- if env_var('MDC_TEST_PAUSE_AT', '') == point -%}
        {{ _pause_fifo_read() }}
    {%- endif -%}
{%- endmacro %}

{#-
    The same pause, inside the MERGE statement itself: a list of
    incremental_predicates for the model's config, empty unless the point is
    asked for (then a join condition that reads the pipe while the merge runs).
-#}
{% macro pause_point_merge_predicates(point) -%}
    {%- if env_var('MDC_TEST_PAUSE_AT', '') == point -%}
        {{ return(["(" ~ _pause_fifo_read() ~ ") >= 0"]) }}
    {%- endif -%}
    {{ return([]) }}
{%- endmacro %}
