"""Helpers the k-NN backends share: unit rows, PCA projection, exact re-rank of candidates, the result."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from ..errors import ClusteringInputError
from ..validation import positive_int

# Rows added to / searched in an index per call.
CHUNK = 100_000


@dataclass(frozen=True, eq=False)
class KnnResult:
    """What an approximate k-NN search returned, and how it searched.

    Attributes
    ----------
    indices
        ``int64`` ``(n, min(k, n - 1))``: row ``i`` lists the neighbours of
        ``i`` by decreasing similarity (ties by index), never ``i`` itself.
    similarities
        ``float32``, same shape: their cosine similarities, clipped to
        ``[-1, 1]``.
    search_dims
        The dimension the search compared rows in: the embedding's, or the
        principal components the index was built on.
    nlist, nprobe
        IVF only (else None): the index's cells and the cells each row
        scanned (after the pilot check).
    pilot_recall
        recall@k of the pilot check that chose the search (None when no
        pilot ran).
    model
        IVF only: the trained index (:class:`~mdc_clustering.neighbors.IvfModel`)
        a later search of mostly the same rows can start from.
    model_reused
        IVF only: True when the search started from a given model.
    """

    indices: np.ndarray
    similarities: np.ndarray
    search_dims: int
    nlist: int | None = None
    nprobe: int | None = None
    pilot_recall: float | None = None
    model: object | None = None
    model_reused: bool | None = None


def as_strings(values) -> pa.Array:
    """``values`` (Arrow array or chunked array, dictionary-encoded or not, or a sequence) as a string array."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if not isinstance(values, pa.Array):
        values = pa.array(list(values), pa.string())
    if pa.types.is_dictionary(values.type):
        values = values.dictionary_decode()
    return values.cast(pa.string())


def distinct_sorted(values: np.ndarray) -> np.ndarray:
    """The distinct values of an integer array, sorted: ``np.unique(values)`` by a sort and a mask.

    numpy 2.4's plain ``np.unique`` goes through a hash table, which is far
    slower on millions of mostly distinct integers: 5.8 s against 0.33 s for
    4.65M int64 on the benchmark machine (the k-NN update's candidate
    pairs at 100,000 datasets).
    """
    values = np.sort(np.asarray(values).ravel())
    if values.size < 2:
        return values
    keep = np.empty(values.size, bool)
    keep[0] = True
    np.not_equal(values[1:], values[:-1], out=keep[1:])
    return values[keep]


def position_type(n: int) -> type:
    """The integer type of row positions among ``n`` rows (and the -1 of an empty slot): int32 while it
    holds them, so that a (rows, k) index array is half the size."""
    return np.int32 if n < 2**31 else np.int64


def key_positions(keys, what: str) -> np.ndarray:
    """Dense look-up from integer dataset key to row: ``positions[key]`` is the row of ``keys`` holding it
    (-1 for no row). ``what`` names the keys in the errors (a negative key, two rows with one key)."""
    keys = np.asarray(keys, dtype=np.int64)
    if keys.size and keys.min() < 0:
        raise ClusteringInputError(f"{what}: keys must be >= 0")
    positions = np.full(int(keys.max(initial=-1)) + 1, -1, dtype=np.int64)
    positions[keys] = np.arange(keys.size, dtype=np.int64)
    if np.count_nonzero(positions >= 0) != keys.size:
        raise ClusteringInputError(f"{what}: two datasets share a key")
    return positions


def rows_of_keys(positions: np.ndarray, keys) -> np.ndarray:
    """The row of each of ``keys`` through :func:`key_positions`'s look-up (-1 for a key it does not hold)."""
    keys = np.asarray(keys, dtype=np.int64)
    inside = (keys >= 0) & (keys < positions.size)
    return np.where(inside, positions[np.where(inside, keys, 0)], -1)


def normalize_rows(vectors: np.ndarray) -> np.ndarray:
    """Return a float32 C-contiguous copy of ``vectors`` with unit L2 rows."""
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / norms


def unit_rows_and_k(vectors: np.ndarray, k: object, normalized: bool) -> tuple[np.ndarray, int]:
    """The unit float32 rows (``vectors`` itself when ``normalized``) and the neighbours each can have."""
    k = positive_int("k_neighbors", k)
    x = vectors if normalized else normalize_rows(vectors)
    return x, max(0, min(k, x.shape[0] - 1))


def rerank(index, keys: np.ndarray, x: np.ndarray, rows: np.ndarray, n_candidates: int, k: int):
    """The ``k`` best of the index's ``n_candidates`` for ``rows``, by exact cosine (the row itself dropped)."""
    _, found = index.search(np.ascontiguousarray(keys[rows]), n_candidates)
    return best_by_cosine(x, rows, found, k)


def search_rows(index, keys: np.ndarray, x: np.ndarray, order: np.ndarray, n_candidates: int, k: int, *,
                rows: np.ndarray | None = None, progress=None, label: str = "search") -> tuple[np.ndarray, np.ndarray]:
    """The :func:`rerank` result of each of ``rows`` (default: every row), :data:`CHUNK` rows at a time.

    Output row ``i`` belongs to ``rows[i]``; ``order`` is the order the
    output rows are searched in (a permutation of ``range(len(rows))``).
    """
    if rows is None:
        rows = np.arange(x.shape[0])
    n = len(rows)
    indices = np.empty((n, k), np.int64)
    sims = np.empty((n, k), np.float32)
    searched = time.perf_counter()
    for start in range(0, n, CHUNK):
        out = order[start : start + CHUNK]
        indices[out], sims[out] = rerank(index, keys, x, rows[out], n_candidates, k)
        if progress is not None:
            progress(f"{label}: {min(n, start + CHUNK)}/{n} rows ({time.perf_counter() - searched:.1f}s)")
    return indices, sims


def best_by_cosine(x: np.ndarray, rows: np.ndarray, found: np.ndarray, k: int):
    """The ``k`` candidates ``found`` for ``rows`` most similar to them by exact cosine (the row itself dropped)."""
    found_sims = pair_similarities(x, rows, found)
    found_sims[(found == rows[:, None]) | (found < 0)] = -np.inf
    order = np.lexsort((found, -found_sims), axis=1)[:, :k]  # ties by index, as the exact search
    return np.take_along_axis(found, order, axis=1), np.take_along_axis(found_sims, order, axis=1)


def pair_similarities(x: np.ndarray, rows: np.ndarray, others: np.ndarray) -> np.ndarray:
    """``out[i, j] = x[rows[i]] . x[others[i, j]]`` (faiss, multi-threaded; never a rows x k x d gather).

    ``others`` below 0 give ``-inf``.
    """
    import faiss

    # every array handed to faiss is bound to a name: swig_ptr keeps no reference to it
    x = np.ascontiguousarray(x, dtype=np.float32)
    queries = np.ascontiguousarray(x[rows])
    ids = np.ascontiguousarray(others, dtype=np.int64)
    safe_ids = np.maximum(ids, 0)
    out = np.empty(ids.shape, dtype=np.float32)
    if out.size:
        faiss.fvec_inner_products_by_idx(
            faiss.swig_ptr(out),
            faiss.swig_ptr(queries),
            faiss.swig_ptr(x),
            faiss.swig_ptr(safe_ids),
            x.shape[1],
            ids.shape[0],
            ids.shape[1],
        )
    out[ids < 0] = -np.inf
    return out


def pca_projection(x: np.ndarray, dims: int, *, sample: int = 20_000, seed: int = 0) -> np.ndarray:
    """``x`` centred and projected on its first ``dims`` principal components (fitted on a seeded sample)."""
    return project(x, *pca_basis(x, dims, sample=sample, seed=seed))


def pca_basis(x: np.ndarray, dims: int, *, sample: int = 20_000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The mean and first ``dims`` principal axes ``(d, dims)`` of ``x``, fitted on a seeded sample of rows."""
    rng = np.random.default_rng(seed)
    fit = x[np.sort(rng.choice(x.shape[0], size=min(sample, x.shape[0]), replace=False))].astype(np.float64)
    mean = fit.mean(axis=0)
    fit -= mean
    # the axes are the eigenvectors of the d x d covariance, largest first: the same as an SVD of the
    # sample's rows, at a fraction of its cost (one product with the sample instead of a factorisation)
    values, vectors = np.linalg.eigh(fit.T @ fit)
    axes = vectors[:, np.argsort(values, kind="stable")[::-1][:dims]]
    axes *= np.where(axes[np.abs(axes).argmax(axis=0), np.arange(axes.shape[1])] < 0, -1.0, 1.0)  # fixed signs
    return mean.astype(x.dtype), np.ascontiguousarray(axes, dtype=np.float32)


def project(x: np.ndarray, mean: np.ndarray, basis: np.ndarray) -> np.ndarray:
    """``(x - mean) @ basis``, a slice of rows at a time (no centred copy of ``x``)."""
    out = np.empty((x.shape[0], basis.shape[1]), dtype=np.float32)
    for start in range(0, x.shape[0], 100_000):
        np.matmul(x[start : start + 100_000] - mean, basis, out=out[start : start + 100_000])
    return out


def knn_table(
    ids: pa.Array | list[str],
    indices: np.ndarray,
    similarities: np.ndarray,
    neighbor_ids: pa.Array | list[str] | None = None,
    *,
    owners: np.ndarray | None = None,
) -> pa.Table:
    """Long table of k-NN results: one row per (dataset, neighbour).

    ``indices`` point into ``neighbor_ids`` (default: ``ids`` themselves).
    Row ``i`` of ``indices`` is the list of ``ids[owners[i]]`` when
    ``owners`` is given (a subset of the lists), else of ``ids[i]``.

    Returns
    -------
    pyarrow.Table
        Columns ``dataset_id``, ``neighbor_id`` (strings, dictionary-encoded:
        4 bytes a row over the id list, where a plain string column would
        copy every id k times; DuckDB reads them as VARCHAR),
        ``neighbor_rank`` (int32, 1 = most similar) and ``similarity``
        (float64).
    """
    ids = pa.array(ids, pa.string()) if not isinstance(ids, pa.Array) else ids
    if neighbor_ids is None:
        neighbor_ids = ids
    elif not isinstance(neighbor_ids, pa.Array):
        neighbor_ids = pa.array(neighbor_ids, pa.string())
    n, k = indices.shape
    index_type = position_type(max(len(ids), len(neighbor_ids)))
    rows = np.repeat(np.arange(n, dtype=index_type) if owners is None else owners.astype(index_type), k)
    neighbors = indices.reshape(-1).astype(index_type)
    return pa.table(
        {
            "dataset_id": pa.DictionaryArray.from_arrays(pa.array(rows), ids),
            "neighbor_id": pa.DictionaryArray.from_arrays(pa.array(neighbors), neighbor_ids),
            "neighbor_rank": pa.array(np.tile(np.arange(1, k + 1, dtype=np.int32), n)),
            "similarity": pa.array(similarities.reshape(-1).astype(np.float64)),
        }
    )
