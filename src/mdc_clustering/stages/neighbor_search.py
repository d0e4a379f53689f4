"""The k-NN stage: each dataset's nearest datasets, and its nearest items of a reference set."""

from __future__ import annotations

import time

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..embeddings import Embeddings, as_embeddings
from ..errors import ClusteringInputError
from ..neighbors import HnswParams, IvfParams, KnnResult, exact_knn, hnsw_knn, ivf_knn, knn_table, query_knn
from ._arrow import Progress, constant_column


def nearest_neighbors(
    embeddings: Embeddings | pa.Table,
    k: int,
    *,
    method: str = "exact",
    params: IvfParams | HnswParams | None = None,
    progress: Progress = None,
) -> pa.Table:
    """k-NN edges of every dataset: ``embeddings`` (dataset_id, embedding) -> long neighbour table.

    ``method`` is ``exact`` (:func:`mdc_clustering.neighbors.exact_knn`), ``ivf``
    (:func:`mdc_clustering.neighbors.ivf_knn`, ``params`` an
    :class:`~mdc_clustering.neighbors.IvfParams`) or ``hnsw``
    (:func:`mdc_clustering.neighbors.hnsw_knn`, ``params`` an
    :class:`~mdc_clustering.neighbors.HnswParams`); see
    :func:`mdc_clustering.neighbors.knn_table` for the columns, plus, the same on
    every row: ``search_dims`` (int16): the dimension the search compared rows
    in (the embedding's, or the principal components the index was built
    on); ``ivf_nlist`` and ``ivf_nprobe`` (int32, NULL unless ``ivf``): the
    index's cells and the cells each row scanned, after the pilot check.
    """
    started = time.perf_counter()
    emb = as_embeddings(embeddings)
    unit = emb.normalized
    if method == "ivf":
        found = ivf_knn(emb.matrix, k, params or IvfParams(), normalized=unit, progress=progress)
    elif method == "hnsw":
        found = hnsw_knn(emb.matrix, k, params or HnswParams(), normalized=unit, progress=progress)
    elif method == "exact":
        indices, sims = exact_knn(emb.matrix, k, normalized=unit, progress=progress)
        found = KnnResult(indices, sims, search_dims=emb.matrix.shape[1])
    else:
        raise ClusteringInputError(f"k-NN method must be 'exact', 'ivf' or 'hnsw' here, got {method!r}")
    table = knn_table(emb.ids, found.indices, found.similarities)
    rows = table.num_rows
    for name, value, arrow_type in (
        ("search_dims", found.search_dims, pa.int16()),
        ("ivf_nlist", found.nlist, pa.int32()),
        ("ivf_nprobe", found.nprobe, pa.int32()),
    ):
        table = table.append_column(name, constant_column(value, arrow_type, rows))
    if progress is not None:
        progress(
            f"{rows} neighbour rows ({len(emb)} datasets x {found.indices.shape[1]}, {method}, "
            f"{found.search_dims} dims) in {time.perf_counter() - started:.1f}s",
            final=True,
        )
    return table


def reference_neighbors(
    embeddings: Embeddings | pa.Table, reference: Embeddings | pa.Table, k: int, *, progress: Progress = None
) -> pa.Table:
    """Each dataset's ``k`` nearest items of a reference set, the dataset itself never among them.

    A dataset whose id is also in ``reference`` is excluded from its own
    neighbourhood, so a dataset is never described by itself.

    Parameters
    ----------
    embeddings
        Queries: ``dataset_id``, ``embedding``.
    reference
        The reference set: ``dataset_id``, ``embedding`` (same dimension).

    Returns
    -------
    pyarrow.Table
        As :func:`nearest_neighbors`; ``neighbor_id`` is a reference id.
    """
    started = time.perf_counter()
    emb, ref = as_embeddings(embeddings), as_embeddings(reference)
    query_ids, ref_ids = emb.ids, ref.ids
    queries, index = emb.matrix, ref.matrix
    if queries.shape[1] != index.shape[1]:
        raise ClusteringInputError(
            f"reference collection embeddings have dimension {index.shape[1]}, the datasets' have "
            f"{queries.shape[1]}: var reference_collection must name a collection embedded with the same model"
        )
    exclude = pc.fill_null(pc.index_in(query_ids, value_set=ref_ids), -1).to_numpy().astype(np.int64)
    unit = emb.normalized and ref.normalized
    indices, sims = query_knn(queries, index, k, exclude=exclude, normalized=unit, progress=progress)
    table = knn_table(query_ids, indices, sims, neighbor_ids=ref_ids)
    if progress is not None:
        progress(
            f"{table.num_rows} reference-neighbour rows ({len(query_ids)} datasets x {indices.shape[1]} "
            f"of {len(ref_ids)}) in {time.perf_counter() - started:.1f}s",
            final=True,
        )
    return table
