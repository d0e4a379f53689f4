"""Which 2-D layout separates clusters best, and what it costs: the measurement behind the cluster map.

For each data set and each candidate layout it prints (and with --results
appends to benchmarks/RESULTS.md):

- kNN@10 kept: for 1,000 seeded query rows, the share of their 10 nearest
  neighbours by cosine in the full embedding that are also among their 10
  nearest in 2-D (all rows searched, exactly);
- silhouette (2-D) of the cluster labels, on a seeded 10,000-row subsample
  (1 = clusters far apart and tight, 0 = overlapping);
- wall time of the layout, split into projection, fit and placement.

With --browser N it instead writes the figures and the cluster browser of a
synthetic set of N rows (truth labels as clusters, 1% unclustered) the way
the figures model does, and prints the time and the HTML file's size.

Data sets: the embedded sample (labels: the clusters of a built pipeline
file, --sample-db; without it the sample is skipped) and synthetic
clustered embeddings (benchmarks/synthetic.py, kind lowdim, labels: the
truth) at each --n.

    .venv/bin/python benchmarks/layout.py --sample-db data/pipeline.duckdb --n 20000 100000
    .venv/bin/python benchmarks/layout.py --browser 100000
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from mdc_clustering.layout import layout_2d  # noqa: E402

CANDIDATES = [
    ("pca", {"method": "pca"}),
    ("tsne, fit 1k, 500 steps", {"method": "tsne", "fit_points": 1_000, "iterations": 500}),
    ("tsne, fit 2k, 500 steps", {"method": "tsne", "fit_points": 2_000, "iterations": 500}),
    ("tsne, fit 2k", {"method": "tsne", "fit_points": 2_000, "iterations": 1_000}),
    ("tsne, fit 5k", {"method": "tsne", "fit_points": 5_000, "iterations": 1_000}),
    ("tsne, fit 10k", {"method": "tsne", "fit_points": 10_000, "iterations": 1_000}),
    ("umap, fit 5k", {"method": "umap", "fit_points": 5_000}),
    ("tsne, fit 2k, 500 steps, 3 nb", {"method": "tsne", "fit_points": 2_000, "iterations": 500, "neighbours": 3}),
    ("drl k-NN graph, fit 2k", {"method": "drl", "fit_points": 2_000}),
    ("drl k-NN graph, fit 5k", {"method": "drl", "fit_points": 5_000}),
    ("umap, fit 10k", {"method": "umap", "fit_points": 10_000}),
]


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def knn_kept(x: np.ndarray, xy: np.ndarray, *, k: int = 10, queries: int = 1_000, seed: int = 0) -> float:
    rng = np.random.default_rng(seed)
    q = np.sort(rng.choice(len(x), min(queries, len(x)), replace=False))
    xu = unit(x.astype(np.float32))
    kept = 0
    for start in range(0, len(q), 250):
        rows = q[start : start + 250]
        sims = xu[rows] @ xu.T
        sims[np.arange(len(rows)), rows] = -np.inf
        high = np.argpartition(-sims, k, axis=1)[:, :k]
        d2 = ((xy[rows, None, :] - xy[None, :, :]) ** 2).sum(-1)
        d2[np.arange(len(rows)), rows] = np.inf
        low = np.argpartition(d2, k, axis=1)[:, :k]
        kept += sum(len(set(a) & set(b)) for a, b in zip(high, low, strict=True))
    return kept / (len(q) * k)


def silhouette_2d(xy: np.ndarray, labels: np.ndarray, *, seed: int = 0) -> float:
    from sklearn.metrics import silhouette_score

    keep = labels >= 0
    return float(silhouette_score(xy[keep], labels[keep], sample_size=min(10_000, int(keep.sum())), random_state=seed))


def sample_set(db: Path):
    """The embeddings and clusters of a built sample pipeline file (its own tables, read only)."""
    import duckdb

    con = duckdb.connect(str(db), read_only=True)
    table = con.sql("select dataset_id, embedding from clustering.stg_chroma__embeddings order by dataset_id")
    table = table.to_arrow_table()
    rows = dict(con.execute("select dataset_id, cluster from clustering.int_datasets_clustered").fetchall())
    con.close()
    ids = table.column("dataset_id").to_pylist()
    x = table.column("embedding").combine_chunks().flatten().to_numpy().reshape(len(ids), -1)
    names = sorted({c for c in rows.values() if c is not None})
    code = {c: i for i, c in enumerate(names)}
    labels = np.array([code.get(rows.get(i), -1) for i in ids])
    return x, labels


def synthetic_set(n: int, workdir: Path):
    from synthetic import SyntheticSpec, default_clusters, generate

    path = workdir / f"lowdim_{n}.npy"
    truth = generate(SyntheticSpec(n=n, clusters=default_clusters(n), kind="lowdim"), path)
    return np.load(path), truth


def browser_run(n: int, workdir: Path) -> str:
    """Figures and browser of a synthetic set, as rpt_clustering_figures writes them; a Markdown line."""
    from collections import Counter

    import pyarrow as pa
    from synthetic import synthetic_texts

    from mdc_clustering.figures import FIGURE_FILES, write_figures

    x, truth = synthetic_set(n, workdir)
    texts = synthetic_texts(truth, 0)
    ids = [f"synthetic/{i:07d}" for i in range(n)]
    labels = [None if i % 100 == 0 else f"cluster_{t}" for i, t in enumerate(truth)]
    words = [" ".join(t.split()[:14]) for t in texts]
    members = pa.table({"dataset_id": ids, "cluster": labels,
                        "unclustered_reason": ["no_edge" if c is None else None for c in labels]})
    names = sorted({c for c in labels if c is not None}, key=lambda c: int(c.split("_")[1]))
    by_cluster = {c: Counter() for c in names}
    for c, t in zip(labels, texts, strict=True):
        if c is not None and sum(by_cluster[c].values()) < 20_000:
            by_cluster[c].update(t.split())
    clusters = pa.table({
        "cluster": names,
        "size": [sum(1 for c in labels if c == name) for name in names],
        "top_terms": [[w for w, _ in by_cluster[c].most_common(10)] for c in names],
        "exemplar_ids": [[ids[labels.index(c)]] for c in names],
        "exemplar_texts": [[words[labels.index(c)]] for c in names],
    })
    histogram = pa.table({"bin_start": [0.5], "bin_end": [0.51], "n": [n * 30]})
    threshold = pa.table({"threshold_method": ["degree_target"], "similarity_threshold": [0.5],
                          "degree_target_threshold": [0.5], "n_edges": [n * 15], "mean_degree": [30.0]})
    embeddings = pa.table({"dataset_id": ids, "embedding": pa.FixedSizeListArray.from_arrays(
        pa.array(x.reshape(-1)), x.shape[1])})
    started = time.perf_counter()
    out = write_figures(histogram, threshold, members, embeddings, workdir / "figures", clusters=clusters,
                        texts=pa.table({"dataset_id": ids, "first_words": words}), title=f"synthetic {n:,}")
    seconds = time.perf_counter() - started
    drawn = dict(zip(out.column("figure").to_pylist(), out.column("n_points").to_pylist(), strict=True))["browser"]
    size = (workdir / "figures" / FIGURE_FILES["browser"]).stat().st_size
    return (f"| synthetic lowdim | {n:,} | {len(names)} | {drawn:,} | {size / 1e6:.1f} MB "
            f"({size / drawn:.0f} B per drawn dataset) | {seconds:.1f} |")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sample-db", type=Path, help="a built pipeline file of the sample (read only)")
    parser.add_argument("--n", type=int, nargs="*", default=[20_000, 100_000], help="synthetic set sizes")
    parser.add_argument("--only", nargs="*", help="candidate names to run (default: all)")
    parser.add_argument("--results", type=Path, help="append the table to this Markdown file")
    parser.add_argument("--browser", type=int, metavar="N", help="write the figures and browser of N synthetic rows")
    args = parser.parse_args(argv)
    if args.browser:
        with tempfile.TemporaryDirectory() as tmp:
            line = browser_run(args.browser, Path(tmp))
        text = ("| data | N | clusters | drawn | cluster_browser.html | seconds (all four figures) |\n"
                "|---|---:|---:|---:|---|---:|\n" + line)
        print(text)
        if args.results:
            with args.results.open("a") as out:
                out.write("\n" + text + "\n")
        return
    candidates = [c for c in CANDIDATES if not args.only or c[0] in args.only]
    try:
        import umap  # noqa: F401
    except ImportError:
        candidates = [c for c in candidates if c[1]["method"] != "umap"]
        print("umap-learn not installed (the bench extra): UMAP skipped")
    lines = [
        "| data | N | clusters | layout | kNN@10 kept | silhouette 2-D | seconds (project + fit + place) |",
        "|---|---:|---:|---|---:|---:|---|",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        sets = []
        if args.sample_db:
            sets.append(("sample (MiniLM, Leiden labels)", lambda: sample_set(args.sample_db)))
        for n in args.n:
            sets.append(("synthetic lowdim (truth labels)", lambda n=n: synthetic_set(n, Path(tmp))))
        for name, load in sets:
            x, labels = load()
            k = len(np.unique(labels[labels >= 0]))
            for label, kwargs in candidates:
                if kwargs.get("fit_points", 0) > len(x) and any(
                    c[1]["method"] == kwargs["method"] and len(x) <= c[1].get("fit_points", 0) < kwargs["fit_points"]
                    for c in candidates
                ):
                    continue  # the same fit on every row as a smaller candidate
                started = time.perf_counter()
                layout = layout_2d(x, labels=labels, **kwargs)
                total = time.perf_counter() - started
                kept, sil = knn_kept(x, layout.xy), silhouette_2d(layout.xy, labels)
                parts = " + ".join(f"{layout.seconds.get(s, 0):.1f}" for s in ("project", "fit", "place"))
                row = f"| {name} | {len(x):,} | {k} | {label} | {kept:.3f} | {sil:.3f} | {total:.1f} ({parts}) |"
                print(row, flush=True)
                lines.append(row)
    machine = f"{platform.machine()}, {__import__('os').cpu_count()} cores, Python {platform.python_version()}"
    text = "\n".join(lines)
    print(text)
    if args.results:
        with args.results.open("a") as out:
            out.write(f"\n<!-- layout run: {machine} -->\n{text}\n")


if __name__ == "__main__":
    main()
