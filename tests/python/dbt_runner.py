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

    def __init__(self, root: Path, *, collection: str = "rdatasets_help_pages", exclude: set[str] = frozenset()):
        from mdc_clustering.sample import load_chroma, load_database

        self.root = root
        self.db = root / "pipeline.duckdb"
        self.chroma = root / "chroma"
        self.collection = collection
        load_chroma(REPO / "data" / "sample", self.chroma, collection, exclude=set(exclude))
        load_database(REPO / "data" / "sample", self.db, exclude=set(exclude))

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
        result = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(args)} failed:\n{result.stdout[-6000:]}\n{result.stderr[-3000:]}")
        return result

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
