{#-
    on-run-start: records which Chroma collections this run reads, in the
    table chroma.collections (one row per role: 'clustered', 'reference').
    The table is the dbt source `chroma.collections`, so the Chroma store
    appears in the lineage graph as the origin of the embeddings; the Python
    models read the store path and collection name from it. The clustered
    collection's location comes from macros/chroma_location.sql (var, then
    MDC_CHROMA_PATH / MDC_CHROMA_COLLECTION, then the sample's only for the
    sample's own DuckDB file). Names are
    checked by validate_settings first; paths are quoted.
-#}
{% macro _sql_string(value) -%}
    {{ "null" if value is none else "'" ~ (value | string | replace("'", "''")) ~ "'" }}
{%- endmacro %}

{% macro register_chroma_collections() -%}
    {%- if not mdc_is_selected() -%}
        {{ return('select 1 as nothing_selected') }}
    {%- endif -%}
    {%- set location = chroma_location() -%}
    {%- set reference_path = mdc_setting('reference_chroma_path') or location.path -%}
    {%- set reference_name = mdc_setting('reference_collection') or location.collection -%}
    create schema if not exists chroma;
    create or replace table chroma.collections as
    select * from (
        values
            ('clustered', {{ _sql_string(location.path) }}, {{ _sql_string(location.collection) }}),
            ('reference', {{ _sql_string(reference_path) }}, {{ _sql_string(reference_name) }})
    ) as registered (collection_role, chroma_path, collection_name)
{%- endmacro %}
