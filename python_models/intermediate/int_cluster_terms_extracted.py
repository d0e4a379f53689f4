"""The most distinctive terms of every cluster (class-based TF-IDF of its members' texts)."""

from mdc_clustering.settings import run_settings
from mdc_clustering.terms import cluster_terms_of_texts


def model(dbt, session):
    dbt.config(materialized="table")
    run = dbt.source("clustering_state", "run_settings")
    terms = run_settings(run).terms
    memberships = dbt.ref("int_datasets_clustered")
    datasets = dbt.ref("stg_pipeline__datasets")
    # one joined text per cluster, members in dataset_id order: DuckDB does the join and the concatenation
    cluster_texts = (
        memberships.filter("cluster is not null")
        .select("dataset_id as member_id, cluster")
        .join(datasets.select("dataset_id, text").set_alias("texts"), "member_id = dataset_id", how="left")
        .aggregate("cluster, string_agg(coalesce(text, ''), ' \n' order by member_id) as text", "cluster")
        .to_arrow_table()
    )
    return cluster_terms_of_texts(
        cluster_texts,
        top_n=terms.cluster_top_terms,
        extra_stop_words=terms.cluster_term_stop_words,
    )
