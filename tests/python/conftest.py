"""Shared fixtures: tiny Chroma stores, a throw-away copy of the sample warehouse, the reliability log."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
SAMPLE_DIR = REPO / "data" / "sample"


def make_store(path: Path, name: str, ids, vectors, metadatas=None) -> Path:
    """Write a Chroma persistent store at ``path`` with one collection."""
    import chromadb
    from chromadb.config import Settings

    client = chromadb.PersistentClient(path=str(path), settings=Settings(anonymized_telemetry=False))
    collection = client.create_collection(name, embedding_function=None)
    if len(ids):
        collection.add(
            ids=list(ids),
            embeddings=np.asarray(vectors, dtype=np.float32),
            metadatas=metadatas,
        )
    return path


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture(scope="session")
def sample(tmp_path_factory):
    """The embedded sample, loaded into a throw-away warehouse and built once with default vars (pictures drawn).

    Tests that change it must restore it (or use their own warehouse).
    """
    from dbt_runner import Warehouse

    wh = Warehouse(tmp_path_factory.mktemp("sample"))
    wh.dbt("build", vars={"figures": True})
    return wh


# --- Reliability summary -------------------------------------------------------------------------
# Tests marked `bad_input` or `fault` (pyproject.toml) are counted; a test may also record each bad
# input / fault it tries and every before/after comparison of the stored tables through the
# `reliability` fixture. A record counts as handled / survived when its test passed.


@dataclass
class ReliabilityLog:
    bad_inputs: list[tuple[str, str]] = field(default_factory=list)  # (test id, what was tried)
    faults: list[tuple[str, str]] = field(default_factory=list)
    comparisons: int = 0
    rows_lost: int = 0
    passed: dict[str, bool] = field(default_factory=dict)


_LOG = pytest.StashKey[ReliabilityLog]()


class TestReliability:
    """What one test tried, for the summary printed at the end of the run."""

    __test__ = False  # not a test class

    def __init__(self, log: ReliabilityLog, test_id: str):
        self._log, self._test = log, test_id

    def bad_input(self, name: str) -> None:
        self._log.bad_inputs.append((self._test, name))

    def fault(self, name: str) -> None:
        self._log.faults.append((self._test, name))

    def compare(self, before: dict, after: dict, *, kept: dict | None = None) -> int:
        """Count the stored rows of ``before`` missing from ``after`` (see ``dbt_runner.rows_lost``); returns it."""
        from dbt_runner import rows_lost

        lost = rows_lost(before, after, kept=kept)
        self._log.comparisons += 1
        self._log.rows_lost += lost
        return lost


def pytest_configure(config):
    config.stash[_LOG] = ReliabilityLog()


@pytest.fixture
def reliability(request) -> TestReliability:
    return TestReliability(request.config.stash[_LOG], request.node.nodeid)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.when == "call" or (report.when == "setup" and not report.passed):
        log = item.config.stash[_LOG]
        log.passed[item.nodeid] = report.passed and log.passed.get(item.nodeid, True)
        if report.when == "call":
            recorded = {test for test, _ in log.bad_inputs} | {test for test, _ in log.faults}
            if item.nodeid not in recorded:  # a marked test that records nothing itself counts once
                if item.get_closest_marker("bad_input"):
                    log.bad_inputs.append((item.nodeid, item.nodeid))
                if item.get_closest_marker("fault"):
                    log.faults.append((item.nodeid, item.nodeid))
    return report


def pytest_sessionfinish(session):
    """On a pytest-xdist worker: hand this worker's records to the controller. Drop its kept dbt parses."""
    import shutil

    from dbt_runner import PARSE_CACHE

    shutil.rmtree(PARSE_CACHE, ignore_errors=True)
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        log = session.config.stash[_LOG]
        workeroutput["reliability"] = {
            "bad_inputs": [list(r) for r in log.bad_inputs],
            "faults": [list(r) for r in log.faults],
            "comparisons": log.comparisons,
            "rows_lost": log.rows_lost,
            "passed": dict(log.passed),
        }


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    """On the pytest-xdist controller: add a finished worker's records to the run's."""
    part = getattr(node, "workeroutput", {}).get("reliability")
    if part is None:
        return
    log = node.config.stash[_LOG]
    log.bad_inputs.extend(tuple(r) for r in part["bad_inputs"])
    log.faults.extend(tuple(r) for r in part["faults"])
    log.comparisons += part["comparisons"]
    log.rows_lost += part["rows_lost"]
    log.passed.update(part["passed"])


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    log = config.stash.get(_LOG, None)
    if log is None or not (log.bad_inputs or log.faults or log.comparisons):
        return
    handled = sum(log.passed.get(test, False) for test, _ in log.bad_inputs)
    survived = sum(log.passed.get(test, False) for test, _ in log.faults)
    write = terminalreporter.write_line
    terminalreporter.write_sep("=", "reliability")
    write(f"bad inputs tried:         {len(log.bad_inputs):4d}   handled as specified: {handled}")
    write(f"faults injected:          {len(log.faults):4d}   survived: {survived}")
    write(f"stored rows lost:         {log.rows_lost:4d}   (over {log.comparisons} before/after comparisons "
          "of main.datasets and main.engineered_feature_values)")

