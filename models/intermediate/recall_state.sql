{#-
    The recall sample's exact answers (clustering_state.recall_state), kept
    for the next run: one row per embedded dataset with its embedding
    fingerprint, and for each sampled dataset its exact top k over all
    embeddings (int_knn_recall_sample_scored). The next run's
    int_knn_recall_sample_scored reads it back (as the source
    clustering_state.recall_state) and updates the answers for the new,
    changed and removed datasets instead of searching every embedding again.
    Each run writes the sample's rows, the rows of datasets new or changed
    since the stored ones, and NULL answers over those that left the sample;
    the pre-hook, in the model's transaction, deletes the datasets that left.
    `full_refresh: false`: `--full-refresh` never empties it.
-#}
{{
    config(
        materialized='incremental',
        schema='clustering_state',
        alias='recall_state',
        incremental_strategy='delete+insert',
        unique_key='dataset_id',
        full_refresh=false,
        tags=['clustering'],
        pre_hook=(
            "{% if is_incremental() %}delete from {{ this }} where dataset_id not in (select dataset_id from "
            ~ "{{ ref('stg_chroma__embeddings') }}){% endif %}"
        ),
    )
}}

with

scored as (

    select * from {{ ref('int_knn_recall_sample_scored') }}

),

embeddings as (

    select * from {{ ref('stg_chroma__embeddings') }}

),

stored as (

    {% if is_incremental() -%}
        select
            state.dataset_id,
            state.embedding_hash,
            state.exact_neighbor_ids,
        from {{ this }} as state
    {%- else -%}
        -- first run: nothing stored
        select
            cast(null as varchar) as dataset_id,
            cast(null as bigint) as embedding_hash,
            cast(null as varchar[]) as exact_neighbor_ids,
        where false
    {%- endif %}

),

sampled as (

    select
        scored.dataset_id,
        scored.embedding_hash,
        scored.exact_neighbor_ids,
        scored.exact_similarities,
        scored.exact_kth_similarity,
        scored.recall_fingerprint,
    from scored

),

unsampled as (

    select
        embeddings.dataset_id,
        embeddings.embedding_hash,
        cast(null as varchar[]) as exact_neighbor_ids,
        cast(null as float[]) as exact_similarities,
        cast(null as float) as exact_kth_similarity,
        cast(null as varchar) as recall_fingerprint,
    from embeddings
    left join scored on embeddings.dataset_id = scored.dataset_id
    left join stored on embeddings.dataset_id = stored.dataset_id
    where
        scored.dataset_id is null
        and (
            stored.dataset_id is null
            or stored.embedding_hash <> embeddings.embedding_hash
            or stored.exact_neighbor_ids is not null
        )

),

kept as (

    select * from sampled
    union all
    select * from unsampled

)

select * from kept
