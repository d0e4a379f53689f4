"""Pull every dataset embedding out of the Chroma collection into Arrow."""

from mdc_clustering.chroma_reader import read_collection
from mdc_clustering.progress import dbt_progress


def model(dbt, session):
    dbt.config(materialized="table")
    page_size = dbt.config.get("chroma_page_size")
    invalid_embeddings = dbt.config.get("invalid_embeddings")
    collections = dbt.source("chroma", "collections")
    [(chroma_path, chroma_collection)] = collections.filter("collection_role = 'clustered'").select(
        "chroma_path, collection_name"
    ).fetchall()
    return read_collection(
        chroma_path,
        chroma_collection,
        page_size=page_size,
        on_invalid=invalid_embeddings,
        progress=dbt_progress("stg_chroma__embeddings"),
    )
