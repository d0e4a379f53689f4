{#-
    The IVF index the last full k-NN search trained (table
    clustering_state.knn_index, one row per k-NN settings fingerprint): its
    projection, k-means cells, 4-bit codebooks and the nprobe its pilot chose,
    no rows (a few kilobytes to a megabyte). A re-run's update searches
    through it (int_dataset_neighbors_updated reads the source
    clustering_state.knn_index) instead of fitting the principal axes and
    the cells again, while the datasets number between 0.8x and 1.25x those
    it was trained on. A run that reused it writes nothing; the pre-hook
    deletes indexes of other k-NN settings. `full_refresh: false`.
-#}
-- depends_on: {{ ref('int_dataset_neighbors_updated') }}
{{
    config(
        materialized='incremental',
        schema='clustering_state',
        alias='knn_index',
        incremental_strategy='delete+insert',
        unique_key='knn_fingerprint',
        full_refresh=false,
        tags=['clustering', 'features'],
        pre_hook=(
            "{% if is_incremental() %}delete from {{ this }} where knn_fingerprint <> (select "
            ~ "any_value(knn_fingerprint) from {{ ref('int_dataset_neighbors_updated') }}){% endif %}"
        ),
    )
}}

with

neighbors as (

    select * from {{ ref('int_dataset_neighbors_updated') }}

),

trained as (

    select
        neighbors.knn_fingerprint,
        neighbors.ivf_model,
        cast(current_timestamp as timestamp) as trained_at,
        '{{ invocation_id }}' as trained_by_run_id,
    from neighbors
    where
        neighbors.ivf_model is not null
        and not neighbors.ivf_model_reused

)

select * from trained
