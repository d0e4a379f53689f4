"""Approximate k-NN with a faiss HNSW graph, optionally on a PCA projection re-ranked by exact cosine."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..validation import optional_positive_int, positive_int, unit_interval
from ._common import CHUNK, KnnResult, pca_projection, rerank, search_rows, unit_rows_and_k
from ._exact import fill_short_rows
from ._recall import knn_recall

# Rows of the pilot recall check.
PILOT_ROWS = 256


@dataclass(frozen=True)
class HnswParams:
    """Parameters of the faiss HNSW index (see ``dbt_project.yml`` for the measured defaults).

    ``m`` links per node, ``ef_construction`` candidates kept while the
    index is built, ``ef_search`` candidates kept per query (raised to at
    least ``k + 1``). Larger values: better recall, slower. ``pca_dims``:
    when set and below the embedding dimension, the index is built on the
    rows projected on their first ``pca_dims`` principal components, and the
    candidates it returns are re-ranked by their exact cosine similarity.
    ``pca_min_recall``: when set, the projected index is first checked on a
    pilot sample of rows against exact search; if its recall@k there is
    below this value, the projection does not suit the data (e.g. isotropic
    noise) and the index is built on the full rows instead.
    """

    m: int = 32
    ef_construction: int = 80
    ef_search: int = 64
    pca_dims: int | None = 64
    pca_min_recall: float | None = None

    @classmethod
    def from_vars(
        cls,
        m: object,
        ef_construction: object,
        ef_search: object,
        pca_dims: object = 64,
        pca_min_recall: object = None,
    ) -> HnswParams:
        return cls(
            positive_int("hnsw_m", m),
            positive_int("hnsw_ef_construction", ef_construction),
            positive_int("hnsw_ef_search", ef_search),
            optional_positive_int("hnsw_pca_dims", pca_dims),
            None if pca_min_recall is None else unit_interval("knn_min_recall", pca_min_recall),
        )


def hnsw_knn(
    vectors: np.ndarray,
    k: int,
    params: HnswParams | None = None,
    *,
    normalized: bool = False,
    rows: np.ndarray | None = None,
    progress: Callable[..., None] | None = None,
) -> KnnResult:
    """Approximate cosine k-nearest neighbours of every row among the rows, itself excluded.

    A faiss ``IndexHNSWFlat`` on the unit-length rows (inner product =
    cosine), or, with ``params.pca_dims``, on their projection on the first
    principal components (fitted on a seeded sample of 20,000 rows; L2 there
    ranks like cosine up to the projection): distances in 64 dimensions
    cost a sixth of 384. Every row asks for ``k + 1`` candidates (plus
    ``max(10, k // 2)`` with the projection), which are re-ranked by their
    exact cosine similarity; the row itself is dropped. With
    ``params.pca_min_recall`` the projected index is checked first on a
    pilot sample (:data:`PILOT_ROWS` rows, seeded) against exact search and
    replaced by a full-dimension index when its recall@k is below that
    value. Rows the index returns too few neighbours for are searched
    exactly. Building and searching use all cores (OpenMP); the result does
    not depend on the thread count.

    Memory: the unit rows (the caller's, when ``normalized``), the
    projection and ``m`` links per row; a full-dimension index holds its own
    copy of the unit rows.

    Parameters
    ----------
    normalized
        ``vectors`` already has unit-length float32 rows (no copy is made).
    rows
        Optional ``int64`` row positions: the index holds every row, but only
        these rows are searched (for an incremental update); default all.

    Returns
    -------
    KnnResult
        ``indices`` and ``similarities`` as :func:`exact_knn`'s (``(n,
        min(k, n - 1))``, by decreasing similarity, ties by index; with
        ``rows``, one row per entry of ``rows``, in its order);
        ``search_dims`` (the dimension the index compared rows in) and
        ``pilot_recall`` (the projected index's recall@k on the pilot
        sample; None when not checked).
    """
    import faiss

    params = params or HnswParams()
    x, k_eff = unit_rows_and_k(vectors, k, normalized)
    n, d = x.shape
    rows = None if rows is None else np.asarray(rows, dtype=np.int64)
    if k_eff == 0:
        m = n if rows is None else len(rows)
        return KnnResult(np.empty((m, 0), np.int64), np.empty((m, 0), np.float32), search_dims=d)
    started = time.perf_counter()
    pilot_recall = None

    def build(keys: np.ndarray, metric) -> faiss.Index:
        index = faiss.IndexHNSWFlat(keys.shape[1], params.m, metric)
        index.hnsw.efConstruction = params.ef_construction
        for start in range(0, n, CHUNK):
            index.add(keys[start : start + CHUNK])
            if progress is not None:
                progress(
                    f"HNSW index ({keys.shape[1]} dims): {min(n, start + CHUNK)}/{n} rows added "
                    f"({time.perf_counter() - started:.1f}s)"
                )
        return index

    if params.pca_dims is not None and params.pca_dims < d:
        keys = pca_projection(x, params.pca_dims)
        n_candidates = min(n, k_eff + 1 + max(10, k_eff // 2))  # extra candidates: the index sees a projection
        index = build(keys, faiss.METRIC_L2)  # L2 on the projection ranks like cosine, up to the projection
        index.hnsw.efSearch = max(params.ef_search, n_candidates)
        if params.pca_min_recall is not None and n > PILOT_ROWS:
            pilot = np.sort(np.random.default_rng(0).choice(n, PILOT_ROWS, replace=False))
            found, _ = rerank(index, keys, x, pilot, n_candidates, k_eff)
            pilot_recall = knn_recall(x, pilot, found, normalized=True)
            if progress is not None:  # always logged: it decides which index is built
                progress(
                    f"pilot recall@{k_eff} of the {params.pca_dims}-dim projection on {PILOT_ROWS} rows: "
                    f"{pilot_recall:.3f} (needed {params.pca_min_recall})",
                    final=True,
                )
            if pilot_recall < params.pca_min_recall:
                del index, keys
                keys = None
    else:
        keys = None
    if keys is None:
        n_candidates = min(n, k_eff + 1)
        index = build(x, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efSearch = max(params.ef_search, n_candidates)
        keys = x
    search_dims = keys.shape[1]
    searched = n if rows is None else len(rows)
    indices, sims = search_rows(index, keys, x, np.arange(searched), n_candidates, k_eff, rows=rows,
                                progress=progress, label="HNSW search")
    del index, keys
    indices, sims = fill_short_rows(x, indices, sims, k_eff, progress, rows)
    return KnnResult(indices, sims, search_dims=search_dims, pilot_recall=pilot_recall)
