{#-
    One row: the facts of this clustering run as a whole (the resolution
    Leiden used, modularity, components, what the cluster rules did, how
    labels carried over, placement), and its unclustered counts. The
    clustering Python model can return only one table, so these facts ride
    on its memberships as dictionary-encoded columns (one byte a row, see
    mdc_clustering.stages.memberships); this model is the one place that
    reads them. An aggregate without GROUP BY: exactly one row, by
    construction.
-#}
{{ config(materialized='table', tags=['clustering']) }}

with

memberships as (

    select * from {{ ref('int_datasets_clustered') }}

),

summarized as (

    select
        any_value(memberships.leiden_resolution) as leiden_resolution,
        any_value(memberships.modularity) as modularity,
        any_value(memberships.n_components) as n_components,
        any_value(memberships.target_reached) as target_reached,
        any_value(memberships.n_split) as n_split,
        any_value(memberships.n_attached) as n_attached,
        any_value(memberships.edge_weight) as edge_weight,
        any_value(memberships.resolution_scan) as resolution_scan,
        any_value(memberships.labels_kept) as labels_kept,
        any_value(memberships.labels_born) as labels_born,
        any_value(memberships.labels_retired) as labels_retired,
        any_value(memberships.clusters_split) as clusters_split,
        any_value(memberships.clusters_merged) as clusters_merged,
        any_value(memberships.share_kept_label) as share_kept_label,
        any_value(memberships.datasets_placed) as datasets_placed,
        any_value(memberships.datasets_left_unplaced) as datasets_left_unplaced,
        any_value(memberships.placement_seconds) as placement_seconds,
        any_value(memberships.leiden_path) as leiden_path,
        any_value(memberships.leiden_reason) as leiden_reason,
        any_value(memberships.leiden_nodes) as leiden_nodes,
        any_value(memberships.leiden_free_datasets) as leiden_free_datasets,
        any_value(memberships.runs_since_full_leiden) as runs_since_full_leiden,
        any_value(memberships.full_leiden_modularity) as full_leiden_modularity,
        any_value(memberships.aggregated_modularity) as aggregated_modularity,
        count(*) as n_datasets,
        count(distinct memberships.cluster) as n_clusters,
        count(*) filter (where memberships.cluster is null) as n_unclustered,
        count(*) filter (where memberships.cluster is null and memberships.community_size = 1) as n_singletons,
        count(*) filter (where memberships.unclustered_reason = 'no_edge') as n_no_edge,
        count(*) filter (where memberships.unclustered_reason = 'small_component') as n_small_component,
        count(*) filter (where memberships.unclustered_reason = 'dissolved') as n_dissolved,
        count(*) filter (where memberships.unclustered_reason = 'not_placed') as n_not_placed,
    from memberships

)

select * from summarized
