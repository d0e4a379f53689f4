"""The recall stage: the k-NN method used and its recall@k on a sample, against exact search."""

from __future__ import annotations

import time
from collections.abc import Iterable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..embeddings import Embeddings
from ..errors import ClusteringInputError
from ..neighbors import (
    HnswParams,
    IvfParams,
    distinct_others,
    pair_similarities,
    recall_from_kth,
    streamed_kth_similarity,
)
from ._arrow import Progress


def knn_recall_table(
    search_space: Iterable[tuple[pa.Array, np.ndarray]],
    queries: Embeddings,
    sample_neighbors: pa.Table,
    *,
    method: str,
    k: int,
    params: IvfParams | HnswParams | None = None,
    tolerance: float = 1e-5,
    progress: Progress = None,
) -> pa.Table:
    """One row: the k-NN method used and its recall@k measured against exact search.

    The exact search streams the search space once, keeping only each
    sampled dataset's ``k`` best similarities and the embeddings of the
    neighbours the k-NN returned for them: memory is the sample's, never the
    whole matrix. The measure is :func:`mdc_clustering.neighbors.knn_recall`'s.

    Parameters
    ----------
    search_space
        ``(ids, unit rows)`` slices of every embedded dataset
        (:func:`mdc_clustering.embeddings.iter_embeddings` with ``normalize``).
    queries
        The sampled datasets' unit embeddings.
    sample_neighbors
        ``dataset_id``, ``neighbor_id``, ``neighbor_rank``, ``search_dims``,
        ``ivf_nlist``, ``ivf_nprobe``: the k-NN rows of the sampled datasets,
        as the k-NN model wrote them.
    params
        The method's parameters (:func:`mdc_clustering.neighbors.knn_settings`),
        reported in the row's ``hnsw_*`` columns.
    """
    started = time.perf_counter()
    sample_ids = queries.ids
    listed = sample_neighbors.column("dataset_id").combine_chunks().cast(pa.string())
    if pc.any(pc.is_null(pc.index_in(listed, value_set=sample_ids))).as_py():
        raise ClusteringInputError("k-NN rows name sampled datasets that have no embedding")
    neighbor_ids = sample_neighbors.column("neighbor_id").combine_chunks().cast(pa.string())
    space_ids = pc.unique(pa.concat_arrays([sample_ids.cast(pa.string()), neighbor_ids]))
    width = int(pc.max(sample_neighbors.column("neighbor_rank")).as_py() or 0)
    returned = np.full((len(sample_ids), width), -1, dtype=np.int64)
    if width:
        at = pc.index_in(listed, value_set=sample_ids).to_numpy(zero_copy_only=False).astype(np.int64)
        rank = sample_neighbors.column("neighbor_rank").to_numpy().astype(np.int64)
        returned[at, rank - 1] = pc.index_in(neighbor_ids, value_set=space_ids).to_numpy(zero_copy_only=False)
    sample = pc.index_in(sample_ids, value_set=space_ids).to_numpy(zero_copy_only=False).astype(np.int64)

    # one pass: the exact k-th similarity of each sampled dataset, and the vectors of every id named
    dim = queries.matrix.shape[1]
    space = np.zeros((len(space_ids), dim), dtype=np.float32)
    found = np.zeros(len(space_ids), dtype=bool)
    n_datasets = 0

    def tapped():
        nonlocal n_datasets
        for ids, rows in search_space:
            pos = pc.fill_null(pc.index_in(ids, value_set=space_ids), -1).to_numpy()
            hit = np.flatnonzero(pos >= 0)
            space[pos[hit]] = rows[hit]
            found[pos[hit]] = True
            n_datasets += len(ids)
            yield ids, rows

    if width and len(sample_ids):
        kth = streamed_kth_similarity(queries.matrix, sample_ids, tapped(), width)
        valid = distinct_others(returned, sample) & found[np.maximum(returned, 0)] & (returned >= 0)
        returned_sims = pair_similarities(space, sample, np.where(valid, returned, 0))
        recall = recall_from_kth(valid, returned_sims, kth, tolerance=tolerance)
    else:
        for _ in tapped():
            pass
        recall = 1.0
    def used(column: str):
        return pc.max(sample_neighbors.column(column)).as_py() if width else None

    search_dims = used("search_dims")
    pca_dims = search_dims if search_dims is not None and search_dims < dim else None
    hnsw = params if method == "hnsw" else None
    seconds = time.perf_counter() - started
    if progress is not None:
        progress(f"recall@{width} of the {method} k-NN on {len(sample_ids)} sampled datasets: {recall:.4f} "
                 f"({seconds:.1f}s)", final=True)
    return pa.table(
        {
            "n_datasets": pa.array([n_datasets], pa.int64()),
            "k_neighbors": pa.array([int(k)], pa.int64()),
            "knn_method": pa.array([method]),
            "ivf_pca_dims": pa.array([pca_dims if method == "ivf" else None], pa.int64()),
            "ivf_nlist": pa.array([used("ivf_nlist") if method == "ivf" else None], pa.int64()),
            "ivf_nprobe": pa.array([used("ivf_nprobe") if method == "ivf" else None], pa.int64()),
            "hnsw_m": pa.array([hnsw.m if hnsw else None], pa.int64()),
            "hnsw_ef_construction": pa.array([hnsw.ef_construction if hnsw else None], pa.int64()),
            "hnsw_ef_search": pa.array([hnsw.ef_search if hnsw else None], pa.int64()),
            "hnsw_pca_dims": pa.array([pca_dims if hnsw else None], pa.int64()),
            "recall_sample_size": pa.array([len(sample_ids)], pa.int64()),
            "recall_at_k": pa.array([recall], pa.float64()),
            "recall_seconds": pa.array([seconds], pa.float64()),
        }
    )
