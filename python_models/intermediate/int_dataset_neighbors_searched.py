"""Exact k-nearest neighbours (cosine) of every embedded dataset."""

from mdc_clustering.progress import dbt_progress
from mdc_clustering.tables import nearest_neighbors


def model(dbt, session):
    dbt.config(materialized="table")
    k_neighbors = dbt.config.get("k_neighbors")
    embeddings = dbt.ref("stg_chroma__embeddings")
    table = embeddings.select("dataset_id, embedding").order("dataset_id").to_arrow_table()
    return nearest_neighbors(table, k_neighbors, progress=dbt_progress("int_dataset_neighbors_searched"))
