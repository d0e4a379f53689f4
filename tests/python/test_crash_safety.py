"""Crash safety: a `dbt build` SIGKILLed at any point leaves the shared tables as before or as after, never partial.

For each pause point, a copy of a small synthetic warehouse whose next build
changes both shared tables in every way (datasets: clusters set and cleared;
engineered_feature_values: rows inserted, updated, and deleted by the
stale-row post-hook) runs `dbt build` parked at that point
(mdc_clustering.faults, macros/pause_point.sql); dbt's whole process group is
SIGKILLed there; each table must then be exactly as before or exactly as after
a clean build (which one is fixed by the point), and the next `dbt build` must
succeed and give the clean build's result. The runs go two at a time (one per
core) in a module fixture; each point's test checks its own run.

A last test kills DuckDB itself at random moments of merge/delete/commit/
checkpoint: whole transactions only, and every returned COMMIT survives.
"""

from __future__ import annotations

import datetime as dt
import errno
import os
import queue
import random
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pytest
from dbt_runner import SHARED_TABLES, Warehouse

VARS = {"k_neighbors": 10, "target_degree": 6}


def _synthetic(root: Path) -> Warehouse:
    """Four well-separated groups of 30 (16-d), each in the collection and in `datasets`."""
    rng = np.random.default_rng(7)
    centers = rng.normal(size=(4, 16)) * 3
    vectors = np.vstack([c + rng.normal(size=(30, 16)) * 0.4 for c in centers])
    ids = [f"ds-{i:03d}" for i in range(len(vectors))]
    return Warehouse.from_arrays(root, ids, vectors)


def _prepare_before(wh: Warehouse) -> None:
    """After a first build with other vars: edit the tables so the next build inserts, updates and deletes."""
    wh.dbt("build", vars={**VARS, "neighborhood_k": 3})  # next build (neighborhood_k 5) updates features
    con = duckdb.connect(str(wh.db))
    try:
        con.execute("""
            -- another phase's feature: must never change
            insert into main.engineered_feature_values
            select dataset_id, document_id, 'context_token_count', total_tokens,
                   timestamp '2026-01-02', timestamp '2026-01-02'
            from main.datasets;
            -- features that the next build inserts again
            delete from main.engineered_feature_values
            where dataset_id in ('ds-003', 'ds-047') and feature_name like 'neighbor_%';
            -- clusters the next build sets again
            update main.datasets set cluster = null where dataset_id in (
                select dataset_id from main.datasets where cluster is not null order by dataset_id limit 3);
            -- a dataset that left the collection: its cluster is cleared, its features deleted (post-hook)
            insert into main.datasets values ('ds-gone', 'doc-0', 10, 10.0, 100, 90, 'cluster_1', null,
                'text of ds-gone', timestamp '2026-01-01', timestamp '2026-01-01');
            insert into main.engineered_feature_values
            select 'ds-gone', 'doc-0', feature_name, 0.5, timestamp '2026-01-01', timestamp '2026-01-01'
            from (select distinct feature_name from main.engineered_feature_values
                  where feature_name <> 'context_token_count');
            checkpoint;
        """)
    finally:
        con.close()


def _copy(src: Path, dst: Path) -> Warehouse:
    """``src``'s database and Chroma store at ``dst`` (anything else there, like dbt's target/, is kept)."""
    dst.mkdir(parents=True, exist_ok=True)
    for stale in ("pipeline.duckdb.wal", "pause.fifo"):
        (dst / stale).unlink(missing_ok=True)
    shutil.copy(src / "pipeline.duckdb", dst / "pipeline.duckdb")
    shutil.rmtree(dst / "chroma", ignore_errors=True)
    shutil.copytree(src / "chroma", dst / "chroma")
    return Warehouse(dst, collection="synthetic", load_sample=False)


def _normalise(rows: list[tuple], old_times: set) -> list[tuple]:
    """Timestamps a run wrote (not in the before state) become 'NEW': runs differ only in their start time."""
    return [
        tuple("NEW" if isinstance(v, dt.datetime) and v not in old_times else v for v in row) for row in rows
    ]


class States:
    """The warehouse before the build under test, and the tables a clean build leaves."""

    def __init__(self, root: Path):
        self.before_dir = root / "before"
        _prepare_before(_synthetic(self.before_dir))
        # The kill runs work in these folders (refilled from before_dir each time), one per
        # worker: the profile and vars stay the same, so dbt's partial parsing saves seconds.
        self.work_dirs = [root / "work0", root / "work1"]
        clean = _copy(self.before_dir, self.work_dirs[0])
        self.before = clean.snapshot()
        clean.dbt("build", vars=VARS)
        self.after = clean.snapshot()
        self.old_times = {
            table: {v for row in rows for v in row if isinstance(v, dt.datetime)} for table, rows in self.before.items()
        }

    def norm(self, table: str, rows: list[tuple]) -> list[tuple]:
        return _normalise(rows, self.old_times[table])

    def state_of(self, snapshot: dict, table: str) -> str:
        observed = self.norm(table, snapshot[table])
        if observed == self.norm(table, self.before[table]):
            return "before"
        if observed == self.norm(table, self.after[table]):
            return "after"
        return "partial"


@pytest.fixture(scope="module")
def states(tmp_path_factory) -> States:
    return States(tmp_path_factory.mktemp("crash_states"))


def test_the_build_under_test_inserts_updates_and_deletes(states):
    """Guards the other tests' teeth: the build they kill really changes both tables in every way."""
    feats = "main.engineered_feature_values"
    before = {r[:3]: r[3] for r in states.before[feats]}
    after = {r[:3]: r[3] for r in states.after[feats]}
    assert set(before) - set(after), "no feature row deleted"
    assert set(after) - set(before), "no feature row inserted"
    assert any(after[k] != before[k] for k in set(before) & set(after)), "no feature value updated"
    assert any(k[2] == "context_token_count" for k in after)
    assert all(before[k] == after[k] for k in before if k[2] == "context_token_count")
    clusters_before = {r[0]: r[6] for r in states.before["main.datasets"]}
    clusters_after = {r[0]: r[6] for r in states.after["main.datasets"]}
    assert clusters_before["ds-gone"] is not None and clusters_after["ds-gone"] is None
    assert any(clusters_before[d] is None and clusters_after[d] is not None for d in clusters_before)
    assert len(clusters_before) == len(clusters_after)


class NotParked(AssertionError):
    pass


def _park_and_kill(proc: subprocess.Popen, fifo: Path, log: Path, timeout: float = 240.0) -> None:
    """Wait until the run blocks reading ``fifo`` (at its pause point), then SIGKILL its process group."""
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise NotParked(f"dbt ended (exit {proc.returncode}) before its pause point:\n{log.read_text()[-4000:]}")
        try:
            writer = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)  # succeeds only while a reader waits
            break
        except OSError as error:
            if error.errno != errno.ENXIO:
                raise
        if time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            raise NotParked(f"dbt never reached its pause point:\n{log.read_text()[-4000:]}")
        time.sleep(0.05)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        os.close(writer)  # only after the kill: closing earlier would let a SQL pause read EOF and go on
    assert proc.returncode == -signal.SIGKILL


def _reopen(db: Path) -> None:
    """The next read-write connect replays DuckDB's write-ahead log; it must succeed."""
    con = duckdb.connect(str(db))
    con.execute("select count(*) from main.datasets").fetchall()
    con.close()


BOTH = {"before", "after"}
# pause point -> the states each table may be in after the kill there. A table whose own write
# is paused (before its COMMIT) must be as before; after its COMMIT, as after. With two dbt
# threads the other table's write may or may not have committed meanwhile.
KILL_POINTS = {
    # Python steps (mdc_clustering.progress.dbt_progress): before any write to the shared tables
    "stg_chroma__embeddings_pulled": {"main.datasets": {"before"}, "main.engineered_feature_values": {"before"}},
    "int_dataset_neighbors_updated": {"main.datasets": {"before"}, "main.engineered_feature_values": {"before"}},
    "int_datasets_clustered": {"main.datasets": {"before"}, "main.engineered_feature_values": {"before"}},
    # datasets: inside its MERGE statement; after its COMMIT
    "datasets_merge": {"main.datasets": {"before"}, "main.engineered_feature_values": BOTH},
    "datasets_after_commit": {"main.datasets": {"after"}, "main.engineered_feature_values": BOTH},
    # engineered_feature_values: inside its MERGE; between the MERGE and the stale-row delete
    # (post-hook); after its COMMIT
    "features_merge": {"main.datasets": BOTH, "main.engineered_feature_values": {"before"}},
    "features_before_delete": {"main.datasets": BOTH, "main.engineered_feature_values": {"before"}},
    "features_after_commit": {"main.datasets": BOTH, "main.engineered_feature_values": {"after"}},
}


@dataclass
class KillOutcome:
    killed: dict | None = None  # the shared tables right after the kill (and WAL replay)
    rebuilt: dict | None = None  # ... after the next, unpaused build
    error: BaseException | None = None


def _kill_then_rebuild(states: States, point: str, work_dir: Path) -> KillOutcome:
    outcome = KillOutcome()
    try:
        wh = _copy(states.before_dir, work_dir)
        fifo = work_dir / "pause.fifo"
        os.mkfifo(fifo)
        log = work_dir / f"killed_at_{point}.log"
        proc = wh.start(
            "build", vars=VARS, env={"MDC_TEST_PAUSE_AT": point, "MDC_TEST_PAUSE_FIFO": str(fifo)}, output=log
        )
        _park_and_kill(proc, fifo, log)
        _reopen(wh.db)
        outcome.killed = wh.snapshot()
        # the next build, as a user would run it, without the data tests (the clean build ran them; here
        # the oracle is the clean build's tables)
        wh.dbt("build", "--exclude-resource-type", "test", "unit_test", vars=VARS, timeout=600)
        outcome.rebuilt = wh.snapshot()
    except BaseException as error:  # handed to the point's own test
        outcome.error = error
    return outcome


@pytest.fixture(scope="module")
def kill_outcomes(states) -> dict[str, KillOutcome]:
    """Every kill point's run, two at a time (one per core), each in its own work folder."""
    free = queue.Queue()
    for work_dir in states.work_dirs:
        free.put(work_dir)

    def run(point: str) -> KillOutcome:
        work_dir = free.get()
        try:
            return _kill_then_rebuild(states, point, work_dir)
        finally:
            free.put(work_dir)

    with ThreadPoolExecutor(max_workers=len(states.work_dirs)) as pool:
        futures = {point: pool.submit(run, point) for point in KILL_POINTS}
        return {point: future.result() for point, future in futures.items()}


@pytest.mark.fault
@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_sigkill_at_pause_point_leaves_tables_whole_and_next_build_recovers(states, kill_outcomes, reliability, point):
    outcome = kill_outcomes[point]
    reliability.fault(f"SIGKILL at {point}")
    if outcome.error is not None:
        raise outcome.error
    reliability.compare(states.before, outcome.killed, kept=states.after)
    for table, allowed in KILL_POINTS[point].items():
        assert states.state_of(outcome.killed, table) in allowed, f"{table} after a kill at {point}"

    # the next build succeeded and gave the clean build's result
    reliability.compare(states.after, outcome.rebuilt)
    for table in SHARED_TABLES:
        assert states.norm(table, outcome.rebuilt[table]) == states.norm(table, states.after[table]), table


# --- DuckDB alone: kills at random moments of a merge + delete transaction ------------------------

_WRITER = r"""
import sys, duckdb
con = duckdb.connect(sys.argv[1])
con.execute("pragma wal_autocheckpoint='256KB'")  # checkpoints often: kills land in them too
n = int(sys.argv[2])
gen = con.execute("select max(gen) from t").fetchall()[0][0]
while True:
    gen += 1
    con.execute("begin")
    con.execute(f'''
        merge into t using (select range as id, {gen} as gen, random() as v from range({n})) as s
        on t.id = s.id
        when matched then update set gen = s.gen, v = s.v
        when not matched then insert values (s.id, s.gen, s.v)''')
    con.execute(f"delete from t where id >= {n} - {gen % 7} and id < {n}")  # the stale-row delete
    con.execute(f"insert into t select range, {gen}, 0 from range({n} - {gen % 7}, {n})")
    con.execute("commit")
    print(gen, flush=True)
"""


@pytest.mark.fault
def test_duckdb_commits_are_atomic_and_durable_under_sigkill(tmp_path, reliability):
    """SIGKILL a process looping over merge + delete + insert transactions at random moments (in a
    statement, in COMMIT, in a checkpoint): the reopened file holds exactly one whole generation, at
    least the last one whose COMMIT returned."""
    db, n = tmp_path / "atomic.duckdb", 50_000
    con = duckdb.connect(str(db))
    con.execute(f"create table t (id bigint primary key, gen bigint, v double); "
                f"insert into t select range, 0, 0 from range({n})")
    con.close()
    rng = random.Random(11)
    kills = 12
    for _ in range(kills):
        proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(db), str(n)], stdout=subprocess.PIPE, text=True)
        first = proc.stdout.readline()  # one transaction committed: the loop is running
        time.sleep(rng.uniform(0.0, 0.6))
        proc.kill()
        out, _ = proc.communicate()
        committed = [int(line) for line in (first + out).split()]
        reliability.fault("SIGKILL during DuckDB merge/delete/commit/checkpoint")
        con = duckdb.connect(str(db))  # replays the WAL
        try:
            [(rows, gens, gen)] = con.execute("select count(*), count(distinct gen), max(gen) from t").fetchall()
        finally:
            con.close()
        assert rows == n and gens == 1, (rows, gens)
        assert committed
        assert gen in (committed[-1], committed[-1] + 1)  # the last commit that returned, or the next
