"""Each dataset's neighborhood_k nearest items of the reference set, itself excluded."""

from mdc_clustering.chroma_reader import same_collection
from mdc_clustering.embeddings import read_embeddings
from mdc_clustering.progress import dbt_progress
from mdc_clustering.settings import run_settings
from mdc_clustering.tables import reference_neighbors


def model(dbt, session):
    dbt.config(materialized="table")
    run = dbt.source("clustering_state", "run_settings")
    settings = run_settings(run)
    neighborhood_k = settings.features.neighborhood_k
    k_neighbors = settings.knn.k_neighbors
    collections = dbt.ref("stg_chroma__collections")
    knn = dbt.ref("int_dataset_neighbors_searched")
    embeddings = dbt.ref("stg_chroma__embeddings")
    reference = dbt.ref("stg_chroma__reference_embeddings")
    roles = dict(
        (role, (path, name))
        for role, path, name in collections.select("collection_role, chroma_path, collection_name").fetchall()
    )
    same = same_collection(*roles["clustered"], *roles["reference"])
    if neighborhood_k <= k_neighbors and same:
        # Already computed: the first neighborhood_k rows of the k-NN table.
        return knn.filter(f"neighbor_rank <= {neighborhood_k}").select(
            "dataset_id, neighbor_id, neighbor_rank, similarity"
        )
    queries = read_embeddings(embeddings, normalize=True)
    # the clustered collection's vectors are not copied into the reference table: search them directly
    items = queries if same else read_embeddings(reference, normalize=True)
    return reference_neighbors(
        queries, items, neighborhood_k, progress=dbt_progress("int_reference_neighbors_searched")
    )
