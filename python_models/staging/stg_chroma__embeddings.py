"""Pull every dataset embedding out of the Chroma collection into Arrow.

Before any embedding is read, the collection's ids are checked against the
pipeline's `datasets` rows (var min_id_overlap): a store that belongs to
another pipeline stops the build here, before any model downstream (and so
before anything is written to the pipeline's tables).
"""

from mdc_clustering.chroma_reader import read_collection
from mdc_clustering.progress import dbt_progress
from mdc_clustering.settings import run_settings


def model(dbt, session):
    dbt.config(materialized="table")
    run = dbt.source("clustering_state", "run_settings")
    settings = run_settings(run)
    chroma, tables = settings.chroma, settings.tables
    pipeline_file = dbt.config.get("pipeline_file")
    collections = dbt.source("chroma", "collections")
    datasets = dbt.source("pipeline", "datasets")
    [(chroma_path, chroma_collection)] = collections.filter("collection_role = 'clustered'").select(
        "chroma_path, collection_name"
    ).fetchall()
    dataset_ids = datasets.select("dataset_id").to_arrow_table().column(0).to_pylist()
    return read_collection(
        chroma_path,
        chroma_collection,
        page_size=chroma.chroma_page_size,
        on_invalid=chroma.invalid_embeddings,
        progress=dbt_progress("stg_chroma__embeddings"),
        dataset_ids=dataset_ids,
        min_id_overlap=chroma.min_id_overlap,
        datasets_source=f"{tables.pipeline_schema}.{tables.datasets_table} of {pipeline_file}",
    )
