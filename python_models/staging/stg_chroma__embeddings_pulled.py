"""The embeddings this run read from Chroma: every one on a first run, only new and changed ones on a re-run.

stg_chroma__ids planned which (and checked the store first); the model
embedding_cache writes these rows into the cache, and the view
stg_chroma__embeddings gives every embedding from there.
"""

import numpy as np
import pyarrow as pa

from mdc_clustering.embeddings import array_dimension
from mdc_clustering.progress import dbt_progress, state_table_exists
from mdc_clustering.settings import run_settings
from mdc_clustering.stages.pull import read_planned


def model(dbt, session):
    dbt.config(materialized="table")
    run = dbt.source("clustering_state", "run_settings")
    chroma = run_settings(run).chroma
    collections = dbt.source("chroma", "collections")
    planned = dbt.ref("stg_chroma__ids")
    [(chroma_path, chroma_collection)] = collections.filter("collection_role = 'clustered'").select(
        "chroma_path, collection_name"
    ).fetchall()
    dim = None
    if state_table_exists(session, "embedding_cache"):
        cache = dbt.source("clustering_state", "embedding_cache")
        # the dimension from the column's type (FLOAT[d]), not from a scan of every cached vector
        dim = array_dimension(dict(zip(cache.columns, cache.types, strict=True))["embedding"])
        if dim is None:  # not a FLOAT[d] column: the longest vector
            [(dim,)] = cache.aggregate("max(len(embedding))").fetchall()
    progress = dbt_progress("stg_chroma__embeddings_pulled")
    pulled = read_planned(
        chroma_path,
        chroma_collection,
        planned.to_arrow_table(),
        dim=dim,
        page_size=chroma.chroma_page_size,
        on_invalid=chroma.invalid_embeddings,
        progress=progress,
    )
    seconds = pulled.column("read_seconds")[0].as_py() if pulled.num_rows else 0.0
    progress(f"read {pulled.num_rows} embeddings from Chroma in {seconds:.1f}s", final=True)
    # each row's place in id order: embedding_cache numbers new datasets' keys by it (no window over the vectors)
    return pulled.append_column("read_rank", pa.array(np.arange(pulled.num_rows, dtype=np.int32)))
