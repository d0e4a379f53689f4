{#-
    Every embedding of the collection (clustering_state.embedding_cache),
    kept across runs: the view stg_chroma__embeddings reads them from here,
    and the next run's stg_chroma__ids reads the ids and text fingerprints
    back (as the source clustering_state.embedding_cache) and plans to read
    from Chroma only new datasets and those whose text changed. Each run
    writes only the rows it read from Chroma (stg_chroma__embeddings_pulled;
    all of them when the pull took the full path) and the post-hook, in the
    model's transaction, deletes the ids that are no longer in the
    collection (stg_chroma__ids; on a first run there is no table yet:
    nothing to delete), and the ids this run planned to read but did not
    write (an embedding turned invalid and left out by `invalid_embeddings:
    exclude`: its old copy must not stand in for it). Each dataset gets an integer dataset_key the first
    time it is cached (above every key in the cache, in the order of the
    read) and keeps it while it stays in the collection: the
    k-NN lists, pairs and edges name datasets by it (integers join, group
    and map to array positions much faster than the string ids). A new key
    is above every key in the cache, departed ids included (they are deleted
    after the new keys are drawn), so no key of this run's lists is given to
    another dataset in the same run. In the staging folder because the
    embeddings run through it. `full_refresh: false`: `--full-refresh` never
    empties it (set the setting `incremental: false` to read everything from
    Chroma again). A collection embedded again with another model (another
    dimension) is read whole, and the pre-hook mdc_cache_follows_dimension
    replaces every cached row and the column's type in the same transaction.
-#}
-- depends_on: {{ ref('stg_chroma__ids') }}
{{
    config(
        materialized='incremental',
        schema='clustering_state',
        alias='embedding_cache',
        incremental_strategy='delete+insert',
        unique_key='dataset_id',
        full_refresh=false,
        on_schema_change='append_new_columns',
        tags=['clustering', 'features'],
        pre_hook="{{ mdc_cache_follows_dimension() }}",
        post_hook=[
            "{% if is_incremental() %}delete from {{ this }} where dataset_id not in (select dataset_id from "
            ~ "{{ ref('stg_chroma__ids') }}) or (dataset_id in (select dataset_id from {{ ref('stg_chroma__ids') }} "
            ~ "where to_read) and pulled_run_id is distinct from '{{ invocation_id }}'){% endif %}",
            "{{ pause_point_sql('cache_before_commit') }}",
        ],
    )
}}

{#- a cache written before dataset keys existed: stg_chroma__ids plans the full path, and every row gets one -#}
{%- set keyed_before = is_incremental()
    and 'dataset_key' in (adapter.get_columns_in_relation(this) | map(attribute='name') | list) %}

with

embeddings as (

    select * from {{ ref('stg_chroma__embeddings_pulled') }}

),

collections as (

    select * from {{ ref('stg_chroma__collections') }}

),

clustered_collection as (

    select
        collections.chroma_path,
        collections.collection_name,
    from collections
    where collections.collection_role = 'clustered'

),

cached as (

    select
        embeddings.dataset_id,
        embeddings.document_id,
        embeddings.dataset_type,
        embeddings.embedding,
        embeddings.embedding_norm,
        embeddings.text_md5,
        embeddings.embedding_hash,
        clustered_collection.chroma_path,
        clustered_collection.collection_name,
        '{{ invocation_id }}' as pulled_run_id,
        embeddings.read_rank,
    from embeddings
    cross join clustered_collection

),

keyed as (

    {#- new datasets are numbered by their place in the read (read_rank, in id order): no window over the vectors -#}
    select
        cached.dataset_id,
        cached.document_id,
        cached.dataset_type,
        cached.embedding,
        cached.embedding_norm,
        cached.text_md5,
        cached.embedding_hash,
        cached.chroma_path,
        cached.collection_name,
        cached.pulled_run_id,
        {% if keyed_before -%}
            coalesce(
                stored.dataset_key,
                (select coalesce(max(all_stored.dataset_key), -1) from {{ this }} as all_stored) + 1 + cached.read_rank
            )::integer as dataset_key,
        {%- else -%}
            cached.read_rank::integer as dataset_key,
        {%- endif %}
    from cached
    {% if keyed_before -%}
        left join {{ this }} as stored on cached.dataset_id = stored.dataset_id
    {%- endif %}

)

select * from keyed
