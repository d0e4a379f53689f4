"""The k-NN lists (cosine) this run searched or changed: exact, or approximate (IVF, HNSW) for large N.

A first run searches every dataset. A re-run updates the last run's lists (clustering_state.knn_state)
for the new, changed and removed datasets instead (mdc_clustering.stages.neighbor_search.updated_neighbors)
and returns only the lists that changed: the model knn_state writes them into the stored lists, and the
view int_dataset_neighbors_searched gives every dataset's list. knn_index keeps the IVF index a full
search trained.
"""

import pyarrow.compute as pc

from mdc_clustering.embeddings import array_dimension, read_embeddings
from mdc_clustering.knn import knn_settings
from mdc_clustering.progress import dbt_progress, state_table_exists
from mdc_clustering.settings import run_settings
from mdc_clustering.stages.neighbor_search import (
    knn_fingerprint,
    lists_unchanged,
    unchanged_neighbors,
    updated_neighbors,
)


def model(dbt, session):
    dbt.config(materialized="table")
    run = dbt.source("clustering_state", "run_settings")
    embeddings = dbt.ref("stg_chroma__embeddings")
    settings = run_settings(run)
    knn, reruns = settings.knn, settings.reruns
    progress = dbt_progress("int_dataset_neighbors_updated")
    # each dataset's embedding fingerprint and key, in one read
    hashes = embeddings.select("dataset_id, embedding_hash, dataset_key").to_arrow_table()
    method, params = knn_settings(hashes.num_rows, **knn.model_dump(exclude={"k_neighbors", "knn_recall_sample"}))
    state_exists = state_table_exists(session, "knn_state")
    state, state_fingerprints, state_hashes, ivf_models, stale = None, None, None, {}, None
    if state_exists and reruns.incremental:
        stored = dbt.source("clustering_state", "knn_state")
        if "neighbor_key" not in stored.columns:
            stale = "the stored lists were written before datasets had integer keys (dataset_key)"
        else:
            # the lists' settings and owners (id, fingerprint, key) aggregated here: no string per list row
            state_fingerprints = [f for (f,) in stored.aggregate("knn_fingerprint").distinct().fetchall()]
            state_hashes = stored.filter("neighbor_rank = 1").select(
                "dataset_id, embedding_hash, dataset_key").to_arrow_table()
            dim = array_dimension(dict(zip(embeddings.columns, embeddings.types, strict=True))["embedding"])
            fingerprint = None if dim is None else knn_fingerprint(knn.k_neighbors, method, params, dim)
            if fingerprint is not None and lists_unchanged(hashes, fingerprint, state_fingerprints, state_hashes):
                # nothing new, changed or removed, and the same settings: the stored lists are this run's,
                # and neither the matrix nor the lists need reading (the first dataset's list carries the facts)
                first = pc.min(hashes.column("dataset_id")).as_py()
                key = hashes.filter(pc.equal(hashes.column("dataset_id"), first)).column("dataset_key")[0].as_py()
                first_list = stored.filter(f"dataset_key = {int(key)}").select(
                    "dataset_id, neighbor_id, dataset_key, neighbor_key, neighbor_rank, similarity, embedding_hash"
                ).to_arrow_table()
                progress(f"nothing to update: the {hashes.num_rows} stored lists are this run's", final=True)
                return unchanged_neighbors(first_list, knn.k_neighbors, dim, hashes.num_rows, fingerprint,
                                           reruns.incremental_max_change_share)

            def state():  # the lists by integer key, read by the update itself, which lets them go once unpacked
                return stored.select("dataset_key, neighbor_key, neighbor_rank, similarity").to_arrow_table()

            if state_table_exists(session, "knn_index"):
                indexes = dbt.source("clustering_state", "knn_index")
                ivf_models = dict(indexes.select("knn_fingerprint, ivf_model").fetchall())
    # the matrix in id order as it streams in (the view's rows are not in id order after a re-run)
    # unit rows as they arrive (cosine is all the search needs): no normalised copy of the matrix later
    current = read_embeddings(embeddings, normalize=True)
    return updated_neighbors(
        current,
        knn.k_neighbors,
        hashes=hashes,
        method=method,
        params=params,
        state=state,
        incremental=reruns.incremental,
        max_change_share=reruns.incremental_max_change_share,
        ivf_models=ivf_models,
        changed_only=True,
        state_fingerprints=state_fingerprints,
        state_hashes=state_hashes,
        keys=hashes,
        stale_state=stale,
        progress=progress,
    )
