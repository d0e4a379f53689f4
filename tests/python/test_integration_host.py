"""Installed as a dbt package in a host project (integration_tests/), on the embedded sample.

The host installs this repository with `packages.yml` + `dbt deps`, keeps a
var of its own named like a setting (`resolution: 7`) and sets the package's
(`mdc_resolution: 2.0`). Building only the host's model must not run or
write anything of the package; building the package must work and read only
its own settings.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess

from dbt_runner import DBT, REPO, Warehouse


def _md5(wh: Warehouse) -> dict[str, str]:
    return {table: hashlib.md5(repr(rows).encode()).hexdigest() for table, rows in wh.snapshot().items()}


def test_a_host_project_installs_the_package_and_builds_it(tmp_path):
    wh = Warehouse(tmp_path / "pipeline")
    host = tmp_path / "host"
    shutil.copytree(REPO / "integration_tests", host, ignore=shutil.ignore_patterns("dbt_packages", "target", "logs"))
    (host / "packages.yml").write_text(f"packages:\n  - local: {REPO}\n")
    env = {
        **os.environ,
        "DBT_PROFILES_DIR": str(host),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "False",
        "MDC_DUCKDB_PATH": str(wh.db),
        "MDC_CHROMA_PATH": str(wh.chroma),
        "MDC_CHROMA_COLLECTION": wh.collection,
    }

    def dbt(*args):
        result = subprocess.run([DBT, *args], cwd=host, env=env, capture_output=True, text=True)
        assert result.returncode == 0, result.stdout[-4000:]
        return result

    dbt("deps")
    # the host's own model alone: the package's hooks check and write nothing
    before = _md5(wh)
    dbt("build", "--select", "host_orders")
    schemas = {s for (s,) in wh.query("select schema_name from information_schema.schemata")}
    assert not schemas & {"chroma", "clustering", "clustering_state"}
    assert _md5(wh) == before

    # the package's models, with the host's settings
    dbt("build", "--select", "package:mdc_clustering")
    report = json.loads((host / "reports" / "clustering" / "host_pipeline" / "clustering_report.json").read_text())
    assert report["parameters"]["resolution"] == 2.0  # mdc_resolution; the host's own `resolution: 7` never read
    assert report["leiden"]["resolution_used"] == 2.0
    [(clustered,)] = wh.query("select count(cluster) from main.datasets")
    assert clustered == 2293 - report["datasets_unclustered"] > 2000
