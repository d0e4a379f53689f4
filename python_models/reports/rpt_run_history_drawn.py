"""The trends of clustering_state.run_history (this run included) as run_history.png in the report folder."""

from mdc_clustering.history import write_history_figure


def model(dbt, session):
    dbt.config(materialized="table")
    history = dbt.ref("run_history")
    folder = dbt.ref("rpt_clustering_report_folder")
    [(report_dir,)] = folder.select("report_dir").fetchall()
    return write_history_figure(history.to_arrow_table(), report_dir)
