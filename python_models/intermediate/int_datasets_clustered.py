"""Leiden communities of the k-NN graph (thresholded, nearest edges kept), one row per embedded dataset."""

from mdc_clustering.embeddings import read_embeddings
from mdc_clustering.progress import dbt_progress
from mdc_clustering.tables import cluster_memberships, place_new_datasets
from mdc_clustering.validation import choice, flag, positive_float


def model(dbt, session):
    dbt.config(materialized="table")
    resolution = dbt.config.get("resolution")
    random_seed = dbt.config.get("random_seed")
    min_cluster_size = dbt.config.get("min_cluster_size")
    small_clusters = dbt.config.get("small_clusters")
    edge_weight = dbt.config.get("edge_weight")
    snn_k = dbt.config.get("snn_k")
    max_cluster_size = dbt.config.get("max_cluster_size")
    target_n_clusters = dbt.config.get("target_n_clusters")
    target_n_clusters_tolerance = dbt.config.get("target_n_clusters_tolerance")
    stable_labels = dbt.config.get("stable_labels")
    label_min_overlap = dbt.config.get("label_min_overlap")
    leiden_backend = dbt.config.get("leiden_backend")  # checked by leiden_cluster
    clustering_mode = choice("clustering_mode", dbt.config.get("clustering_mode"), ["full", "place_new"])
    placement_k = dbt.config.get("placement_k")
    placement_min_share = dbt.config.get("placement_min_share")
    embeddings = dbt.ref("stg_chroma__embeddings")
    datasets = dbt.ref("stg_pipeline__datasets")
    if clustering_mode == "place_new":
        # Only datasets new since the last full run are placed; the graph and Leiden are not touched.
        seen = dbt.source("clustering_state", "full_run_datasets")
        return place_new_datasets(
            read_embeddings(embeddings),
            datasets.select("dataset_id, cluster").to_arrow_table(),
            seen=seen.select("dataset_id, unclustered_reason").to_arrow_table(),
            k=placement_k,
            min_share=placement_min_share,
            progress=dbt_progress("int_datasets_clustered"),
        )
    edges = dbt.ref("int_graph_edges_filtered")
    neighbors = dbt.ref("int_dataset_neighbors_searched")
    registry = dbt.source("clustering_state", "cluster_label_registry")
    return cluster_memberships(
        embeddings.select("dataset_id").order("dataset_id").to_arrow_table(),
        edges.select("source_id, target_id, weight").to_arrow_table(),
        resolution=resolution,
        seed=random_seed,
        min_cluster_size=min_cluster_size,
        small_clusters=small_clusters,
        edge_weight=edge_weight,
        # the shared-neighbour sets: each dataset's snn_k nearest (rank order is all the weights need)
        neighbors=None if edge_weight == "cosine" else neighbors.filter(f"neighbor_rank <= {int(snn_k)}")
        .select("dataset_id, neighbor_id, neighbor_rank").to_arrow_table(),
        snn_k=snn_k,
        max_cluster_size=max_cluster_size,
        target_n_clusters=target_n_clusters,
        target_tolerance=target_n_clusters_tolerance,
        previous=datasets.select("dataset_id, cluster").to_arrow_table(),
        registry=registry.select("label_number").to_arrow_table(),
        stable_labels=flag("stable_labels", stable_labels),
        min_label_overlap=positive_float("label_min_overlap", label_min_overlap),
        backend=leiden_backend,
        progress=dbt_progress("int_datasets_clustered"),
    )
