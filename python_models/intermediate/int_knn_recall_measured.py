"""recall@k of the k-NN search, measured against exact search on a sample of datasets: one row."""

from mdc_clustering.stages.recall import recall_summary


def model(dbt, session):
    dbt.config(materialized="table")
    scored = dbt.ref("int_knn_recall_sample_scored")
    return recall_summary(scored.to_arrow_table())
