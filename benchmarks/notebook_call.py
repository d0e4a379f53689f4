"""Time the notebook call (mdc_clustering.cluster) on the embedded sample's matrix, three calls in one process.

The first call pays the imports and dbt's parse; later calls reuse both (the parse is cached for the
process's user, so a later process starts warm too). Prints each call's seconds and cluster count.

Usage::

    .venv/bin/python benchmarks/notebook_call.py [--calls 3] [--figures]
"""

from __future__ import annotations

import argparse
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=3)
    parser.add_argument("--figures", action="store_true")
    args = parser.parse_args()
    started = time.perf_counter()
    from mdc_clustering import cluster
    from mdc_clustering.sample import sample_matrix

    print(f"import: {time.perf_counter() - started:.1f} s")
    ids, matrix, texts = sample_matrix()
    for call in range(args.calls):
        started = time.perf_counter()
        out = cluster(matrix, ids, texts, figures=args.figures)
        print(f"call {call + 1}: {time.perf_counter() - started:.1f} s, {matrix.shape[0]:,} x {matrix.shape[1]}, "
              f"{out.report['clusters']['n_clusters']} clusters")


if __name__ == "__main__":
    main()
