"""The centroid stage: each clustered dataset's cosine similarity to its cluster's centroid."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..embeddings import Embeddings, as_embeddings
from ..errors import ClusteringInputError
from ..neighbors import normalize_rows


def centroid_similarities(
    embeddings: Embeddings | pa.Table | Callable[[], Iterable[tuple[pa.Array, np.ndarray, pa.Array]]],
    memberships: pa.Table | None = None,
) -> pa.Table:
    """Each clustered dataset's cosine similarity to its cluster's centroid.

    The centroid of a cluster is the mean of its members' unit-length
    embeddings.

    Parameters
    ----------
    embeddings
        ``dataset_id``, ``embedding`` of every embedded dataset (then
        ``memberships`` says who is in which cluster); or a function
        returning ``(ids, unit rows, cluster)`` slices of the clustered
        datasets only (:func:`mdc_clustering.embeddings.iter_embeddings` over
        DuckDB's join of the embeddings and the memberships, with
        ``columns=("cluster",)``). The function is called twice (centroids,
        then similarities), so the matrix is never held whole; both calls
        must give each dataset the same cluster.
    memberships
        ``dataset_id``, ``cluster`` (null = unclustered), with a table of
        embeddings.

    Returns
    -------
    pyarrow.Table
        One row per clustered dataset: ``dataset_id``, ``cluster``,
        ``cluster_size`` and ``centroid_similarity`` (float64).
    """
    from scipy import sparse

    if callable(embeddings):
        slices = embeddings
    else:
        if memberships is None:
            raise ClusteringInputError("centroid_similarities needs the memberships with a table of embeddings")
        emb = as_embeddings(embeddings)
        unit = emb.matrix if emb.normalized else normalize_rows(emb.matrix)
        clustered = memberships.filter(pc.is_valid(memberships.column("cluster")))
        rows = pc.index_in(clustered.column("dataset_id"), value_set=emb.ids)
        if rows.null_count:
            raise ClusteringInputError("memberships name datasets that have no embedding")
        one = (clustered.column("dataset_id").combine_chunks(), unit[rows.to_numpy()],
               clustered.column("cluster").combine_chunks())

        def slices():
            return [one]

    # clusters are numbered in the order they first arrive; a slice names a few of them, so matching its
    # labels against those already numbered is cheap (numbering in SQL, by a window over every member,
    # cost a few seconds a pass at a million)
    numbered = pa.array([], pa.string())

    def as_codes(cluster: pa.Array) -> np.ndarray:
        nonlocal numbered
        if cluster.null_count:
            raise ClusteringInputError("centroid slices hold unclustered rows; pass clustered datasets only")
        labels = pc.unique(cluster)
        fresh = labels.filter(pc.invert(pc.is_in(labels, value_set=numbered)))
        if len(fresh):
            numbered = pa.concat_arrays([numbered, fresh])
        return pc.index_in(cluster, value_set=numbered).to_numpy(zero_copy_only=False).astype(np.int64)

    sums = np.zeros((0, 0), dtype=np.float64)
    for _ids, rows, cluster in slices():
        at = as_codes(cluster)
        if not len(at):
            continue
        m = max(sums.shape[0], int(at.max()) + 1)
        if sums.shape != (m, rows.shape[1]):
            sums = np.pad(sums, ((0, m - sums.shape[0]), (0, rows.shape[1] - sums.shape[1])))
        indicator = sparse.csr_matrix((np.ones(len(at)), (at, np.arange(len(at)))), shape=(m, len(at)))
        sums += indicator @ rows.astype(np.float64)
    centroids = sums / np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), np.finfo(np.float64).tiny)
    out_ids, out_clusters, out_codes, out_sims = [], [], [np.zeros(0, np.int64)], [np.zeros(0)]
    if sums.shape[0]:
        for ids, rows, cluster in slices():
            at = as_codes(cluster)
            if len(at) and at.max() >= sums.shape[0]:
                raise ClusteringInputError("the second pass over the clustered datasets named a new cluster")
            out_ids.append(ids)
            out_clusters.append(cluster)
            out_codes.append(at)
            out_sims.append(np.einsum("ij,ij->i", rows.astype(np.float64), centroids[at]))
    codes = np.concatenate(out_codes)
    return pa.table(
        {
            "dataset_id": pa.chunked_array(out_ids, pa.string()).combine_chunks(),
            "cluster": pa.chunked_array(out_clusters, pa.string()).combine_chunks(),
            "cluster_size": pa.array(np.bincount(codes, minlength=sums.shape[0])[codes]),
            "centroid_similarity": pa.array(np.clip(np.concatenate(out_sims), -1.0, 1.0)),
        }
    )
