"""Leiden communities of the thresholded similarity graph, one row per embedded dataset."""

from mdc_clustering.progress import dbt_progress
from mdc_clustering.tables import cluster_memberships


def model(dbt, session):
    dbt.config(materialized="table")
    resolution = dbt.config.get("resolution")
    random_seed = dbt.config.get("random_seed")
    min_cluster_size = dbt.config.get("min_cluster_size")
    max_cluster_size = dbt.config.get("max_cluster_size")
    target_n_clusters = dbt.config.get("target_n_clusters")
    target_n_clusters_tolerance = dbt.config.get("target_n_clusters_tolerance")
    embeddings = dbt.ref("stg_chroma__embeddings")
    edges = dbt.ref("int_graph_edges_filtered")
    nodes = embeddings.select("dataset_id").order("dataset_id").to_arrow_table()
    edge_table = edges.select("source_id, target_id, weight").to_arrow_table()
    return cluster_memberships(
        nodes,
        edge_table,
        resolution=resolution,
        seed=random_seed,
        min_cluster_size=min_cluster_size,
        max_cluster_size=max_cluster_size,
        target_n_clusters=target_n_clusters,
        target_tolerance=target_n_clusters_tolerance,
        progress=dbt_progress("int_datasets_clustered"),
    )
