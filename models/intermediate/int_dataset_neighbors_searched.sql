{#-
    Every embedded dataset's k-NN list, one row per (dataset, neighbour): the
    lists stored in clustering_state.knn_state, which the model knn_state has
    just brought up to date with this run's searched and changed lists
    (int_dataset_neighbors_updated), with how this run searched (the same on
    every row). A view: a re-run that changed 1% of the lists writes those
    lists once, into the state table, instead of copying every list again.
-#}
{{ config(materialized='view') }}

with

stored_lists as (

    select * from {{ ref('knn_state') }}

),

updated as (

    select * from {{ ref('int_dataset_neighbors_updated') }}

),

search as (

    select
        any_value(updated.search_dims) as search_dims,
        any_value(updated.ivf_nlist) as ivf_nlist,
        any_value(updated.ivf_nprobe) as ivf_nprobe,
        any_value(updated.ivf_model_reused) as ivf_model_reused,
        any_value(updated.knn_path) as knn_path,
        any_value(updated.knn_reason) as knn_reason,
    from updated

),

changed as (

    select distinct updated.dataset_key
    from updated
    where updated.list_changed

),

lists as (

    select
        stored_lists.dataset_id,
        stored_lists.neighbor_id,
        stored_lists.dataset_key,
        stored_lists.neighbor_key,
        stored_lists.neighbor_rank,
        stored_lists.similarity,
        search.search_dims,
        search.ivf_nlist,
        search.ivf_nprobe,
        stored_lists.embedding_hash,
        stored_lists.dataset_key in (select changed.dataset_key from changed) as list_changed,
        search.knn_path,
        search.knn_reason,
        stored_lists.knn_fingerprint,
        search.ivf_model_reused,
    from stored_lists
    cross join search

)

select * from lists
