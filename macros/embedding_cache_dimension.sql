{#-
    The pre-hook of embedding_cache: when this run read every embedding from
    Chroma (the pull's full path) and they have another type than the cached
    ones (the collection was embedded again with another model, so another
    dimension), the cache's rows are deleted and its embedding column takes
    the new type, in the model's transaction, before the new rows go in.
    The cache holds only copies of Chroma's embeddings, and the full path
    writes every one of them again; a failure rolls the whole back. Nothing
    otherwise: the incremental path stops at a read of another dimension
    (stg_chroma__embeddings_pulled names the fix), and a first run has no
    cache yet.
-#}
{% macro mdc_cache_follows_dimension() %}
    {%- if execute and is_incremental() -%}
        {%- set pulled = ref('stg_chroma__embeddings_pulled') -%}
        {%- set new_type = adapter.get_columns_in_relation(pulled)
            | selectattr('name', 'equalto', 'embedding') | map(attribute='data_type') | first -%}
        {%- set cached_type = adapter.get_columns_in_relation(this)
            | selectattr('name', 'equalto', 'embedding') | map(attribute='data_type') | first -%}
        {%- if new_type and cached_type and new_type | upper != cached_type | upper -%}
            {%- set plan = run_query("select any_value(pull_path) from " ~ ref('stg_chroma__ids')) -%}
            {%- if plan.rows[0][0] == 'full' -%}
                {{ log("embedding_cache: the embeddings read are " ~ new_type ~ ", the cached ones " ~ cached_type
                       ~ " (the collection was embedded again): every cached row is replaced", info=true) }}
                delete from {{ this }};
                alter table {{ this }} alter embedding type {{ new_type }} using null::{{ new_type }}
            {%- endif -%}
        {%- endif -%}
    {%- endif -%}
{% endmacro %}
