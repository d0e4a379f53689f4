{#-
    One row: the summary of this run, also written as one JSON object to
    reports/clustering/<report folder>/clustering_report.json (macros/report_dir.sql;
    overwritten by the next run of the same pipeline) by the post-hook. It
    runs after rpt_clustering_figures, which creates that folder.
-#}
-- depends_on: {{ ref('rpt_clustering_figures') }}
{{
    config(
        materialized='table',
        tags=['clustering'],
        post_hook="copy (select * from {{ this }}) to '{{ report_dir() | replace(\"'\", \"''\") }}/clustering_report.json' (format json)",
    )
}}

with

threshold as (

    select * from {{ ref('int_similarity_threshold_selected') }}

),

memberships as (

    select * from {{ ref('int_datasets_clustered') }}

),

run_facts as (

    select * from {{ ref('int_clustering_run_summarized') }}

),

datasets as (

    select * from {{ ref('stg_pipeline__datasets') }}

),

embeddings as (

    select * from {{ ref('stg_chroma__embeddings') }}

),

edges as (

    select * from {{ ref('int_graph_edges_filtered') }}

),

neighbors as (

    select * from {{ ref('int_dataset_neighbors_searched') }}

),

clusters as (

    select * from {{ ref('clusters') }}

),

run_settings as (

    select * from {{ source('clustering_state', 'run_settings') }}

),

knn as (

    select * from {{ ref('int_knn_recall_measured') }}

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

described as (

    select
        list(
            struct_pack(
                cluster := clusters.cluster,
                size := clusters.size,
                label_status := clusters.label_status,
                top_terms := clusters.top_terms[1:5],
                exemplar_ids := clusters.exemplar_ids,
                exemplar_texts := clusters.exemplar_texts,
                mean_centroid_similarity := clusters.mean_centroid_similarity
            )
            order by clusters.size desc, clusters.cluster asc
        ) as clusters_described,
    from clusters

),

degree_endpoints as (

    select edges.source_key as node_key from edges
    union all
    select edges.target_key as node_key from edges

),

connected_nodes as (

    select count(distinct degree_endpoints.node_key) as n_connected
    from degree_endpoints

),

clustered_graph as (

    {#- the graph Leiden clustered: every kept edge (threshold or nearest-neighbour guarantee) -#}
    select
        count(*) as n_edges,
        count(*) filter (where edges.is_below_threshold) as n_nearest_only,
    from edges

),

unembedded as (

    select count(*) as n_unembedded
    from datasets
    anti join embeddings
        on datasets.dataset_id = embeddings.dataset_id

),

orphan_embeddings as (

    select count(*) as n_orphans
    from embeddings
    anti join datasets
        on embeddings.dataset_id = datasets.dataset_id

),

cluster_sizes as (

    select
        memberships.cluster,
        count(*) as size,
        count(datasets.dataset_type) as n_typed,
        count(*) filter (where datasets.dataset_type = 'PRIMARY') as n_primary,
        count(*) filter (where datasets.dataset_type = 'SECONDARY') as n_secondary,
    from memberships
    left join datasets
        on memberships.dataset_id = datasets.dataset_id
    where memberships.cluster is not null
    group by memberships.cluster

),

cluster_stats as (

    select
        count(*) as n_clusters,
        min(cluster_sizes.size) as size_min,
        median(cluster_sizes.size) as size_median,
        max(cluster_sizes.size) as size_max,
        list(
            struct_pack(cluster := cluster_sizes.cluster, size := cluster_sizes.size)
            order by cluster_sizes.size desc, cluster_sizes.cluster asc
        ) as sizes,
    from cluster_sizes

),

typed_clusters as (

    select
        list(
            struct_pack(
                cluster := cluster_sizes.cluster,
                n_typed := cluster_sizes.n_typed,
                n_primary := cluster_sizes.n_primary,
                n_secondary := cluster_sizes.n_secondary,
                purity := greatest(cluster_sizes.n_primary, cluster_sizes.n_secondary) / cluster_sizes.n_typed
            )
            order by cluster_sizes.size desc, cluster_sizes.cluster asc
        ) as dataset_type_purity,
    from cluster_sizes
    where cluster_sizes.n_typed > 0

),

pull_summary as (

    select
        struct_pack(
            path := any_value(embeddings.pull_path),
            reason := any_value(embeddings.pull_reason),
            read_from_chroma := count(*) filter (where embeddings.pulled),
            from_cache := count(*) filter (where not embeddings.pulled),
            seconds := any_value(embeddings.pull_seconds),
            read_method := any_value(embeddings.pull_read_method)
        ) as pull,
    from embeddings

),

knn_update_summary as (

    select
        struct_pack(
            path := any_value(neighbors.knn_path),
            reason := any_value(neighbors.knn_reason),
            lists_changed := count(distinct neighbors.dataset_id) filter (where neighbors.list_changed)
        ) as knn_update,
    from neighbors

),

summary as (

    select
        '{{ invocation_id }}' as invocation_id,
        cast('{{ run_started_at.strftime("%Y-%m-%d %H:%M:%S") }}' as timestamp) as run_started_at,
        cast(current_timestamp as timestamp) as generated_at,
        {#- every setting of the run (clustering_state.run_settings), with the store actually read -#}
        json_merge_patch(
            cast(run_settings.settings as json),
            json_object(
                'pipeline_database', '{{ target.path | replace("'", "''") }}',
                'chroma_path', clustered_collection.chroma_path,
                'chroma_collection', clustered_collection.collection_name
            )
        ) as parameters,
        pull_summary.pull,
        knn_update_summary.knn_update,
        struct_pack(
            method := knn.knn_method,
            ivf_pca_dims := knn.ivf_pca_dims,
            ivf_nlist := knn.ivf_nlist,
            ivf_nprobe := knn.ivf_nprobe,
            hnsw_m := knn.hnsw_m,
            hnsw_ef_construction := knn.hnsw_ef_construction,
            hnsw_ef_search := knn.hnsw_ef_search,
            hnsw_pca_dims := knn.hnsw_pca_dims,
            recall_at_k := knn.recall_at_k,
            recall_sample_size := knn.recall_sample_size
        ) as knn,
        struct_pack(
            method := threshold.threshold_method,
            value := threshold.similarity_threshold
        ) as threshold,
        struct_pack(
            nodes := threshold.n_nodes,
            candidate_pairs := threshold.n_candidate_pairs,
            edges_above_threshold := threshold.n_edges,
            edges_nearest_only := clustered_graph.n_nearest_only,
            edges := clustered_graph.n_edges,
            mean_degree := 2.0 * clustered_graph.n_edges / nullif(threshold.n_nodes, 0),
            edge_weight := run_facts.edge_weight,
            isolated_nodes := threshold.n_nodes - connected_nodes.n_connected,
            connected_components := run_facts.n_components
        ) as graph,
        struct_pack(
            backend := '{{ mdc_setting("leiden_backend") | replace("'", "''") }}',
            resolution_used := run_facts.leiden_resolution,
            target_reached := run_facts.target_reached,
            oversize_clusters_split := run_facts.n_split,
            datasets_attached_from_small_communities := run_facts.n_attached,
            modularity := run_facts.modularity,
            resolution_scan := cast(run_facts.resolution_scan as json),
            path := run_facts.leiden_path,
            path_reason := run_facts.leiden_reason,
            nodes := run_facts.leiden_nodes,
            free_datasets := run_facts.leiden_free_datasets,
            runs_since_full := run_facts.runs_since_full_leiden,
            full_leiden_modularity := run_facts.full_leiden_modularity,
            aggregated_modularity := run_facts.aggregated_modularity
        ) as leiden,
        struct_pack(
            n_clusters := cluster_stats.n_clusters,
            size_min := cluster_stats.size_min,
            size_median := cluster_stats.size_median,
            size_max := cluster_stats.size_max,
            sizes := cluster_stats.sizes
        ) as clusters,
        struct_pack(
            stable_labels := {{ 'true' if mdc_setting('stable_labels') else 'false' }},
            kept := run_facts.labels_kept,
            born := run_facts.labels_born,
            retired := run_facts.labels_retired,
            split := run_facts.clusters_split,
            merged := run_facts.clusters_merged,
            share_of_datasets_keeping_label := run_facts.share_kept_label
        ) as labels,
        struct_pack(
            mode := '{{ mdc_setting("clustering_mode") }}',
            placed := run_facts.datasets_placed,
            left_unplaced := run_facts.datasets_left_unplaced,
            seconds := run_facts.placement_seconds
        ) as placement,
        described.clusters_described,
        run_facts.n_unclustered as datasets_unclustered,
        struct_pack(
            no_embedding := unembedded.n_unembedded,
            no_edge := run_facts.n_no_edge,
            small_component := run_facts.n_small_component,
            dissolved := run_facts.n_dissolved,
            not_placed := run_facts.n_not_placed
        ) as unclustered_by_reason,
        run_facts.n_singletons as datasets_without_community,
        unembedded.n_unembedded as datasets_without_embedding,
        orphan_embeddings.n_orphans as embeddings_without_dataset_row,
        typed_clusters.dataset_type_purity,
    from threshold
    cross join run_facts
    cross join cluster_stats
    cross join typed_clusters
    cross join connected_nodes
    cross join clustered_graph
    cross join run_settings
    cross join unembedded
    cross join orphan_embeddings
    cross join described
    cross join knn
    cross join clustered_collection
    cross join pull_summary
    cross join knn_update_summary

)

select * from summary
