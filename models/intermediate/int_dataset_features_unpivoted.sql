{#-
    This phase's features in the long shape of engineered_feature_values:
    the six neighbourhood statistics for every dataset with neighbours, and
    the two cluster features (cluster_size, cluster_centroid_similarity) for
    every clustered dataset. document_id comes from the pipeline's datasets
    table (the Chroma metadata where the dataset has no row there).
-#}
with

stats as (

    select * from {{ ref('int_neighborhood_stats_computed') }}

),

centroid_scores as (

    select * from {{ ref('int_datasets_centroid_scored') }}

),

embeddings as (

    select * from {{ ref('stg_chroma__embeddings') }}

),

datasets as (

    select * from {{ ref('stg_pipeline__datasets') }}

),

neighborhood_long as (

    unpivot (
        select
            dataset_id,
            neighbor_similarity_mean,
            neighbor_similarity_max,
            neighbor_similarity_var,
            neighbor_norm_mean,
            neighbor_norm_max,
            neighbor_norm_var,
        from stats
    )
    on
    neighbor_similarity_mean,
    neighbor_similarity_max,
    neighbor_similarity_var,
    neighbor_norm_mean,
    neighbor_norm_max,
    neighbor_norm_var
    into name feature_name value feature_value

),

cluster_long as (

    unpivot (
        select
            dataset_id,
            cast(cluster_size as double) as cluster_size,
            centroid_similarity as cluster_centroid_similarity,
        from centroid_scores
    )
    on cluster_size, cluster_centroid_similarity
    into name feature_name value feature_value

),

all_features as (

    select * from neighborhood_long
    union all
    select * from cluster_long

),

keyed as (

    select
        all_features.dataset_id,
        coalesce(datasets.document_id, embeddings.document_id) as document_id,
        all_features.feature_name,
        cast(all_features.feature_value as double) as feature_value,
    from all_features
    left join datasets
        on all_features.dataset_id = datasets.dataset_id
    left join embeddings
        on all_features.dataset_id = embeddings.dataset_id
    where coalesce(datasets.document_id, embeddings.document_id) is not null

)

select * from keyed
