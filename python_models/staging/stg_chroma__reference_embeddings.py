"""The reference set whose items are the neighbours in the neighbourhood features.

By default (var reference_collection null) it is the clustered collection
itself, and only its ids, metadata and norms are kept here: `embedding` is
NULL (FLOAT[]), the vectors being those of stg_chroma__embeddings (a copy cost 1.5 GB
of DuckDB's memory and 13 s at a million datasets). Otherwise it is read from
that collection, like stg_chroma__embeddings.
"""

from mdc_clustering.chroma_reader import read_collection, same_collection
from mdc_clustering.progress import dbt_progress
from mdc_clustering.settings import run_settings


def model(dbt, session):
    dbt.config(materialized="table")
    run = dbt.source("clustering_state", "run_settings")
    chroma = run_settings(run).chroma
    collections = dbt.source("chroma", "collections")
    embeddings = dbt.ref("stg_chroma__embeddings")
    roles = dict(
        (role, (path, name))
        for role, path, name in collections.select("collection_role, chroma_path, collection_name").fetchall()
    )
    if same_collection(*roles["clustered"], *roles["reference"]):
        # the same columns; the vectors stay in stg_chroma__embeddings. The NULL is a FLOAT[] (variable
        # list): DuckDB stores a NULL FLOAT[d] with d child values (1.8 s for 100,000 rows), a NULL FLOAT[]
        # with none
        return embeddings.select(
            "dataset_id, document_id, dataset_type, cast(null as float[]) as embedding, embedding_norm"
        )
    reference_path, reference_collection = roles["reference"]
    return read_collection(
        reference_path,
        reference_collection,
        page_size=chroma.chroma_page_size,
        on_invalid=chroma.invalid_embeddings,
        progress=dbt_progress("stg_chroma__reference_embeddings"),
        path_var="reference_chroma_path",
        name_var="reference_collection",
    )
