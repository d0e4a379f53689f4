"""Cost of placing a few new datasets (place_new) versus clustering everything again.

Synthetic clustered embeddings (clusters spread in a low-dimensional subspace
plus a little isotropic noise, like text embeddings), N existing + M new.
Times, with the package's own functions (no dbt, no Chroma):

- full: exact k-NN of all N + M, the k-NN pairs thresholded to mean degree
  15, Leiden (what `dbt build` computes for the graph);
- place_new: the M new rows' weighted vote among the N clustered ones.

Usage::

    .venv/bin/python benchmarks/placement_vs_full.py [--n 100000] [--new 500] [--dim 384]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pyarrow as pa

from mdc_clustering.placement import place_by_vote
from mdc_clustering.tables import cluster_memberships, nearest_neighbors


def synthetic(n: int, dim: int, n_clusters: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_clusters, dim))
    basis = rng.normal(size=(n_clusters, 24, dim)) / np.sqrt(dim)
    truth = rng.integers(0, n_clusters, size=n)
    x = centres[truth] * 0.5
    x += np.einsum("nk,nkd->nd", rng.normal(size=(n, 24)), basis[truth])
    x += rng.normal(size=(n, dim)) * 0.05
    return x.astype(np.float32), truth


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--new", type=int, default=500)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--clusters", type=int, default=200)
    args = parser.parse_args()

    x, truth = synthetic(args.n + args.new, args.dim, args.clusters, seed=0)
    ids = [f"d{i:07d}" for i in range(len(x))]
    embedding = pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), args.dim)
    table = pa.table({"dataset_id": ids, "embedding": embedding})

    started = time.perf_counter()
    knn = nearest_neighbors(table, 30)
    t_knn = time.perf_counter() - started
    a = np.array(knn.column("dataset_id").to_pylist(), dtype=object)
    b = np.array(knn.column("neighbor_id").to_pylist(), dtype=object)
    s = knn.column("similarity").to_numpy()
    started = time.perf_counter()
    lo = np.where(a < b, a, b)
    hi = np.where(a < b, b, a)
    order = np.argsort(-s, kind="stable")
    seen: set[tuple[str, str]] = set()
    keep = []
    for i in order:
        key = (lo[i], hi[i])
        if key not in seen:
            seen.add(key)
            keep.append(i)
            if len(keep) >= 15 * len(ids) // 2:
                break
    keep = np.array(keep)
    edges = pa.table({"source_id": list(lo[keep]), "target_id": list(hi[keep]), "weight": s[keep]})
    t_threshold = time.perf_counter() - started
    started = time.perf_counter()
    cluster_memberships(pa.table({"dataset_id": ids}), edges)
    t_leiden = time.perf_counter() - started

    started = time.perf_counter()
    codes, _ = place_by_vote(x[args.n :], x[: args.n], truth[: args.n], 15, min_share=0.5)
    t_place = time.perf_counter() - started
    agree = float(np.mean(codes == truth[args.n :]))

    full = t_knn + t_threshold + t_leiden
    print(f"N = {args.n:,} existing + {args.new:,} new, d = {args.dim}, {args.clusters} clusters")
    print(
        f"full re-clustering: k-NN {t_knn:.1f}s + threshold {t_threshold:.1f}s + Leiden {t_leiden:.1f}s = {full:.1f}s"
    )
    print(f"place_new:          {t_place:.2f}s ({full / t_place:.0f}x less); {agree:.1%} placed in their true cluster")


if __name__ == "__main__":
    main()
