"""k-nearest neighbours (cosine) of every embedded dataset: exact, or approximate (IVF, HNSW) for large N."""

from mdc_clustering.embeddings import read_embeddings
from mdc_clustering.knn import knn_settings
from mdc_clustering.progress import dbt_progress
from mdc_clustering.settings import run_settings
from mdc_clustering.tables import nearest_neighbors


def model(dbt, session):
    dbt.config(materialized="table")
    run = dbt.source("clustering_state", "run_settings")
    embeddings = dbt.ref("stg_chroma__embeddings")
    knn = run_settings(run).knn
    unit_rows = read_embeddings(embeddings, normalize=True)
    method, params = knn_settings(len(unit_rows), **knn.model_dump(exclude={"k_neighbors", "knn_recall_sample"}))
    return nearest_neighbors(
        unit_rows,
        knn.k_neighbors,
        method=method,
        params=params,
        progress=dbt_progress("int_dataset_neighbors_searched"),
    )
