"""recall@k of the k-NN search, measured against exact search on a sample of datasets."""

from mdc_clustering.embeddings import iter_embeddings, read_embeddings
from mdc_clustering.knn import knn_settings
from mdc_clustering.progress import dbt_progress
from mdc_clustering.tables import knn_recall_table
from mdc_clustering.validation import positive_int


def model(dbt, session):
    dbt.config(materialized="table")
    sample_size = positive_int("knn_recall_sample", dbt.config.get("knn_recall_sample"))
    embeddings = dbt.ref("stg_chroma__embeddings")
    neighbors = dbt.ref("int_dataset_neighbors_searched")
    [(n,)] = embeddings.aggregate("count(*)").fetchall()
    # the sample: the datasets whose id hashes lowest (stable across runs of the same data)
    sample = (
        embeddings.select("dataset_id as sample_id, hash(dataset_id) as sample_hash")
        .order("sample_hash, sample_id")
        .limit(sample_size)
    )
    sampled = embeddings.join(sample.set_alias("recall_sample"), "dataset_id = sample_id").select(
        "dataset_id, embedding"
    )
    sample_neighbors = (
        neighbors.join(sample, "dataset_id = sample_id")
        .select("dataset_id, neighbor_id, neighbor_rank, search_dims, ivf_nlist, ivf_nprobe")
        .to_arrow_table()
    )
    method, params = knn_settings(
        n,
        knn_method=dbt.config.get("knn_method"),
        knn_exact_max_n=dbt.config.get("knn_exact_max_n"),
        ivf_pca_dims=dbt.config.get("ivf_pca_dims"),
        ivf_nlist=dbt.config.get("ivf_nlist"),
        ivf_nprobe=dbt.config.get("ivf_nprobe"),
        hnsw_m=dbt.config.get("hnsw_m"),
        hnsw_ef_construction=dbt.config.get("hnsw_ef_construction"),
        hnsw_ef_search=dbt.config.get("hnsw_ef_search"),
        hnsw_pca_dims=dbt.config.get("hnsw_pca_dims"),
    )
    # the exact search streams the embeddings in slices: the whole matrix is never held
    return knn_recall_table(
        iter_embeddings(embeddings, normalize=True, batch_rows=65_536),
        read_embeddings(sampled, normalize=True),
        sample_neighbors,
        method=method,
        k=dbt.config.get("k_neighbors"),
        params=params,
        progress=dbt_progress("int_knn_recall_measured"),
    )
