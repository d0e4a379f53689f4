"""Run the dbt project against a throw-away warehouse, from pytest."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
DBT = str(Path(sys.executable).with_name("dbt"))
# dbt's parse of this project takes ~6 s of each invocation. Its partial-parse file is valid for any
# warehouse as long as the profile and the vars read the same, so every warehouse names its files
# relative to its own folder (dbt runs there) and this worker keeps one parse per vars/environment.
PARSE_CACHE = Path(tempfile.gettempdir()) / f"mdc_dbt_parse_{os.getpid()}"
PARSE_FILE = "partial_parse.msgpack"


class Warehouse:
    """A pipeline DuckDB file + Chroma store under ``root``, loaded from the sample."""

    def __init__(
        self,
        root: Path,
        *,
        collection: str = "rdatasets_help_pages",
        exclude: set[str] = frozenset(),
        load_sample: bool = True,
        db_name: str = "pipeline.duckdb",
        chroma_name: str = "chroma",
    ):
        from mdc_clustering.sample import load_chroma, load_database

        self.root = root
        self.db = root / db_name
        self.chroma = root / chroma_name
        self.collection = collection
        if load_sample:
            load_chroma(
                REPO / "data" / "sample", self.chroma, collection, exclude=set(exclude), allow_outside_data=True
            )
            load_database(REPO / "data" / "sample", self.db, exclude=set(exclude), allow_outside_data=True)

    @classmethod
    def from_arrays(
        cls, root: Path, ids, vectors, *, collection: str = "synthetic", dataset_types=None, **names: str
    ):
        """A warehouse whose collection and `datasets` hold the given embeddings (document = id's prefix).

        ``names``: ``db_name`` / ``chroma_name`` of the files under ``root``.
        """
        import duckdb
        import numpy as np

        from mdc_clustering.sample import PIPELINE_DDL

        wh = cls(root, collection=collection, load_sample=False, **names)
        docs = [f"doc-{i // 10}" for i in range(len(ids))]
        import chromadb
        from chromadb.config import Settings

        client = chromadb.PersistentClient(path=str(wh.chroma), settings=Settings(anonymized_telemetry=False))
        coll = client.create_collection(collection, embedding_function=None)
        coll.add(
            ids=list(ids),
            embeddings=np.asarray(vectors, np.float32),
            metadatas=[{"document_id": d} for d in docs],
        )
        types = dataset_types or [None] * len(ids)
        con = duckdb.connect(str(wh.db))
        con.execute(PIPELINE_DDL)
        con.executemany(
            "insert or ignore into main.documents values (?, ?, 1, timestamp '2026-01-01', timestamp '2026-01-01')",
            [(d, d) for d in sorted(set(docs))],
        )
        con.executemany(
            "insert into main.datasets values (?, ?, 10, 10.0, 100, 90, null, ?, ?, "
            "timestamp '2026-01-01', timestamp '2026-01-01')",
            [(i, d, t, f"text of {i}") for i, d, t in zip(ids, docs, types, strict=True)],
        )
        con.close()
        return wh

    def command(
        self, *args: str, vars: dict | None = None, env: dict | None = None, chroma_vars: bool = True
    ) -> tuple[list[str], dict]:
        """The dbt command line and environment that run ``dbt <args>`` against this warehouse.

        ``chroma_vars=False`` leaves the store's vars out (the environment, or nothing, then says where it is).
        """
        chroma = {"chroma_path": self.given(self.chroma), "chroma_collection": self.collection} if chroma_vars else {}
        # the pictures (a t-SNE layout, the slowest report step) only where a test looks at them
        # each warehouse's report in its own folder (the default, the dbt project's reports/, is shared)
        reports = {"reports_root": str(self.root / "reports" / "clustering")}
        all_vars = {**chroma, "figures": False, **reports, **(vars or {})}
        full_env = {
            **os.environ,
            "MDC_DUCKDB_PATH": self.given(self.db),
            "DBT_PROFILES_DIR": str(REPO),
            "DBT_SEND_ANONYMOUS_USAGE_STATS": "False",
            **(env or {}),
        }
        full_env = {key: value for key, value in full_env.items() if value is not None}  # None: unset it
        cmd = [
            DBT, *args,
            "--project-dir", str(REPO),
            "--target-path", str(self.root / "target"),
            "--log-path", str(self.root / "logs"),
        ]
        if all_vars:
            cmd += ["--vars", yaml.safe_dump(all_vars, default_flow_style=True).strip()]
        # dbt runs from the warehouse's folder; the report lands in its reports/clustering/<db file stem>/
        return cmd, full_env

    def given(self, path: Path) -> str:
        """``path`` as dbt, run in this warehouse's folder, is given it (and messages name it): relative inside it."""
        return path.name if path.parent == self.root else str(path)

    @staticmethod
    def _parse_key(cmd: list[str], env: dict) -> str:
        setting = {key: value for key, value in env.items() if key.startswith(("MDC_", "DBT_"))}
        return hashlib.sha1(json.dumps([cmd[cmd.index("--vars") + 1] if "--vars" in cmd else "", setting],
                                       sort_keys=True).encode()).hexdigest()

    def _reuse_parse(self, key: str) -> None:
        cached = PARSE_CACHE / key
        if cached.is_file():
            (self.root / "target").mkdir(parents=True, exist_ok=True)
            shutil.copyfile(cached, self.root / "target" / PARSE_FILE)

    def _keep_parse(self, key: str) -> None:
        made = self.root / "target" / PARSE_FILE
        if made.is_file() and not (PARSE_CACHE / key).is_file():
            PARSE_CACHE.mkdir(exist_ok=True)
            partial = PARSE_CACHE / f"{key}.part"
            shutil.copyfile(made, partial)
            partial.replace(PARSE_CACHE / key)

    def dbt(
        self,
        *args: str,
        vars: dict | None = None,
        env: dict | None = None,
        check: bool = True,
        timeout: float | None = None,
        chroma_vars: bool = True,
    ) -> subprocess.CompletedProcess:
        cmd, full_env = self.command(*args, vars=vars, env=env, chroma_vars=chroma_vars)
        key = self._parse_key(cmd, full_env)
        self._reuse_parse(key)
        result = subprocess.run(cmd, cwd=self.root, env=full_env, capture_output=True, text=True, timeout=timeout)
        self._keep_parse(key)
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(args)} failed:\n{result.stdout[-6000:]}\n{result.stderr[-3000:]}")
        return result

    def start(self, *args: str, vars: dict | None = None, env: dict | None = None, output: Path) -> subprocess.Popen:
        """Start ``dbt <args>`` in its own process group (so a test can kill it whole); output goes to ``output``."""
        cmd, full_env = self.command(*args, vars=vars, env=env)
        self._reuse_parse(self._parse_key(cmd, full_env))
        with open(output, "w") as out:
            return subprocess.Popen(
                cmd, cwd=self.root, env=full_env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )

    @property
    def report_dir(self) -> Path:
        """This pipeline's report folder (macros/report_dir.sql: named for the DuckDB file)."""
        return self.root / "reports" / "clustering" / self.db.stem

    @property
    def report(self) -> dict:
        return json.loads((self.report_dir / "clustering_report.json").read_text())

    def run_results(self) -> dict[str, str]:
        """unique_id -> status of the last dbt invocation."""
        data = json.loads((self.root / "target" / "run_results.json").read_text())
        return {r["unique_id"]: r["status"] for r in data["results"]}

    def query(self, sql: str):
        import duckdb

        con = duckdb.connect(str(self.db), read_only=True)
        try:
            return con.execute(sql).fetchall()
        finally:
            con.close()

    def query_write(self, sql: str) -> None:
        """Change the pipeline file as an earlier phase would (between builds)."""
        import duckdb

        con = duckdb.connect(str(self.db))
        try:
            con.execute(sql)
        finally:
            con.close()

    def snapshot(self) -> dict[str, list[tuple]]:
        """Every row of the pipeline's shared tables this phase writes, in key order."""
        return {table: self.query(sql) for table, sql in SHARED_TABLES.items()}


# The pipeline's tables that this phase changes in place, with their key columns first.
SHARED_TABLES = {
    "main.datasets": "select * from main.datasets order by dataset_id",
    "main.engineered_feature_values": (
        "select * from main.engineered_feature_values order by dataset_id, document_id, feature_name"
    ),
}
KEY_WIDTH = {"main.datasets": 1, "main.engineered_feature_values": 3}
# This phase's features (macros/phase_feature_names.sql): recomputed every run, and a stale one is
# deleted on purpose, so a successful build may remove them; nothing else may ever go.
PHASE_FEATURES = frozenset({
    "neighbor_similarity_mean", "neighbor_similarity_max", "neighbor_similarity_var",
    "neighbor_norm_mean", "neighbor_norm_max", "neighbor_norm_var",
    "cluster_size", "cluster_centroid_similarity",
})


def protected(snapshot: dict[str, list[tuple]]) -> dict[str, list[tuple]]:
    """The rows no build may remove: every `datasets` row, and other phases' feature rows."""
    return {
        table: [row for row in rows if table != "main.engineered_feature_values" or row[2] not in PHASE_FEATURES]
        for table, rows in snapshot.items()
    }


def rows_lost(before: dict[str, list[tuple]], after: dict[str, list[tuple]], *, kept=None) -> int:
    """Rows of ``before`` whose key is gone from ``after``, over both shared tables.

    ``kept`` (same shape as ``before``), when given, narrows the count to the
    keys that ``kept`` also holds: rows that every acceptable outcome keeps.
    """
    lost = 0
    for table, rows in before.items():
        width = KEY_WIDTH[table]
        keys = {row[:width] for row in rows}
        if kept is not None:
            keys &= {row[:width] for row in kept[table]}
        lost += len(keys - {row[:width] for row in after[table]})
    return lost

