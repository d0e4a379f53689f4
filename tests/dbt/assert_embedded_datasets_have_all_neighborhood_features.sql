-- Every embedded dataset that has reference neighbours holds all six
-- neighbourhood features in engineered_feature_values, and every clustered
-- dataset also its two cluster features.
with

expected as (

    select
        stats.dataset_id,
        feature.feature_name
    from {{ ref('int_neighborhood_stats_computed') }} as stats
    cross join (
        values
        ('neighbor_similarity_mean'), ('neighbor_similarity_max'), ('neighbor_similarity_var'),
        ('neighbor_norm_mean'), ('neighbor_norm_max'), ('neighbor_norm_var')
    ) as feature (feature_name)

    union all

    select
        scored.dataset_id,
        feature.feature_name
    from {{ ref('int_datasets_centroid_scored') }} as scored
    cross join (values ('cluster_size'), ('cluster_centroid_similarity')) as feature (feature_name)

),

stored as (

    select
        dataset_id,
        feature_name
    from {{ ref('engineered_feature_values') }}

)

select expected.*
from expected
anti join stored
    on
        expected.dataset_id = stored.dataset_id
        and expected.feature_name = stored.feature_name
