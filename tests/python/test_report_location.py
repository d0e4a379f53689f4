"""The report folder is the same whatever directory dbt is started from, and the run names it."""

from __future__ import annotations

import subprocess

import duckdb
from dbt_runner import REPO, Warehouse


def test_the_default_report_folder_is_the_projects_whatever_the_working_directory(tmp_path):
    wh = Warehouse(tmp_path / "wh")
    found = set()
    for start in (tmp_path / "one", tmp_path / "two" / "deeper"):
        start.mkdir(parents=True)
        # reports_root left at its default (the harness gives each warehouse its own)
        cmd, env = wh.command("run", "--select", "rpt_clustering_report_folder",
                              vars={"reports_root": None, "chroma_path": str(wh.chroma)})
        env.update(PWD=str(start), MDC_DUCKDB_PATH=str(wh.db))  # PWD: what a shell sets after `cd`
        result = subprocess.run(cmd, cwd=start, env=env, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stdout[-3000:]
        con = duckdb.connect(str(wh.db), read_only=True)
        try:
            [(folder,)] = con.execute("select report_dir from clustering.rpt_clustering_report_folder").fetchall()
        finally:
            con.close()
        found.add(folder)
    assert found == {str(REPO / "reports" / "clustering" / "pipeline")}
