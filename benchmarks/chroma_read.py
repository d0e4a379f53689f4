"""The Chroma pull: the direct read of the index files against Chroma's get(), on one store.

Alternates the two (three runs each by default) in one process and prints each run's seconds and
the medians; checks that both give the same table.

Usage::

    .venv/bin/python benchmarks/chroma_read.py STORE COLLECTION [--runs 3] [--processes 1]
"""

from __future__ import annotations

import argparse
import statistics
import time

import mdc_clustering.chroma_direct as direct
from mdc_clustering.chroma_reader import read_collection


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("store")
    parser.add_argument("collection")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--processes", type=int, default=None)
    args = parser.parse_args()
    checked = direct.CHECKED_VERSIONS
    seconds: dict[str, list[float]] = {"direct": [], "get": []}
    tables = {}
    for _ in range(args.runs):
        for way in ("direct", "get"):
            direct.CHECKED_VERSIONS = checked if way == "direct" else ("never",)  # "get": the guard refuses
            started = time.perf_counter()
            table = read_collection(args.store, args.collection, processes=args.processes)
            seconds[way].append(time.perf_counter() - started)
            tables[way] = table
            print(f"{way}: {seconds[way][-1]:.2f} s ({table.schema.metadata[b'read_method'].decode()})", flush=True)
    same = tables["direct"].equals(tables["get"])
    n = tables["direct"].num_rows
    print(f"{n:,} embeddings: direct median {statistics.median(seconds['direct']):.2f} s, get() median "
          f"{statistics.median(seconds['get']):.2f} s; the same table: {same}")


if __name__ == "__main__":
    main()
