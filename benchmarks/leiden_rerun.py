"""Leiden on the aggregated graph against a fresh Leiden, on a re-run's graph: quality, agreement, time.

Generates N x (1 + share) synthetic embeddings (benchmarks/synthetic.py), builds the default graph's rules
(k = 30 nearest by exact cosine, the degree_target threshold for mean degree 30, each dataset's 20 nearest
kept) on the first N and on all, clusters the first N with a fresh Leiden, then clusters all three ways:

- a fresh Leiden on the grown graph (the oracle);
- the re-run's path: the new datasets free, every other dataset moving with its last community
  (``mdc_clustering.leiden.leiden_cluster(start=..., free=...)`` on the aggregated graph);
- the same with the new datasets' graph neighbours free too (depth 1).

Prints modularity (resolution 1), ARI against the truth, against the fresh run and against the last
run (labels kept), and the seconds of each.

Usage::

    .venv/bin/python benchmarks/leiden_rerun.py --n 100000 [--kind subspace|lowdim] [--share 0.01]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from synthetic import SyntheticSpec, default_clusters, generate  # noqa: E402


def default_graph(x: np.ndarray, k: int = 30, target_degree: int = 30, min_edges: int = 20):
    import faiss

    from mdc_clustering.leiden import build_graph

    n = len(x)
    index = faiss.IndexFlatIP(x.shape[1])
    index.add(x)
    sims, indices = index.search(x, k + 1)
    sims, indices = sims[:, 1:], indices[:, 1:]
    src = np.repeat(np.arange(n), k)
    dst, sim, rank = indices.ravel().astype(np.int64), sims.ravel().astype(np.float64), np.tile(np.arange(1, k + 1), n)
    pair = np.minimum(src, dst) * n + np.maximum(src, dst)
    order = np.lexsort((rank, -sim, pair))
    pair, sim, rank = pair[order], sim[order], rank[order]
    first = np.r_[True, pair[1:] != pair[:-1]]
    best = np.minimum.reduceat(rank, np.flatnonzero(first))
    pair, sim = pair[first], sim[first]
    threshold = np.sort(sim)[::-1][min(round(target_degree * n / 2), sim.size) - 1]
    keep = ((sim >= threshold) | (best <= min_edges)) & (sim > 0)
    return build_graph(n, pair[keep] // n, pair[keep] % n, sim[keep])


def main() -> None:
    from sklearn.metrics import adjusted_rand_score as ari

    from mdc_clustering.leiden import leiden_cluster

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--kind", default="subspace", choices=["subspace", "lowdim"])
    parser.add_argument("--share", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    total = int(args.n * (1 + args.share))
    with tempfile.TemporaryDirectory() as tmp:
        spec = SyntheticSpec(n=total, clusters=default_clusters(args.n), kind=args.kind, seed=args.seed)
        truth = generate(spec, Path(tmp) / "x.npy")
        x = np.load(Path(tmp) / "x.npy")
    old = np.zeros(total, bool)
    old[np.random.default_rng(args.seed).permutation(total)[: args.n]] = True
    first = leiden_cluster(default_graph(x[old]))
    graph = default_graph(x)
    start = np.full(total, -1)
    start[old] = first.communities
    print(f"{args.kind}, N = {args.n:,} + {args.share:.0%} new; {graph.ecount():,} edges; "
          f"{np.unique(truth).size} true clusters")
    started = time.perf_counter()
    fresh = leiden_cluster(graph)
    runs = {"fresh Leiden": (fresh, time.perf_counter() - started, total)}
    neighbours = np.zeros(total, bool)
    new = ~old
    neighbours[graph.targets[new[graph.sources]]] = True
    neighbours[graph.sources[new[graph.targets]]] = True
    for name, free in (("aggregated, new free", new), ("aggregated, new and their neighbours free", new | neighbours)):
        started = time.perf_counter()
        result = leiden_cluster(graph, start=start, free=free)
        runs[name] = (result, time.perf_counter() - started, int(free.sum()))
    print("| run | free | Leiden nodes | s | modularity | clusters | ARI truth | ARI vs fresh | ARI vs last run |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, (result, seconds, free) in runs.items():
        print(f"| {name} | {free:,} | {result.aggregated_nodes or total:,} | {seconds:.2f} | {result.modularity:.5f} | "
              f"{result.n_clusters} | {ari(truth, result.clusters):.3f} | {ari(fresh.clusters, result.clusters):.3f} | "
              f"{ari(first.clusters, result.clusters[old]):.3f} |")


if __name__ == "__main__":
    main()
