"""The recall measurement on a re-run: a full measurement versus the update of the stored exact answers.

Random unit embeddings in an in-memory DuckDB table (as the model reads
``stg_chroma__embeddings``). A first measurement is full; then a share of
new rows arrives (and a share is removed), and the measurement is timed
full (``incremental=False``, what every run cost before) and as an update
from the first one's answers; then again with nothing changed. The k-NN
lists measured are the exact ones (the lists do not change the cost).

Usage::

    .venv/bin/python benchmarks/recall_rerun.py [--n 100000] [--d 384] [--k 30] [--sample 1000]
        [--new 0.01] [--removed 0.0]
"""

from __future__ import annotations

import argparse
import time

import duckdb
import numpy as np
import pyarrow as pa

from mdc_clustering.embeddings import iter_embeddings, rows_reader
from mdc_clustering.stages.pull import embedding_hashes
from mdc_clustering.stages.recall import scored_recall_sample


def _table(ids, x):
    return pa.table({
        "dataset_id": pa.array(ids, pa.string()),
        "embedding": pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1), pa.float32()), x.shape[1]),
        "embedding_hash": pa.array(embedding_hashes(x), pa.int64()),
    })


def _measure(con, table, k, sample_size, state=None, incremental=True):
    con.register("src", table)
    rel = con.table("src")
    sample = sorted(table.column("dataset_id").to_pylist(), key=hash)[:sample_size]
    # each sampled dataset's list: any k other ids (the cost does not depend on them)
    ids = table.column("dataset_id").to_pylist()
    neighbors = pa.table({
        "dataset_id": [s for s in sample for _ in range(k)],
        "neighbor_id": [ids[(i * 7919 + r + 1) % len(ids)] for i, _ in enumerate(sample) for r in range(k)],
        "neighbor_rank": [r + 1 for _ in sample for r in range(k)],
        "search_dims": [table.schema.field("embedding").type.list_size] * (k * len(sample)),
        "ivf_nlist": pa.nulls(k * len(sample), pa.int32()), "ivf_nprobe": pa.nulls(k * len(sample), pa.int32()),
    })
    stored, previous = state if state else (None, None)
    started = time.perf_counter()
    scored = scored_recall_sample(
        table.select(["dataset_id", "embedding_hash"]), pa.array(sample), neighbors,
        rows_of=rows_reader(rel, con), search_space=lambda: iter_embeddings(rel, normalize=True),
        method="exact", k=k, stored=stored, previous=previous, incremental=incremental)
    seconds = time.perf_counter() - started
    kept = scored.select(["dataset_id", "exact_neighbor_ids", "exact_similarities", "recall_fingerprint"])
    return scored, seconds, (kept, table.select(["dataset_id", "embedding_hash"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--d", type=int, default=384)
    parser.add_argument("--k", type=int, default=30)
    parser.add_argument("--sample", type=int, default=1000)
    parser.add_argument("--new", type=float, default=0.01)
    parser.add_argument("--removed", type=float, default=0.0)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(args.n, args.d)).astype(np.float32)
    ids = [f"d{i:08d}" for i in range(args.n)]
    con = duckdb.connect()
    _, first, state = _measure(con, _table(ids, x), args.k, args.sample)
    keep = rng.random(args.n) >= args.removed
    new = int(args.n * args.new)
    x2 = np.concatenate([x[keep], rng.normal(size=(new, args.d)).astype(np.float32)])
    ids2 = [i for i, kept in zip(ids, keep, strict=True) if kept] + [f"n{i:08d}" for i in range(new)]
    grown = _table(ids2, x2)
    full, full_s, _ = _measure(con, grown, args.k, args.sample, incremental=False)
    update, update_s, state2 = _measure(con, grown, args.k, args.sample, state)
    same, same_s, _ = _measure(con, grown, args.k, args.sample, state2)
    equal = np.allclose(update.column("exact_kth_similarity").to_numpy(),
                        full.column("exact_kth_similarity").to_numpy(), atol=1e-6)
    print(f"n {args.n} -> {grown.num_rows} (+{new} new, -{int((~keep).sum())} removed), d {args.d}, "
          f"k {args.k}, sample {args.sample}")
    print(f"first (full): {first:.2f} s")
    print(f"re-run full:  {full_s:.2f} s  ({full['samples_searched'][0].as_py()} searched)")
    print(f"re-run update: {update_s:.2f} s  ({update['samples_searched'][0].as_py()} searched; "
          f"{update['recall_reason'][0].as_py()}); equal to the full answers: {equal}")
    print(f"nothing changed: {same_s:.2f} s  ({same['samples_searched'][0].as_py()} searched)")


if __name__ == "__main__":
    main()
