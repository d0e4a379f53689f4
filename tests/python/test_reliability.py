"""Reliability: a busy database, and Chroma and `datasets` disagreeing about which datasets exist."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time

import numpy as np
import pytest
from dbt_runner import Warehouse

SNAPSHOT = [
    "select * from main.datasets order by dataset_id",
    "select * from main.engineered_feature_values order by dataset_id, document_id, feature_name",
]


@pytest.fixture
def copy_of_sample(sample, tmp_path):
    shutil.copy(sample.db, tmp_path / "pipeline.duckdb")
    shutil.copytree(sample.chroma, tmp_path / "chroma")
    return Warehouse(tmp_path, load_sample=False)


def test_locked_database_fails_with_one_line_naming_file_and_holder(copy_of_sample):
    wh = copy_of_sample
    before = [wh.query(sql) for sql in SNAPSHOT]
    holder = subprocess.Popen(
        [sys.executable, "-c", f"import duckdb, time; c = duckdb.connect({str(wh.db)!r}); print('held', flush=True); "
         "time.sleep(600)"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        started = time.monotonic()
        result = wh.dbt("build", check=False)
        waited = time.monotonic() - started
    finally:
        holder.kill()
        holder.wait()
    assert result.returncode != 0
    lines = [line for line in result.stdout.splitlines() if "Could not set lock on file" in line]
    assert lines, result.stdout[-2000:]
    assert str(wh.db) in lines[0] and f"PID {holder.pid}" in lines[0]
    # dbt-duckdb retries each connection (1 + 2 + 4 s) but dbt opens several, so the total wait
    # grows with the project (~2 min here); bounding it is open work (issue: reliability)
    print(f"\nlocked database: dbt gave up after {waited:.0f}s")
    assert [wh.query(sql) for sql in SNAPSHOT] == before  # nothing written


def test_chroma_id_without_a_dataset_row_warns_and_carries_on(copy_of_sample):
    wh = copy_of_sample
    from mdc_clustering.chroma_reader import get_client

    coll = get_client(wh.chroma).get_collection(wh.collection)
    [vector] = coll.get(ids=["AER/Affairs"], include=["embeddings"])["embeddings"]
    coll.add(ids=["stray/not_in_datasets"], embeddings=np.asarray([vector], np.float32) * 1.01,
             metadatas=[{"document_id": "rdatasets:AER"}])
    con_rows = wh.query("select count(*) from main.datasets")
    result = wh.dbt("build")
    assert "WARN" in result.stdout and "chroma_ids_have_a_dataset_row" in result.stdout
    assert wh.query("select count(*) from main.datasets") == con_rows  # no row added
    assert wh.report["embeddings_without_dataset_row"] == 1
    assert wh.report["datasets_without_embedding"] == 0
