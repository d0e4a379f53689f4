"""Leiden communities of the k-NN graph (thresholded, nearest edges kept), one row per embedded dataset."""

import json

import pyarrow as pa
import pyarrow.compute as pc

from mdc_clustering.embeddings import read_embeddings
from mdc_clustering.progress import dbt_progress, last_table_has
from mdc_clustering.settings import run_settings
from mdc_clustering.tables import cluster_memberships, place_new_datasets


def model(dbt, session):
    dbt.config(materialized="table")
    run = dbt.source("clustering_state", "run_settings")
    settings = run_settings(run)
    graph, leiden, labels = settings.graph, settings.leiden, settings.labels
    embeddings = dbt.ref("stg_chroma__embeddings")
    datasets = dbt.ref("stg_pipeline__datasets")
    if labels.clustering_mode == "place_new":
        # Only datasets new since the last full run are placed; the graph and Leiden are not touched.
        seen = dbt.source("clustering_state", "full_run_datasets")
        return place_new_datasets(
            read_embeddings(embeddings),
            datasets.select("dataset_id, cluster").to_arrow_table(),
            seen=seen.select("dataset_id, unclustered_reason").to_arrow_table(),
            k=labels.placement_k,
            min_share=labels.placement_min_share,
            progress=dbt_progress("int_datasets_clustered"),
        )
    edges = dbt.ref("int_graph_edges_filtered")
    neighbors = dbt.ref("int_dataset_neighbors_searched")
    registry = dbt.source("clustering_state", "cluster_label_registry")
    # a label withdrawn by hand (dbt run-operation mdc_retire_label) is never handed out again: its datasets
    # count as unlabelled (no warm start, and the label matching cannot give the label back)
    withdrawn = registry.filter("status = 'withdrawn'").select("label").to_arrow_table().column(0)
    previous = datasets.select("dataset_id, cluster").to_arrow_table()
    labels_now = previous.column("cluster")
    no_label = pa.scalar(None, pa.string())
    previous = previous.set_column(
        1, "cluster", pc.if_else(pc.is_in(labels_now, value_set=withdrawn), no_label, labels_now)
    )

    # this model's own table from the last run: the communities a re-run starts from (on the aggregated graph)
    last = None  # incremental off: a fresh Leiden every run, as every other step runs afresh
    if labels.stable_labels and settings.reruns.incremental and last_table_has(session, dbt.this, "community"):
        # the columns the re-run's plan reads (stages.clustering.plan_leiden); a table of an earlier version
        # lacks some, and the plan says so and runs a full Leiden
        columns = ("dataset_id, community, cluster, embedding_hash, leiden_settings, runs_since_full_leiden, "
                   "full_leiden_modularity" if last_table_has(session, dbt.this, "leiden_settings") else "*")
        last = session.sql(f"select {columns} from {dbt.this}").to_arrow_table()
    # what the edges were built from: a change of it makes the run a fresh one
    graph_settings = json.dumps({"k_neighbors": settings.knn.k_neighbors, **graph.model_dump()}, sort_keys=True)
    return cluster_memberships(
        embeddings.select("dataset_id, dataset_key, embedding_hash").order("dataset_id").to_arrow_table(),
        # the edges by integer key: no string look-up of two ids per edge
        edges.select("source_key, target_key, weight").to_arrow_table(),
        resolution=leiden.resolution,
        seed=leiden.random_seed,
        min_cluster_size=leiden.min_cluster_size,
        small_clusters=leiden.small_clusters,
        edge_weight=graph.edge_weight,
        # the shared-neighbour sets: each dataset's snn_k nearest (rank order is all the weights need)
        neighbors=None if graph.edge_weight == "cosine" else neighbors.filter(f"neighbor_rank <= {graph.snn_k}")
        .select("dataset_key, neighbor_key, neighbor_rank").to_arrow_table(),
        snn_k=graph.snn_k,
        max_cluster_size=leiden.max_cluster_size,
        target_n_clusters=leiden.target_n_clusters,
        target_tolerance=leiden.target_n_clusters_tolerance,
        previous=previous,
        registry=registry.select("label_number").to_arrow_table(),
        stable_labels=labels.stable_labels,
        min_label_overlap=labels.label_min_overlap,
        backend=leiden.leiden_backend,
        last=last,
        full_every=settings.reruns.leiden_full_every,
        drift_bound=settings.reruns.leiden_drift_bound,
        graph_settings=graph_settings,
        progress=dbt_progress("int_datasets_clustered"),
    )
