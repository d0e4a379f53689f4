{#-
    dbt renders a string var as Jinja, with the full run context, the moment
    var() reads it: `--vars '{chroma_path: "{{ run_query(...) }}"}'` would run
    that SQL at the first var('chroma_path'). So before any var is read (first
    thing of on-run-start), the raw --vars are checked and a top-level string
    holding Jinja markup stops the build, naming the var. (Nested values, such
    as the items of a list, are never rendered by dbt.)
-#}
{% macro refuse_jinja_in_vars() -%}
    {%- set given = invocation_args_dict.get('vars') or {} -%}
    {%- if given is string -%}
        {%- set given = fromyaml(given) or {} -%}
    {%- endif -%}
    {%- for name, value in given.items() -%}
        {%- if value is string and ('{{' in value or '{%' in value or '{#' in value) -%}
            {{ exceptions.raise_compiler_error(
                "var '" ~ name ~ "' holds Jinja markup ('{{', '{%' or '{#'), which dbt would run when the var "
                ~ "is read; got " ~ (value | tojson) ~ ". Pass a plain value in --vars."
            ) }}
        {%- endif -%}
    {%- endfor -%}
{%- endmacro %}

{#-
    The vars that are free text: the Chroma paths (the var, or the environment
    variable MDC_CHROMA_PATH: macros/chroma_location.sql) and the extra stop
    words (called from validate_clustering_vars, before any model runs).
    Collection names are checked there against Chroma's own name rule.

    A path is any non-empty string without control characters: it is only
    read (Chroma store), it reaches SQL only as a quoted literal
    (register_chroma_collections) and never chooses where a file is written
    (reports go to reports/clustering/<report folder name>/, a checked name).
    Stop words are a list of strings without commas, as they travel to the
    terms model comma-joined.
-#}
{% macro _is_text(value) -%}
    {{ return(value is string and value | length > 0 and not modules.re.search('[\\x00-\\x1f\\x7f]', value)) }}
{%- endmacro %}

{% macro validate_path_and_word_vars() -%}
    {%- set location = chroma_location() -%}
    {%- if not _is_text(location.path) -%}
        {%- if location.path_from.startswith('var ') -%}
            {{ _fail_var('chroma_path', location.path, "a path to a Chroma persistent directory (text without control characters)") }}
        {%- else -%}
            {{ exceptions.raise_compiler_error(
                "The Chroma store path from " ~ location.path_from
                ~ " must be a path to a Chroma persistent directory (text without control characters); got "
                ~ (location.path | tojson) ~ "."
            ) }}
        {%- endif -%}
    {%- endif -%}
    {%- set value = var('reference_chroma_path') -%}
    {%- if value is not none and not _is_text(value) -%}
        {{ _fail_var('reference_chroma_path', value, "a path to a Chroma persistent directory (text without control characters) or null") }}
    {%- endif -%}
    {%- set words = var('cluster_term_stop_words') -%}
    {%- set rule = "a list of words (strings without commas or control characters)" -%}
    {%- if words is string or words is mapping or words is not iterable -%}
        {{ _fail_var('cluster_term_stop_words', words, rule) }}
    {%- endif -%}
    {%- for word in words -%}
        {%- if not _is_text(word) or ',' in word -%}
            {{ _fail_var('cluster_term_stop_words', words, rule) }}
        {%- endif -%}
    {%- endfor -%}
{%- endmacro %}
