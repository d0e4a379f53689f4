"""Leiden communities of the thresholded similarity graph, one row per embedded dataset."""

from mdc_clustering.progress import dbt_progress
from mdc_clustering.tables import cluster_memberships
from mdc_clustering.validation import flag, positive_float


def model(dbt, session):
    dbt.config(materialized="table")
    resolution = dbt.config.get("resolution")
    random_seed = dbt.config.get("random_seed")
    min_cluster_size = dbt.config.get("min_cluster_size")
    max_cluster_size = dbt.config.get("max_cluster_size")
    target_n_clusters = dbt.config.get("target_n_clusters")
    target_n_clusters_tolerance = dbt.config.get("target_n_clusters_tolerance")
    stable_labels = dbt.config.get("stable_labels")
    label_min_overlap = dbt.config.get("label_min_overlap")
    embeddings = dbt.ref("stg_chroma__embeddings")
    edges = dbt.ref("int_graph_edges_filtered")
    datasets = dbt.ref("stg_pipeline__datasets")
    registry = dbt.source("clustering_state", "cluster_label_registry")
    return cluster_memberships(
        embeddings.select("dataset_id").order("dataset_id").to_arrow_table(),
        edges.select("source_id, target_id, weight").to_arrow_table(),
        resolution=resolution,
        seed=random_seed,
        min_cluster_size=min_cluster_size,
        max_cluster_size=max_cluster_size,
        target_n_clusters=target_n_clusters,
        target_tolerance=target_n_clusters_tolerance,
        previous=datasets.select("dataset_id, cluster").to_arrow_table(),
        registry=registry.select("label_number").to_arrow_table(),
        stable_labels=flag("stable_labels", stable_labels),
        min_label_overlap=positive_float("label_min_overlap", label_min_overlap),
        progress=dbt_progress("int_datasets_clustered"),
    )
