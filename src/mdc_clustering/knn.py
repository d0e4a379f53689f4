"""k-nearest neighbours by cosine similarity: exact in bounded memory, or approximate (faiss HNSW)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .validation import choice, nonnegative_int, optional_positive_int, positive_int, unit_interval

__all__ = [
    "KNN_METHODS",
    "HnswParams",
    "IvfParams",
    "choose_knn_method",
    "distinct_others",
    "exact_knn",
    "hnsw_knn",
    "ivf_knn",
    "knn_recall",
    "knn_settings",
    "knn_table",
    "normalize_rows",
    "query_knn",
    "recall_from_kth",
    "streamed_kth_similarity",
]

KNN_METHODS = ("auto", "exact", "ivf", "hnsw")

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
    normalized: bool = False,
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
    normalized
        The rows are already unit-length float32 (no copy is made).
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
    x = vectors if normalized else normalize_rows(vectors)
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


@dataclass(frozen=True)
class IvfParams:
    """Parameters of the inverted-file index (see ``dbt_project.yml`` for the measured defaults).

    The rows are projected on their first ``pca_dims`` principal components
    (``None``: kept whole), split into ``nlist`` cells by k-means (``None``:
    about ``4 * sqrt(n)``), and stored as 4-bit codes (faiss fast-scan). A
    query scans the ``nprobe`` cells nearest to it; the candidates are
    re-ranked by exact distance in the projection, then by exact cosine in
    full dimension. ``min_recall``: when set, a pilot sample of rows searched
    exactly first grows the projection, then ``nprobe`` (up to an eighth of
    the cells), until its recall@k reaches ``min_recall`` plus
    :data:`PILOT_MARGIN` (see :func:`ivf_knn`).
    """

    pca_dims: int | None = 32
    nlist: int | None = None
    nprobe: int = 32
    min_recall: float | None = None

    @classmethod
    def from_vars(cls, pca_dims: object, nlist: object, nprobe: object, min_recall: object = None) -> IvfParams:
        return cls(
            optional_positive_int("ivf_pca_dims", pca_dims),
            optional_positive_int("ivf_nlist", nlist),
            positive_int("ivf_nprobe", nprobe),
            None if min_recall is None else unit_interval("knn_min_recall", min_recall),
        )


def knn_settings(
    n: int,
    *,
    knn_method: object,
    knn_exact_max_n: object,
    ivf_pca_dims: object,
    ivf_nlist: object,
    ivf_nprobe: object,
    hnsw_m: object,
    hnsw_ef_construction: object,
    hnsw_ef_search: object,
    hnsw_pca_dims: object,
    knn_min_recall: object = None,
) -> tuple[str, IvfParams | HnswParams | None]:
    """The k-NN method (``exact``, ``ivf`` or ``hnsw``) the vars ask for, for ``n`` datasets, and its parameters.

    Takes the vars as the dbt models read them (``dbt.config.get``, which
    dbt only sees when called with a literal name) and checks them all,
    whichever method is used. ``knn_min_recall`` is the bar of the
    approximate methods' pilot check (see :class:`IvfParams` and
    :class:`HnswParams`). The parameters are ``None`` for ``exact``.
    """
    method = choose_knn_method(n, knn_method, knn_exact_max_n)
    ivf = IvfParams.from_vars(ivf_pca_dims, ivf_nlist, ivf_nprobe, knn_min_recall)
    hnsw = HnswParams.from_vars(hnsw_m, hnsw_ef_construction, hnsw_ef_search, hnsw_pca_dims, knn_min_recall)
    return method, {"ivf": ivf, "hnsw": hnsw}.get(method)


def choose_knn_method(n: int, method: str, exact_max_n: int) -> str:
    """The k-NN method a run uses: ``exact``, ``ivf`` or ``hnsw``.

    ``auto`` means exact up to ``exact_max_n`` datasets (where the exact
    search costs a few seconds) and IVF beyond (measured fastest at the
    same recall: benchmarks/RESULTS.md).
    """
    method = choice("knn_method", method, KNN_METHODS)
    exact_max_n = nonnegative_int("knn_exact_max_n", exact_max_n)
    if method == "auto":
        return "exact" if n <= exact_max_n else "ivf"
    return method


def hnsw_knn(
    vectors: np.ndarray,
    k: int,
    params: HnswParams | None = None,
    *,
    normalized: bool = False,
    info: dict | None = None,
    progress: Callable[..., None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
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
    info
        Optional dict, filled with ``search_dims`` (the dimension the index
        compared rows in) and ``pilot_recall`` (the projected index's
        recall@k on the pilot sample; None when not checked).

    Returns
    -------
    indices, similarities
        As :func:`exact_knn`: ``(n, min(k, n - 1))``, by decreasing
        similarity (ties by index).
    """
    import faiss

    params = params or HnswParams()
    x, k_eff = _unit_rows_and_k(vectors, k, normalized)
    n, d = x.shape
    found_info = {"search_dims": d, "pilot_recall": None}
    if info is not None:
        info.update(found_info)
    if k_eff == 0:
        return np.empty((n, 0), np.int64), np.empty((n, 0), np.float32)
    started = time.perf_counter()

    def build(keys: np.ndarray, metric) -> faiss.Index:
        index = faiss.IndexHNSWFlat(keys.shape[1], params.m, metric)
        index.hnsw.efConstruction = params.ef_construction
        for start in range(0, n, _CHUNK):
            index.add(keys[start : start + _CHUNK])
            if progress is not None:
                progress(
                    f"HNSW index ({keys.shape[1]} dims): {min(n, start + _CHUNK)}/{n} rows added "
                    f"({time.perf_counter() - started:.1f}s)"
                )
        return index

    if params.pca_dims is not None and params.pca_dims < d:
        keys = _pca_projection(x, params.pca_dims)
        n_candidates = min(n, k_eff + 1 + max(10, k_eff // 2))  # extra candidates: the index sees a projection
        index = build(keys, faiss.METRIC_L2)  # L2 on the projection ranks like cosine, up to the projection
        index.hnsw.efSearch = max(params.ef_search, n_candidates)
        if params.pca_min_recall is not None and n > PILOT_ROWS:
            pilot = np.sort(np.random.default_rng(0).choice(n, PILOT_ROWS, replace=False))
            found, _ = _rerank(index, keys, x, pilot, n_candidates, k_eff)
            found_info["pilot_recall"] = knn_recall(x, pilot, found, normalized=True)
            if progress is not None:  # always logged: it decides which index is built
                progress(
                    f"pilot recall@{k_eff} of the {params.pca_dims}-dim projection on {PILOT_ROWS} rows: "
                    f"{found_info['pilot_recall']:.3f} (needed {params.pca_min_recall})",
                    final=True,
                )
            if found_info["pilot_recall"] < params.pca_min_recall:
                del index, keys
                keys = None
        if keys is not None:
            found_info["search_dims"] = params.pca_dims
    else:
        keys = None
    if keys is None:
        n_candidates = min(n, k_eff + 1)
        index = build(x, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efSearch = max(params.ef_search, n_candidates)
        keys = x
    if info is not None:
        info.update(found_info)
    indices = np.empty((n, k_eff), np.int64)
    sims = np.empty((n, k_eff), np.float32)
    searched = time.perf_counter()
    for start in range(0, n, _CHUNK):
        stop = min(n, start + _CHUNK)
        indices[start:stop], sims[start:stop] = _rerank(index, keys, x, np.arange(start, stop), n_candidates, k_eff)
        if progress is not None:
            progress(f"HNSW search: {stop}/{n} rows ({time.perf_counter() - searched:.1f}s)")
    del index, keys
    return _fill_short_rows(x, indices, sims, k_eff, progress)


# Rows added to / searched in an index per call, and rows of the pilot recall checks.
_CHUNK = 100_000
PILOT_ROWS = 256
IVF_PILOT_ROWS = 500
# Below this many rows ivf_knn searches exactly.
IVF_MIN_ROWS = 1000
# The IVF pilot stops raising nprobe at 1/IVF_MAX_SCANNED of the cells.
IVF_MAX_SCANNED = 8
# The IVF pilot aims this far above knn_min_recall: its 500 rows give an estimate (standard error
# about 0.003 at recall 0.96), not the figure.
PILOT_MARGIN = 0.005
# Candidates the 4-bit codes propose per candidate kept by the exact re-rank in the projection.
_IVF_REFINE_FACTOR = 2.5


def _ceiling_wanted(wanted: float) -> float:
    """Recall a projection must allow when scanned whole: half-way from ``wanted`` to 1, room for the cells' loss."""
    return wanted + (1.0 - wanted) / 2


def ivf_knn(
    vectors: np.ndarray,
    k: int,
    params: IvfParams | None = None,
    *,
    normalized: bool = False,
    info: dict | None = None,
    progress: Callable[..., None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Approximate cosine k-nearest neighbours of every row among the rows, itself excluded.

    The unit rows are projected on their first ``params.pca_dims``
    principal components (fitted on a seeded sample of 20,000 rows; L2 there
    ranks like cosine up to the projection) and put in a faiss
    ``IndexIVFPQFastScan``: ``nlist`` k-means cells, each row stored as one
    4-bit code per dimension, scanned with SIMD lookups. Each row asks the
    ``nprobe`` cells nearest to it for ``2.5 x (k + 1 + max(10, k // 2))``
    candidates, which faiss re-ranks by exact L2 in the projection
    (``IndexRefineFlat``) down to ``k + 1 + max(10, k // 2)``; those are
    re-ranked by exact cosine in full dimension and the row itself dropped.
    Rows are searched in the order of their cell, so that neighbouring
    queries scan the same cells (a quarter faster at a million rows).

    With ``params.min_recall``, two pilot checks on :data:`IVF_PILOT_ROWS`
    seeded rows, searched exactly, tune the search before it runs (both
    always logged). First the projection: the pilot rows' nearest candidates
    in it, re-ranked in full dimension, must reach recall@k half-way from
    ``min_recall + PILOT_MARGIN`` to 1; if not, the projection grows by half
    (up to the full vectors). On text embeddings this matters: on the
    shipped sample 32 components allow recall@30 0.69, 162 allow 0.99,
    where synthetic low-intrinsic-dimension data needs 32. Then the cells:
    ``nprobe`` grows by half until the pilot rows' recall@k reaches
    ``min_recall + PILOT_MARGIN`` or an eighth of the cells
    (:data:`IVF_MAX_SCANNED`) is scanned: past that the data has no
    neighbourhood structure an index can use (isotropic noise), the search
    would cost a fair share of the exact one, and the measured recall (and
    its warning test) says so instead. Rows the index
    returns too few neighbours for are searched exactly, and so is
    everything below :data:`IVF_MIN_ROWS` rows (too few to train the cells
    on). Building and searching use all cores (OpenMP); the result does not
    depend on the thread count.

    Memory: the unit rows (the caller's, when ``normalized``), the projection
    twice (the index's flat copy for the re-rank) and the codes, ``4.5 x
    dims`` bytes a row beyond the rows (144 bytes at 32 dimensions).

    Parameters
    ----------
    normalized
        ``vectors`` already has unit-length float32 rows (no copy is made).
    info
        Optional dict, filled with ``search_dims`` (the dimension the index
        compared rows in, after the pilot), ``nlist``, ``nprobe`` (the value
        searched with, after the pilot) and ``pilot_recall`` (recall@k on the
        pilot rows at that ``nprobe``; None when not checked).

    Returns
    -------
    indices, similarities
        As :func:`exact_knn`: ``(n, min(k, n - 1))``, by decreasing
        similarity (ties by index).
    """
    import faiss

    params = params or IvfParams()
    x, k_eff = _unit_rows_and_k(vectors, k, normalized)
    n, d = x.shape
    found_info = {"search_dims": d, "nlist": None, "nprobe": None, "pilot_recall": None}
    if info is not None:
        info.update(found_info)
    if n < IVF_MIN_ROWS:  # too few rows to train cells and codes on; the exact search costs nothing here
        return exact_knn(x, k, normalized=True)
    started = time.perf_counter()
    n_candidates = min(n, k_eff + 1 + max(10, k_eff // 2))
    checked = params.min_recall is not None and n > IVF_PILOT_ROWS
    if checked:
        pilot = np.sort(np.random.default_rng(0).choice(n, IVF_PILOT_ROWS, replace=False))
        # exact k-th similarity among the others: the (k+1)-th of all rows, the row itself (1.0) being one
        all_sims, _ = faiss.knn(np.ascontiguousarray(x[pilot]), x, k_eff + 1, faiss.METRIC_INNER_PRODUCT)
        kth = all_sims[:, k_eff]
        wanted = min(1.0, params.min_recall + PILOT_MARGIN)
    dims = params.pca_dims if params.pca_dims is not None and params.pca_dims < d else d
    keys = x
    if dims < d:
        mean, basis = _pca_basis(x, d)
        while True:
            keys = _project(x, mean, basis[:, :dims])
            if not checked:
                break
            # the projection's ceiling: its exact nearest candidates, re-ranked in full dimension
            _, found = faiss.knn(np.ascontiguousarray(keys[pilot]), keys, n_candidates, faiss.METRIC_L2)
            best, best_sims = _best_by_cosine(x, pilot, found, k_eff)
            ceiling = recall_from_kth(distinct_others(best, pilot), best_sims, kth)
            if progress is not None:  # always logged: it decides the search's cost
                progress(f"pilot recall@{k_eff} of a {dims}-dim projection scanned whole on {IVF_PILOT_ROWS} rows: "
                         f"{ceiling:.3f} (wanted {_ceiling_wanted(wanted):.3f})", final=True)
            if ceiling >= _ceiling_wanted(wanted):
                break
            dims = (3 * dims + 1) // 2
            if dims >= d:
                dims, keys = d, x
                break
        del basis
    found_info["search_dims"] = dims
    if keys.shape[1] % 2:  # fast-scan codes come in pairs: a zero column changes no distance
        keys = np.ascontiguousarray(np.pad(keys, ((0, 0), (0, 1))))
    dims = keys.shape[1]
    nlist = params.nlist or int(round(4 * np.sqrt(n)))
    nlist = max(1, min(nlist, n // 39))  # k-means wants >= 39 training rows a cell
    train = keys[np.sort(np.random.default_rng(0).choice(n, size=min(n, 40 * nlist), replace=False))]
    quantizer = faiss.IndexFlatL2(dims)
    coarse = faiss.IndexIVFPQFastScan(quantizer, dims, nlist, dims, 4)
    coarse.cp.seed = 0
    coarse.train(np.ascontiguousarray(train))
    index = faiss.IndexRefineFlat(coarse)
    index.k_factor = _IVF_REFINE_FACTOR
    for start in range(0, n, _CHUNK):
        index.add(keys[start : start + _CHUNK])
    _, cell = quantizer.search(keys, 1)
    order = np.argsort(cell.ravel(), kind="stable")  # queries of one cell scan the same cells
    del cell, train
    if progress is not None:
        progress(
            f"IVF index ({dims} dims, {nlist} cells, 4-bit codes): {n} rows in {time.perf_counter() - started:.1f}s",
            final=True,
        )
    nprobe = min(params.nprobe, nlist)
    most = max(nprobe, -(-nlist // IVF_MAX_SCANNED))  # the pilot scans at most this many cells a row
    coarse.nprobe = nprobe
    if checked:
        while True:
            found, found_sims = _rerank(index, keys, x, pilot, n_candidates, k_eff)
            recall = recall_from_kth(distinct_others(found, pilot), found_sims, kth)
            if progress is not None:  # always logged: it decides the search's cost
                progress(f"pilot recall@{k_eff} with nprobe {nprobe} of {nlist} cells on {IVF_PILOT_ROWS} rows: "
                         f"{recall:.3f} (wanted {wanted:.3f})", final=True)
            if recall >= wanted or nprobe >= most:
                break
            nprobe = min(most, (3 * nprobe + 1) // 2)
            coarse.nprobe = nprobe
        found_info["pilot_recall"] = recall
    found_info.update(nlist=nlist, nprobe=nprobe)
    if info is not None:
        info.update(found_info)
    indices = np.empty((n, k_eff), np.int64)
    sims = np.empty((n, k_eff), np.float32)
    searched = time.perf_counter()
    for start in range(0, n, _CHUNK):
        rows = order[start : start + _CHUNK]
        indices[rows], sims[rows] = _rerank(index, keys, x, rows, n_candidates, k_eff)
        if progress is not None:
            progress(f"IVF search (nprobe {nprobe}): {min(n, start + _CHUNK)}/{n} rows "
                     f"({time.perf_counter() - searched:.1f}s)")
    del index, coarse, quantizer, keys
    return _fill_short_rows(x, indices, sims, k_eff, progress)


def _unit_rows_and_k(vectors: np.ndarray, k: object, normalized: bool) -> tuple[np.ndarray, int]:
    """The unit float32 rows (``vectors`` itself when ``normalized``) and the neighbours each can have."""
    k = positive_int("k_neighbors", k)
    x = vectors if normalized else normalize_rows(vectors)
    return x, max(0, min(k, x.shape[0] - 1))


def _fill_short_rows(x, indices, sims, k_eff, progress):
    """Search exactly the rows an index returned fewer than ``k_eff`` neighbours for; clip similarities."""
    indices[~np.isfinite(sims)] = -1
    short = np.flatnonzero((indices < 0).any(axis=1))
    if short.size:  # the index could not reach k neighbours for these rows: search them exactly
        indices[short], sims[short] = query_knn(x[short], x, k_eff, exclude=short, normalized=True)
        if progress is not None:
            progress(f"{short.size} rows with fewer than {k_eff} neighbours from the index searched exactly",
                     final=True)
    np.clip(sims, -1.0, 1.0, out=sims)
    return indices, sims


def _rerank(index, keys: np.ndarray, x: np.ndarray, rows: np.ndarray, n_candidates: int, k: int):
    """The ``k`` best of the index's ``n_candidates`` for ``rows``, by exact cosine (the row itself dropped)."""
    _, found = index.search(np.ascontiguousarray(keys[rows]), n_candidates)
    return _best_by_cosine(x, rows, found, k)


def _best_by_cosine(x: np.ndarray, rows: np.ndarray, found: np.ndarray, k: int):
    """The ``k`` candidates ``found`` for ``rows`` most similar to them by exact cosine (the row itself dropped)."""
    found_sims = _pair_similarities(x, rows, found)
    found_sims[(found == rows[:, None]) | (found < 0)] = -np.inf
    order = np.lexsort((found, -found_sims), axis=1)[:, :k]  # ties by index, as the exact search
    return np.take_along_axis(found, order, axis=1), np.take_along_axis(found_sims, order, axis=1)


def _pair_similarities(x: np.ndarray, rows: np.ndarray, others: np.ndarray) -> np.ndarray:
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


def _pca_projection(x: np.ndarray, dims: int, *, sample: int = 20_000, seed: int = 0) -> np.ndarray:
    """``x`` centred and projected on its first ``dims`` principal components (fitted on a seeded sample)."""
    return _project(x, *_pca_basis(x, dims, sample=sample, seed=seed))


def _pca_basis(x: np.ndarray, dims: int, *, sample: int = 20_000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The mean and first ``dims`` principal axes ``(d, dims)`` of ``x``, fitted on a seeded sample of rows."""
    rng = np.random.default_rng(seed)
    fit = x[np.sort(rng.choice(x.shape[0], size=min(sample, x.shape[0]), replace=False))]
    mean = fit.mean(axis=0)
    _, _, vt = np.linalg.svd(fit - mean, full_matrices=False)
    return mean, np.ascontiguousarray(vt[:dims].T, dtype=np.float32)


def _project(x: np.ndarray, mean: np.ndarray, basis: np.ndarray) -> np.ndarray:
    """``(x - mean) @ basis``, a slice of rows at a time (no centred copy of ``x``)."""
    out = np.empty((x.shape[0], basis.shape[1]), dtype=np.float32)
    for start in range(0, x.shape[0], 100_000):
        np.matmul(x[start : start + 100_000] - mean, basis, out=out[start : start + 100_000])
    return out


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
    returned_sims = _pair_similarities(x, sample, np.where(valid, returned, 0))
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
    import faiss

    queries = np.ascontiguousarray(queries, dtype=np.float32)
    best = np.full((len(queries), k), -np.inf, dtype=np.float32)
    seen = 0
    for ids, rows in batches:
        seen += len(ids)
        if len(queries) == 0:
            continue
        # the slice's k + 1 best (faiss: one BLAS product and a heap per query), then the query itself
        # dropped: k others remain whenever the slice has them
        rows = np.ascontiguousarray(rows)
        top_sims, top = faiss.knn(queries, rows, min(k + 1, len(rows)), faiss.METRIC_INNER_PRODUCT)
        own = pc.fill_null(pc.index_in(query_ids, value_set=ids), -1).to_numpy()  # each query's row in the slice
        top_sims[(top == own[:, None]) & (own[:, None] >= 0)] = -np.inf  # a query is never its own neighbour
        both = np.concatenate([best, top_sims], axis=1)
        best = -np.partition(-both, k - 1, axis=1)[:, :k]
    others = max(0, seen - 1)
    best.sort(axis=1)
    return best[:, max(0, k - min(k, others))] if others else np.full(len(queries), -np.inf, np.float32)


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
    index_type = np.int32 if max(len(ids), len(neighbor_ids)) < 2**31 else np.int64
    rows = np.repeat(np.arange(n, dtype=index_type), k)
    neighbors = indices.reshape(-1).astype(index_type)
    return pa.table(
        {
            "dataset_id": pa.DictionaryArray.from_arrays(pa.array(rows), ids),
            "neighbor_id": pa.DictionaryArray.from_arrays(pa.array(neighbors), neighbor_ids),
            "neighbor_rank": pa.array(np.tile(np.arange(1, k + 1, dtype=np.int32), n)),
            "similarity": pa.array(similarities.reshape(-1).astype(np.float64)),
        }
    )
