{#-
    Where this run's Chroma store and collection are. The store belongs to the
    pipeline, like the DuckDB file, and comes from the same place: each of the
    two is, first found,
      1. the var (`chroma_path`, `chroma_collection`; null by default), e.g. --vars;
      2. the environment variable (MDC_CHROMA_PATH, MDC_CHROMA_COLLECTION);
      3. the embedded sample's (data/chroma, rdatasets_help_pages), but only
         when the DuckDB file is the project's own sample: the profile's
         default path data/pipeline.duckdb (MDC_DUCKDB_PATH unset).
    Otherwise the build stops here, in on-run-start before anything is
    written, naming the settings that fix it. A run on the user's file never
    falls back to the sample's store.

    Returns {'path', 'collection', 'path_from', 'collection_from'}; the
    `_from` values say where each came from, for messages.
-#}
{% macro sample_database_path() -%}
    {{ return('data/pipeline.duckdb') }}
{%- endmacro %}

{% macro chroma_location() -%}
    {%- set is_sample = target.path == sample_database_path() -%}
    {%- set found = {} -%}
    {%- set missing = [] -%}
    {%- for key, var_name, env_name, sample_value in [
        ('path', 'chroma_path', 'MDC_CHROMA_PATH', 'data/chroma'),
        ('collection', 'chroma_collection', 'MDC_CHROMA_COLLECTION', 'rdatasets_help_pages'),
    ] -%}
        {%- set given = mdc_setting(var_name) -%}
        {%- set from_env = env_var(env_name, '') -%}
        {%- if given is not none -%}
            {%- do found.update({key: given, key ~ '_from': "var '" ~ var_name ~ "'"}) -%}
        {%- elif from_env | trim != '' -%}
            {%- do found.update({key: from_env, key ~ '_from': "environment variable " ~ env_name}) -%}
        {%- elif is_sample -%}
            {%- do found.update({key: sample_value, key ~ '_from': "the embedded sample's default"}) -%}
        {%- else -%}
            {%- do missing.append(env_name) -%}
        {%- endif -%}
    {%- endfor -%}
    {%- if missing -%}
        {{ exceptions.raise_compiler_error(
            "No Chroma store is set for the pipeline database " ~ target.path ~ ": "
            ~ missing | join(' and ') ~ " " ~ ("is" if missing | length == 1 else "are") ~ " unset. "
            ~ "Set both to this pipeline's store, e.g. "
            ~ "export MDC_CHROMA_PATH=/path/to/chroma MDC_CHROMA_COLLECTION=my_collection "
            ~ "(or pass --vars '{chroma_path: /path/to/chroma, chroma_collection: my_collection}'). "
            ~ "The embedded sample's store (data/chroma) is only read with the project's own "
            ~ sample_database_path() ~ ". Nothing was written."
        ) }}
    {%- endif -%}
    {{ return(found) }}
{%- endmacro %}
