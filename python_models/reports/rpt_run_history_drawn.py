"""The trends of clustering_state.run_history (this run included, its step times not yet) as run_history.png."""

import pyarrow as pa

from mdc_clustering.history import write_history_figure
from mdc_clustering.settings import run_settings


def model(dbt, session):
    dbt.config(materialized="table")
    history = dbt.ref("run_history")
    run = dbt.source("clustering_state", "run_settings")
    folder = dbt.ref("rpt_clustering_report_folder")
    [(report_dir,)] = folder.select("report_dir").fetchall()
    if not run_settings(run).reports.figures:
        return pa.table({"figure": pa.array([], pa.string()), "path": pa.array([], pa.string()),
                         "n_runs": pa.array([], pa.int64()), "n_runs_timed": pa.array([], pa.int64()),
                         "note": pa.array([], pa.string())})
    # this run's id: its step times are written at its end (on-run-end), after this picture
    [(run_id,)] = run.select("invocation_id").fetchall()
    return write_history_figure(history.to_arrow_table(), report_dir, current_run_id=run_id)
