"""Reliability: a busy database, and Chroma and `datasets` disagreeing about which datasets exist."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
import time

import duckdb
import numpy as np
import pytest
from dbt_runner import Warehouse, protected


@pytest.fixture
def copy_of_sample(sample, tmp_path):
    shutil.copy(sample.db, tmp_path / "pipeline.duckdb")
    shutil.copytree(sample.chroma, tmp_path / "chroma")
    return Warehouse(tmp_path, load_sample=False)


def _hold_lock(db) -> subprocess.Popen:
    """Another process holding the DuckDB file (read-write), as a second pipeline job would."""
    holder = subprocess.Popen(
        [sys.executable, "-c", f"import duckdb, sys; c = duckdb.connect({str(db)!r}); print('held', flush=True); "
         "sys.stdin.readline()"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "held"
    return holder


def _log_seconds(line: str) -> float:
    hours, minutes, seconds = re.search(r"(\d\d):(\d\d):(\d\d\.\d+)", line).groups()
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


@pytest.mark.fault
def test_locked_database_waits_a_bounded_time_then_fails_with_one_line_naming_file_and_holder(
    copy_of_sample, reliability
):
    wh = copy_of_sample
    bound = 5.0
    before = wh.snapshot()
    holder = _hold_lock(wh.db)
    try:
        started = time.monotonic()
        result = wh.dbt("build", env={"MDC_LOCK_WAIT_SECONDS": str(bound)}, check=False)
        elapsed = time.monotonic() - started
    finally:
        holder.kill()
        holder.wait()
    assert result.returncode != 0
    lines = [line for line in result.stdout.splitlines() if "Could not set lock on file" in line]
    assert len(lines) == 1, result.stdout[-3000:]
    assert wh.db.name in lines[0] and f"PID {holder.pid}" in lines[0] and "MDC_LOCK_WAIT_SECONDS=5" in lines[0]
    # The wait itself, from dbt's first connection attempt to its last error, in dbt's own log:
    # one bounded wait for the whole run (dbt-duckdb's per-connection retries took ~2 min here).
    log = (wh.root / "logs" / "dbt.log").read_text().splitlines()
    first_open = next(line for line in log if "Opening a new connection" in line)
    last_error = [line for line in log if "Could not set lock on file" in line and re.match(r"\S*\d\d:\d\d", line)][-1]
    waited = _log_seconds(last_error) - _log_seconds(first_open)
    print(f"\nlocked database: waited {waited:.1f}s (bound {bound:g}s); dbt exited after {elapsed:.1f}s in all")
    assert bound - 0.5 <= waited < bound + 3.0
    assert elapsed < bound + 60  # start-up and parsing included
    after = wh.snapshot()
    reliability.compare(before, after)
    assert after == before  # nothing written


@pytest.mark.fault
def test_database_freed_during_the_wait_lets_the_build_run(tmp_path, reliability):
    rng = np.random.default_rng(3)
    vectors = np.vstack([c + 0.3 * rng.normal(size=(20, 8)) for c in rng.normal(size=(3, 8)) * 3])
    wh = Warehouse.from_arrays(tmp_path, [f"ds-{i:02d}" for i in range(len(vectors))], vectors)
    holder = _hold_lock(wh.db)
    threading.Timer(8.0, holder.stdin.close).start()  # the other job finishes after 8 s
    try:
        result = wh.dbt("build", vars={"k_neighbors": 8, "target_degree": 4}, env={"MDC_LOCK_WAIT_SECONDS": "120"})
    finally:
        holder.kill()
        holder.wait()
    assert "Could not set lock" not in result.stdout
    assert wh.query("select count(*) from main.datasets where cluster is not null")[0][0] > 0


def test_lock_wait_gives_up_after_the_bound_in_process(tmp_path):
    from mdc_clustering.lock_wait import LockWaitError, open_when_free

    db = tmp_path / "held.duckdb"
    duckdb.connect(str(db)).close()
    holder = _hold_lock(db)
    try:
        started = time.monotonic()
        with pytest.raises(LockWaitError) as caught:
            open_when_free(str(db), {}, wait_seconds=1.5)
        waited = time.monotonic() - started
        holder.stdin.close()
        holder.wait(timeout=30)
        open_when_free(str(db), {}, wait_seconds=1.5).close()  # free again: opens at once
    finally:
        holder.kill()
        holder.wait()
    assert 1.5 <= waited < 3.5
    [line] = str(caught.value).splitlines()
    assert str(db) in line and f"PID {holder.pid}" in line and "MDC_LOCK_WAIT_SECONDS=1.5" in line


@pytest.mark.bad_input
@pytest.mark.parametrize("raw", ["soon", "-1", "inf", "nan"])
def test_bad_lock_wait_setting_is_named(monkeypatch, raw):
    from mdc_clustering.lock_wait import LockWaitError, wait_seconds_from_env

    monkeypatch.setenv("MDC_LOCK_WAIT_SECONDS", raw)
    with pytest.raises(LockWaitError, match="MDC_LOCK_WAIT_SECONDS must be a number of seconds"):
        wait_seconds_from_env()
    monkeypatch.delenv("MDC_LOCK_WAIT_SECONDS")
    assert wait_seconds_from_env() == 30.0


@pytest.mark.bad_input
def test_chroma_id_without_a_dataset_row_warns_and_carries_on(copy_of_sample, reliability):
    wh = copy_of_sample
    before = wh.snapshot()
    from mdc_clustering.chroma_reader import get_client

    coll = get_client(wh.chroma).get_collection(wh.collection)
    [vector] = coll.get(ids=["AER/Affairs"], include=["embeddings"])["embeddings"]
    coll.add(ids=["stray/not_in_datasets"], embeddings=np.asarray([vector], np.float32) * 1.01,
             metadatas=[{"document_id": "rdatasets:AER"}])
    con_rows = wh.query("select count(*) from main.datasets")
    result = wh.dbt("build")
    assert "WARN" in result.stdout and "chroma_ids_have_a_dataset_row" in result.stdout
    assert wh.query("select count(*) from main.datasets") == con_rows  # no row added
    assert reliability.compare(protected(before), wh.snapshot()) == 0  # none removed
    assert wh.report["embeddings_without_dataset_row"] == 1
    assert wh.report["datasets_without_embedding"] == 0


# --- Bad Chroma input at the dbt level: the exact outcome, and the shared tables untouched --------

SMALL_VARS = {"k_neighbors": 8, "target_degree": 4}


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """A built synthetic warehouse (60 datasets) whose store also holds an empty and a zero-vector collection."""
    rng = np.random.default_rng(9)
    vectors = np.vstack([c + 0.3 * rng.normal(size=(20, 8)) for c in rng.normal(size=(3, 8)) * 3])
    ids = [f"ds-{i:02d}" for i in range(len(vectors))]
    wh = Warehouse.from_arrays(tmp_path_factory.mktemp("small"), ids, vectors)
    from mdc_clustering.chroma_reader import get_client

    client = get_client(wh.chroma)
    client.create_collection("empty_one", embedding_function=None)
    zero = np.array(vectors[:5], np.float32)
    zero[2] = 0.0
    client.create_collection("with_zero", embedding_function=None).add(
        ids=ids[:5], embeddings=zero, metadatas=[{"document_id": "doc-0"}] * 5
    )
    wh.dbt("build", vars=SMALL_VARS)
    return wh


@pytest.mark.bad_input
@pytest.mark.parametrize(
    ("collection", "message", "extra_vars"),
    [
        ("absent_one", "Chroma collection 'absent_one' not found in store", {}),
        ("empty_one", "holds no embeddings", {}),
        # 5 of the 60 datasets: the id-overlap guard would stop it first (test_user_pipeline_slips.py)
        ("with_zero", "1 with zero norm ('ds-02')", {"min_id_overlap": 0}),
    ],
)
def test_bad_chroma_collection_fails_the_build_and_changes_nothing(
    small, reliability, collection, message, extra_vars
):
    before = small.snapshot()
    result = small.dbt("build", vars={**SMALL_VARS, "chroma_collection": collection, **extra_vars}, check=False)
    after = small.snapshot()
    reliability.compare(before, after)
    assert result.returncode != 0
    assert message in result.stdout
    # the message first: the phase's own errors are printed without a Python traceback
    assert "Traceback" not in result.stdout and "  ClusteringInputError: " in result.stdout
    # a missing or empty collection stops the plan (listing its ids); a bad vector stops the read
    failing = "stg_chroma__embeddings_pulled" if collection == "with_zero" else "stg_chroma__ids"
    assert small.run_results()[f"model.mdc_clustering.{failing}"] == "error"
    assert after == before


@pytest.mark.bad_input
def test_dataset_row_without_an_embedding_warns_and_carries_on(small, reliability):
    con = duckdb.connect(str(small.db))
    con.execute("""
        insert into main.datasets values ('ds-unembedded', 'doc-0', 10, 10.0, 100, 90, 'cluster_0', null,
            'text of ds-unembedded', timestamp '2026-01-01', timestamp '2026-01-01');
        insert into main.engineered_feature_values values
            ('ds-unembedded', 'doc-0', 'neighbor_similarity_mean', 0.5, timestamp '2026-01-01', timestamp '2026-01-01'),
            ('ds-unembedded', 'doc-0', 'context_token_count', 12, timestamp '2026-01-01', timestamp '2026-01-01');
    """)
    con.close()
    before = small.snapshot()
    try:
        result = small.dbt("build", vars=SMALL_VARS)
        after = small.snapshot()
        assert reliability.compare(protected(before), after) == 0  # no datasets row, no other phase's row lost
        assert "WARN" in result.stdout and "datasets_have_an_embedding" in result.stdout
        assert small.report["datasets_without_embedding"] == 1
        assert small.query("select cluster from main.datasets where dataset_id = 'ds-unembedded'") == [(None,)]
        assert small.query(
            "select feature_name from main.engineered_feature_values where dataset_id = 'ds-unembedded'"
        ) == [("context_token_count",)]  # this phase's stale feature deleted, the other phase's kept
        assert [row for row in after["main.datasets"] if row[0] != "ds-unembedded"] == [
            row for row in before["main.datasets"] if row[0] != "ds-unembedded"
        ]  # the others untouched: the re-run changes no cluster
    finally:
        con = duckdb.connect(str(small.db))
        con.execute("delete from main.datasets where dataset_id = 'ds-unembedded'; "
                    "delete from main.engineered_feature_values where dataset_id = 'ds-unembedded'")
        con.close()


def _built_three_blobs(root, rng):
    """A built warehouse of 60 datasets in three 8-d blobs (the recipe of the fixture ``small``): (wh, ids, vectors)."""
    vectors = np.vstack([c + 0.3 * rng.normal(size=(20, 8)) for c in rng.normal(size=(3, 8)) * 3])
    ids = [f"ds-{i:02d}" for i in range(len(vectors))]
    wh = Warehouse.from_arrays(root, ids, vectors)
    wh.dbt("build", vars=SMALL_VARS)
    return wh, ids, vectors

def test_a_collection_embedded_again_in_another_dimension_is_read_whole(tmp_path, reliability):
    """The same datasets embedded again by another model (8 -> 12 dimensions): the next build reads every
    embedding, the cache takes the new vectors, and the build goes through."""
    from test_crash_safety import _park_and_kill, _reopen

    from mdc_clustering.chroma_reader import get_client

    rng = np.random.default_rng(4)
    wh, ids, vectors = _built_three_blobs(tmp_path, rng)
    before = wh.snapshot()
    again = np.hstack([vectors, 0.3 * rng.normal(size=(len(ids), 4))]).astype(np.float32)
    client = get_client(wh.chroma)
    client.delete_collection(wh.collection)
    client.create_collection(wh.collection, embedding_function=None).add(
        ids=ids, embeddings=again, metadatas=[{"document_id": f"doc-{i // 10}"} for i in range(len(ids))]
    )
    # killed inside embedding_cache's transaction, after the pre-hook changed the column: all rolled back
    fifo = tmp_path / "pause.fifo"
    os.mkfifo(fifo)
    log = tmp_path / "killed.log"
    proc = wh.start("build", vars=SMALL_VARS, output=log,
                    env={"MDC_TEST_PAUSE_AT": "cache_before_commit", "MDC_TEST_PAUSE_FIFO": str(fifo)})
    _park_and_kill(proc, fifo, log)
    _reopen(wh.db)
    reliability.fault("SIGKILL inside embedding_cache's change of dimension")
    assert "every cached row is replaced" in log.read_text()
    assert reliability.compare(before, wh.snapshot()) == 0 and wh.snapshot() == before
    kept = wh.query("select embedding from clustering_state.embedding_cache order by dataset_id")
    np.testing.assert_array_equal(np.array([row[0] for row in kept], np.float32), vectors.astype(np.float32))
    result = wh.dbt("build", vars=SMALL_VARS, check=False)
    after = wh.snapshot()
    assert reliability.compare(protected(before), after) == 0
    assert result.returncode == 0, result.stdout[-3000:]
    cached = wh.query("select dataset_id, embedding from clustering_state.embedding_cache order by dataset_id")
    assert [row[0] for row in cached] == ids
    np.testing.assert_array_equal(np.array([row[1] for row in cached], np.float32), again)
    assert wh.report["pull"]["path"] == "full" and wh.report["pull"]["read_from_chroma"] == len(ids)
    # the k-NN lists were searched afresh on the new vectors, and every dataset is clustered
    assert wh.report["knn_update"]["path"] == "full"
    assert wh.query("select count(*) from main.datasets where cluster is null") == [(0,)]
    # the datasets were keyed afresh: the next build takes everything from the state it left
    clusters = wh.query("select dataset_id, cluster from main.datasets order by dataset_id")
    wh.dbt("build", vars=SMALL_VARS)
    assert (wh.report["pull"]["path"], wh.report["pull"]["read_from_chroma"]) == ("incremental", 0)
    assert (wh.report["knn_update"]["path"], wh.report["knn_update"]["lists_changed"]) == ("incremental", 0)
    assert wh.query("select dataset_id, cluster from main.datasets order by dataset_id") == clusters


@pytest.mark.bad_input
def test_an_embedding_turned_invalid_is_left_out_not_taken_from_the_cache(tmp_path, reliability):
    """A dataset whose Chroma vector became a zero vector, read on the full path with `invalid_embeddings:
    exclude`: it is left out (no stale cached copy stands in for it), and the build warns and carries on."""
    from mdc_clustering.chroma_reader import get_client

    wh, ids, _ = _built_three_blobs(tmp_path, np.random.default_rng(6))
    before = wh.snapshot()
    collection = get_client(wh.chroma).get_collection(wh.collection)
    exclude = {**SMALL_VARS, "invalid_embeddings": "exclude"}

    def left_out(dataset_id):
        return (wh.query(f"select count(*) from clustering_state.embedding_cache where dataset_id = '{dataset_id}'")
                == [(0,)] and wh.query(f"select cluster from main.datasets where dataset_id = '{dataset_id}'")
                == [(None,)])

    # incremental path: ds-12's text changed (so it is read again) and its new vector is a zero vector
    wh.query_write("update main.datasets set text = 'a new text of ds-12' where dataset_id = 'ds-12'")
    collection.update(ids=["ds-12"], embeddings=np.zeros((1, 8), np.float32))
    wh.dbt("build", vars=exclude)
    # planned to read ds-12 alone; its zero vector is left out, so no row came from Chroma
    assert wh.report["pull"]["path"] == "incremental" and "1 changed (text)" in wh.report["pull"]["reason"]
    assert wh.report["pull"]["read_from_chroma"] == 0
    assert left_out("ds-12") and wh.report["datasets_without_embedding"] == 1
    # full path: ds-07's vector became a zero vector too
    collection.update(ids=["ds-07"], embeddings=np.zeros((1, 8), np.float32))
    wh.dbt("build", vars={**exclude, "incremental": False})
    assert wh.report["pull"]["path"] == "full"
    assert left_out("ds-07") and left_out("ds-12") and wh.report["datasets_without_embedding"] == 2
    assert wh.query("select count(*) from clustering.stg_chroma__embeddings") == [(len(ids) - 2,)]
    after = wh.snapshot()
    assert reliability.compare(protected(before), after) == 0
    # nothing else moved in `datasets` but the two clusters and the build's own columns
    assert len(after["main.datasets"]) == len(before["main.datasets"])
