"""Each sampled dataset's exact answer (its exact top k over all embeddings) and its k-NN list's hits.

The sample: `knn_recall_sample` datasets whose id hashes lowest (stable across runs of the same data).
A re-run updates the last run's exact answers (clustering_state.recall_state, written by the model
recall_state) for the new, changed and removed datasets (mdc_clustering.neighbors.update_exact_answers):
every embedding is read only when a sampled dataset must be searched again.
"""

from mdc_clustering.embeddings import iter_embeddings, rows_reader
from mdc_clustering.knn import knn_settings
from mdc_clustering.progress import dbt_progress, state_table_exists
from mdc_clustering.settings import run_settings
from mdc_clustering.stages.recall import scored_recall_sample


def model(dbt, session):
    dbt.config(materialized="table")
    run = dbt.source("clustering_state", "run_settings")
    settings = run_settings(run)
    knn, reruns = settings.knn, settings.reruns
    embeddings = dbt.ref("stg_chroma__embeddings")
    neighbors = dbt.ref("int_dataset_neighbors_searched")
    current = embeddings.select("dataset_id, embedding_hash").to_arrow_table()
    sample = (
        embeddings.select("dataset_id as sample_id, hash(dataset_id) as sample_hash")
        .order("sample_hash, sample_id")
        .limit(knn.knn_recall_sample)
    )
    sample_ids = sample.select("sample_id").to_arrow_table().column("sample_id")
    sample_neighbors = (
        neighbors.join(sample, "dataset_id = sample_id")
        .select("dataset_id, neighbor_id, neighbor_rank, search_dims, ivf_nlist, ivf_nprobe")
        .to_arrow_table()
    )
    stored, previous = None, None
    if state_table_exists(session, "recall_state") and reruns.incremental:
        state = dbt.source("clustering_state", "recall_state")
        previous = state.select("dataset_id, embedding_hash").to_arrow_table()
        stored = state.filter("exact_neighbor_ids is not null").select(
            "dataset_id, exact_neighbor_ids, exact_similarities, recall_fingerprint"
        ).to_arrow_table()
    # the same k-NN settings as int_dataset_neighbors_updated (knn_min_recall included)
    method, params = knn_settings(current.num_rows, **knn.model_dump(exclude={"k_neighbors", "knn_recall_sample"}))
    return scored_recall_sample(
        current,
        sample_ids,
        sample_neighbors,
        rows_of=rows_reader(embeddings, session),
        # the exact search streams the embeddings in slices: the whole matrix is never held
        search_space=lambda: iter_embeddings(embeddings, normalize=True, batch_rows=65_536),
        method=method,
        k=knn.k_neighbors,
        params=params,
        stored=stored,
        previous=previous,
        incremental=reruns.incremental,
        max_change_share=reruns.incremental_max_change_share,
        progress=dbt_progress("int_knn_recall_sample_scored"),
    )
