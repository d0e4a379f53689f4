"""Re-run benchmark: what a re-run costs after new datasets arrive, against a full build of the same data.

1. Generates N x 1.06 synthetic embeddings (benchmarks/synthetic.py) and loads
   a random N of them into a Chroma store and a pipeline DuckDB file
   (benchmarks/scale.py's loader); builds once (the full path: nothing cached).
2. Adds 1% new datasets (to Chroma and `datasets`) and re-runs `dbt build`;
   then re-runs once more with nothing changed (the part every re-run pays).
3. Adds 5% more and removes 0.5% of the first ones, and re-runs.
4. Builds the grown data once more with `incremental: false` (every
   embedding read, every dataset searched): the full price of the same data.
5. Optionally runs scanpy (neighbors + leiden) on the grown data in a fresh process.

Each build prints its wall time, its slowest steps, the pull and k-NN paths the
report states, the labels kept, recall@k (report) and ARI against the truth.

Usage::

    .venv/bin/python benchmarks/rerun.py --n 100000 [--skip-scanpy] [--results benchmarks/RESULTS.md]
        [--workdir DIR] [--keep] [--var key=value ...] [--first-build DIR] [--only-first-rerun]
        [--through-fixed-part]

``--first-build DIR`` keeps a copy of the warehouse after the first build in DIR
(for the same --n/--dim/--seed) and, when DIR already holds one, starts from
it instead of loading and building again: for profiling the re-runs.
``--only-first-rerun`` stops after the +1% re-run (and skips scanpy);
``--through-fixed-part`` after the re-run with nothing changed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import scale  # noqa: E402
from synthetic import SyntheticSpec, default_clusters, generate, synthetic_texts  # noqa: E402


def add_rows(wh: scale.Warehouse, x_all, truth, texts, rows: np.ndarray, width: int) -> float:
    """Add ``rows`` of the generated matrix to the warehouse's Chroma collection and pipeline tables."""
    import chromadb
    import duckdb
    import pyarrow as pa
    from chromadb.config import Settings

    started = time.perf_counter()
    client = chromadb.PersistentClient(path=str(wh.chroma), settings=Settings(anonymized_telemetry=False))
    coll = client.get_collection(wh.collection)
    batch = client.get_max_batch_size()
    for start in range(0, len(rows), batch):
        chunk = rows[start : start + batch]
        coll.add(ids=scale.dataset_ids(chunk, width), embeddings=np.ascontiguousarray(x_all[chunk], np.float32),
                 metadatas=[{"document_id": f"doc{i // 8:0{width}d}"} for i in chunk.tolist()])
    del coll, client
    source = pa.table({
        "dataset_id": scale.dataset_ids(rows, width),
        "document_id": [f"doc{i // 8:0{width}d}" for i in rows.tolist()],
        "text": [texts[i] for i in rows.tolist()],
    })
    con = duckdb.connect(str(wh.db))
    try:
        con.register("added", source)
        con.execute(f"""
            insert or ignore into main.documents
            select distinct document_id, 'Synthetic document ' || document_id, 1, {scale.TIMESTAMP}, {scale.TIMESTAMP}
            from added""")
        con.execute(f"""
            insert into main.datasets
            select dataset_id, document_id, 10, 10, length(text), length(text), null, 'PRIMARY', text,
                   {scale.TIMESTAMP}, {scale.TIMESTAMP}
            from added""")
    finally:
        con.close()
    wh.rows = np.concatenate([wh.rows, rows])
    return time.perf_counter() - started


def remove_rows(wh: scale.Warehouse, rows: np.ndarray, width: int) -> float:
    """Remove ``rows`` from the collection and from `datasets` (a dataset the pipeline dropped)."""
    import chromadb
    import duckdb
    from chromadb.config import Settings

    started = time.perf_counter()
    ids = scale.dataset_ids(rows, width)
    client = chromadb.PersistentClient(path=str(wh.chroma), settings=Settings(anonymized_telemetry=False))
    coll = client.get_collection(wh.collection)
    for start in range(0, len(ids), 5000):
        coll.delete(ids=ids[start : start + 5000])
    del coll, client
    con = duckdb.connect(str(wh.db))
    try:
        con.execute("delete from main.datasets where dataset_id in (select unnest($1))", [ids])
    finally:
        con.close()
    wh.rows = np.setdiff1d(wh.rows, rows, assume_unique=True)
    return time.perf_counter() - started


def write_matrix(wh: scale.Warehouse, x_all) -> None:
    """The warehouse's matrix (rows in ``wh.rows`` order), for scanpy and the recall check."""
    if wh.matrix.exists():
        wh.matrix.unlink()
    out = np.lib.format.open_memmap(wh.matrix, mode="w+", dtype=np.float32, shape=(len(wh.rows), x_all.shape[1]))
    for start in range(0, len(wh.rows), 65_536):
        out[start : start + 65_536] = x_all[wh.rows[start : start + 65_536]]
    out.flush()


def against_a_fresh_leiden(wh: scale.Warehouse) -> dict:
    """The build's clusters against a fresh (cold) Leiden on the same graph, run here by the package's own
    clustering function: modularity of each (resolution 1) and the partitions' ARI."""
    import duckdb
    from sklearn.metrics import adjusted_rand_score

    from mdc_clustering.stages.clustering import cluster_memberships

    con = duckdb.connect(str(wh.db), read_only=True)
    try:
        nodes = con.sql("select dataset_id, dataset_key from clustering_state.embedding_cache "
                            "order by dataset_id").to_arrow_table()
        edges = con.sql("select source_key, target_key, weight from clustering.int_graph_edges_filtered"
                            ).to_arrow_table()
        built = con.sql("select dataset_id, coalesce(cluster, '~' || dataset_id) as cluster, modularity "
                            "from clustering.int_datasets_clustered order by dataset_id").to_arrow_table()
    finally:
        con.close()
    started = time.perf_counter()
    fresh = cluster_memberships(nodes, edges)
    seconds = time.perf_counter() - started
    fresh_labels = [c if c is not None else "~" + d for c, d in zip(fresh["cluster"].to_pylist(),
                                                                  fresh["dataset_id"].to_pylist(), strict=True)]
    return {"fresh_modularity": fresh["modularity"][0].as_py(), "fresh_leiden_s": seconds,
            "build_modularity": built["modularity"][0].as_py(),
            "ari_vs_fresh": float(adjusted_rand_score(built["cluster"].to_pylist(), fresh_labels))}


def measured_build(label: str, wh: scale.Warehouse, truth, extra_vars: dict, *, quiet: bool,
                   compare: bool = False) -> dict:
    build = scale.run_dbt(wh, extra_vars, quiet=quiet)
    codes, n_clusters, n_unclustered = scale.cluster_assignments(wh)
    report = build["report"]
    row = {
        "label": label,
        "n": len(wh.rows),
        "wall_s": build["wall_s"],
        "dbt_elapsed_s": build["dbt_elapsed_s"],
        "peak_rss_gb": build.get("peak_rss_gb"),
        "pull": (report.get("pull") or {}).get("path"),
        "read_from_chroma": (report.get("pull") or {}).get("read_from_chroma"),
        "knn": (report.get("knn_update") or {}).get("path"),
        "lists_changed": (report.get("knn_update") or {}).get("lists_changed"),
        "recall": (report.get("knn") or {}).get("recall_at_k"),
        "labels_kept": (report.get("labels") or {}).get("share_of_datasets_keeping_label"),
        "ari": scale.agreement(truth[wh.rows], codes)["ari"],
        "clusters": n_clusters,
        "leiden_path": (report.get("leiden") or {}).get("path"),
        "leiden_nodes": (report.get("leiden") or {}).get("nodes"),
        "steps": build["steps"],
    }
    if compare:
        row.update(against_a_fresh_leiden(wh))
    top = ", ".join(f"{s['name']} {s['seconds']:.1f}" for s in row["steps"][:6])
    print(f"[{label}] wall {row['wall_s']:.1f} s; pull {row['pull']} ({row['read_from_chroma']} read), k-NN "
          f"{row['knn']} ({row['lists_changed']} lists changed); peak RSS {row['peak_rss_gb'] or 0:.2f} GB; "
          f"recall {row['recall']}, labels kept "
          f"{row['labels_kept']}, ARI {row['ari']:.3f}; Leiden {row['leiden_path']} on {row['leiden_nodes']} nodes"
          + (f" (modularity {row['build_modularity']:.4f}, a fresh Leiden's {row['fresh_modularity']:.4f}, "
             f"ARI against it {row['ari_vs_fresh']:.3f})" if compare else "")
          + f"; slowest: {top}", flush=True)
    return row


def markdown(res: dict, key: str) -> str:
    lines = [
        f"<!-- run: {key} -->",
        f"### Re-runs, {res['title']}",
        "",
        f"{res['date']}, commit {res['commit']}, machine {res['machine']['cpu']} ({res['machine']['cores']} cores, "
        f"load average {res['machine']['load_average_at_start']:.2f} at start). Command: `{res['command']}`",
        "",
        "| build | datasets | wall (s) | vs full build of the same data | pull (read from Chroma) | k-NN path "
        "(lists changed) | recall@k | labels kept | ARI | Leiden path (nodes) | modularity / a fresh Leiden's "
        "| ARI against a fresh Leiden |",
        "|---|---:|---:|---:|---|---|---:|---:|---:|---|---|---:|",
    ]
    full = res["builds"][-1]["wall_s"]
    for b in res["builds"]:
        share = "" if b is res["builds"][-1] else f"{b['wall_s'] / full:.2f}"
        lines.append(
            f"| {b['label']} | {b['n']:,} | {b['wall_s']:.1f} | {share} | {b['pull']} ({b['read_from_chroma']:,}) | "
            f"{b['knn']} ({b['lists_changed']:,}) | {'exact' if b['recall'] is None else format(b['recall'], '.3f')} | "
            f"{'' if b['labels_kept'] is None else format(b['labels_kept'], '.3f')} | {b['ari']:.3f} | "
            f"{b.get('leiden_path')} ({b.get('leiden_nodes') or 0:,}) | "
            + (f"{b['build_modularity']:.4f} / {b['fresh_modularity']:.4f} | {b['ari_vs_fresh']:.3f} |"
               if "ari_vs_fresh" in b else " | |")
        )
    if "scanpy" in res:
        s = res["scanpy"]
        lines.append(f"\nscanpy on the grown data (fresh process): neighbors {s['neighbors_s']:.1f} s + leiden "
                     f"{s['leiden_s']:.1f} s; ARI {s['ari']:.3f}.")
    lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--kind", choices=["lowdim", "subspace"], default="lowdim",
                        help="subspace: each cluster spread in a subspace of its own (no global projection keeps them)")
    parser.add_argument("--var", action="append", type=scale.parse_var, default=[], metavar="KEY=VALUE")
    parser.add_argument("--skip-scanpy", action="store_true")
    parser.add_argument("--results", type=Path)
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument("--first-build", type=Path)
    parser.add_argument("--only-first-rerun", action="store_true")
    parser.add_argument("--through-fixed-part", action="store_true")
    args = parser.parse_args(argv)
    command = shlex.join([".venv/bin/python", "benchmarks/rerun.py", *(sys.argv[1:] if argv is None else argv)])
    extra_vars = {"figures": False, **dict(args.var)}  # the pictures are not what a re-run is about
    total = int(args.n * 1.06) + 1
    spec = SyntheticSpec(n=total, dim=args.dim, clusters=default_clusters(args.n), seed=args.seed, kind=args.kind)
    created = args.workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="mdc-rerun-")) if created else args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    if not args.skip_scanpy:
        scale.ensure_scanpy()
    machine = scale.machine()
    try:
        truth = generate(spec, workdir / "all_embeddings.npy")
        texts = synthetic_texts(truth, args.seed)
        x_all = np.load(workdir / "all_embeddings.npy", mmap_mode="r")
        order = np.random.default_rng(args.seed + 7).permutation(total)
        base, one, five = np.split(order, [args.n, args.n + args.n // 100])
        five = five[: args.n * 5 // 100]
        width = max(7, len(str(total - 1)))
        wh = scale.Warehouse(workdir / "main", np.sort(base), f"synthetic_{args.kind}")
        saved = args.first_build / f"{args.kind}-n{args.n}-d{args.dim}-s{args.seed}" if args.first_build else None
        if saved is not None and saved.is_dir():
            shutil.rmtree(wh.root, ignore_errors=True)
            shutil.copytree(saved, wh.root)
            builds = [json.loads((saved / "first_build.json").read_text())]
            print(f"[first build] copied from {saved}", flush=True)
        else:
            scale.load_warehouse(wh, x_all, truth, texts, "cheap", width)
            builds = [measured_build("first build (nothing cached)", wh, truth, extra_vars, quiet=args.quiet)]
            if saved is not None:
                shutil.copytree(wh.root, saved)
                (saved / "first_build.json").write_text(json.dumps(builds[0], default=float))
        add_s = add_rows(wh, x_all, truth, texts, np.sort(one), width)
        builds.append(measured_build(f"re-run after +1% ({len(one):,} new)", wh, truth, extra_vars,
                                     quiet=args.quiet, compare=True))
        if args.only_first_rerun:
            print(json.dumps(builds[-1], default=float, indent=1))
            return
        # nothing read, nothing searched: what every re-run costs whatever changed (dbt, tests, the
        # steps that run over all rows)
        builds.append(measured_build("re-run with nothing changed (the fixed part)", wh, truth, extra_vars,
                                     quiet=args.quiet))
        if args.through_fixed_part:
            print(json.dumps(builds[-1], default=float, indent=1))
            return
        removed = np.sort(np.random.default_rng(args.seed + 9).choice(base, args.n // 200, replace=False))
        add_s += add_rows(wh, x_all, truth, texts, np.sort(five), width)
        remove_s = remove_rows(wh, removed, width)
        builds.append(measured_build(f"re-run after +5% ({len(five):,} new), -0.5% ({len(removed):,} removed)", wh,
                                     truth, extra_vars, quiet=args.quiet, compare=True))
        builds.append(measured_build("full build of the same data (incremental: false)", wh, truth,
                                     {**extra_vars, "incremental": False}, quiet=args.quiet))
        res = {
            "title": f"{args.kind}, N = {args.n:,} (+1%, then +5% -0.5%), d = {args.dim}",
            "date": dt.date.today().isoformat(), "commit": scale.git_commit(), "command": command,
            "machine": machine, "builds": builds, "add_s": add_s, "remove_s": remove_s,
        }
        if not args.skip_scanpy:
            write_matrix(wh, x_all)
            sample = np.sort(np.random.default_rng(1).choice(len(wh.rows), 1000, replace=False))
            sc = scale.run_scanpy(wh, sample, 2, quiet=args.quiet)
            res["scanpy"] = {"neighbors_s": sc["neighbors_s"], "leiden_s": sc["leiden_s"],
                             "ari": scale.agreement(truth[wh.rows], sc["labels"])["ari"]}
        key = f"rerun-{args.kind}-n{args.n}-d{args.dim}-s{args.seed}"
        section = markdown(res, key)
        print("\n" + section)
        (workdir / "rerun.json").write_text(json.dumps(res, default=float, indent=1))
        if args.results:
            scale.write_results(args.results, section, key)
    finally:
        if created and not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"work directory {workdir}")


if __name__ == "__main__":
    main()
