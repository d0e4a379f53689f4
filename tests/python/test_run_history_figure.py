"""run_history.png: the run that draws it has no step times yet (the on-run-end hook writes them after every
model), so the picture draws the earlier runs' times and says why this run's are missing."""

from __future__ import annotations

from datetime import datetime, timedelta

import pyarrow as pa
from PIL import Image

from mdc_clustering.history import HISTORY_FILE, write_history_figure


def history(step_seconds: list[str | None]) -> pa.Table:
    """Rows as clustering_state.run_history holds them, one per run, run ids run-1, run-2, ..."""
    start = datetime(2026, 1, 1)
    n = len(step_seconds)
    return pa.table({
        "run_id": [f"run-{i + 1}" for i in range(n)],
        "run_started_at": [start + timedelta(days=i) for i in range(n)],
        "clustering_mode": ["full"] * n,
        "pull_path": ["full"] + ["incremental"] * (n - 1),
        "n_datasets": [100 + 10 * i for i in range(n)],
        "n_clusters": [8 + i for i in range(n)],
        "n_unclustered": [3] * n,
        "modularity": [0.6] * n,
        "recall_at_k": [1.0] * n,
        "labels_born": [8] + [1] * (n - 1),
        "labels_retired": [0] * n,
        "share_kept_label": [None] + [0.9] * (n - 1),
        "step_seconds": step_seconds,
    })


TIMES = '{"stg_chroma__embeddings": 2.5, "int_datasets_clustered": 4.0, "run_history": 0.1}'


def test_this_runs_step_times_are_missing_and_the_picture_says_why(tmp_path):
    # as dbt build leaves it at rpt_run_history_drawn: this run's row is written, its step times are not
    [row] = write_history_figure(history([TIMES, TIMES, None]), tmp_path, current_run_id="run-3").to_pylist()
    assert (row["n_runs"], row["n_runs_timed"]) == (3, 2)
    assert row["note"].startswith("run 3 (this one): its step times are recorded when it ends")
    assert "next run's picture shows them" in row["note"]
    assert Image.open(tmp_path / HISTORY_FILE).size[0] > 1000


def test_an_earlier_run_without_step_times_is_named_apart_from_this_one(tmp_path):
    [row] = write_history_figure(history([None, TIMES, None]), tmp_path, current_run_id="run-3").to_pylist()
    assert row["n_runs_timed"] == 1
    assert "run 3 (this one)" in row["note"]
    assert "run 1 has no step times (it stopped before its on-run-end hook)" in row["note"]


def test_a_history_drawn_after_its_runs_ended_draws_every_runs_times(tmp_path):
    # drawn outside a build (no current run), every run finished: nothing is missing
    [row] = write_history_figure(history([TIMES, TIMES]), tmp_path).to_pylist()
    assert (row["n_runs"], row["n_runs_timed"]) == (2, 2)
    assert row["note"] == "every run's step times are drawn"
