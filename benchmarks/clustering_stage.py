"""The clustering stage alone: ``cluster_memberships`` on the tables of a built warehouse, timed.

Reads the graph, the k-NN lists, the previous labels and the label registry
from a pipeline DuckDB file that a ``dbt build`` made (opened read-only), and
times one call of :func:`mdc_clustering.tables.cluster_memberships` (the
``int_datasets_clustered`` model without dbt around it) per mode:

- ``warm``: cosine weights, warm start from the previous labels (a re-run);
- ``cold``: cosine weights, no previous labels (a first run);
- ``snn``: shared-neighbour weights (``snn_k`` 15), warm start.

Each measurement runs in a fresh process. With several ``--src`` folders
(each a checkout's ``src``), the same measurements run for each, interleaved,
so that a change of load on a shared machine hits all of them alike; the
table gives the medians of ``--repeat`` runs, wall and CPU time (the CPU time
is less disturbed by other work on the machine).

Usage::

    .venv/bin/python benchmarks/clustering_stage.py --db WAREHOUSE/pipeline.duckdb
        [--mode warm cold snn] [--repeat 3] [--src DIR ...]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

MODES = ("warm", "cold", "snn")


def measure(db: str, mode: str, schema: str, state_schema: str, previous_table: str) -> tuple[float, float]:
    """Wall and CPU seconds of one ``cluster_memberships`` call (the tables are read before the clocks start)."""
    import duckdb

    from mdc_clustering.tables import cluster_memberships

    con = duckdb.connect(db, read_only=True)
    try:
        nodes = con.sql(
            f"select dataset_id, dataset_key from {schema}.stg_chroma__embeddings order by dataset_id").to_arrow_table()
        edges = con.sql(
            f"select source_key, target_key, weight from {schema}.int_graph_edges_filtered").to_arrow_table()
        previous = con.sql(f"select dataset_id, cluster from {previous_table}").to_arrow_table()
        registry = con.sql(f"select label_number from {state_schema}.cluster_label_registry").to_arrow_table()
        neighbors = con.sql(
            f"select dataset_key, neighbor_key, neighbor_rank from {schema}.int_dataset_neighbors_searched "
            "where neighbor_rank <= 15"
        ).to_arrow_table()
    finally:
        con.close()
    options = {
        "warm": {"previous": previous, "registry": registry},
        "cold": {},
        "snn": {"previous": previous, "registry": registry, "edge_weight": "snn", "neighbors": neighbors, "snn_k": 15},
    }[mode]
    started, cpu = time.perf_counter(), time.process_time()
    cluster_memberships(nodes, edges, **options)
    return time.perf_counter() - started, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", required=True, help="a built warehouse's pipeline DuckDB file (opened read-only)")
    parser.add_argument("--mode", nargs="+", choices=MODES, default=list(MODES))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--src",
        nargs="+",
        type=Path,
        default=[Path(__file__).resolve().parents[1] / "src"],
        help="the src folder(s) whose mdc_clustering is timed (default: this checkout's)",
    )
    parser.add_argument("--schema", default="clustering", help="schema of the project's models")
    parser.add_argument("--state-schema", default="clustering_state")
    parser.add_argument("--previous-table", default="main.datasets", help="table with dataset_id, cluster")
    parser.add_argument("--one", choices=MODES, help=argparse.SUPPRESS)  # a single measurement, in this process
    args = parser.parse_args()

    if args.one:
        sys.path.insert(0, str(args.src[0].resolve()))
        wall, cpu = measure(args.db, args.one, args.schema, args.state_schema, args.previous_table)
        print(f"{wall:.3f} {cpu:.3f}")
        return

    seconds: dict[tuple[str, Path], list[tuple[float, float]]] = {}
    for run in range(args.repeat):
        for mode in args.mode:
            for src in args.src:
                out = subprocess.run(
                    [
                        sys.executable,
                        __file__,
                        "--db",
                        args.db,
                        "--one",
                        mode,
                        "--src",
                        str(src),
                        "--schema",
                        args.schema,
                        "--state-schema",
                        args.state_schema,
                        "--previous-table",
                        args.previous_table,
                    ],
                    check=True,
                    capture_output=True,
                    text=True,
                )
                wall, cpu = (float(v) for v in out.stdout.split()[-2:])
                seconds.setdefault((mode, src), []).append((wall, cpu))
                load = Path("/proc/loadavg").read_text().split()[0] if Path("/proc/loadavg").exists() else "?"
                print(f"run {run + 1} {mode:4s} {src}: wall {wall:.2f} s, CPU {cpu:.2f} s (load {load})", flush=True)
    print()
    print("Median of the runs, wall / CPU seconds (each run's wall time in brackets):")
    print("| mode | " + " | ".join(str(src) for src in args.src) + " |")
    print("|---|" + "---:|" * len(args.src))
    for mode in args.mode:
        cells = []
        for src in args.src:
            runs = seconds[mode, src]
            wall = statistics.median(w for w, _ in runs)
            cpu = statistics.median(c for _, c in runs)
            cells.append(f"{wall:.2f} / {cpu:.2f} ({', '.join(f'{w:.2f}' for w, _ in runs)})")
        print(f"| {mode} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
