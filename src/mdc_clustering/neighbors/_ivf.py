"""Approximate k-NN with a faiss inverted file of 4-bit codes on a PCA projection, tuned by a pilot sample."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..validation import optional_positive_int, positive_int, unit_interval
from ._common import CHUNK, KnnResult, best_by_cosine, pca_basis, project, rerank, search_rows, unit_rows_and_k
from ._exact import exact_knn, fill_short_rows, query_knn
from ._recall import distinct_others, recall_from_kth

# Rows of the IVF pilot recall checks.
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


# A stored IVF model is reused while the rows number between these shares of the rows it was trained on.
IVF_MODEL_ROWS_RANGE = (0.8, 1.25)


@dataclass(frozen=True, eq=False)
class IvfModel:
    """What an IVF search learnt from its rows, so that a re-run on mostly the same rows skips it.

    The projection (``mean``, ``basis``: the principal axes the pilot kept;
    both None when the rows were indexed whole), the trained and still empty
    faiss index (its k-means cells and 4-bit codebooks, ``faiss.serialize_index``)
    and the ``nprobe`` its pilot chose. A few kilobytes to a megabyte: no
    row is stored in it. :meth:`fits` says whether a search may reuse it.
    """

    dim: int
    trained_rows: int
    nprobe: int
    index: bytes
    mean: np.ndarray | None = None
    basis: np.ndarray | None = None

    def fits(self, n: int, d: int) -> bool:
        """Same dimension, and ``n`` within :data:`IVF_MODEL_ROWS_RANGE` of the rows it was trained on."""
        low, high = IVF_MODEL_ROWS_RANGE
        return self.dim == d and low * self.trained_rows <= n <= high * self.trained_rows

    def to_bytes(self) -> bytes:
        import io

        out = io.BytesIO()
        arrays = {"index": np.frombuffer(self.index, np.uint8),
                  "meta": np.array([self.dim, self.trained_rows, self.nprobe], np.int64)}
        if self.basis is not None:
            arrays.update(mean=self.mean, basis=self.basis)
        np.savez(out, **arrays)
        return out.getvalue()

    @classmethod
    def from_bytes(cls, blob: bytes | None) -> IvfModel | None:
        """The model :meth:`to_bytes` wrote; None for None or anything unreadable (a fresh index is trained)."""
        import io

        if not blob:
            return None
        try:
            with np.load(io.BytesIO(blob), allow_pickle=False) as saved:
                dim, trained_rows, nprobe = (int(v) for v in saved["meta"])
                basis = saved["basis"] if "basis" in saved else None
                return cls(dim, trained_rows, nprobe, saved["index"].tobytes(),
                           saved["mean"] if basis is not None else None, basis)
        except (OSError, ValueError, KeyError):
            return None


def ivf_knn(
    vectors: np.ndarray,
    k: int,
    params: IvfParams | None = None,
    *,
    normalized: bool = False,
    rows: np.ndarray | None = None,
    model: IvfModel | None = None,
    progress: Callable[..., None] | None = None,
) -> KnnResult:
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
    queries scan the same cells.

    With ``params.min_recall``, two pilot checks on :data:`IVF_PILOT_ROWS`
    seeded rows, searched exactly, tune the search before it runs (both
    always logged). First the projection: the pilot rows' nearest candidates
    in it, re-ranked in full dimension, must reach recall@k half-way from
    ``min_recall + PILOT_MARGIN`` to 1; if not, the projection grows by half
    (up to the full vectors): text embeddings need far more components
    than data of low intrinsic dimension. Then the cells:
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
    rows
        Optional ``int64`` row positions: the index holds every row, but only
        these rows are searched (for an incremental update); default all.
    model
        An :class:`IvfModel` of an earlier search (a re-run's): when it
        :meth:`~IvfModel.fits` the rows, its projection, cells, codebooks and
        ``nprobe`` are used and neither the principal axes, the k-means, nor
        the pilots run again (the recall model measures the result as
        always). The rows are added to it afresh.

    Returns
    -------
    KnnResult
        ``indices`` and ``similarities`` as :func:`exact_knn`'s (``(n,
        min(k, n - 1))``, by decreasing similarity, ties by index; with
        ``rows``, one row per entry of ``rows``, in its order);
        ``search_dims`` (the dimension the index compared rows in, after the
        pilot), ``nlist``, ``nprobe`` (the value searched with, after the
        pilot) and ``pilot_recall`` (recall@k on the pilot rows at that
        ``nprobe``; None when not checked). Below :data:`IVF_MIN_ROWS` rows
        (searched exactly) ``nlist`` and ``nprobe`` are None. ``model``: the
        :class:`IvfModel` searched with (trained here, or the one given),
        ``model_reused`` whether it was given.
    """
    import faiss

    params = params or IvfParams()
    x, k_eff = unit_rows_and_k(vectors, k, normalized)
    n, d = x.shape
    rows = None if rows is None else np.asarray(rows, dtype=np.int64)
    if n < IVF_MIN_ROWS:  # too few rows to train cells and codes on; the exact search costs nothing here
        if rows is None:
            return KnnResult(*exact_knn(x, k, normalized=True), search_dims=d)
        return KnnResult(*query_knn(x[rows], x, k_eff, exclude=rows, normalized=True), search_dims=d)
    started = time.perf_counter()
    n_candidates = min(n, k_eff + 1 + max(10, k_eff // 2))
    if model is not None and model.fits(n, d):
        return _search_with_model(x, k_eff, n_candidates, model, rows, started, progress)
    checked = params.min_recall is not None and n > IVF_PILOT_ROWS
    if checked:
        pilot = np.sort(np.random.default_rng(0).choice(n, IVF_PILOT_ROWS, replace=False))
        # exact k-th similarity among the others: the (k+1)-th of all rows, the row itself (1.0) being one
        all_sims, _ = faiss.knn(np.ascontiguousarray(x[pilot]), x, k_eff + 1, faiss.METRIC_INNER_PRODUCT)
        kth = all_sims[:, k_eff]
        wanted = min(1.0, params.min_recall + PILOT_MARGIN)
    dims = params.pca_dims if params.pca_dims is not None and params.pca_dims < d else d
    keys = x
    mean = basis_kept = None
    if dims < d:
        mean, basis = pca_basis(x, d)
        while True:
            keys = project(x, mean, basis[:, :dims])
            if not checked:
                break
            # the projection's ceiling: its exact nearest candidates, re-ranked in full dimension
            _, found = faiss.knn(np.ascontiguousarray(keys[pilot]), keys, n_candidates, faiss.METRIC_L2)
            best, best_sims = best_by_cosine(x, pilot, found, k_eff)
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
        basis_kept = np.ascontiguousarray(basis[:, :dims]) if dims < d else None
        del basis
    search_dims = dims
    keys = _even_columns(keys)
    dims = keys.shape[1]
    nlist = params.nlist or int(round(4 * np.sqrt(n)))
    nlist = max(1, min(nlist, n // 39))  # k-means wants >= 39 training rows a cell
    train = keys[np.sort(np.random.default_rng(0).choice(n, size=min(n, 40 * nlist), replace=False))]
    quantizer = faiss.IndexFlatL2(dims)
    coarse = faiss.IndexIVFPQFastScan(quantizer, dims, nlist, dims, 4)
    coarse.cp.seed = 0
    coarse.train(np.ascontiguousarray(train))
    trained = faiss.serialize_index(coarse).tobytes()  # before any row is added: cells and codebooks only
    del train
    index, order = _filled(coarse, quantizer, keys, rows)
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
            found, found_sims = rerank(index, keys, x, pilot, n_candidates, k_eff)
            recall = recall_from_kth(distinct_others(found, pilot), found_sims, kth)
            if progress is not None:  # always logged: it decides the search's cost
                progress(f"pilot recall@{k_eff} with nprobe {nprobe} of {nlist} cells on {IVF_PILOT_ROWS} rows: "
                         f"{recall:.3f} (wanted {wanted:.3f})", final=True)
            if recall >= wanted or nprobe >= most:
                break
            nprobe = min(most, (3 * nprobe + 1) // 2)
            coarse.nprobe = nprobe
    pilot_recall = recall if checked else None
    indices, sims = search_rows(index, keys, x, order, n_candidates, k_eff, rows=rows, progress=progress,
                                label=f"IVF search (nprobe {nprobe})")
    del index, coarse, quantizer, keys
    indices, sims = fill_short_rows(x, indices, sims, k_eff, progress, rows)
    kept = IvfModel(d, n, nprobe, trained, *((mean, basis_kept) if basis_kept is not None else (None, None)))
    return KnnResult(indices, sims, search_dims=search_dims, nlist=nlist, nprobe=nprobe, pilot_recall=pilot_recall,
                     model=kept, model_reused=False)


def _search_with_model(x, k_eff, n_candidates, model, rows, started, progress) -> KnnResult:
    """:func:`ivf_knn`'s index and search, with the projection, cells, codebooks and nprobe of ``model``."""
    import faiss

    n, d = x.shape
    keys = x if model.basis is None else project(x, model.mean, model.basis)
    search_dims = keys.shape[1]
    keys = _even_columns(keys)
    coarse = faiss.deserialize_index(np.frombuffer(model.index, np.uint8).copy())
    quantizer = faiss.downcast_index(coarse.quantizer)
    nlist = coarse.nlist
    coarse.nprobe = model.nprobe
    index, order = _filled(coarse, quantizer, keys, rows)
    if progress is not None:
        progress(f"IVF index ({keys.shape[1]} dims, {nlist} cells, 4-bit codes, trained on {model.trained_rows} rows "
                 f"by an earlier run): {n} rows in {time.perf_counter() - started:.1f}s", final=True)
    indices, sims = search_rows(index, keys, x, order, n_candidates, k_eff, rows=rows, progress=progress,
                                label=f"IVF search (nprobe {model.nprobe}, the earlier run's)")
    del index, coarse, quantizer, keys
    indices, sims = fill_short_rows(x, indices, sims, k_eff, progress, rows)
    return KnnResult(indices, sims, search_dims=search_dims, nlist=nlist, nprobe=model.nprobe, model=model,
                     model_reused=True)


def _even_columns(keys: np.ndarray) -> np.ndarray:
    """``keys`` with a zero column when their count is odd: fast-scan codes come in pairs (no distance changes)."""
    return np.ascontiguousarray(np.pad(keys, ((0, 0), (0, 1)))) if keys.shape[1] % 2 else keys


def _filled(coarse, quantizer, keys: np.ndarray, rows: np.ndarray | None):
    """The trained ``coarse`` index holding every row of ``keys`` behind an exact re-rank, and the order to search in.

    The order: the searched rows (all, or ``rows``) by their nearest cell, so that queries of one cell
    scan the same cells.
    """
    import faiss

    index = faiss.IndexRefineFlat(coarse)
    index.k_factor = _IVF_REFINE_FACTOR
    for start in range(0, keys.shape[0], CHUNK):
        index.add(keys[start : start + CHUNK])
    _, cell = quantizer.search(keys if rows is None else np.ascontiguousarray(keys[rows]), 1)
    return index, np.argsort(cell.ravel(), kind="stable")
