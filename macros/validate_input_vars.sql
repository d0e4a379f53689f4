{#-
    dbt renders a string var as Jinja, with the full run context, the moment
    var() reads it: `--vars '{chroma_path: "{{ run_query(...) }}"}'` would run
    that SQL at the first read of chroma_path. So before any var is read (first
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
    The Chroma store and collection this run reads, wherever they came from
    (a var, MDC_CHROMA_PATH / MDC_CHROMA_COLLECTION, or the sample's
    defaults: macros/chroma_location.sql), checked before anything is
    written (called from validate_settings). The vars themselves are also
    checked by the settings module; this check also covers values from the
    environment, and names where the value came from. A path is any
    non-empty string without control characters: it is only read, and
    reaches SQL only as a quoted literal (register_chroma_collections).
-#}
{% macro _is_text(value) -%}
    {{ return(value is string and value | length > 0 and not modules.re.search('[\\x00-\\x1f\\x7f]', value)) }}
{%- endmacro %}

{% macro validate_chroma_location() -%}
    {%- set location = chroma_location() -%}
    {%- if not _is_text(location.path) -%}
        {{ exceptions.raise_compiler_error(
            "The Chroma store path from " ~ location.path_from
            ~ " must be a path to a Chroma persistent directory (text without control characters); got "
            ~ (location.path | tojson) ~ "."
        ) }}
    {%- endif -%}
    {%- set name_re = '^[A-Za-z0-9][A-Za-z0-9._-]{1,510}[A-Za-z0-9]$' -%}
    {%- set value = location.collection -%}
    {%- if value is not string or not modules.re.match(name_re, value) or '..' in value -%}
        {{ exceptions.raise_compiler_error(
            "The Chroma collection from " ~ location.collection_from ~ " must be a Chroma collection name: "
            ~ "3-512 characters of letters, digits, '.', '_' or '-', starting and ending with a letter or digit; got "
            ~ (value | tojson) ~ "."
        ) }}
    {%- endif -%}
{%- endmacro %}
