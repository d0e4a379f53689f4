"""recall@k of a k-NN result against exact search."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ._common import normalize_rows, pair_similarities
from ._exact import query_knn


def knn_recall(
    vectors: np.ndarray,
    sample: np.ndarray,
    returned: np.ndarray,
    *,
    tolerance: float = 1e-5,
    normalized: bool = False,
) -> float:
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
        the figure. Similarities are recomputed from ``vectors`` (unit-length
        float32 rows already when ``normalized``: no copy is made).
    """
    sample = np.asarray(sample, dtype=np.int64)
    returned = np.asarray(returned, dtype=np.int64)
    if sample.size == 0 or returned.shape[1] == 0:
        return 1.0
    k = returned.shape[1]
    x = vectors if normalized else normalize_rows(vectors)
    _, exact_sims = query_knn(x[sample], x, k, exclude=sample, normalized=True)
    valid = distinct_others(returned, sample)
    returned_sims = pair_similarities(x, sample, np.where(valid, returned, 0))
    return recall_from_kth(valid, returned_sims, exact_sims[:, -1], tolerance=tolerance)


def distinct_others(returned: np.ndarray, sample: np.ndarray) -> np.ndarray:
    """Mask of the returned neighbours that count: present (>= 0), not the row itself, not a repeat.

    ``returned`` ``(s, k)`` and ``sample`` ``(s,)`` are positions in one id space.
    """
    valid = (returned >= 0) & (returned != sample[:, None])
    # a neighbour listed twice counts once
    order = np.argsort(returned, axis=1, kind="stable")
    ordered = np.take_along_axis(returned, order, axis=1)
    repeat = np.zeros_like(valid)
    repeat[:, 1:] = ordered[:, 1:] == ordered[:, :-1]
    np.put_along_axis(valid, order, np.take_along_axis(valid, order, axis=1) & ~repeat, axis=1)
    return valid


def recall_from_kth(valid: np.ndarray, returned_sims: np.ndarray, kth: np.ndarray, *, tolerance: float = 1e-5) -> float:
    """recall@k: the mean share of counting neighbours at least as similar as the exact k-th (within ``tolerance``)."""
    hits = valid & (returned_sims >= kth[:, None] - tolerance)
    return float(hits.sum(axis=1).mean() / valid.shape[1])


def streamed_kth_similarity(queries: np.ndarray, query_ids: pa.Array, batches, k: int) -> np.ndarray:
    """Exact ``k``-th largest cosine similarity of each query among all rows but itself, in one pass.

    ``queries``: unit float32 ``(s, d)``, ids ``query_ids``; ``batches``:
    ``(ids, unit rows)`` slices of the whole search space (see
    :func:`mdc_clustering.embeddings.iter_embeddings`). Only the ``k``
    best similarities per query are kept, so memory is ``s x k`` plus
    faiss's blocks of one slice, never the search space. With fewer than ``k``
    other rows, the smallest of them.
    """
    return kth_of(streamed_top_k(queries, query_ids, batches, k).similarities)


@dataclass(frozen=True, eq=False)
class TopK:
    """Each query's exact ``k`` most similar other rows, by decreasing similarity.

    ``neighbors``: object ``(s, k)`` of dataset ids (None past the end of a
    short list); ``similarities``: float32, same shape (``-inf`` there). A
    list is short only when the search space holds fewer than ``k`` other rows.
    """

    neighbors: np.ndarray
    similarities: np.ndarray


def kth_of(similarities: np.ndarray) -> np.ndarray:
    """The last finite similarity of each row of a :class:`TopK` (``-inf`` for an empty list)."""
    if similarities.shape[1] == 0:
        return np.full(len(similarities), -np.inf, np.float32)
    filled = np.isfinite(similarities).sum(axis=1)
    return similarities[np.arange(len(similarities)), np.maximum(filled - 1, 0)]


def streamed_top_k(queries: np.ndarray, query_ids: pa.Array, batches, k: int) -> TopK:
    """Exact top ``k`` of each query among all rows but itself, in one pass over ``batches``.

    As :func:`streamed_kth_similarity` (same arguments, same memory bound),
    keeping the neighbours' ids too.
    """
    import faiss

    queries = np.ascontiguousarray(queries, dtype=np.float32)
    best = np.full((len(queries), k), -np.inf, dtype=np.float32)
    best_ids = np.full((len(queries), k), None, dtype=object)
    for ids, rows in batches:
        if len(queries) == 0 or k == 0:
            continue
        # the slice's k + 1 best (faiss: one BLAS product and a heap per query), then the query itself
        # dropped: k others remain whenever the slice has them
        rows = np.ascontiguousarray(rows)
        top_sims, top = faiss.knn(queries, rows, min(k + 1, len(rows)), faiss.METRIC_INNER_PRODUCT)
        own = pc.fill_null(pc.index_in(query_ids, value_set=ids), -1).to_numpy()  # each query's row in the slice
        top_sims[(top == own[:, None]) & (own[:, None] >= 0)] = -np.inf  # a query is never its own neighbour
        named = np.asarray(ids.take(pa.array(np.maximum(top, 0).ravel())).to_pylist(), object).reshape(top.shape)
        both = np.concatenate([best, top_sims], axis=1)
        both_ids = np.concatenate([best_ids, named], axis=1)
        keep = np.argsort(-both, axis=1, kind="stable")[:, :k]
        best = np.take_along_axis(both, keep, axis=1)
        best_ids = np.take_along_axis(both_ids, keep, axis=1)
    best_ids[~np.isfinite(best)] = None
    return TopK(best_ids, best)
