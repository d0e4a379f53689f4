"""The reference set whose items are the neighbours in the neighbourhood features.

By default (var reference_collection null) it is the clustered collection
itself; otherwise it is read from that collection, like stg_chroma__embeddings.
"""

from mdc_clustering.chroma_reader import read_collection, same_collection
from mdc_clustering.progress import dbt_progress


def model(dbt, session):
    dbt.config(materialized="table")
    chroma_path = dbt.config.get("chroma_path")
    chroma_collection = dbt.config.get("chroma_collection")
    reference_path = dbt.config.get("reference_chroma_path")
    reference_collection = dbt.config.get("reference_collection")
    page_size = dbt.config.get("chroma_page_size")
    invalid_embeddings = dbt.config.get("invalid_embeddings")
    embeddings = dbt.ref("stg_chroma__embeddings")
    if same_collection(chroma_path, chroma_collection, reference_path, reference_collection):
        return embeddings
    return read_collection(
        reference_path if reference_path not in (None, "", "None") else chroma_path,
        reference_collection,
        page_size=page_size,
        on_invalid=invalid_embeddings,
        progress=dbt_progress("stg_chroma__reference_embeddings"),
    )
