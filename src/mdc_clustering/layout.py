"""A 2-D layout of embeddings for the cluster map and the cluster browser.

The default, ``tsne``: every row is projected on 50 principal axes (fitted on
a sample), t-SNE (scikit-learn, Barnes-Hut) is fitted on at most
``fit_points`` rows (stratified over the clusters when labels are given, so
that every cluster has fitted members), and every other row is placed at the
similarity-weighted mean of the positions of its ``neighbours`` most similar
fitted rows (cosine in the 50-D projection). The t-SNE costs the same at any
N; the projection and the placement are one pass over the rows in slices:
linear in N, memory O(N). ``pca`` (the first two principal axes) is kept for
comparison; ``umap`` (needs umap-learn, the ``bench`` extra) and ``drl``
(igraph's DrL force-directed layout of the fitted rows' 15-NN graph) are
only for the layout benchmark (``benchmarks/layout.py``, results in
``benchmarks/RESULTS.md``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from .neighbors._common import pca_basis

__all__ = ["FIT_POINTS", "ITERATIONS", "LAYOUT_METHODS", "Layout", "layout_2d", "stratified_rows"]

LAYOUT_METHODS = ("tsne", "pca", "umap", "drl")
FIT_POINTS = 2_000  # rows t-SNE is fitted on; the rest are placed by their nearest fitted rows
ITERATIONS = 500  # t-SNE steps (scikit-learn max_iter); chosen by benchmarks/layout.py
_PCA_DIMS = 50
_SLICE = 16_384


@dataclass(frozen=True)
class Layout:
    """A 2-D position per input row, and how it was made.

    Attributes
    ----------
    xy
        ``float32 (n, 2)``: row ``i``'s position (arbitrary units, roughly centred).
    fit_rows
        Sorted indices of the rows the projection was fitted on (all rows for ``pca``).
    method
        ``tsne``, ``pca`` or ``umap``.
    neighbours
        Fitted rows each other row was averaged over (0 when every row was fitted).
    seconds
        Wall time of each step: ``project`` (unit rows on the principal
        axes), ``fit`` (t-SNE / UMAP on the fitted rows), ``place`` (the other rows).
    """

    xy: np.ndarray
    fit_rows: np.ndarray
    method: str
    neighbours: int
    seconds: dict[str, float] = field(default_factory=dict)


def stratified_rows(labels: np.ndarray, size: int, *, min_per_label: int = 3, seed: int = 0) -> np.ndarray:
    """Sorted indices of about ``size`` rows: every label's first ``min_per_label`` (seeded order), the rest random.

    ``labels``: one integer per row, negative = no label (those are only
    drawn in the random part; all negative = a plain random sample). Returns every
    row when ``size`` covers them all. The guaranteed part is cut down to
    ``size`` when there are more labels than ``size / min_per_label``
    (largest labels first), so the result never exceeds ``size`` rows.
    """
    labels = np.asarray(labels)
    n = len(labels)
    rng = np.random.default_rng(seed)
    if size >= n:
        return np.arange(n)
    order = rng.permutation(n)
    chosen = np.zeros(n, bool)
    lab = labels[order]
    labelled = lab >= 0
    if labelled.any() and min_per_label > 0:
        # rank of each row within its label, in the seeded order
        by_label = np.argsort(lab[labelled], kind="stable")
        sorted_labels = lab[labelled][by_label]
        starts = np.searchsorted(sorted_labels, sorted_labels, side="left")
        rank = np.empty(len(by_label), np.int64)
        rank[by_label] = np.arange(len(by_label)) - starts
        guaranteed = order[labelled][rank < min_per_label]
        if len(guaranteed) > size:  # more labels than room: keep the largest labels' rows
            counts = np.bincount(labels[labels >= 0])
            guaranteed = guaranteed[np.argsort(-counts[labels[guaranteed]], kind="stable")[:size]]
        chosen[guaranteed] = True
    rest = order[~chosen[order]][: max(0, size - int(chosen.sum()))]
    chosen[rest] = True
    return np.flatnonzero(chosen)


def _unit(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return x / norms


def layout_2d(
    vectors: np.ndarray,
    method: str = "tsne",
    *,
    labels: np.ndarray | None = None,
    fit_points: int = FIT_POINTS,
    neighbours: int = 10,
    iterations: int = ITERATIONS,
    seed: int = 0,
) -> Layout:
    """Place every row of ``vectors`` in 2-D so that similar rows lie close together.

    Parameters
    ----------
    vectors
        ``(n, d)`` embeddings (any norm; compared by cosine).
    method
        ``tsne`` (default), ``pca`` (first two principal axes), ``umap``
        (needs umap-learn) or ``drl`` (igraph's DrL layout of the k-NN
        graph); the last two for the benchmark only.
    labels
        Optional cluster code per row (negative = unclustered): the fitted
        rows then include at least 3 of every cluster.
    fit_points
        Rows the t-SNE / UMAP is fitted on.
    neighbours
        Fitted rows each other row is placed among.
    iterations
        t-SNE optimisation steps (scikit-learn's ``max_iter``; at least 250).
    seed
        Seeds the sample, the PCA fit and the t-SNE / UMAP generator.

    Returns
    -------
    Layout
        ``xy`` ``(n, 2)`` float32 and the fitted rows.
    """
    if method not in LAYOUT_METHODS:
        raise ValueError(f"layout method must be one of {', '.join(LAYOUT_METHODS)}, not {method!r}")
    from threadpoolctl import threadpool_limits  # a scikit-learn dependency

    # One BLAS / OpenMP thread: the threaded t-SNE and projection lose badly when the cores are busy
    # (a dbt build runs models side by side, the test suite a build per core); see benchmarks/RESULTS.md.
    with threadpool_limits(1):
        return _layout(vectors, method, labels, fit_points, neighbours, iterations, seed)


def _layout(vectors, method, labels, fit_points, neighbours, iterations, seed) -> Layout:
    x = np.asarray(vectors)
    n = len(x)
    seconds = {}
    started = time.perf_counter()
    if n == 0:
        return Layout(np.zeros((0, 2), np.float32), np.arange(0), method, 0)
    pca_rows = np.sort(np.random.default_rng(seed).choice(n, min(n, 20_000), replace=False))
    unit_fit = _unit(x[pca_rows].astype(np.float32))
    mean, basis = pca_basis(unit_fit, min(_PCA_DIMS, unit_fit.shape[1], max(1, n - 1)), seed=seed)
    proj = np.empty((n, basis.shape[1]), np.float32)
    for start in range(0, n, _SLICE):  # unit rows, centred, projected: a slice at a time
        proj[start : start + _SLICE] = (_unit(x[start : start + _SLICE].astype(np.float32)) - mean) @ basis
    seconds["project"] = time.perf_counter() - started

    if method == "pca" or n < 5:
        xy = proj[:, :2].copy() if proj.shape[1] >= 2 else np.c_[proj[:, :1], np.zeros((n, 1), np.float32)]
        return Layout(xy.astype(np.float32), np.arange(n), "pca", 0, seconds)

    fit_rows = stratified_rows(np.full(n, -1) if labels is None else np.asarray(labels), fit_points, seed=seed)
    fit = proj[fit_rows]
    if method == "tsne":
        from sklearn.manifold import TSNE

        perplexity = float(min(30.0, max(2.0, (len(fit_rows) - 1) / 3.5)))
        fitted = TSNE(
            n_components=2, perplexity=perplexity, init="pca", learning_rate="auto", max_iter=max(250, iterations),
            random_state=seed,
        ).fit_transform(fit)
    elif method == "drl":
        import random

        import igraph

        m = len(fit_rows)
        k = min(15, m - 1)
        unit = _unit(fit)
        sims = unit @ unit.T
        np.fill_diagonal(sims, -np.inf)
        nearest = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        graph = igraph.Graph(n=m, edges=np.c_[np.repeat(np.arange(m), k), nearest.ravel()].tolist())
        graph.es["weight"] = np.maximum(np.take_along_axis(sims, nearest, axis=1).ravel(), 1e-3).tolist()
        graph.simplify(combine_edges="max")
        igraph.set_random_number_generator(random.Random(seed))  # DrL draws from igraph's global generator
        fitted = np.asarray(graph.layout_drl(weights="weight").coords)
    else:
        import umap  # the bench extra

        fitted = umap.UMAP(n_neighbors=15, min_dist=0.1, metric="cosine", random_state=seed).fit_transform(fit)
    fitted = np.asarray(fitted, np.float32)
    seconds["fit"] = time.perf_counter() - started - seconds["project"]
    xy = np.empty((n, 2), np.float32)
    xy[fit_rows] = fitted
    others = np.setdiff1d(np.arange(n), fit_rows, assume_unique=True)
    m = min(neighbours, len(fit_rows))
    if len(others):
        fit_unit = _unit(fit)
        for start in range(0, len(others), _SLICE):
            rows = others[start : start + _SLICE]
            sims = _unit(proj[rows]) @ fit_unit.T
            top = np.argpartition(-sims, m - 1, axis=1)[:, :m]
            weights = np.maximum(np.take_along_axis(sims, top, axis=1), 1e-6)
            weights /= weights.sum(axis=1, keepdims=True)
            xy[rows] = np.einsum("rk,rkc->rc", weights, fitted[top])
    seconds["place"] = time.perf_counter() - started - seconds["project"] - seconds["fit"]
    return Layout(xy, fit_rows, method, m if len(others) else 0, seconds)
