"""Pictures of a clustering run, written next to the JSON report."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .browser import UNCLUSTERED_COLOUR, cluster_colours, write_browser
from .embeddings import Embeddings, as_embeddings
from .layout import layout_2d, stratified_rows

__all__ = ["FIGURE_FILES", "MAP_POINTS", "MIN_DRAWN_PER_CLUSTER", "NAMED_CLUSTERS", "project_2d", "write_figures"]

# Up to this many clusters the size chart draws one named bar per cluster; past it, one outline.
_LABELLED_BARS = 40
FIGURE_FILES = {
    "similarity": "knn_similarity_distribution.png",
    "sizes": "cluster_sizes.png",
    "map": "cluster_map.png",
    "browser": "cluster_browser.html",
}
# Datasets drawn in the map and the browser: beyond this, a sample stratified by cluster (each cluster
# keeps its share, and at least MIN_DRAWN_PER_CLUSTER members), so the drawn count is at most about
# MAP_POINTS + MIN_DRAWN_PER_CLUSTER x clusters.
MAP_POINTS = 50_000
MIN_DRAWN_PER_CLUSTER = 3
NAMED_CLUSTERS = 30  # the map PNG names this many drawn clusters (largest first) by their top terms


def project_2d(vectors: np.ndarray, *, seed: int = 0) -> np.ndarray:
    """Project unit-normalised rows on their first two principal axes (linear in N; the axes fitted on a sample)."""
    return layout_2d(vectors, "pca", seed=seed).xy.astype(np.float64)


def _densest_spot(points: np.ndarray) -> tuple[float, float]:
    """Centre of the fullest cell of a 12 x 12 histogram of ``points`` (their median when there are few)."""
    if len(points) < 10:
        cx, cy = np.median(points, axis=0)
        return float(cx), float(cy)
    counts, xs, ys = np.histogram2d(points[:, 0], points[:, 1], bins=12)
    i, j = np.unravel_index(counts.argmax(), counts.shape)
    return float(xs[i] + xs[i + 1]) / 2, float(ys[j] + ys[j + 1]) / 2


def write_figures(
    histogram: pa.Table,
    threshold: pa.Table,
    memberships: pa.Table,
    embeddings: Embeddings | pa.Table,
    out_dir: str | Path,
    *,
    clusters: pa.Table | None = None,
    texts: pa.Table | None = None,
    title: str = "Clusters",
) -> pa.Table:
    """Write the three PNGs and the cluster browser of a run; return a table listing them.

    Parameters
    ----------
    histogram
        ``bin_start``, ``bin_end``, ``n``: histogram of the k-NN similarities.
    threshold
        The one-row threshold table (``threshold_method``,
        ``similarity_threshold`` and the ``*_threshold`` candidates).
    memberships
        ``dataset_id``, ``cluster`` (and optionally ``unclustered_reason``)
        of every embedded dataset.
    embeddings
        ``dataset_id``, ``embedding`` of the datasets to draw in the map and
        the browser: all of them, or a sample (the caller's; beyond
        :data:`MAP_POINTS` rows a sample stratified by cluster is drawn).
    out_dir
        Folder to write to; created (with its parents) when missing.
    clusters
        One row per cluster (the ``clusters`` mart: ``cluster``, ``size``,
        ``top_terms``, ``exemplar_ids``, ``exemplar_texts``): names the
        clusters in the map and fills the browser's list. Default: sizes
        from ``memberships``, no terms.
    texts
        ``dataset_id``, ``first_words`` of (at least) the drawn datasets:
        shown on hover in the browser and searched by word.
    title
        Title of the browser page.

    Returns
    -------
    pyarrow.Table
        One row per file: ``figure``, ``path``, ``n_points`` (similarity
        pairs, clusters, or datasets drawn in the map and the browser).
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
    names, sizes = (np.unique(np.asarray(clustered, dtype=object), return_counts=True) if clustered
                    else (np.array([], dtype=object), np.array([], dtype=np.int64)))
    largest_first = np.argsort(-np.asarray(sizes), kind="stable")
    names, sizes = names[largest_first], np.asarray(sizes)[largest_first]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5), dpi=110)
    if 0 < len(sizes) <= _LABELLED_BARS:  # one bar per cluster, named, its size on top
        x = np.arange(len(sizes))
        bars = left.bar(x, sizes, width=0.8, color="#4c78a8")
        left.bar_label(bars, fontsize=7, padding=1)
        left.set_xticks(x, [str(n) for n in names], rotation=60, ha="right", fontsize=7)
        left.set_xlim(-0.6, len(sizes) - 0.4)
    elif len(sizes):  # one filled step outline: a million datasets make thousands of clusters
        left.fill_between(np.arange(len(sizes) + 1), np.append(sizes, sizes[-1]), step="post", color="#4c78a8",
                          linewidth=0)
    left.set_xlabel("cluster (largest first)")
    left.set_ylabel("datasets")
    left.set_title(f"{len(sizes)} clusters, {len(labels) - len(clustered):,} datasets unclustered")
    if len(sizes):
        bins = np.unique(np.geomspace(1, sizes.max() + 1, 25).astype(int))
        right.hist(sizes, bins=bins, color="#f58518", edgecolor="white")
        right.set_xscale("log")
        right.yaxis.set_major_locator(plt.MaxNLocator(integer=True))  # counts of clusters
    right.set_xlabel("cluster size (log scale)")
    right.set_ylabel("clusters")
    right.set_title("size distribution")
    fig.tight_layout()
    fig.savefig(out / FIGURE_FILES["sizes"])
    plt.close(fig)
    written.append(("sizes", len(sizes)))

    # 3. 2-D map coloured by cluster, on a t-SNE layout (mdc_clustering.layout)
    if clusters is None:
        names, counts = (np.unique(np.asarray(clustered, dtype=object), return_counts=True) if clustered
                         else ([], []))
        clusters = pa.table({"cluster": pa.array(list(names), pa.string()), "size": pa.array(counts, pa.int64())})
    table = sorted(zip(clusters.column("cluster").to_pylist(), clusters.column("size").to_pylist(), strict=True),
                   key=lambda r: (-int(r[1]), str(r[0])))
    order = {label: i for i, (label, _) in enumerate(table)}
    colours = cluster_colours(len(order))
    terms = dict(zip(clusters.column("cluster").to_pylist(), clusters.column("top_terms").to_pylist(), strict=True)
                 ) if "top_terms" in clusters.column_names else {}
    emb = as_embeddings(embeddings)
    at = pc.index_in(emb.ids, value_set=memberships.column("dataset_id").combine_chunks())
    map_labels = memberships.column("cluster").combine_chunks().take(at).to_pylist()
    codes = np.array([order.get(c, -1) if c is not None else -1 for c in map_labels], dtype=np.int64)
    shown = np.arange(len(emb))
    if len(emb) > MAP_POINTS + MIN_DRAWN_PER_CLUSTER * len(order):
        shown = stratified_rows(codes, MAP_POINTS, min_per_label=MIN_DRAWN_PER_CLUSTER)
    codes = codes[shown]
    xy = layout_2d(emb.matrix[shown], labels=codes).xy

    fig, ax = plt.subplots(figsize=(11, 9), dpi=110)
    size = max(1.0, 14.0 * min(1.0, 3000 / max(1, len(shown))))
    none = codes < 0
    if none.any():
        ax.scatter(xy[none, 0], xy[none, 1], s=size, c=UNCLUSTERED_COLOUR, linewidths=0, rasterized=True,
                   label=f"unclustered ({int(none.sum()):,} drawn)")
    # largest clusters first, so the small ones are drawn on top and stay visible
    painted = np.flatnonzero(~none)
    painted = painted[np.argsort(codes[painted], kind="stable")]
    ax.scatter(xy[painted, 0], xy[painted, 1], s=size, c=[colours[c] for c in codes[painted]], linewidths=0,
               rasterized=True)
    drawn_codes = np.unique(codes[codes >= 0])
    named = drawn_codes[:NAMED_CLUSTERS]
    for code in named:  # name each drawn cluster (the largest NAMED_CLUSTERS) where most of it lies
        label = table[code][0]
        cx, cy = _densest_spot(xy[codes == code])
        words = ", ".join((terms.get(label) or [])[:3])
        ax.annotate(f"{label}\n{words}" if words else label, (cx, cy), fontsize=7.5, ha="center", va="center",
                    color="#111111", bbox={"boxstyle": "round,pad=0.2", "fc": "white", "alpha": 0.8,
                                           "ec": colours[code], "lw": 1.2})
    if none.any():
        ax.legend(loc="lower right", fontsize=8, frameon=False, markerscale=2)
    ax.set_xticks([])
    ax.set_yticks([])
    drawn = f"{len(shown):,} of {len(labels):,}" if len(shown) < len(labels) else f"{len(shown):,}"
    which = "each named" if len(named) == len(drawn_codes) else f"the {len(named)} largest named"
    ax.set_title(f"{drawn} datasets, t-SNE layout: {len(drawn_codes)} clusters coloured, {which} by their top terms",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(out / FIGURE_FILES["map"])
    plt.close(fig)
    written.append(("map", len(shown)))

    # 4. the cluster browser (mdc_clustering.browser), on the same layout
    ids = emb.ids.take(pa.array(shown))
    words = None
    if texts is not None:
        where = pc.index_in(ids, value_set=texts.column("dataset_id").combine_chunks())
        words = texts.column("first_words").combine_chunks().take(where)
    points = pa.table({
        "dataset_id": ids,
        "cluster": pa.array([table[c][0] if c >= 0 else None for c in codes], pa.string()),
        "x": xy[:, 0],
        "y": xy[:, 1],
        "first_words": words if words is not None else pa.nulls(len(ids), pa.string()),
    })
    unclustered = memberships.filter(pc.is_null(memberships.column("cluster")))
    write_browser(points, clusters, out / FIGURE_FILES["browser"], n_datasets=len(labels), unclustered=unclustered,
                  title=title, cap=MAP_POINTS)
    written.append(("browser", len(shown)))

    return pa.table(
        {
            "figure": [name for name, _ in written],
            "path": [str(out / FIGURE_FILES[name]) for name, _ in written],
            "n_points": pa.array([count for _, count in written], pa.int64()),
        }
    )
