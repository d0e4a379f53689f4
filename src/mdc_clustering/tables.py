"""Arrow-in, Arrow-out entry points called by the dbt Python models."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .chroma_reader import embedding_matrix
from .errors import ClusteringInputError
from .knn import exact_knn, knn_table
from .leiden import NO_CLUSTER, build_graph, leiden_cluster

__all__ = ["cluster_memberships", "nearest_neighbors"]

Progress = Callable[..., None] | None


def nearest_neighbors(embeddings: pa.Table, k: int, *, progress: Progress = None) -> pa.Table:
    """k-NN edges of every dataset: ``embeddings`` (dataset_id, embedding) -> long neighbour table.

    See :func:`mdc_clustering.knn.exact_knn` and :func:`mdc_clustering.knn.knn_table`.
    """
    started = time.perf_counter()
    ids = embeddings.column("dataset_id").combine_chunks()
    indices, sims = exact_knn(embedding_matrix(embeddings), k, progress=progress)
    table = knn_table(ids, indices, sims)
    if progress is not None:
        progress(
            f"{table.num_rows} neighbour rows ({len(ids)} datasets x {indices.shape[1]}) "
            f"in {time.perf_counter() - started:.1f}s",
            final=True,
        )
    return table


def _node_index(node_ids: pa.Array, column: pa.ChunkedArray, name: str) -> np.ndarray:
    index = pc.index_in(column, value_set=node_ids)
    if index.null_count:
        missing = pc.filter(column, pc.is_null(index)).unique().to_pylist()[:5]
        raise ClusteringInputError(f"graph edges name datasets that have no embedding ({name}): {missing}")
    return index.to_numpy(zero_copy_only=False).astype(np.int64)


def cluster_memberships(
    nodes: pa.Table,
    edges: pa.Table,
    *,
    resolution: float = 1.0,
    seed: int = 42,
    min_cluster_size: int = 2,
    max_cluster_size: int | None = None,
    target_n_clusters: int | None = None,
    target_tolerance: float = 0.1,
    progress: Progress = None,
) -> pa.Table:
    """Leiden memberships of every node: one row per dataset, edgeless ones included.

    Parameters
    ----------
    nodes
        Table with a ``dataset_id`` column: every dataset of the graph.
    edges
        Table ``source_id``, ``target_id``, ``weight``: one row per
        undirected pair (as built by the ``int_graph_edges_filtered`` model).
    resolution, seed, min_cluster_size, max_cluster_size, target_n_clusters, target_tolerance
        See :func:`mdc_clustering.leiden.leiden_cluster`.

    Returns
    -------
    pyarrow.Table
        ``dataset_id``; ``cluster`` (``cluster_<n>``, 0 = largest; null when
        dissolved); ``community`` (Leiden community before dissolving) and
        ``community_size``; and, repeated on every row, the run's
        ``leiden_resolution``, ``modularity``, ``n_components``,
        ``target_reached`` and ``n_split``.
    """
    started = time.perf_counter()
    node_ids = nodes.column("dataset_id").combine_chunks()
    if len(node_ids) == 0:
        raise ClusteringInputError("no datasets to cluster: the embeddings table is empty")
    sources = _node_index(node_ids, edges.column("source_id"), "source_id")
    targets = _node_index(node_ids, edges.column("target_id"), "target_id")
    weights = edges.column("weight").to_numpy().astype(np.float64)
    order = np.lexsort((targets, sources))  # edge order fixed, whatever the table's order
    graph = build_graph(len(node_ids), sources[order], targets[order], weights[order])
    if progress is not None:
        progress(f"Leiden on {graph.vcount()} nodes, {graph.ecount()} edges", final=True)
    result = leiden_cluster(
        graph,
        resolution,
        seed=seed,
        min_cluster_size=min_cluster_size,
        max_cluster_size=max_cluster_size,
        target_n_clusters=target_n_clusters,
        target_tolerance=target_tolerance,
    )
    n = len(node_ids)
    labels = pa.array(
        [None if c == NO_CLUSTER else f"cluster_{c}" for c in result.clusters.tolist()], pa.string()
    )
    community_size = np.bincount(result.communities)[result.communities]
    table = pa.table(
        {
            "dataset_id": node_ids,
            "cluster": labels,
            "community": pa.array(result.communities),
            "community_size": pa.array(community_size.astype(np.int64)),
            "leiden_resolution": pa.array(np.full(n, result.resolution)),
            "modularity": pa.array(np.full(n, result.modularity), mask=np.full(n, np.isnan(result.modularity))),
            "n_components": pa.array(np.full(n, result.n_components, dtype=np.int64)),
            "target_reached": pa.array([result.target_reached] * n, pa.bool_()),
            "n_split": pa.array(np.full(n, result.n_split, dtype=np.int64)),
        }
    )
    if progress is not None:
        progress(
            f"{result.n_clusters} clusters, {int((result.clusters == NO_CLUSTER).sum())} datasets unclustered, "
            f"modularity {result.modularity:.3f}, resolution {result.resolution:.4g} "
            f"in {time.perf_counter() - started:.1f}s",
            final=True,
        )
    return table
