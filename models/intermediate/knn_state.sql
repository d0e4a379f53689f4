{#-
    Every dataset's k-NN list (clustering_state.knn_state): the lists this
    run searched or changed (int_dataset_neighbors_updated) written over the
    last run's. The view int_dataset_neighbors_searched reads every list
    from here, and the next run's int_dataset_neighbors_updated reads them
    back (as the source clustering_state.knn_state) and updates them for the
    new, changed and removed datasets instead of searching every dataset.
    Each run writes the lists that changed (all of them on the full path;
    the delete+insert replaces a dataset's whole list) and the pre-hook, in
    the model's transaction, deletes the lists of datasets that left, and
    every list stored under other k-NN settings. Lists name datasets by id
    and by dataset_key (lists stored before keys existed are searched again
    and rewritten with them). `full_refresh: false`:
    `--full-refresh` never empties it.
-#}
-- depends_on: {{ ref('stg_chroma__embeddings') }}
{{
    config(
        materialized='incremental',
        schema='clustering_state',
        alias='knn_state',
        incremental_strategy='delete+insert',
        unique_key='dataset_id',
        full_refresh=false,
        on_schema_change='append_new_columns',
        tags=['clustering', 'features'],
        pre_hook=(
            "{% if is_incremental() %}delete from {{ this }} where dataset_id not in (select dataset_id from "
            ~ "{{ ref('stg_chroma__embeddings') }}) or knn_fingerprint <> (select any_value(knn_fingerprint) from "
            ~ "{{ ref('int_dataset_neighbors_updated') }}){% endif %}"
        ),
    )
}}

with

neighbors as (

    select * from {{ ref('int_dataset_neighbors_updated') }}

),

kept as (

    select
        neighbors.dataset_id,
        neighbors.neighbor_id,
        neighbors.dataset_key,
        neighbors.neighbor_key,
        neighbors.neighbor_rank,
        neighbors.similarity,
        neighbors.embedding_hash,
        neighbors.knn_fingerprint,
    from neighbors
    {% if is_incremental() -%}
        where neighbors.list_changed
    {%- endif %}

)

select * from kept
