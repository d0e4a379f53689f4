"""k-nearest neighbours (cosine) of every embedded dataset: exact, or approximate (IVF, HNSW) for large N."""

from mdc_clustering.embeddings import read_embeddings
from mdc_clustering.knn import knn_settings
from mdc_clustering.progress import dbt_progress
from mdc_clustering.tables import nearest_neighbors


def model(dbt, session):
    dbt.config(materialized="table")
    embeddings = dbt.ref("stg_chroma__embeddings")
    unit_rows = read_embeddings(embeddings, normalize=True)
    method, params = knn_settings(
        len(unit_rows),
        knn_method=dbt.config.get("knn_method"),
        knn_exact_max_n=dbt.config.get("knn_exact_max_n"),
        ivf_pca_dims=dbt.config.get("ivf_pca_dims"),
        ivf_nlist=dbt.config.get("ivf_nlist"),
        ivf_nprobe=dbt.config.get("ivf_nprobe"),
        hnsw_m=dbt.config.get("hnsw_m"),
        hnsw_ef_construction=dbt.config.get("hnsw_ef_construction"),
        hnsw_ef_search=dbt.config.get("hnsw_ef_search"),
        hnsw_pca_dims=dbt.config.get("hnsw_pca_dims"),
        knn_min_recall=dbt.config.get("knn_min_recall"),
    )
    return nearest_neighbors(
        unit_rows,
        dbt.config.get("k_neighbors"),
        method=method,
        params=params,
        progress=dbt_progress("int_dataset_neighbors_searched"),
    )
