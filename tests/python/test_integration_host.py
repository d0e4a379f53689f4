"""Installed as a dbt package in a host project (integration_tests/), on the embedded sample.

The host installs this repository with `packages.yml` + `dbt deps`, keeps a
var of its own named like a setting (`resolution: 7`) and sets the package's
(`mdc_resolution: 2.0`). Building only the host's model must not run or
write anything of the package; building the package must work and read only
its own settings. The host keeps the pipeline's tables under other names
(schema `raw`: `docs`, `ds`, `efv`, set through the `tables` settings), with
decoys of the default names in `main` that no build may touch.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess

from dbt_runner import DBT, REPO, Warehouse

MOVED = {"documents": "docs", "datasets": "ds", "engineered_feature_values": "efv"}
TABLE_VARS = {"mdc_pipeline_schema": "raw", "mdc_documents_table": "docs", "mdc_datasets_table": "ds",
              "mdc_features_table": "efv"}


def _md5(wh: Warehouse, tables) -> dict[str, str]:
    return {
        table: hashlib.md5(repr(wh.query(f"select * from {table} order by all")).encode()).hexdigest()
        for table in tables
    }


def _move_tables(wh: Warehouse) -> None:
    """The pipeline's tables copied to raw.<other name>; the main.* originals stay as decoys."""
    import duckdb

    con = duckdb.connect(str(wh.db))
    con.execute("create schema raw")
    for name, moved in MOVED.items():
        con.execute(f"create table raw.{moved} as select * from main.{name}")
    con.close()


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

    def dbt(*args, cwd=host):
        result = subprocess.run([DBT, *args], cwd=cwd, env={**env, "PWD": str(cwd)}, capture_output=True, text=True)
        assert result.returncode == 0, result.stdout[-4000:]
        return result

    _move_tables(wh)
    decoys = [f"main.{name}" for name in MOVED]
    moved = [f"raw.{name}" for name in MOVED.values()]
    dbt("deps")
    # the host's own model alone: the package's hooks check and write nothing
    before = _md5(wh, decoys + moved)
    dbt("build", "--select", "host_orders")
    schemas = {s for (s,) in wh.query("select schema_name from information_schema.schemata")}
    assert not schemas & {"chroma", "clustering", "clustering_state"}
    assert _md5(wh, decoys + moved) == before

    # a host var with a setting's plain name moves the sources but not the settings: stopped before any write
    result = subprocess.run(
        [DBT, "build", "--select", "package:mdc_clustering", "--vars", json.dumps({"pipeline_schema": "raw"})],
        cwd=host, env=env, capture_output=True, text=True,
    )
    assert result.returncode != 0
    assert "source('pipeline', 'datasets') reads raw.datasets but the settings name main.datasets" in result.stdout
    assert _md5(wh, decoys + moved) == before

    # the package's models, with the host's settings and its table names
    other_features = wh.query("select * from raw.efv order by all")
    # started from another directory: the report still goes to the host project's reports/, and the log says so
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    built = dbt("build", "--select", "package:mdc_clustering", "--vars", json.dumps(TABLE_VARS),
                "--project-dir", str(host), cwd=elsewhere)
    report_path = host / "reports" / "clustering" / "host_pipeline" / "clustering_report.json"
    assert f"report: {report_path}" in built.stdout and not list(elsewhere.iterdir())
    report = json.loads(report_path.read_text())
    assert report["parameters"]["resolution"] == 2.0  # mdc_resolution; the host's own `resolution: 7` never read
    assert report["leiden"]["resolution_used"] == 2.0
    [(clustered,)] = wh.query("select count(cluster) from raw.ds")
    assert clustered == 2293 - report["datasets_unclustered"] > 2000
    [(featured,)] = wh.query("select count(distinct dataset_id) from raw.efv where feature_name = 'cluster_size'")
    assert featured == clustered
    assert set(other_features) <= set(wh.query("select * from raw.efv"))  # other phases' rows untouched
    assert _md5(wh, decoys) == {table: before[table] for table in decoys}
