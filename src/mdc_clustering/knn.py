"""k-nearest neighbours by cosine similarity: exact in bounded memory, or approximate (faiss HNSW)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from .validation import choice, nonnegative_int, optional_positive_int, positive_int

__all__ = [
    "KNN_METHODS",
    "HnswParams",
    "choose_knn_method",
    "exact_knn",
    "hnsw_knn",
    "knn_recall",
    "knn_settings",
    "knn_table",
    "normalize_rows",
    "query_knn",
]

KNN_METHODS = ("auto", "exact", "hnsw")

# Similarity block held at once: batch_rows x n_points float32 values.
_BLOCK_VALUES = 1 << 25  # 32M floats = 128 MiB


def normalize_rows(vectors: np.ndarray) -> np.ndarray:
    """Return a float32 C-contiguous copy of ``vectors`` with unit L2 rows."""
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / norms


def exact_knn(
    vectors: np.ndarray,
    k: int,
    *,
    batch_rows: int | None = None,
    progress: Callable[..., None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact cosine k-nearest neighbours of every row among the rows, itself excluded.

    Parameters
    ----------
    vectors
        Array ``(n, d)``; rows must have non-zero norm.
    k
        Neighbours per row. ``k >= n`` gives every other row (``n - 1``).
    batch_rows
        Query rows per block (by default a block is ~128 MiB).
    progress
        Optional callback, called with a message after each block.

    Returns
    -------
    indices : numpy.ndarray
        ``int64`` array ``(n, min(k, n - 1))``; row ``i`` lists the
        neighbours of ``i`` by decreasing similarity (ties by index).
    similarities : numpy.ndarray
        ``float32`` array of the same shape, cosine similarities clipped to
        ``[-1, 1]``.
    """
    x = normalize_rows(vectors)
    return query_knn(
        x, x, k, exclude=np.arange(x.shape[0]), normalized=True, batch_rows=batch_rows, progress=progress
    )


def query_knn(
    queries: np.ndarray,
    index: np.ndarray,
    k: int,
    *,
    exclude: np.ndarray | None = None,
    normalized: bool = False,
    batch_rows: int | None = None,
    progress: Callable[..., None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact cosine k-nearest neighbours of each query row among the ``index`` rows.

    The similarity matrix is never held whole: queries are processed in
    blocks, each one float32 matrix product followed by a partial sort, so
    memory is O(n·k) plus one block.

    Parameters
    ----------
    queries, index
        Arrays ``(q, d)`` and ``(n, d)``; rows must have non-zero norm.
    k
        Neighbours per query (at most the candidates available).
    exclude
        Optional ``int64`` array ``(q,)``: for query ``i``, the index row
        ``exclude[i]`` is never a neighbour (``-1`` = none). Used to leave a
        dataset out of its own neighbourhood.
    normalized
        Rows are already unit-length float32 (skips a copy).

    Returns
    -------
    indices, similarities
        ``(q, k_eff)`` arrays as in :func:`exact_knn`, with ``k_eff = min(k,
        n - 1)`` when anything is excluded, else ``min(k, n)``.
    """
    k = positive_int("k_neighbors", k)
    q_x = queries if normalized else normalize_rows(queries)
    i_x = index if normalized else normalize_rows(index)
    n_q, n = q_x.shape[0], i_x.shape[0]
    has_exclusions = exclude is not None and bool(np.any(exclude >= 0))
    k_eff = max(0, min(k, n - 1 if has_exclusions else n))
    indices = np.empty((n_q, k_eff), dtype=np.int64)
    sims = np.empty((n_q, k_eff), dtype=np.float32)
    if k_eff == 0 or n_q == 0:
        return indices, sims
    if batch_rows is None:
        batch_rows = max(1, min(n_q, _BLOCK_VALUES // n))
    started = time.perf_counter()
    for start in range(0, n_q, batch_rows):
        stop = min(n_q, start + batch_rows)
        block = q_x[start:stop] @ i_x.T  # (b, n)
        if has_exclusions:
            rows = np.flatnonzero(exclude[start:stop] >= 0)
            block[rows, exclude[start:stop][rows]] = -np.inf
        # The k_eff largest of each row; an excluded -inf always stays below them.
        part = np.argpartition(block, n - k_eff, axis=1)[:, n - k_eff :]
        part_sims = np.take_along_axis(block, part, axis=1)
        order = np.lexsort((part, -part_sims), axis=1)
        indices[start:stop] = np.take_along_axis(part, order, axis=1)
        sims[start:stop] = np.take_along_axis(part_sims, order, axis=1)
        if progress is not None:
            progress(f"{stop}/{n_q} rows searched ({time.perf_counter() - started:.1f}s)")
    np.clip(sims, -1.0, 1.0, out=sims)
    return indices, sims


@dataclass(frozen=True)
class HnswParams:
    """Parameters of the faiss HNSW index (see ``dbt_project.yml`` for the measured defaults).

    ``m`` links per node, ``ef_construction`` candidates kept while the
    index is built, ``ef_search`` candidates kept per query (raised to at
    least ``k + 1``). Larger values: better recall, slower. ``pca_dims``:
    when set and below the embedding dimension, the index is built on the
    rows projected on their first ``pca_dims`` principal components, and the
    candidates it returns are re-ranked by their exact cosine similarity.
    """

    m: int = 32
    ef_construction: int = 80
    ef_search: int = 64
    pca_dims: int | None = 64

    @classmethod
    def from_vars(
        cls, m: object, ef_construction: object, ef_search: object, pca_dims: object = 64
    ) -> HnswParams:
        return cls(
            positive_int("hnsw_m", m),
            positive_int("hnsw_ef_construction", ef_construction),
            positive_int("hnsw_ef_search", ef_search),
            optional_positive_int("hnsw_pca_dims", pca_dims),
        )


def knn_settings(
    n: int,
    *,
    knn_method: object,
    knn_exact_max_n: object,
    hnsw_m: object,
    hnsw_ef_construction: object,
    hnsw_ef_search: object,
    hnsw_pca_dims: object,
) -> tuple[str, HnswParams]:
    """The k-NN method (``exact`` or ``hnsw``) and HNSW parameters the vars ask for, for ``n`` datasets.

    Takes the vars as the dbt models read them (``dbt.config.get``, which
    dbt only sees when called with a literal name) and checks them.
    """
    method = choose_knn_method(n, knn_method, knn_exact_max_n)
    hnsw = HnswParams.from_vars(hnsw_m, hnsw_ef_construction, hnsw_ef_search, hnsw_pca_dims)
    return method, hnsw


def choose_knn_method(n: int, method: str, exact_max_n: int) -> str:
    """The k-NN method a run uses: ``exact`` or ``hnsw``.

    ``auto`` means exact up to ``exact_max_n`` datasets (where the exact
    search costs a few seconds) and HNSW beyond.
    """
    method = choice("knn_method", method, KNN_METHODS)
    exact_max_n = nonnegative_int("knn_exact_max_n", exact_max_n)
    if method == "auto":
        return "exact" if n <= exact_max_n else "hnsw"
    return method


def hnsw_knn(
    vectors: np.ndarray,
    k: int,
    params: HnswParams | None = None,
    *,
    progress: Callable[..., None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Approximate cosine k-nearest neighbours of every row among the rows, itself excluded.

    A faiss ``IndexHNSWFlat`` on the unit-length rows (inner product =
    cosine), or, with ``params.pca_dims``, on their projection on the first
    principal components (fitted on a seeded sample of 20,000 rows; L2 there
    ranks like cosine up to the projection): distances in 64 dimensions
    cost a sixth of 384. Every row asks for ``k + 1`` candidates (plus
    ``max(10, k // 2)`` with the projection), which are re-ranked by their
    exact cosine similarity; the row itself is dropped. Rows the index
    returns too few neighbours for are searched exactly. Building and
    searching use all cores (OpenMP); the result does not depend on the
    thread count. Memory: the unit rows, plus the projection and ``m``
    links per row (without projection the index holds the unit rows and
    our copy is freed).

    Returns
    -------
    indices, similarities
        As :func:`exact_knn`: ``(n, min(k, n - 1))``, by decreasing
        similarity (ties by index).
    """
    import faiss

    params = params or HnswParams()
    k = positive_int("k_neighbors", k)
    x = normalize_rows(vectors)
    n, d = x.shape
    k_eff = max(0, min(k, n - 1))
    if k_eff == 0:
        return np.empty((n, 0), np.int64), np.empty((n, 0), np.float32)
    started = time.perf_counter()
    reduce = params.pca_dims is not None and params.pca_dims < d
    # extra candidates to re-rank when the index only sees a projection of the rows
    n_candidates = min(n, k_eff + 1 + (max(10, k_eff // 2) if reduce else 0))
    if reduce:
        keys = _pca_projection(x, params.pca_dims)
        index = faiss.IndexHNSWFlat(params.pca_dims, params.m, faiss.METRIC_L2)  # = cosine order, up to the projection
    else:
        keys = x
        index = faiss.IndexHNSWFlat(d, params.m, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = params.ef_construction
    index.hnsw.efSearch = max(params.ef_search, n_candidates)
    chunk = 100_000
    for start in range(0, n, chunk):
        index.add(keys[start : start + chunk])
        if progress is not None:
            progress(f"HNSW index: {min(n, start + chunk)}/{n} rows added ({time.perf_counter() - started:.1f}s)")
    if not reduce:
        # the index holds its own copy of the unit rows: query from that one and free ours
        del x, keys
        x = keys = faiss.rev_swig_ptr(faiss.downcast_index(index.storage).get_xb(), n * d).reshape(n, d)
    indices = np.empty((n, k_eff), np.int64)
    sims = np.empty((n, k_eff), np.float32)
    searched = time.perf_counter()
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        _, found = index.search(keys[start:stop], n_candidates)
        rows = np.arange(start, stop)[:, None]
        # exact cosine of every candidate; the row itself and missing candidates sort last
        found_sims = _pair_similarities(x, np.arange(start, stop), found)
        found_sims[(found == rows) | (found < 0)] = -np.inf
        order = np.lexsort((found, -found_sims), axis=1)[:, :k_eff]  # ties by index, as the exact search
        indices[start:stop] = np.take_along_axis(found, order, axis=1)
        sims[start:stop] = np.take_along_axis(found_sims, order, axis=1)
        if progress is not None:
            progress(f"HNSW search: {stop}/{n} rows ({time.perf_counter() - searched:.1f}s)")
    indices[~np.isfinite(sims)] = -1
    short = np.flatnonzero((indices < 0).any(axis=1))
    if short.size:  # the graph could not reach k neighbours for these rows: search them exactly
        indices[short], sims[short] = query_knn(x[short], x, k_eff, exclude=short, normalized=True)
        if progress is not None:
            progress(f"{short.size} rows with fewer than {k_eff} HNSW neighbours searched exactly", final=True)
    del x, keys, index
    np.clip(sims, -1.0, 1.0, out=sims)
    return indices, sims


def _pair_similarities(x: np.ndarray, rows: np.ndarray, others: np.ndarray) -> np.ndarray:
    """``out[i, j] = x[rows[i]] . x[others[i, j]]``, one column at a time (never a rows x k x d gather)."""
    out = np.empty(others.shape, dtype=np.float32)
    queries = x[rows]
    for j in range(others.shape[1]):
        out[:, j] = np.einsum("ij,ij->i", queries, x[np.maximum(others[:, j], 0)])
    return out


def _pca_projection(x: np.ndarray, dims: int, *, sample: int = 20_000, seed: int = 0) -> np.ndarray:
    """``x`` centred and projected on its first ``dims`` principal components (fitted on a seeded sample)."""
    rng = np.random.default_rng(seed)
    fit = x[np.sort(rng.choice(x.shape[0], size=min(sample, x.shape[0]), replace=False))]
    mean = fit.mean(axis=0)
    _, _, vt = np.linalg.svd(fit - mean, full_matrices=False)
    basis = np.ascontiguousarray(vt[:dims].T, dtype=np.float32)
    out = np.empty((x.shape[0], basis.shape[1]), dtype=np.float32)
    for start in range(0, x.shape[0], 100_000):
        np.matmul(x[start : start + 100_000] - mean, basis, out=out[start : start + 100_000])
    return out


def knn_recall(vectors: np.ndarray, sample: np.ndarray, returned: np.ndarray, *, tolerance: float = 1e-5) -> float:
    """recall@k of a k-NN result on a sample of rows, against exact search.

    Parameters
    ----------
    vectors
        ``(n, d)``: every row (the search space).
    sample
        ``int64`` ``(s,)``: the rows whose neighbours are checked.
    returned
        ``int64`` ``(s, k)``: the neighbours the method under test returned
        for them (``-1`` = missing, counts as a miss).

    Returns
    -------
    float
        The mean, over the sample, of the share of the ``k`` returned
        neighbours that are among the exact ``k`` nearest. A returned
        neighbour whose similarity ties the exact ``k``-th (within
        ``tolerance``) counts as exact, so duplicate embeddings never lower
        the figure. Similarities are recomputed from ``vectors``.
    """
    sample = np.asarray(sample, dtype=np.int64)
    returned = np.asarray(returned, dtype=np.int64)
    if sample.size == 0 or returned.shape[1] == 0:
        return 1.0
    k = returned.shape[1]
    x = normalize_rows(vectors)
    _, exact_sims = query_knn(x[sample], x, k, exclude=sample, normalized=True)
    kth = exact_sims[:, -1]
    valid = (returned >= 0) & (returned != sample[:, None])
    # a neighbour listed twice counts once
    order = np.argsort(returned, axis=1, kind="stable")
    ordered = np.take_along_axis(returned, order, axis=1)
    repeat = np.zeros_like(valid)
    repeat[:, 1:] = ordered[:, 1:] == ordered[:, :-1]
    np.put_along_axis(valid, order, np.take_along_axis(valid, order, axis=1) & ~repeat, axis=1)
    returned_sims = _pair_similarities(x, sample, np.where(valid, returned, 0))
    hits = valid & (returned_sims >= kth[:, None] - tolerance)
    return float(hits.sum(axis=1).mean() / k)


def knn_table(
    ids: pa.Array | list[str],
    indices: np.ndarray,
    similarities: np.ndarray,
    neighbor_ids: pa.Array | list[str] | None = None,
) -> pa.Table:
    """Long table of k-NN results: one row per (dataset, neighbour).

    ``indices`` point into ``neighbor_ids`` (default: ``ids`` themselves).

    Returns
    -------
    pyarrow.Table
        Columns ``dataset_id``, ``neighbor_id`` (strings), ``neighbor_rank``
        (int32, 1 = most similar) and ``similarity`` (float64).
    """
    ids = pa.array(ids, pa.string()) if not isinstance(ids, pa.Array) else ids
    if neighbor_ids is None:
        neighbor_ids = ids
    elif not isinstance(neighbor_ids, pa.Array):
        neighbor_ids = pa.array(neighbor_ids, pa.string())
    n, k = indices.shape
    rows = np.repeat(np.arange(n, dtype=np.int64), k)
    return pa.table(
        {
            "dataset_id": ids.take(pa.array(rows)),
            "neighbor_id": neighbor_ids.take(pa.array(indices.reshape(-1))),
            "neighbor_rank": pa.array(np.tile(np.arange(1, k + 1, dtype=np.int32), n)),
            "similarity": pa.array(similarities.reshape(-1).astype(np.float64)),
        }
    )
