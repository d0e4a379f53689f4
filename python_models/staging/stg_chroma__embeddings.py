"""Pull every dataset embedding out of the Chroma collection into Arrow.

Before any embedding is read, the collection's ids are checked against the
pipeline's `datasets` rows (var min_id_overlap): a store that belongs to
another pipeline stops the build here, before any model downstream (and so
before anything is written to the pipeline's tables).
"""

from mdc_clustering.chroma_reader import read_collection
from mdc_clustering.progress import dbt_progress


def model(dbt, session):
    dbt.config(materialized="table")
    page_size = dbt.config.get("chroma_page_size")
    invalid_embeddings = dbt.config.get("invalid_embeddings")
    min_id_overlap = dbt.config.get("min_id_overlap")
    pipeline_database = dbt.config.get("pipeline_database")
    collections = dbt.source("chroma", "collections")
    datasets = dbt.source("pipeline", "datasets")
    [(chroma_path, chroma_collection)] = collections.filter("collection_role = 'clustered'").select(
        "chroma_path, collection_name"
    ).fetchall()
    dataset_ids = datasets.select("dataset_id").to_arrow_table().column(0).to_pylist()
    return read_collection(
        chroma_path,
        chroma_collection,
        page_size=page_size,
        on_invalid=invalid_embeddings,
        progress=dbt_progress("stg_chroma__embeddings"),
        dataset_ids=dataset_ids,
        min_id_overlap=min_id_overlap,
        datasets_source=f"main.datasets of {pipeline_database}",
    )
