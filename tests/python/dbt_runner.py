"""Run the dbt project against a throw-away warehouse, from pytest."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
DBT = str(Path(sys.executable).with_name("dbt"))


class Warehouse:
    """A pipeline DuckDB file + Chroma store under ``root``, loaded from the sample."""

    def __init__(
        self,
        root: Path,
        *,
        collection: str = "rdatasets_help_pages",
        exclude: set[str] = frozenset(),
        load_sample: bool = True,
    ):
        from mdc_clustering.sample import load_chroma, load_database

        self.root = root
        self.db = root / "pipeline.duckdb"
        self.chroma = root / "chroma"
        self.collection = collection
        if load_sample:
            load_chroma(REPO / "data" / "sample", self.chroma, collection, exclude=set(exclude))
            load_database(REPO / "data" / "sample", self.db, exclude=set(exclude))

    @classmethod
    def from_arrays(cls, root: Path, ids, vectors, *, collection: str = "synthetic", dataset_types=None):
        """A warehouse whose collection and `datasets` hold the given embeddings (document = id's prefix)."""
        import duckdb
        import numpy as np

        from mdc_clustering.sample import PIPELINE_DDL

        wh = cls(root, collection=collection, load_sample=False)
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

    def dbt(self, *args: str, vars: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
        all_vars = {"chroma_path": str(self.chroma), "chroma_collection": self.collection, **(vars or {})}
        env = {
            **os.environ,
            "MDC_DUCKDB_PATH": str(self.db),
            "DBT_PROFILES_DIR": str(REPO),
            "DBT_SEND_ANONYMOUS_USAGE_STATS": "False",
        }
        cmd = [
            DBT, *args,
            "--project-dir", str(REPO),
            "--target-path", str(self.root / "target"),
            "--log-path", str(self.root / "logs"),
            "--vars", yaml.safe_dump(all_vars, default_flow_style=True).strip(),
        ]
        # dbt runs from the warehouse's folder, so the report lands in its own reports/clustering/
        (self.root / "reports" / "clustering").mkdir(parents=True, exist_ok=True)
        result = subprocess.run(cmd, cwd=self.root, env=env, capture_output=True, text=True)
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(args)} failed:\n{result.stdout[-6000:]}\n{result.stderr[-3000:]}")
        return result

    @property
    def report(self) -> dict:
        return json.loads((self.root / "reports" / "clustering" / "clustering_report.json").read_text())

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
