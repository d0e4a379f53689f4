"""The recall stage: the k-NN method used and its recall@k on a sample, against exact search.

:func:`scored_recall_sample` scores each sampled dataset (its exact answer,
updated from the last run's where it can be, and how many of its returned
neighbours are exact); :func:`recall_summary` makes the one-row table of them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..embeddings import Embeddings
from ..errors import ClusteringInputError
from ..neighbors import (
    INCREMENTAL_MAX_CHANGE_SHARE,
    HnswParams,
    IvfParams,
    distinct_others,
    pair_similarities,
    recall_fingerprint,
    update_exact_answers,
)
from ..neighbors._common import as_strings
from ._arrow import Progress


def scored_recall_sample(
    current: pa.Table,
    sample_ids: pa.Array,
    sample_neighbors: pa.Table,
    *,
    rows_of: Callable[[pa.Array], Embeddings],
    search_space: Callable[[], Iterable[tuple[pa.Array, np.ndarray]]],
    method: str,
    k: int,
    params: IvfParams | HnswParams | None = None,
    stored: pa.Table | None = None,
    previous: pa.Table | None = None,
    incremental: bool = True,
    max_change_share: float = INCREMENTAL_MAX_CHANGE_SHARE,
    tolerance: float = 1e-5,
    progress: Progress = None,
) -> pa.Table:
    """One row per sampled dataset: its exact answer and how many of its returned neighbours are exact.

    The exact answer (each sampled dataset's exact top ``w`` among all
    current datasets, ``w`` the longest returned list) is updated from the
    last run's (``stored``, computed when the datasets were ``previous``) by
    :func:`mdc_clustering.neighbors.update_exact_answers`: only sampled
    datasets that it cannot update are searched over every embedding
    (``search_space``, streamed: memory is the sample's); the others are
    merged with the new and changed embeddings. A hit is a returned
    neighbour at least as similar as the exact ``w``-th (within
    ``tolerance``), as :func:`mdc_clustering.neighbors.knn_recall` counts.

    Parameters
    ----------
    current
        ``dataset_id``, ``embedding_hash``: every embedded dataset.
    sample_ids
        The sampled datasets.
    sample_neighbors
        ``dataset_id``, ``neighbor_id``, ``neighbor_rank``, ``search_dims``,
        ``ivf_nlist``, ``ivf_nprobe``: the k-NN rows of the sampled datasets,
        as the k-NN model wrote them.
    rows_of
        Unit embeddings of the given ids (the sample, the returned
        neighbours, the new and changed datasets).
    search_space
        A fresh iterator of ``(ids, unit rows)`` slices of every embedding
        (:func:`mdc_clustering.embeddings.iter_embeddings` with ``normalize``),
        called only when a sampled dataset is searched.
    stored, previous
        See :func:`mdc_clustering.neighbors.update_exact_answers`.
    params
        The method's parameters (:func:`mdc_clustering.neighbors.knn_settings`),
        reported in the ``hnsw_*`` columns.

    Returns
    -------
    pyarrow.Table
        ``dataset_id``, ``embedding_hash``, ``exact_neighbor_ids`` (list of
        ids), ``exact_similarities`` (list of float32, decreasing),
        ``exact_kth_similarity``, ``exact_searched`` (bool: searched over
        every embedding this run), ``found`` (hits), and, the same on every
        row, ``recall_fingerprint``, ``recall_width`` (``w``), the run facts
        of :func:`recall_summary` and ``recall_path``, ``recall_reason``,
        ``samples_searched``, ``recall_seconds``.
    """
    started = time.perf_counter()
    sample_ids = as_strings(sample_ids)
    listed = as_strings(sample_neighbors.column("dataset_id"))
    if pc.any(pc.is_null(pc.index_in(listed, value_set=sample_ids))).as_py():
        raise ClusteringInputError("k-NN rows name sampled datasets that have no embedding")
    neighbor_ids = as_strings(sample_neighbors.column("neighbor_id"))
    space_ids = pc.unique(pa.concat_arrays([sample_ids, neighbor_ids]))
    width = int(pc.max(sample_neighbors.column("neighbor_rank")).as_py() or 0)
    returned = np.full((len(sample_ids), width), -1, dtype=np.int64)
    if width:
        at = pc.index_in(listed, value_set=sample_ids).to_numpy(zero_copy_only=False).astype(np.int64)
        rank = sample_neighbors.column("neighbor_rank").to_numpy().astype(np.int64)
        returned[at, rank - 1] = pc.index_in(neighbor_ids, value_set=space_ids).to_numpy(zero_copy_only=False)
    sample = pc.index_in(sample_ids, value_set=space_ids).to_numpy(zero_copy_only=False).astype(np.int64)

    answers = update_exact_answers(sample_ids, current, width, rows_of=rows_of, search_space=search_space,
                                   stored=stored, previous=previous, incremental=incremental,
                                   max_change_share=max_change_share)
    found = np.zeros(len(sample_ids), np.int64)
    dim = None
    if width and len(sample_ids):
        # the sample's and its returned neighbours' vectors: the returned similarities, from the embeddings
        got = rows_of(space_ids)
        pos = pc.fill_null(pc.index_in(space_ids, value_set=as_strings(got.ids)), -1).to_numpy().astype(np.int64)
        present = pos >= 0
        dim = got.matrix.shape[1]
        space = np.zeros((len(space_ids), dim), np.float32)
        space[present] = got.matrix[pos[present]]
        valid = distinct_others(returned, sample) & present[np.maximum(returned, 0)] & (returned >= 0)
        returned_sims = pair_similarities(space, sample, np.where(valid, returned, 0))
        found = (valid & (returned_sims >= answers.kth[:, None] - tolerance)).sum(axis=1)

    def used(column: str):
        return pc.max(sample_neighbors.column(column)).as_py() if width else None

    search_dims = used("search_dims")
    pca_dims = search_dims if search_dims is not None and dim is not None and search_dims < dim else None
    hnsw = params if method == "hnsw" else None
    searched = int(answers.searched.sum())
    seconds = time.perf_counter() - started
    n = len(sample_ids)
    hashes = current.column("embedding_hash").combine_chunks().take(
        pc.index_in(sample_ids, value_set=as_strings(current.column("dataset_id"))))
    sims = answers.top.similarities
    filled = np.isfinite(sims)
    lengths = filled.sum(axis=1)
    offsets = pa.array(np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32))
    table = pa.table({
        "dataset_id": sample_ids,
        "embedding_hash": hashes,
        "exact_neighbor_ids": pa.ListArray.from_arrays(
            offsets, pa.array(answers.top.neighbors[filled].tolist(), pa.string())),
        "exact_similarities": pa.ListArray.from_arrays(offsets, pa.array(sims[filled], pa.float32())),
        "exact_kth_similarity": pa.array(answers.kth, pa.float32()),
        "exact_searched": pa.array(answers.searched),
        "found": pa.array(found, pa.int64()),
    })
    facts = {
        "recall_fingerprint": (recall_fingerprint(width), pa.string()),
        "recall_width": (width, pa.int64()),
        "n_datasets": (current.num_rows, pa.int64()),
        "k_neighbors": (int(k), pa.int64()),
        "knn_method": (method, pa.string()),
        "ivf_pca_dims": (pca_dims if method == "ivf" else None, pa.int64()),
        "ivf_nlist": (used("ivf_nlist") if method == "ivf" else None, pa.int64()),
        "ivf_nprobe": (used("ivf_nprobe") if method == "ivf" else None, pa.int64()),
        "hnsw_m": (hnsw.m if hnsw else None, pa.int64()),
        "hnsw_ef_construction": (hnsw.ef_construction if hnsw else None, pa.int64()),
        "hnsw_ef_search": (hnsw.ef_search if hnsw else None, pa.int64()),
        "hnsw_pca_dims": (pca_dims if hnsw else None, pa.int64()),
        "recall_path": (answers.path, pa.string()),
        "recall_reason": (answers.reason, pa.string()),
        "samples_searched": (searched, pa.int64()),
        "recall_seconds": (seconds, pa.float64()),
    }
    for name, (value, arrow_type) in facts.items():
        table = table.append_column(name, pa.array([value] * n, arrow_type))
    if progress is not None:
        recall = _recall(found, width)
        progress(f"recall@{width} of the {method} k-NN on {n} sampled datasets: {recall:.4f}; {answers.path} "
                 f"({searched} searched over all {current.num_rows} embeddings) ({seconds:.1f}s)", final=True)
    return table


# the run facts of the one-row table, in its column order (the same on every row of the scored sample)
_FACTS = ("n_datasets", "k_neighbors", "knn_method", "ivf_pca_dims", "ivf_nlist", "ivf_nprobe", "hnsw_m",
          "hnsw_ef_construction", "hnsw_ef_search", "hnsw_pca_dims")
_RUN = ("recall_seconds", "recall_path", "recall_reason", "samples_searched")


def recall_summary(scored: pa.Table) -> pa.Table:
    """One row: the k-NN method used and its recall@k, from :func:`scored_recall_sample`'s rows.

    recall@k is the mean over the sample of the share of the ``w`` returned
    neighbours that are hits (1.0 for an empty sample or ``w`` = 0), as
    :func:`mdc_clustering.neighbors.knn_recall` measures it. Columns: the
    run facts, ``recall_sample_size``, ``recall_at_k``, ``recall_seconds``,
    ``recall_path``, ``recall_reason``, ``samples_searched``.
    """
    n = scored.num_rows

    def first(name):
        return scored.column(name)[0].as_py() if n else None

    width = first("recall_width") or 0
    found = scored.column("found").to_numpy() if n else np.zeros(0, np.int64)
    columns = {name: pa.array([first(name)], scored.schema.field(name).type) for name in _FACTS}
    columns["recall_sample_size"] = pa.array([n], pa.int64())
    columns["recall_at_k"] = pa.array([_recall(found, width)], pa.float64())
    columns.update({name: pa.array([first(name)], scored.schema.field(name).type) for name in _RUN})
    return pa.table(columns)


def _recall(found: np.ndarray, width: int) -> float:
    return float(found.mean() / width) if width and len(found) else 1.0

