"""Incremental k-NN update (``update_knn``) versus a full search with the same method: time and recall@k.

Synthetic clustered embeddings (``benchmarks/synthetic.py``, kind ``lowdim``):
a previous run over N rows is searched in full with the method; then a share
of rows is removed, a share changes embedding and new rows arrive. For each
share of new rows, the current rows are searched in full (timed) and updated
from the previous lists (timed), and both results' recall@k is measured
against exact search on a sample of current rows (``knn_recall``). The
previous graph's own recall is printed too: the update keeps the lists it
does not search, so its recall follows the previous graph's. "insertions
found": of the sampled carried-over rows' exact neighbours that are new or
changed rows, the share the update's lists hold (an approximate update finds
them through candidates only).

Approximate methods run as the pipeline runs them: the pilot checks aim at
``knn_min_recall`` (the setting's default, 0.95).

Usage::

    .venv/bin/python benchmarks/incremental_knn.py [--n 100000] [--methods exact,ivf,hnsw]
        [--new 0.01,0.05] [--removed 0.005] [--changed 0.0] [--k 30] [--slack 0] [--sample 2000]
        [--workdir /tmp/incremental_knn]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent))
from synthetic import SyntheticSpec, default_clusters, generate  # noqa: E402

from mdc_clustering.embeddings import Embeddings  # noqa: E402
from mdc_clustering.neighbors import (  # noqa: E402
    HnswParams,
    IvfParams,
    KnnResult,
    PreviousKnn,
    distinct_others,
    exact_knn,
    hnsw_knn,
    ivf_knn,
    knn_recall,
    pair_similarities,
    query_knn,
    recall_from_kth,
    update_knn,
)
from mdc_clustering.settings import Settings  # noqa: E402

MIN_RECALL = Settings().knn.knn_min_recall  # the setting's default


def full_search(method: str, x: np.ndarray, k: int) -> KnnResult:
    if method == "exact":
        return KnnResult(*exact_knn(x, k, normalized=True), search_dims=x.shape[1])
    if method == "ivf":
        return ivf_knn(x, k, params(method), normalized=True)
    return hnsw_knn(x, k, params(method), normalized=True)


def recall(x: np.ndarray, rows: np.ndarray, returned: np.ndarray, exact_sims: np.ndarray) -> float:
    """recall@k of ``returned`` for ``rows`` given their exact similarities (as ``knn_recall``)."""
    valid = distinct_others(returned, rows)
    return recall_from_kth(valid, pair_similarities(x, rows, np.where(valid, returned, 0)), exact_sims[:, -1])


def params(method: str):
    return {"exact": None, "ivf": IvfParams(min_recall=MIN_RECALL), "hnsw": HnswParams(pca_min_recall=MIN_RECALL)}[
        method
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="rows of the previous run")
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--k", type=int, default=30)
    parser.add_argument("--methods", default="exact,ivf,hnsw")
    parser.add_argument("--new", default="0.01,0.05", help="shares of N arriving new (comma-separated)")
    parser.add_argument("--removed", type=float, default=0.005, help="share of N removed")
    parser.add_argument("--changed", type=float, default=0.0, help="share of N whose embedding changes")
    parser.add_argument("--sample", type=int, default=2000, help="rows whose recall@k is measured")
    parser.add_argument("--slack", type=int, default=0, help="update_knn's slack: the state keeps k + slack")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/incremental_knn"))
    args = parser.parse_args()

    shares = [float(s) for s in args.new.split(",")]
    n, k = args.n, args.k
    n_removed, n_changed = round(args.removed * n), round(args.changed * n)
    pool = n + round(max(shares) * n) + n_changed
    args.workdir.mkdir(parents=True, exist_ok=True)
    path = args.workdir / f"lowdim-{pool}-{args.dim}-s{args.seed}.npy"
    if not path.exists():
        generate(SyntheticSpec(n=pool, dim=args.dim, clusters=default_clusters(pool), seed=args.seed), path)
    x_all = np.load(path)  # unit rows
    names = np.array([f"d{i:08d}" for i in range(pool)], dtype=object)

    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=Path(__file__).parent
    ).stdout.strip()
    print(f"# {' '.join(sys.argv)}")
    print(f"commit {commit}; load average at start {os.getloadavg()[0]:.2f}; {os.cpu_count()} cores")
    print(f"lowdim synthetic, d = {args.dim}, {default_clusters(pool)} clusters; previous N = {n:,}; k = {k}; "
          f"removed {n_removed:,}, changed {n_changed:,}; recall@{k} on {args.sample} rows vs exact; "
          f"knn_min_recall {MIN_RECALL}; slack {args.slack} (previous run and state: k + slack neighbours; "
          f"the full search: k, as a build without state)")
    print()
    print("| method | new | current rows | full search | update | speed-up | rows searched | lists refilled "
          "| lists entered | lists changed | recall previous | recall full | recall update | insertions found |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")

    rng = np.random.default_rng(args.seed)
    order = rng.permutation(pool)
    prev_rows = np.sort(order[:n])
    arriving = order[n:]
    prev_x = np.ascontiguousarray(x_all[prev_rows])
    prev_ids = pa.array(names[prev_rows], pa.string())
    removed = np.sort(rng.choice(n, n_removed, replace=False))
    left = np.setdiff1d(np.arange(n), removed)
    moved = np.sort(rng.choice(left, n_changed, replace=False))  # previous positions whose embedding changes
    for method in args.methods.split(","):
        started = time.perf_counter()
        before = full_search(method, prev_x, k + args.slack)
        t_previous = time.perf_counter() - started
        previous = PreviousKnn(prev_ids, before.indices, before.similarities)
        sample = np.sort(rng.choice(n, min(args.sample, n), replace=False))
        recall_previous = knn_recall(prev_x, sample, before.indices[sample, :k], normalized=True)
        print(f"<!-- {method}: previous full search {t_previous:.1f}s -->", flush=True)
        for share in shares:
            new = arriving[: round(share * n)]
            rows = np.concatenate([prev_rows[left], new])  # rows of x_all; the changed take a spare row's vector
            source = rows.copy()
            source[np.searchsorted(left, moved)] = arriving[len(arriving) - n_changed :]
            by_name = np.argsort(rows)
            rows, source = rows[by_name], source[by_name]
            x = np.ascontiguousarray(x_all[source])
            current = Embeddings(pa.array(names[rows], pa.string()), x, normalized=True)
            changed = pa.array(names[prev_rows[moved]], pa.string())

            started = time.perf_counter()
            full = full_search(method, x, k)
            t_full = time.perf_counter() - started
            started = time.perf_counter()
            update = update_knn(
                previous, current, k, changed=changed, method=method, params=params(method), slack=args.slack
            )
            t_update = time.perf_counter() - started

            check = np.sort(rng.choice(len(rows), min(args.sample, len(rows)), replace=False))
            exact, exact_sims = query_knn(x[check], x, k, exclude=check, normalized=True)
            recall_full = recall(x, check, full.indices[check], exact_sims)
            got = update.result.indices[check]
            recall_update = recall(x, check, got, exact_sims)
            # insertions: exact neighbours of carried-over rows that are new or changed rows, found by the update
            dirty = np.isin(rows, new) | np.isin(rows, prev_rows[moved])
            should = dirty[exact] & ~dirty[check][:, None]
            found = (got[:, :, None] == exact[:, None, :]).any(axis=1)
            inserted = f"{(found & should).sum() / max(1, should.sum()):.3f} of {should.sum():,}"
            s = update.stats
            print(f"| {method} | {share:.0%} ({s.new:,}) | {s.current_rows:,} | {t_full:.1f} s | {t_update:.1f} s | "
                  f"{t_full / t_update:.1f}x | {s.rows_searched:,} ({s.rows_searched / s.current_rows:.1%}) | "
                  f"{s.lists_refilled:,} | {s.lists_entered:,} | {s.lists_changed:,} | {recall_previous:.3f} | "
                  f"{recall_full:.3f} | {recall_update:.3f} | {inserted} |", flush=True)
            del full, update, x, current


if __name__ == "__main__":
    main()
