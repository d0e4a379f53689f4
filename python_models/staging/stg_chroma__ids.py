"""The Chroma collection's ids, and which embeddings this run reads (the pull's plan).

Before any embedding is read, the collection's ids are checked against the
pipeline's `datasets` rows (var min_id_overlap): a store that belongs to
another pipeline stops the build here, before any model downstream (and so
before anything is written to the pipeline's tables). A re-run then plans to
read from Chroma only new datasets and those whose text changed, after
reading a sample of cached embeddings back to compare
(mdc_clustering.stages.pull.plan_pull); stg_chroma__embeddings_pulled reads
them, embedding_cache keeps them, and the view stg_chroma__embeddings gives
every embedding.
"""

import time

from mdc_clustering.progress import dbt_progress, state_table_exists
from mdc_clustering.settings import run_settings
from mdc_clustering.stages.pull import plan_pull, planned_ids


def model(dbt, session):
    dbt.config(materialized="table")
    started = time.perf_counter()
    run = dbt.source("clustering_state", "run_settings")
    settings = run_settings(run)
    chroma, tables, reruns = settings.chroma, settings.tables, settings.reruns
    pipeline_file = dbt.config.get("pipeline_file")
    collections = dbt.source("chroma", "collections")
    datasets = dbt.source("pipeline", "datasets")
    [(chroma_path, chroma_collection)] = collections.filter("collection_role = 'clustered'").select(
        "chroma_path, collection_name"
    ).fetchall()
    cached = cached_sample = None
    cache_keyed = True
    if state_table_exists(session, "embedding_cache") and reruns.incremental:
        cache = dbt.source("clustering_state", "embedding_cache")
        cache_keyed = "dataset_key" in cache.columns
        # ids and fingerprints only: the embeddings stay in the cache (a re-run copies none of them)
        cached = cache.select("dataset_id, text_md5, chroma_path, collection_name").to_arrow_table()
        # a random sample of cached rows, read back from Chroma and compared (embedding_check_sample)
        sampled_ids = (
            cache.select("dataset_id as sampled_id")
            .order("random()")
            .limit(max(2 * reruns.embedding_check_sample, 1))
            .set_alias("check_sample")
        )
        cached_sample = (
            cache.set_alias("cached")
            .join(sampled_ids, "dataset_id = sampled_id")
            .select("dataset_id, embedding")
            .to_arrow_table()
        )
    fingerprints = datasets.select("dataset_id, md5(coalesce(text, '')) as text_md5").to_arrow_table()
    progress = dbt_progress("stg_chroma__ids")
    plan, ids, md5 = plan_pull(
        chroma_path,
        chroma_collection,
        cached=cached,
        fingerprints=fingerprints,
        incremental=reruns.incremental,
        max_change_share=reruns.incremental_max_change_share,
        check_sample=reruns.embedding_check_sample,
        cached_sample=cached_sample,
        page_size=chroma.chroma_page_size,
        on_invalid=chroma.invalid_embeddings,
        dataset_ids=fingerprints.column("dataset_id").to_pylist(),
        min_id_overlap=chroma.min_id_overlap,
        datasets_source=f"{tables.pipeline_schema}.{tables.datasets_table} of {pipeline_file}",
        cache_keyed=cache_keyed,
        progress=progress,
    )
    seconds = time.perf_counter() - started
    progress(f"pull plan: {plan.path} ({plan.reason}); {len(plan.to_read) if plan.path == 'incremental' else len(ids)}"
             f" of {len(ids)} to read from Chroma, planned in {seconds:.1f}s", final=True)
    return planned_ids(plan, ids, md5, seconds)
