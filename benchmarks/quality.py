"""Quality benchmark: the default `dbt build` against scanpy, plain k-NN + Leiden and KMeans, on labelled sets.

For every labelled set (the real-text sets in ``benchmarks/data/``, built by
``scripts/make_quality_sets.py``, plus synthetic sets from
``benchmarks/synthetic.py``), one command runs, on the same embeddings:

- **default build**: the set is loaded into a fresh Chroma store and pipeline
  DuckDB file, and ``dbt build`` runs with the project's defaults; the
  clusters are read from ``main.datasets``;
- **target build**: the same warehouse built again with
  ``target_n_clusters`` set to the true class count (a build that stops
  instead is shown as such, with its message);
- **scanpy**: ``sc.pp.neighbors(n_neighbors=15, metric="cosine")`` +
  ``sc.tl.leiden(flavor="igraph", n_iterations=2)`` (scanpy's defaults but the
  metric);
- **plain k-NN + Leiden**: an independent implementation (scikit-learn brute
  cosine k-NN, k = 30, every k-NN pair once with its cosine similarity as the
  weight, igraph's Leiden on modularity at resolution 1);
- **KMeans** with the true k (``n_init=10``) on the unit-length embeddings.

Each is scored against the labels: ARI and NMI (an unclustered dataset counts
as a cluster of its own), the share left unclustered, the number of clusters
(of two or more members) and their size spread (min / median / max).

Usage::

    .venv/bin/python benchmarks/quality.py [--sets name ...] [--workdir DIR] [--var key=value ...]
        [--results benchmarks/RESULTS.md]

With ``--results`` the table replaces the part of that file between the
markers ``<!-- quality:start -->`` and ``<!-- quality:end -->``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scale import (  # noqa: E402
    Warehouse,
    cluster_assignments,
    ensure_scanpy,
    git_commit,
    load_warehouse,
    run_dbt,
    versions,
)
from synthetic import SyntheticSpec, generate, synthetic_texts  # noqa: E402

DATA = Path(__file__).resolve().parent / "data"
SYNTHETIC = {
    # the scale benchmark's 10k set: 10 uneven clusters
    "synthetic_10k_10": SyntheticSpec(n=10_000, clusters=10, seed=0),
    # many small clusters: 40 in 5,000 points
    "synthetic_5k_40": SyntheticSpec(n=5_000, clusters=40, seed=1),
}
START, END = "<!-- quality:start -->", "<!-- quality:end -->"


def load_set(name: str, workdir: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(unit-length float32 embeddings, labels, texts) of a set."""
    if name in SYNTHETIC:
        spec = SYNTHETIC[name]
        path = workdir / f"{name}.npy"
        truth = generate(spec, path)
        x = np.load(path)
        texts = synthetic_texts(truth, spec.seed)
        labels = truth.astype(str)
    else:
        import pyarrow.parquet as pq

        table = pq.read_table(DATA / f"{name}.parquet", columns=["label", "text", "embedding"])
        flat = table.column("embedding").combine_chunks().values.to_numpy()
        x = np.asarray(flat, dtype=np.float32).reshape(table.num_rows, -1)
        labels = np.asarray(table.column("label").to_pylist())
        texts = table.column("text").to_pylist()
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32), labels, texts


def set_names() -> list[str]:
    return sorted(p.stem for p in DATA.glob("*.parquet")) + list(SYNTHETIC)


def describe(labels: np.ndarray, truth: np.ndarray) -> dict:
    """ARI / NMI against the truth, share unclustered (-1), cluster count and size spread."""
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    labels = np.asarray(labels).astype(np.int64).copy()
    lonely = labels < 0
    labels[lonely] = labels.max(initial=-1) + 1 + np.arange(int(lonely.sum()))
    sizes = np.bincount(labels)
    kept = np.sort(sizes[sizes >= 2])
    return {
        "ari": float(adjusted_rand_score(truth, labels)),
        "nmi": float(normalized_mutual_info_score(truth, labels)),
        "unclustered": float(lonely.mean()),
        "n_clusters": int(kept.size),
        "sizes": f"{kept.min()}/{int(np.median(kept))}/{kept.max()}" if kept.size else "-",
    }


def scanpy_leiden(x: np.ndarray, seed: int = 0) -> np.ndarray:
    import anndata as ad
    import scanpy as sc
    import scipy.sparse as sp

    for cls in (sp.csr_array, sp.csc_array, sp.coo_array):  # scanpy 1.11.5 with scipy 1.17: see scanpy_side.py
        if not hasattr(cls, "getnnz") and hasattr(cls, "_getnnz"):
            cls.getnnz = lambda self, axis=None: self._getnnz(axis=axis)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        adata = ad.AnnData(X=x)
        sc.pp.neighbors(adata, n_neighbors=15, metric="cosine", use_rep="X", random_state=0)
        sc.tl.leiden(adata, flavor="igraph", n_iterations=2, random_state=seed, directed=False)
    return adata.obs["leiden"].astype(int).to_numpy()


def plain_knn_leiden(x: np.ndarray, k: int = 30, seed: int = 0) -> np.ndarray:
    """Leiden (modularity, resolution 1) on every k-NN pair weighted by its cosine similarity."""
    import igraph as ig
    from sklearn.neighbors import NearestNeighbors

    n = len(x)
    dist, idx = NearestNeighbors(n_neighbors=min(k + 1, n), metric="cosine", algorithm="brute").fit(x).kneighbors(x)
    src = np.repeat(np.arange(n), idx.shape[1])
    dst, sim = idx.ravel(), 1.0 - dist.ravel()
    keep = (src != dst) & (sim > 0)
    a, b, sim = np.minimum(src, dst)[keep], np.maximum(src, dst)[keep], sim[keep]
    order = np.lexsort((-sim, b, a))
    a, b, sim = a[order], b[order], sim[order]
    first = np.r_[True, (a[1:] != a[:-1]) | (b[1:] != b[:-1])]
    graph = ig.Graph(n=n, edges=np.column_stack([a[first], b[first]]).tolist())
    graph.es["weight"] = sim[first].tolist()
    random.seed(seed)
    return np.asarray(
        graph.community_leiden(objective_function="modularity", weights="weight", n_iterations=10).membership
    )


def kmeans(x: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    from sklearn.cluster import KMeans

    return KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(x)


def dbt_labels(wh: Warehouse, extra_vars: dict) -> tuple[dict | None, str | None]:
    """Build and return (the result's labels aligned with the set, report) or (None, the failure's message)."""
    try:
        run = run_dbt(wh, extra_vars, quiet=True)
    except SystemExit as failure:
        log = (wh.root / "dbt_build.log").read_text().splitlines()
        message = next((line for line in log if "target_n_clusters=" in line or "Error" in line), str(failure))
        return None, message.strip()
    codes, n_clusters, n_lonely = cluster_assignments(wh)
    codes = codes.copy()
    codes[codes >= n_clusters] = -1  # cluster_assignments gives each unclustered dataset its own code
    return {"labels": codes, "report": run.get("report", {}), "seconds": run.get("wall_s")}, None


def run_set(name: str, root: Path, extra_vars: dict, *, only_default: bool = False) -> dict:
    x, labels, texts = load_set(name, root)
    _, truth = np.unique(labels, return_inverse=True)
    k_true = int(truth.max()) + 1
    print(f"== {name}: {len(x)} items, {k_true} classes", flush=True)
    wh = Warehouse(root=root / name, rows=np.arange(len(x)), collection=f"quality_{name}".replace("_", "-"))
    width = len(str(len(x)))
    load_warehouse(wh, x, truth, texts, "cheap", width)
    out = {"name": name, "n": len(x), "classes": k_true}
    default, failure = dbt_labels(wh, extra_vars)
    if default is None:
        raise SystemExit(f"the default build failed on {name}: {failure}")
    out["default"] = describe(default["labels"], truth)
    if only_default:
        return out
    target, failure = dbt_labels(wh, {**extra_vars, "target_n_clusters": k_true})
    out["target"] = describe(target["labels"], truth) if target else {"failed": failure}
    out["scanpy"] = describe(scanpy_leiden(x), truth)
    out["plain"] = describe(plain_knn_leiden(x), truth)
    out["kmeans"] = describe(kmeans(x, k_true), truth)
    return out


def markdown(results: list[dict], command: str) -> str:
    lines = [
        f"Made by `{command}` on {dt.date.today()} (commit {git_commit()}).",
        "",
        "ARI / NMI against the labels (an unclustered item is a cluster of its own); `uncl.` the share left "
        "without a cluster; clusters of two or more members and their sizes min/median/max. "
        "Goal: default ARI >= the better of scanpy and plain k-NN Leiden - 0.02; target build at the true "
        "count with ARI >= 0.9 x KMeans'.",
        "",
        "| set (n, classes) | method | ARI | NMI | uncl. | clusters | sizes |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for res in results:
        bar = max(res["scanpy"]["ari"], res["plain"]["ari"]) - 0.02
        for key, title in (
            ("default", "**default build**"),
            ("scanpy", "scanpy neighbors(15) + leiden"),
            ("plain", "plain k-NN(30) + Leiden"),
            ("target", "target build (true count)"),
            ("kmeans", "KMeans (true k)"),
        ):
            m = res[key]
            head = f"{res['name']} ({res['n']}, {res['classes']})" if key == "default" else ""
            if "failed" in m:
                lines.append(f"| {head} | {title} | failed: {m['failed'][:160]} | | | | |")
                continue
            mark = ""
            if key == "default":
                mark = " ✓" if m["ari"] >= bar else " ✗"
            if key == "target":
                ok = m["n_clusters"] >= 1 and m["ari"] >= 0.9 * res["kmeans"]["ari"]
                mark = " ✓" if ok else " ✗"
            lines.append(
                f"| {head} | {title} | {m['ari']:.3f}{mark} | {m['nmi']:.3f} | {m['unclustered']:.1%} | "
                f"{m['n_clusters']} | {m['sizes']} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", nargs="*", default=None, help=f"default: all ({', '.join(set_names())})")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--var", action="append", default=[], help="extra dbt var for both builds, key=value (YAML)")
    parser.add_argument("--results", type=Path, default=None)
    parser.add_argument("--repo", type=Path, default=None, help="build this checkout of the project instead")
    parser.add_argument(
        "--only-default", action="store_true", help="only the default build (to compare settings given by --var)"
    )
    args = parser.parse_args()
    import yaml

    if args.repo is not None:
        import scale

        scale.PROJECT = args.repo.resolve()
    extra_vars = {}
    for item in args.var:
        key, _, value = item.partition("=")
        extra_vars[key] = yaml.safe_load(value)
    if not args.only_default:
        ensure_scanpy()
    root = args.workdir or Path(tempfile.mkdtemp(prefix="mdc-quality-"))
    results = [run_set(name, root, extra_vars, only_default=args.only_default) for name in (args.sets or set_names())]
    command = "benchmarks/quality.py" + "".join(f" --var {v}" for v in args.var)
    if args.sets:
        command += " --sets " + " ".join(args.sets)
    if args.only_default:
        command += " --only-default"
        table = "\n".join(
            [f"`{command}`:", "", "| set | ARI | NMI | uncl. | clusters | sizes |", "|---|---:|---:|---:|---:|---|"]
            + [
                f"| {r['name']} | {m['ari']:.3f} | {m['nmi']:.3f} | {m['unclustered']:.1%} | {m['n_clusters']} | "
                f"{m['sizes']} |"
                for r in results
                for m in [r["default"]]
            ]
        )
        print(table)
        return
    table = markdown(results, command)
    print(table)
    print({k: v for k, v in versions().items() if k in ("scanpy", "igraph", "leidenalg", "scikit-learn")})
    if args.results:
        text = args.results.read_text() if args.results.exists() else ""
        block = f"{START}\n{table}\n{END}"
        if START in text and END in text:
            text = text[: text.index(START)] + block + text[text.index(END) + len(END) :]
        else:
            text = text.rstrip() + "\n\n## Quality\n\n" + block + "\n"
        args.results.write_text(text)


if __name__ == "__main__":
    main()
