"""recall@k of the k-NN search, measured against exact search on a sample of datasets."""

from mdc_clustering.embeddings import iter_embeddings, read_embeddings
from mdc_clustering.knn import knn_settings
from mdc_clustering.progress import dbt_progress
from mdc_clustering.settings import run_settings
from mdc_clustering.tables import knn_recall_table


def model(dbt, session):
    dbt.config(materialized="table")
    run = dbt.source("clustering_state", "run_settings")
    knn = run_settings(run).knn
    sample_size = knn.knn_recall_sample
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
    # the same k-NN settings as int_dataset_neighbors_searched (knn_min_recall included)
    method, params = knn_settings(n, **knn.model_dump(exclude={"k_neighbors", "knn_recall_sample"}))
    # the exact search streams the embeddings in slices: the whole matrix is never held
    return knn_recall_table(
        iter_embeddings(embeddings, normalize=True, batch_rows=65_536),
        read_embeddings(sampled, normalize=True),
        sample_neighbors,
        method=method,
        k=knn.k_neighbors,
        params=params,
        progress=dbt_progress("int_knn_recall_measured"),
    )
