"""Scale benchmark: the whole `dbt build` on synthetic clustered embeddings, side by side with scanpy.

1. Generates N synthetic embeddings (d dims, uneven clusters, ground-truth
   labels; see benchmarks/synthetic.py) into a work directory, float32, chunked.
2. Loads them into a Chroma store and a pipeline DuckDB file (timed apart:
   the load is not part of the build).
3. Runs ``.venv/bin/dbt build`` as a user would (env MDC_DUCKDB_PATH, vars
   chroma_path / chroma_collection plus any ``--var key=value``), in the work
   directory, and records the wall time, dbt's per-model times
   (target/run_results.json) and the peak RSS of the dbt process
   (``os.wait4``: dbt runs the Python models in-process).
4. Scores the result: ARI / NMI of ``main.datasets.cluster`` against the truth
   (an unclustered dataset counts as its own singleton), k-NN recall as the
   report states it (``knn.recall_at_k``) and as measured here on sampled rows
   against brute force.
5. Runs scanpy (``pp.neighbors(n_neighbors=30, metric="cosine")`` +
   ``tl.leiden(flavor="igraph")``) on the same matrix in a fresh process
   (benchmarks/scanpy_side.py), and prints both side by side with the ratio.

scanpy is a benchmark-only dependency (the ``bench`` extra); it is installed
into the running environment when missing (``pip install -c requirements.lock
-e ".[bench]"``), unless ``--skip-scanpy``.

Usage::

    .venv/bin/python benchmarks/scale.py --n 100000 [--kind lowdim|isotropic] [--dim 384]
        [--clusters C] [--seed 0] [--var knn_method=hnsw ...] [--skip-scanpy]
        [--exact-check 100000] [--results benchmarks/RESULTS.md] [--workdir DIR] [--keep]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import multiprocessing as mp
import os
import platform
import re
import resource
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from synthetic import SyntheticSpec, default_clusters, generate, synthetic_texts  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
# The dbt project that is built (--repo): this checkout unless told otherwise.
PROJECT = REPO
DBT = Path(sys.executable).with_name("dbt")
TIMESTAMP = "timestamp '2026-01-01 00:00:00'"
RECALL_SAMPLE = 1000

# Chroma builds its own HNSW index while items are added, although this project
# never queries it (it only reads embeddings back with get()). "cheap" builds a
# sparse graph with a short candidate list: 100k x 384 loaded at ~8,000 items/s
# instead of ~1,500/s with Chroma's defaults (ef_construction 100,
# max_neighbors 16) on 2 cores; persisting less often (batch_size,
# sync_threshold) did not help. "default" is Chroma's own configuration (what a
# pipeline that also serves similarity queries from Chroma would use).
CHROMA_INDEX = {
    "default": {"space": "cosine"},
    "cheap": {"space": "cosine", "ef_construction": 8, "max_neighbors": 4},
}

VERSIONED = [
    "dbt-core",
    "dbt-duckdb",
    "duckdb",
    "chromadb",
    "faiss-cpu",
    "igraph",
    "leidenalg",
    "numpy",
    "scikit-learn",
    "pyarrow",
    "scanpy",
    "anndata",
    "pynndescent",
    "numba",
]


# --------------------------------------------------------------------------- machine, versions


def machine() -> dict:
    cpu = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram_gb = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram_gb = int(line.split()[1]) / 1024**2
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "ram_gb": ram_gb,
        "os": f"{platform.system()} {platform.release()}",
        "load_average_at_start": os.getloadavg()[0],
    }


def versions() -> dict:
    out = {"python": platform.python_version()}
    for name in VERSIONED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "-"
    return out


def git_commit() -> str:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=PROJECT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", "src", "models", "python_models", "macros"],
            cwd=PROJECT,
            capture_output=True,
            text=True,
        ).stdout.strip()
        return head + (" + uncommitted changes in the project" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "?"


# --------------------------------------------------------------------------- loading


@dataclass
class Warehouse:
    root: Path
    rows: np.ndarray  # row indices into the generated matrix
    collection: str
    load: dict = field(default_factory=dict)

    @property
    def db(self) -> Path:
        return self.root / "pipeline.duckdb"

    @property
    def chroma(self) -> Path:
        return self.root / "chroma"

    @property
    def matrix(self) -> Path:
        return self.root / "embeddings.npy"


def dataset_ids(rows: np.ndarray, width: int) -> list[str]:
    return [f"ds{i:0{width}d}" for i in rows.tolist()]


def _chroma_load(chroma: str, collection: str, matrix: str, width: int, rows_path: str, index: str, out: str) -> None:
    """Runs in a spawned process: fill a new Chroma collection from the matrix, in max-size batches."""
    import chromadb
    from chromadb.config import Settings

    started = time.perf_counter()
    x = np.load(matrix, mmap_mode="r")
    rows = np.load(rows_path)
    client = chromadb.PersistentClient(path=chroma, settings=Settings(anonymized_telemetry=False))
    coll = client.create_collection(
        collection, configuration={"hnsw": dict(CHROMA_INDEX[index])}, embedding_function=None
    )
    batch = client.get_max_batch_size()
    n = len(rows)
    next_report = time.perf_counter() + 30
    for start in range(0, n, batch):
        stop = min(n, start + batch)
        chunk_rows = rows[start:stop]
        coll.add(
            ids=dataset_ids(chunk_rows, width),
            embeddings=np.ascontiguousarray(x[start:stop], dtype=np.float32),
            metadatas=[{"document_id": f"doc{i // 8:0{width}d}"} for i in chunk_rows.tolist()],
        )
        if time.perf_counter() > next_report:
            elapsed = time.perf_counter() - started
            print(f"  chroma: {stop:,}/{n:,} added, {stop / elapsed:,.0f}/s", flush=True)
            next_report = time.perf_counter() + 30
    count = coll.count()
    del coll, client
    result = {
        "seconds": time.perf_counter() - started,
        "count": count,
        "batch": batch,
        "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2,
    }
    Path(out).write_text(json.dumps(result))


def load_warehouse(
    wh: Warehouse, x_all: np.ndarray, truth: np.ndarray, texts: list[str], index: str, width: int, *, reuse=False
):
    """Write the warehouse's matrix, then load the Chroma store (spawned process) and the pipeline DuckDB.

    With ``reuse`` the Chroma store an earlier run loaded in ``wh.root`` is kept (after checking it
    holds the same ground truth) and its recorded load figures are reported again; the DuckDB file
    and dbt's outputs are made anew.
    """
    import duckdb
    import pyarrow as pa

    from mdc_clustering.sample import PIPELINE_DDL

    wh.root.mkdir(parents=True, exist_ok=True)
    rows = wh.rows
    if not wh.matrix.exists():
        out = np.lib.format.open_memmap(wh.matrix, mode="w+", dtype=np.float32, shape=(len(rows), x_all.shape[1]))
        for start in range(0, len(rows), 65_536):
            out[start : start + 65_536] = x_all[rows[start : start + 65_536]]
        out.flush()
        del out
    result_file = wh.root / "chroma_load.json"
    if reuse:
        if not result_file.exists() or not (wh.root / "truth.npy").exists():
            raise SystemExit(f"--reuse-store: {wh.root} holds no loaded Chroma store (no chroma_load.json)")
        if not np.array_equal(np.load(wh.root / "truth.npy"), truth[rows]):
            raise SystemExit(f"--reuse-store: the store in {wh.root} was loaded from other data (truth differs)")
        for old in ("pipeline.duckdb", "pipeline.duckdb.wal", "target", "logs", "reports"):
            path = wh.root / old
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
    np.save(wh.root / "rows.npy", rows)
    np.save(wh.root / "truth.npy", truth[rows])

    started = time.perf_counter()
    ctx = mp.get_context("spawn")
    proc = None if reuse else ctx.Process(
        target=_chroma_load,
        args=(str(wh.chroma), wh.collection, str(wh.matrix), width, str(wh.root / "rows.npy"), index, str(result_file)),
    )
    if proc is not None:
        proc.start()
        proc.join()
    if proc is not None and proc.exitcode != 0:
        raise SystemExit(f"loading the Chroma store failed (exit code {proc.exitcode})")
    chroma = json.loads(result_file.read_text())
    chroma["reused"] = reuse
    chroma["wall_s"] = time.perf_counter() - started
    chroma["rows_per_s"] = len(rows) / chroma["seconds"]
    chroma["index"] = index
    chroma["disk_gb"] = sum(f.stat().st_size for f in wh.chroma.rglob("*") if f.is_file()) / 1024**3

    started = time.perf_counter()
    rng = np.random.default_rng(len(rows))
    ids = dataset_ids(rows, width)
    sub_texts = [texts[i] for i in rows.tolist()]
    source = pa.table(
        {
            "dataset_id": ids,
            "document_id": [f"doc{i // 8:0{width}d}" for i in rows.tolist()],
            "dataset_type": np.where(rng.random(len(rows)) < 0.6, "PRIMARY", "SECONDARY"),
            "text": sub_texts,
            "total_tokens": np.fromiter((t.count(" ") + 1 for t in sub_texts), np.int64, len(rows)),
        }
    )
    con = duckdb.connect(str(wh.db))
    try:
        con.execute(PIPELINE_DDL)
        con.register("synthetic_source", source)
        con.execute("begin transaction")
        con.execute(
            f"""
            insert into main.documents
            select document_id, 'Synthetic document ' || document_id, count(*), {TIMESTAMP}, {TIMESTAMP}
            from synthetic_source group by document_id order by document_id
            """
        )
        con.execute(
            f"""
            insert into main.datasets
            select dataset_id, document_id, total_tokens, total_tokens, length(text), length(text),
                   null, dataset_type, text, {TIMESTAMP}, {TIMESTAMP}
            from synthetic_source order by dataset_id
            """
        )
        # One feature of an "earlier phase", which the build must leave alone.
        con.execute(
            f"""
            insert into main.engineered_feature_values
            select dataset_id, document_id, 'context_char_length', length(text), {TIMESTAMP}, {TIMESTAMP}
            from synthetic_source order by dataset_id
            """
        )
        con.execute("commit")
    finally:
        con.close()
    wh.load = {"chroma": chroma, "duckdb_s": time.perf_counter() - started}


# --------------------------------------------------------------------------- running dbt and scanpy


def cpu_ticks() -> tuple[int, int] | None:
    """(steal, total) CPU ticks of the machine so far (/proc/stat), or None where there is no /proc."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    return (fields[7] if len(fields) > 7 else 0), sum(fields[:8])


def steal_share(before: tuple[int, int] | None, after: tuple[int, int] | None) -> float | None:
    """Share of CPU time the hypervisor gave to other guests between two :func:`cpu_ticks` readings."""
    if before is None or after is None or after[1] <= before[1]:
        return None
    return (after[0] - before[0]) / (after[1] - before[1])


def run_measured(cmd: list[str], *, cwd: Path, env: dict, log: Path, echo: str | None) -> dict:
    """Run ``cmd``, tee its output to ``log``; return wall time, exit code, peak RSS (os.wait4), CPU steal."""
    ticks = cpu_ticks()
    started = time.perf_counter()
    with log.open("w") as sink:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert proc.stdout is not None
        for line in proc.stdout:
            sink.write(line)
            if echo is not None:
                print(f"{echo}{line.rstrip()}", flush=True)
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    return {
        "wall_s": wall,
        "returncode": proc.returncode,
        "peak_rss_gb": usage.ru_maxrss / 1024**2,
        "steal_share": steal_share(ticks, cpu_ticks()),
    }


def dbt_vars(wh: Warehouse, extra: dict) -> dict:
    # the report in the warehouse's own folder (the default is the project's reports/, shared by every run)
    return {"chroma_path": str(wh.chroma), "chroma_collection": wh.collection,
            "reports_root": str(wh.root / "reports" / "clustering"), **extra}


def step_name(unique_id: str) -> str:
    """``model.mdc_clustering.datasets`` -> ``datasets``; tests lose the project name and the hash."""
    parts = unique_id.split(".")
    if parts[0] == "model":
        return parts[-1]
    if parts[0] == "test" and len(parts) >= 4:
        return parts[2]
    return ".".join(parts[2:]) if len(parts) > 2 else unique_id


def run_dbt(wh: Warehouse, extra_vars: dict, *, quiet: bool) -> dict:
    import yaml

    all_vars = dbt_vars(wh, extra_vars)
    cmd = [
        str(DBT),
        "build",
        "--project-dir",
        str(PROJECT),
        "--profiles-dir",
        str(PROJECT),
        "--target-path",
        str(wh.root / "target"),
        "--log-path",
        str(wh.root / "logs"),
        "--vars",
        yaml.safe_dump(all_vars, default_flow_style=True).strip(),
    ]
    env = {**os.environ, "MDC_DUCKDB_PATH": str(wh.db), "DBT_SEND_ANONYMOUS_USAGE_STATS": "False"}
    env.setdefault("DBT_USE_COLORS", "False")
    shown_env = f"MDC_DUCKDB_PATH={wh.db}"
    if PROJECT != REPO:
        # Another checkout: its package must win over this checkout's editable install.
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT / "src"), env.get("PYTHONPATH")]))
        shown_env += f" PYTHONPATH={PROJECT / 'src'}"
    print(f"$ cd {wh.root} && {shown_env} {shlex.join(cmd)}", flush=True)
    result = run_measured(cmd, cwd=wh.root, env=env, log=wh.root / "dbt_build.log", echo=None if quiet else "  | ")
    result["command"] = shlex.join(cmd)
    if result["returncode"] != 0:
        tail = (wh.root / "dbt_build.log").read_text().splitlines()[-60:]
        print("\n".join(tail))
        raise SystemExit(f"dbt build failed (exit code {result['returncode']}); log: {wh.root / 'dbt_build.log'}")
    run_results = json.loads((wh.root / "target" / "run_results.json").read_text())
    result["dbt_elapsed_s"] = run_results.get("elapsed_time")
    result["steps"] = sorted(
        (
            {
                "name": step_name(r["unique_id"]),
                "kind": r["unique_id"].split(".")[0],
                "seconds": r.get("execution_time") or 0.0,
                "status": r.get("status"),
            }
            for r in run_results["results"]
        ),
        key=lambda s: -s["seconds"],
    )
    report_path = wh.root / "reports" / "clustering" / wh.db.stem / "clustering_report.json"  # macros/report_dir.sql
    result["report"] = json.loads(report_path.read_text()) if report_path.exists() else {}
    return result


def ensure_scanpy() -> None:
    import importlib.util

    if importlib.util.find_spec("scanpy") is not None:
        return
    print("scanpy is missing: installing the bench extra (pip install -c requirements.lock -e '.[bench]')")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "-c", "requirements.lock", "-e", ".[bench]"],
        cwd=REPO,
        check=True,
    )


def run_scanpy(wh: Warehouse, sample_rows: np.ndarray, jobs: int, *, quiet: bool, reuse: bool = False) -> dict:
    """Run scanpy_side.py in a fresh process; with ``reuse``, take the figures an earlier run on the same data saved."""
    out = wh.root / "scanpy"
    measured = out / "measured.json"
    if reuse:
        if not measured.exists():
            raise SystemExit(f"--reuse-scanpy: no earlier scanpy run in {out}")
        if not np.array_equal(np.load(out / "sample_rows.npy"), sample_rows):
            raise SystemExit(f"--reuse-scanpy: the scanpy run in {out} sampled other rows")
        result = {**json.loads(measured.read_text()), "reused": True}
        print(f"scanpy: reusing the earlier run in {out} (--reuse-scanpy)", flush=True)
        result.update(json.loads((out / "scanpy_result.json").read_text()))
        result["labels"] = np.load(out / "scanpy_labels.npy")
        result["sample_neighbors"] = np.load(out / "scanpy_sample_neighbors.npy")
        return result
    out.mkdir(exist_ok=True)
    np.save(out / "sample_rows.npy", sample_rows)
    cmd = [
        sys.executable,
        str(Path(__file__).with_name("scanpy_side.py")),
        str(wh.matrix),
        str(out),
        "--sample-rows",
        str(out / "sample_rows.npy"),
        "--jobs",
        str(jobs),
    ]
    print(f"$ {shlex.join(cmd)}", flush=True)
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    result = run_measured(cmd, cwd=out, env=env, log=out / "scanpy.log", echo=None if quiet else "  | ")
    if result["returncode"] != 0:
        print((out / "scanpy.log").read_text()[-4000:])
        raise SystemExit(f"scanpy side failed (exit code {result['returncode']})")
    measured.write_text(json.dumps(result, default=float))
    result.update(json.loads((out / "scanpy_result.json").read_text()))
    result["labels"] = np.load(out / "scanpy_labels.npy")
    result["sample_neighbors"] = np.load(out / "scanpy_sample_neighbors.npy")
    return result


# --------------------------------------------------------------------------- scoring


def cluster_assignments(wh: Warehouse) -> tuple[np.ndarray, int, int]:
    """Cluster codes aligned with ``wh.rows`` (unclustered -> own singleton code); n clusters, n unclustered."""
    import duckdb

    con = duckdb.connect(str(wh.db), read_only=True)
    try:
        found = con.execute(
            """
            select cast(substr(dataset_id, 3) as bigint) as row_id,
                   case when cluster is null then -1 else dense_rank() over (order by cluster) - 1 end as code
            from main.datasets
            """
        ).fetchnumpy()
    finally:
        con.close()
    position = np.full(int(wh.rows.max()) + 1, -1, dtype=np.int64)
    position[wh.rows] = np.arange(len(wh.rows))
    codes = np.full(len(wh.rows), -1, dtype=np.int64)
    codes[position[found["row_id"].astype(np.int64)]] = found["code"].astype(np.int64)
    n_clusters = int(codes.max()) + 1
    lonely = np.flatnonzero(codes < 0)
    codes[lonely] = n_clusters + np.arange(len(lonely))
    return codes, n_clusters, len(lonely)


def agreement(truth: np.ndarray, labels: np.ndarray) -> dict:
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    return {
        "ari": float(adjusted_rand_score(truth, labels)),
        "nmi": float(normalized_mutual_info_score(truth, labels)),
    }


def exact_neighbors(matrix: Path, queries: np.ndarray, k: int) -> np.ndarray:
    """Brute-force cosine top-k (self excluded) of the ``queries`` rows of the matrix, in blocks."""
    x = np.load(matrix, mmap_mode="r")
    q = np.array(x[queries], dtype=np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    best_s = np.full((len(queries), 0), -np.inf, dtype=np.float32)
    best_i = np.zeros((len(queries), 0), dtype=np.int64)
    step = 65_536
    for start in range(0, x.shape[0], step):
        block = np.array(x[start : start + step], dtype=np.float32)
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        sims = q @ block.T
        own = (queries >= start) & (queries < start + len(block))
        sims[np.flatnonzero(own), queries[own] - start] = -np.inf
        s = np.concatenate([best_s, sims], axis=1)
        i = np.concatenate([best_i, np.broadcast_to(np.arange(start, start + len(block)), sims.shape)], axis=1)
        keep = np.argpartition(-s, min(k, s.shape[1] - 1), axis=1)[:, :k] if s.shape[1] > k else np.argsort(-s)
        best_s = np.take_along_axis(s, keep, axis=1)
        best_i = np.take_along_axis(i, keep, axis=1)
    order = np.argsort(-best_s, axis=1, kind="stable")
    return np.take_along_axis(best_i, order, axis=1)


def recall(found: np.ndarray, exact: np.ndarray, k: int) -> float:
    """Mean share of each row's exact top-k among its first k found neighbours (-1 = none)."""
    hits = [len(set(f[:k][f[:k] >= 0].tolist()) & set(e[:k].tolist())) for f, e in zip(found, exact, strict=True)]
    return float(np.mean(hits) / k)


def project_sample_neighbors(wh: Warehouse, sample_positions: np.ndarray, width: int, k: int) -> np.ndarray | None:
    """The k-NN rows the build wrote (clustering.int_dataset_neighbors_searched) for the sampled datasets."""
    import duckdb

    ids = dataset_ids(wh.rows[sample_positions], width)
    con = duckdb.connect(str(wh.db), read_only=True)
    try:
        found = con.execute(
            """
            select cast(substr(dataset_id, 3) as bigint), cast(substr(neighbor_id, 3) as bigint), neighbor_rank
            from clustering.int_dataset_neighbors_searched
            where dataset_id in (select unnest($ids))
            """,
            {"ids": ids},
        ).fetchall()
    except duckdb.Error as exc:
        print(f"  (could not read the build's k-NN table: {exc})")
        return None
    finally:
        con.close()
    position = {int(r): j for j, r in enumerate(wh.rows.tolist())}
    out = np.full((len(sample_positions), k), -1, dtype=np.int64)
    slot = {int(p): j for j, p in enumerate(sample_positions.tolist())}
    for row_id, neighbour, rank in found:
        j = slot[position[row_id]]
        if 1 <= rank <= k:
            out[j, rank - 1] = position[neighbour]
    return out


# --------------------------------------------------------------------------- output


def fmt_s(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:,.1f} s"


def fmt_gb(gb: float | None) -> str:
    return "-" if gb is None else f"{gb:,.2f} GB"


def fmt_score(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


TIME_COVERS = (
    "dbt build time = the whole `dbt build` process, wall clock (start-up and parse, var checks, Chroma pull, "
    "k-NN, threshold, graph, Leiden, labels, features, marts, report, figures and all dbt tests); "
    "scanpy time = sc.pp.neighbors + sc.tl.leiden in a fresh process (numba compilation included; "
    "interpreter start, import and reading the matrix are shown apart and not counted)"
)


def fmt_share(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.0f}%"


def comparison_rows(res: dict) -> list[tuple[str, str, str]]:
    b, s = res["build"], res.get("scanpy")
    rows = [
        ("time", fmt_s(b["wall_s"]), fmt_s(s["neighbors_s"] + s["leiden_s"]) if s else "-"),
        (
            "  of which k-NN / clustering",
            res["build_knn_leiden"],
            f"{fmt_s(s['neighbors_s'])} / {fmt_s(s['leiden_s'])}" if s else "-",
        ),
        ("import + load (not in time)", "-", f"{fmt_s(s['import_s'])} + {fmt_s(s['load_s'])}" if s else "-"),
        ("whole process wall", fmt_s(b["wall_s"]), fmt_s(s["wall_s"]) if s else "-"),
        ("peak RSS", fmt_gb(b["peak_rss_gb"]), fmt_gb(s["peak_rss_gb"]) if s else "-"),
        ("CPU stolen by the host during the run", fmt_share(b.get("steal_share")),
         fmt_share(s.get("steal_share")) if s else "-"),
        (
            f"k-NN recall@{res['k']} (report)",
            res["report_recall"],
            "-",
        ),
        (
            f"k-NN recall (measured, {res['recall_rows']} rows)",
            fmt_score(res["build_recall"]) + f" @{res['k']}" if res["build_recall"] is not None else "-",
            fmt_score(res["scanpy_recall"]) + f" @{res['scanpy_k']}" if s else "-",
        ),
        ("ARI vs truth", fmt_score(res["build_quality"]["ari"]), fmt_score(res["scanpy_quality"]["ari"]) if s else "-"),
        ("NMI vs truth", fmt_score(res["build_quality"]["nmi"]), fmt_score(res["scanpy_quality"]["nmi"]) if s else "-"),
        (
            "clusters (unclustered datasets)",
            f"{res['build_clusters']:,} ({res['build_unclustered']:,})",
            f"{s['n_clusters']:,} (0)" if s else "-",
        ),
    ]
    return rows


def print_table(rows: list[tuple[str, ...]], header: tuple[str, ...]) -> None:
    widths = [max(len(r[i]) for r in [*rows, header]) for i in range(len(header))]
    widths = [min(w, 60) for w in widths]
    line = "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))
    print(line)
    print("-" * len(line))
    for r in rows:
        print("  ".join(c.ljust(w) if len(c) <= w else c for c, w in zip(r, widths, strict=True)))


def markdown_section(res: dict) -> str:
    key = res["key"]
    m, v = res["machine"], res["versions"]
    b, s = res["build"], res.get("scanpy")
    load = res["load"]
    lines = [
        f"<!-- run: {key} -->",
        f"## {res['title']}",
        "",
        f"Run {res['date']} on project commit {res['commit']}.",
        "",
        "```bash",
        res["command"],
        "```",
        "",
        f"- Machine: {m['cpu']}, {m['cores']} cores, {m['ram_gb']:.1f} GB RAM, {m['os']}; "
        f"load average when it started: {m['load_average_at_start']:.2f}",
        "- Versions: " + ", ".join(f"{k} {val}" for k, val in v.items()),
        f"- Data: {res['data']}",
        f"- Load (not in the build time): generate {fmt_s(res['generate_s'])}; Chroma "
        f"{fmt_s(load['chroma']['seconds'])} ({load['chroma']['rows_per_s']:,.0f} items/s, index "
        f"`{load['chroma']['index']}`, {load['chroma']['disk_gb']:.2f} GB on disk"
        + ("; loaded by an earlier run and reused, `--reuse-store`" if load["chroma"].get("reused") else "")
        + f"); DuckDB {fmt_s(load['duckdb_s'])}",
        f"- dbt vars beyond the store: `{json.dumps(res['extra_vars'])}`",
        *(
            ["- scanpy: the figures an earlier run measured on the same data and rows (`--reuse-scanpy`)"]
            if s and s.get("reused")
            else []
        ),
        "",
        "| | dbt build | scanpy |",
        "|---|---|---|",
    ]
    lines += [f"| {a} | {b_} | {c} |" for a, b_, c in comparison_rows(res)]
    if s:
        lines.append(f"| **scanpy time / dbt build time** | **{res['ratio']:.2f}x** | |")
    lines += ["", TIME_COVERS + ".", "", "Slowest steps of the build (execution_time from run_results.json):", ""]
    lines += ["| step | seconds |", "|---|---:|"]
    for step in b["steps"][:12]:
        lines.append(f"| {step['name']} | {step['seconds']:.1f} |")
    tests = [st for st in b["steps"] if st["kind"] in ("test", "unit_test")]
    lines.append(f"| all {len(tests)} dbt tests (data + unit) together | {sum(t['seconds'] for t in tests):.1f} |")
    if res.get("exact_check"):
        e = res["exact_check"]
        lines += [
            "",
            f"Exact-path check on a {e['n']:,}-row subsample: ARI vs truth {e['ari_build']:.3f} (vars as above) vs "
            f"{e['ari_exact']:.3f} (knn_method=exact); difference {e['ari_build'] - e['ari_exact']:+.3f}; "
            f"ARI between the two partitions {e['ari_between']:.3f}; build times {fmt_s(e['wall_build'])} / "
            f"{fmt_s(e['wall_exact'])}.",
        ]
    lines.append("")
    return "\n".join(lines)


RESULTS_HEADER = """# Scale benchmark results

Made with `benchmarks/scale.py` (see the README, "Scale benchmark"). Each
section is one run; re-running the same configuration replaces its section.
Times are wall-clock on a shared machine: the load average when the run
started is given with each.

"""


def write_results(path: Path, section: str, key: str) -> None:
    text = path.read_text() if path.exists() else RESULTS_HEADER
    # a run's section: its marker, its heading, and what follows up to the next run or top-level heading
    pattern = re.compile(rf"<!-- run: {re.escape(key)} -->\n[^\n]*\n.*?(?=<!-- run: |\n## |\Z)", re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text)
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.write_text(text.rstrip("\n") + "\n")
    print(f"results written to {path} (section {key})")


# --------------------------------------------------------------------------- main


def parse_var(text: str) -> tuple[str, object]:
    import yaml

    if "=" not in text:
        raise argparse.ArgumentTypeError(f"--var takes key=value, not {text!r}")
    key, value = text.split("=", 1)
    return key.strip(), yaml.safe_load(value)


def exact_check(args, x_all, truth, texts, width, extra_vars, workdir: Path) -> dict:
    """ARI of the build with the given vars and with knn_method=exact, on one random subsample, fresh stores."""
    m = min(args.exact_check, len(truth))
    rows = np.sort(np.random.default_rng(args.seed + 7).choice(len(truth), size=m, replace=False))
    out = {"n": m}
    partitions = {}
    for name, vars_ in (("build", extra_vars), ("exact", {**extra_vars, "knn_method": "exact"})):
        wh = Warehouse(workdir / f"exact_check_{name}", rows, f"synthetic_check_{name}")
        load_warehouse(wh, x_all, truth, texts, args.chroma_index, width)
        build = run_dbt(wh, vars_, quiet=True)
        codes, _, _ = cluster_assignments(wh)
        partitions[name] = codes
        out[f"ari_{name}"] = agreement(truth[rows], codes)["ari"]
        out[f"wall_{name}"] = build["wall_s"]
        print(f"  exact check, {name}: ARI {out[f'ari_{name}']:.3f}, build {build['wall_s']:.1f} s")
    out["ari_between"] = agreement(partitions["build"], partitions["exact"])["ari"]
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=10_000, help="datasets (default 10000)")
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--clusters", type=int, help="true clusters (default N/1000, within [10, 1000])")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--kind", choices=["lowdim", "isotropic"], default="lowdim")
    parser.add_argument("--intrinsic-dim", type=int, default=24, help="lowdim: dimension of the spread's subspace")
    parser.add_argument("--spread", type=float, help="lowdim: spread, in nearest-centre distances (default 1.0)")
    parser.add_argument("--noise", type=float, help="isotropic noise norm (default 0.1 lowdim, 4.5 isotropic)")
    parser.add_argument(
        "--var",
        action="append",
        type=parse_var,
        default=[],
        metavar="KEY=VALUE",
        help="extra dbt var (value parsed as YAML); repeatable",
    )
    parser.add_argument(
        "--repo",
        type=Path,
        help="dbt project to build (default: this checkout); e.g. a `git worktree` of another commit",
    )
    parser.add_argument("--chroma-index", choices=sorted(CHROMA_INDEX), default="cheap")
    parser.add_argument("--skip-scanpy", action="store_true")
    parser.add_argument(
        "--reuse-scanpy",
        action="store_true",
        help="with --reuse-store: report the scanpy figures an earlier run on the same data measured "
        "instead of running scanpy again (its side does not depend on this project's code)",
    )
    parser.add_argument("--scanpy-jobs", type=int, default=os.cpu_count() or 1, help="sc.settings.n_jobs")
    parser.add_argument(
        "--exact-check",
        type=int,
        metavar="M",
        help="also build a random M-row subsample twice (vars as given / knn_method=exact) and compare ARIs",
    )
    parser.add_argument("--results", type=Path, help="markdown file to add (or update) this run's section in")
    parser.add_argument("--workdir", type=Path, help="work directory (default: a new temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument(
        "--load-only",
        action="store_true",
        help="generate and load the Chroma store and pipeline database, then stop (implies --keep)",
    )
    parser.add_argument(
        "--reuse-store",
        action="store_true",
        help="reuse the Chroma store an earlier run of the same data loaded in --workdir (its recorded load "
        "time is reported); the pipeline DuckDB and dbt's outputs are made anew",
    )
    parser.add_argument("--quiet", action="store_true", help="do not echo dbt's and scanpy's output")
    args = parser.parse_args(argv)
    global PROJECT
    if args.repo is not None:
        PROJECT = args.repo.resolve()
    command = shlex.join([".venv/bin/python", "benchmarks/scale.py", *(sys.argv[1:] if argv is None else argv)])

    clusters = args.clusters or default_clusters(args.n)
    extra_vars = dict(args.var)
    spec = SyntheticSpec(
        n=args.n,
        dim=args.dim,
        clusters=clusters,
        seed=args.seed,
        kind=args.kind,
        intrinsic_dim=args.intrinsic_dim,
        spread=args.spread,
        noise=args.noise,
    )
    if not args.skip_scanpy:
        ensure_scanpy()
    mach, vers = machine(), versions()

    created = args.workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="mdc-scale-")) if created else args.workdir.resolve()
    if args.reuse_store and created:
        raise SystemExit("--reuse-store needs --workdir (the directory of the earlier run)")
    if not created and not args.reuse_store and workdir.exists() and any(workdir.iterdir()):
        raise SystemExit(f"--workdir {workdir} is not empty")
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"work directory: {workdir}")
    width = max(7, len(str(args.n - 1)))
    try:
        started = time.perf_counter()
        full_matrix = workdir / "all_embeddings.npy"
        truth = generate(spec, full_matrix)
        texts = synthetic_texts(truth, args.seed)
        generate_s = time.perf_counter() - started
        spread, noise = spec.scales()
        data = (
            f"{args.kind}, N={args.n:,}, d={args.dim}, {clusters} true clusters (sizes "
            f"{np.bincount(truth).min():,}..{np.bincount(truth).max():,}), seed {args.seed}, "
            + (f"intrinsic dim {args.intrinsic_dim}, spread {spread}, " if args.kind == "lowdim" else "")
            + f"noise {noise}"
        )
        print(f"generated {data} in {generate_s:.1f} s")
        x_all = np.load(full_matrix, mmap_mode="r")

        wh = Warehouse(workdir / "main", np.arange(args.n), f"synthetic_{args.kind}")
        # The main warehouse's matrix is the generated one: link instead of copying.
        wh.root.mkdir(parents=True, exist_ok=args.reuse_store)
        if not wh.matrix.exists():
            os.link(full_matrix, wh.matrix)
        load_warehouse(wh, x_all, truth, texts, args.chroma_index, width, reuse=args.reuse_store)
        ch = wh.load["chroma"]
        print(
            f"loaded: Chroma {ch['seconds']:.1f} s ({ch['rows_per_s']:,.0f} items/s, batches of {ch['batch']}, "
            f"index {ch['index']}, loader peak RSS {ch['peak_rss_gb']:.2f} GB), DuckDB {wh.load['duckdb_s']:.1f} s"
        )

        if args.load_only:
            print(f"--load-only: the store stays in {workdir}; build it with --reuse-store --workdir {workdir}")
            return
        build = run_dbt(wh, extra_vars, quiet=args.quiet)
        codes, n_clusters, n_unclustered = cluster_assignments(wh)
        build_quality = agreement(truth, codes)
        report = build["report"]
        k = int((report.get("parameters") or {}).get("k_neighbors") or extra_vars.get("k_neighbors", 30))
        knn_report = report.get("knn") if isinstance(report.get("knn"), dict) else None
        if knn_report and knn_report.get("recall_at_k") is not None:
            report_recall = f"{knn_report['recall_at_k']:.3f} ({knn_report.get('method', '?')})"
        else:
            report_recall = "n/a (exact)"

        t_score = time.perf_counter()
        sample = np.sort(
            np.random.default_rng(args.seed + 3).choice(args.n, size=min(RECALL_SAMPLE, args.n), replace=False)
        )
        exact = exact_neighbors(wh.matrix, sample, max(k, 30))
        found = project_sample_neighbors(wh, sample, width, k)
        build_recall = recall(found, exact, k) if found is not None else None
        print(f"scored the build in {time.perf_counter() - t_score:.1f} s", flush=True)

        steps = {s["name"]: s["seconds"] for s in build["steps"]}
        knn_s = steps.get("int_dataset_neighbors_updated", steps.get("int_dataset_neighbors_searched"))
        leiden_s = steps.get("int_datasets_clustered")
        res = {
            "key": f"{args.kind}-n{args.n}-d{args.dim}-c{clusters}-s{args.seed}"
            + "".join(f"-{k_}={v}" for k_, v in sorted(extra_vars.items())),
            "title": f"{args.kind}, N = {args.n:,}, d = {args.dim}"
            + (f", vars {json.dumps(extra_vars)}" if extra_vars else ""),
            "date": dt.date.today().isoformat(),
            "commit": git_commit(),
            "command": command,
            "machine": mach,
            "versions": vers,
            "data": data,
            "generate_s": generate_s,
            "load": wh.load,
            "extra_vars": extra_vars,
            "build": build,
            "k": k,
            "report_recall": report_recall,
            "recall_rows": len(sample),
            "build_recall": build_recall,
            "build_quality": build_quality,
            "build_clusters": n_clusters,
            "build_unclustered": n_unclustered,
            "build_knn_leiden": f"{fmt_s(knn_s)} / {fmt_s(leiden_s)}",
        }

        if not args.skip_scanpy:
            scanpy = run_scanpy(wh, sample, args.scanpy_jobs, quiet=args.quiet, reuse=args.reuse_scanpy)
            res["scanpy"] = scanpy
            res["scanpy_quality"] = agreement(truth, scanpy["labels"])
            res["scanpy_k"] = min(k, int((scanpy["sample_neighbors"] >= 0).sum(axis=1).min()))
            res["scanpy_recall"] = recall(scanpy["sample_neighbors"], exact, res["scanpy_k"])
            res["ratio"] = (scanpy["neighbors_s"] + scanpy["leiden_s"]) / build["wall_s"]

        if args.exact_check:
            res["exact_check"] = exact_check(args, x_all, truth, texts, width, extra_vars, workdir)

        print()
        print(f"=== {res['title']} ===")
        print(f"data: {data}")
        print(
            f"load (not timed in the build): generate {generate_s:.1f} s, Chroma {ch['seconds']:.1f} s "
            f"({ch['rows_per_s']:,.0f} items/s), DuckDB {wh.load['duckdb_s']:.1f} s"
        )
        print(
            f"machine: {mach['cpu']}, {mach['cores']} cores, {mach['ram_gb']:.1f} GB; "
            f"load average {mach['load_average_at_start']:.2f}"
        )
        print("versions: " + ", ".join(f"{k_} {v}" for k_, v in vers.items()))
        print()
        print("per-step execution_time (run_results.json), slowest first:")
        print_table(
            [(s["name"], s["kind"], f"{s['seconds']:.2f}") for s in build["steps"][:15]],
            ("step", "kind", "seconds"),
        )
        tests = [s for s in build["steps"] if s["kind"] in ("test", "unit_test")]
        print(
            f"sum of model times {sum(s['seconds'] for s in build['steps'] if s['kind'] == 'model'):.1f} s, "
            f"of {len(tests)} tests {sum(s['seconds'] for s in tests):.1f} s; dbt's elapsed "
            f"{build['dbt_elapsed_s']:.1f} s; process wall {build['wall_s']:.1f} s (threads: 2)"
        )
        print()
        print_table(comparison_rows(res), ("", "dbt build", "scanpy"))
        print(f"({TIME_COVERS})")
        if "ratio" in res:
            print(
                f"\nscanpy (neighbors + leiden) / dbt build wall = {res['ratio']:.2f}x"
                f"   (scanpy whole process / dbt build = {res['scanpy']['wall_s'] / build['wall_s']:.2f}x)"
            )
        if "exact_check" in res:
            e = res["exact_check"]
            print(
                f"exact check on {e['n']:,} rows: ARI {e['ari_build']:.3f} (vars as given) vs {e['ari_exact']:.3f} "
                f"(knn_method=exact), difference {e['ari_build'] - e['ari_exact']:+.3f}; "
                f"ARI between them {e['ari_between']:.3f}"
            )
        if args.results:
            write_results(args.results, markdown_section(res), res["key"])
    finally:
        if args.keep or args.load_only:
            print(f"kept work directory {workdir}")
        elif created:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"work directory {workdir} left in place (it was given with --workdir)")


if __name__ == "__main__":
    main()
