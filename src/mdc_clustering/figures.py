"""Pictures of a clustering run, written next to the JSON report."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .embeddings import Embeddings, as_embeddings
from .knn import normalize_rows

__all__ = ["FIGURE_FILES", "MAP_POINTS", "project_2d", "write_figures"]

FIGURE_FILES = {
    "similarity": "knn_similarity_distribution.png",
    "sizes": "cluster_sizes.png",
    "map": "cluster_map.png",
}
MAP_POINTS = 20_000  # points drawn in the map (a fixed random subset beyond that)
_FIT_POINTS = 20_000  # rows the 2-D projection is fitted on


def project_2d(vectors: np.ndarray, *, seed: int = 0) -> np.ndarray:
    """Project unit-normalised rows on their first two principal axes.

    The axes are fitted on at most 20,000 rows (a fixed random subset), then
    every row is projected with one (n, d) x (d, 2) product: linear in N.
    """
    n = len(vectors)
    rng = np.random.default_rng(seed)
    fit_rows = np.arange(n) if n <= _FIT_POINTS else np.sort(rng.choice(n, _FIT_POINTS, replace=False))
    fit = normalize_rows(vectors[fit_rows])
    mean = fit.mean(axis=0)
    _, _, vt = np.linalg.svd(fit - mean, full_matrices=False)
    axes = vt[:2].T
    axes *= np.sign(axes[np.abs(axes).argmax(axis=0), [0, 1]])  # deterministic orientation
    out = np.empty((n, 2), dtype=np.float64)
    for start in range(0, n, 65_536):  # a slice at a time: no N x d copy
        out[start : start + 65_536] = (normalize_rows(vectors[start : start + 65_536]) - mean) @ axes
    return out


def write_figures(
    histogram: pa.Table,
    threshold: pa.Table,
    memberships: pa.Table,
    embeddings: Embeddings | pa.Table,
    out_dir: str | Path,
) -> pa.Table:
    """Write the three PNGs of a run and return a table listing them.

    Parameters
    ----------
    histogram
        ``bin_start``, ``bin_end``, ``n``: histogram of the k-NN similarities.
    threshold
        The one-row threshold table (``threshold_method``,
        ``similarity_threshold`` and the ``*_threshold`` candidates).
    memberships
        ``dataset_id``, ``cluster`` of every embedded dataset.
    embeddings
        ``dataset_id``, ``embedding`` of the datasets to draw in the map: all
        of them, or a sample (beyond 20,000 rows a fixed random 20,000 are
        drawn anyway).
    out_dir
        Folder to write to; created (with its parents) when missing.

    Returns
    -------
    pyarrow.Table
        One row per figure: ``figure``, ``path``, ``n_points``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []

    # 1. k-NN similarity distribution with the thresholds
    fig, ax = plt.subplots(figsize=(9, 4.8), dpi=110)
    starts = np.asarray(histogram.column("bin_start").to_pylist(), float)
    ends = np.asarray(histogram.column("bin_end").to_pylist(), float)
    counts = np.asarray(histogram.column("n").to_pylist(), float)
    ax.bar(starts, counts, width=ends - starts, align="edge", color="#9db4cf", edgecolor="#6d8bb0", linewidth=0.3)
    row = threshold.to_pylist()[0]
    styles = {
        "degree_target": ("#1b7837", "--"),
        "percentile_90": ("#b2182b", ":"),
        "elbow_method": ("#762a83", "-."),
    }
    for method, (colour, dash) in styles.items():
        value = row.get(f"{method}_threshold")
        if value is not None:
            ax.axvline(value, color=colour, linestyle=dash, linewidth=1.2, label=f"{method} = {value:.3f}")
    if row["similarity_threshold"] is not None:
        ax.axvline(row["similarity_threshold"], color="black", linewidth=1.0, alpha=0.8, zorder=0,
                   label=f"used ({row['threshold_method']}) = {row['similarity_threshold']:.3f}")
    ax.set_xlabel("cosine similarity to a k-nearest neighbour")
    ax.set_ylabel("neighbour pairs (directed)")
    ax.set_title(
        f"k-NN similarities: {int(counts.sum()):,} pairs; {row['n_edges']:,} edges kept, "
        f"mean degree {row['mean_degree']:.1f}"
    )
    ax.legend(frameon=False, fontsize=9)
    fig.tight_layout()
    fig.savefig(out / FIGURE_FILES["similarity"])
    plt.close(fig)
    written.append(("similarity", int(counts.sum())))

    # 2. cluster size distribution
    labels = memberships.column("cluster").to_pylist()
    clustered = [c for c in labels if c is not None]
    _, sizes = np.unique(np.asarray(clustered, dtype=object), return_counts=True) if clustered else ([], [])
    sizes = np.sort(np.asarray(sizes))[::-1]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5), dpi=110)
    # one filled step outline, not a bar per cluster: a million datasets make tens of thousands of clusters
    if len(sizes):
        left.fill_between(np.arange(len(sizes) + 1), np.append(sizes, sizes[-1]), step="post", color="#4c78a8",
                          linewidth=0)
    left.set_xlabel("cluster (largest first)")
    left.set_ylabel("datasets")
    left.set_title(f"{len(sizes)} clusters, {len(labels) - len(clustered):,} datasets unclustered")
    if len(sizes):
        bins = np.unique(np.geomspace(1, sizes.max() + 1, 25).astype(int))
        right.hist(sizes, bins=bins, color="#f58518", edgecolor="white")
        right.set_xscale("log")
    right.set_xlabel("cluster size (log scale)")
    right.set_ylabel("clusters")
    right.set_title("size distribution")
    fig.tight_layout()
    fig.savefig(out / FIGURE_FILES["sizes"])
    plt.close(fig)
    written.append(("sizes", len(sizes)))

    # 3. 2-D map coloured by cluster
    emb = as_embeddings(embeddings)
    xy = project_2d(emb.matrix)
    n = len(xy)
    shown = np.arange(n)
    if n > MAP_POINTS:
        shown = np.sort(np.random.default_rng(0).choice(n, MAP_POINTS, replace=False))
    at = pc.index_in(emb.ids, value_set=memberships.column("dataset_id").combine_chunks())
    map_labels = memberships.column("cluster").combine_chunks().take(at).to_pylist()
    label_arr = np.asarray([c if c is not None else "" for c in map_labels], dtype=object)
    order = {c: i for i, c in enumerate(sorted(set(clustered), key=lambda c: int(c.rsplit("_", 1)[-1])))}
    codes = np.array([order.get(c, -1) for c in label_arr])
    fig, ax = plt.subplots(figsize=(9, 8), dpi=110)
    size = max(1.0, 12.0 * min(1.0, 3000 / len(shown)))
    none = shown[codes[shown] < 0]
    ax.scatter(xy[none, 0], xy[none, 1], s=size, c="#cccccc", linewidths=0, rasterized=True, label="unclustered")
    # The 20 largest clusters get their own colour; smaller ones share a dark grey.
    rest = shown[codes[shown] >= 20]
    ax.scatter(xy[rest, 0], xy[rest, 1], s=size, c="#777777", linewidths=0, rasterized=True,
               label="smaller clusters")
    cmap = plt.get_cmap("tab20")
    for code in range(min(20, len(order))):
        pts = shown[codes[shown] == code]
        ax.scatter(xy[pts, 0], xy[pts, 1], s=size, color=cmap(code), linewidths=0, rasterized=True)
    ax.legend(loc="lower right", fontsize=8, frameon=False, markerscale=2)
    for label, code in list(order.items())[:12]:  # name the 12 largest clusters at their centre
        members = codes == code
        if not members.any():  # not in the drawn sample
            continue
        cx, cy = np.median(xy[members], axis=0)
        ax.annotate(label, (cx, cy), fontsize=8, ha="center", weight="bold",
                    bbox={"boxstyle": "round,pad=0.15", "fc": "white", "alpha": 0.7, "lw": 0})
    ax.set_xticks([])
    ax.set_yticks([])
    drawn = f"{len(shown):,} of {len(labels):,}" if len(shown) < len(labels) else f"{len(shown):,}"
    ax.set_title(f"{drawn} datasets on their first two principal axes; the 20 largest clusters in colour")
    fig.tight_layout()
    fig.savefig(out / FIGURE_FILES["map"])
    plt.close(fig)
    written.append(("map", len(shown)))

    return pa.table(
        {
            "figure": [name for name, _ in written],
            "path": [str(out / FIGURE_FILES[name]) for name, _ in written],
            "n_points": pa.array([count for _, count in written], pa.int64()),
        }
    )
