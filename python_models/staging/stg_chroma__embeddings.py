"""The run's dataset embeddings, as Arrow: from Chroma, or from the last run's cache where nothing changed.

Before any embedding is read, the collection's ids are checked against the
pipeline's `datasets` rows (var min_id_overlap): a store that belongs to
another pipeline stops the build here, before any model downstream (and so
before anything is written to the pipeline's tables). A re-run then reads
from Chroma only new datasets and those whose text changed
(mdc_clustering.stages.pull); the model `embedding_cache` keeps the result
for the next run.
"""

from mdc_clustering.progress import dbt_progress, state_table_exists
from mdc_clustering.settings import run_settings
from mdc_clustering.stages.pull import pull_embeddings


def model(dbt, session):
    dbt.config(materialized="table")
    run = dbt.source("clustering_state", "run_settings")
    settings = run_settings(run)
    chroma, tables, reruns = settings.chroma, settings.tables, settings.reruns
    pipeline_file = dbt.config.get("pipeline_file")
    collections = dbt.source("chroma", "collections")
    datasets = dbt.source("pipeline", "datasets")
    [(chroma_path, chroma_collection)] = collections.filter("collection_role = 'clustered'").select(
        "chroma_path, collection_name"
    ).fetchall()
    cache_exists = state_table_exists(session, "embedding_cache")
    cached = None
    if cache_exists and reruns.incremental:
        cache = dbt.source("clustering_state", "embedding_cache")
        cached = cache.to_arrow_table()
    fingerprints = datasets.select("dataset_id, md5(coalesce(text, '')) as text_md5").to_arrow_table()
    return pull_embeddings(
        chroma_path,
        chroma_collection,
        cached=cached,
        fingerprints=fingerprints,
        incremental=reruns.incremental,
        max_change_share=reruns.incremental_max_change_share,
        check_sample=reruns.embedding_check_sample,
        page_size=chroma.chroma_page_size,
        on_invalid=chroma.invalid_embeddings,
        dataset_ids=fingerprints.column("dataset_id").to_pylist(),
        min_id_overlap=chroma.min_id_overlap,
        datasets_source=f"{tables.pipeline_schema}.{tables.datasets_table} of {pipeline_file}",
        progress=dbt_progress("stg_chroma__embeddings"),
    )
