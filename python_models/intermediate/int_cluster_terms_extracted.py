"""The most distinctive terms of every cluster (class-based TF-IDF of its members' texts)."""

from mdc_clustering.terms import cluster_terms
from mdc_clustering.validation import positive_int


def model(dbt, session):
    dbt.config(materialized="table")
    top_n = positive_int("cluster_top_terms", dbt.config.get("cluster_top_terms"))
    stop_words = dbt.config.get("cluster_term_stop_words")
    memberships = dbt.ref("int_datasets_clustered")
    datasets = dbt.ref("stg_pipeline__datasets")
    return cluster_terms(
        memberships.select("dataset_id, cluster").to_arrow_table(),
        datasets.select("dataset_id, text").to_arrow_table(),
        top_n=top_n,
        extra_stop_words=stop_words.split(",") if stop_words else [],
    )
