"""Arrow-in, Arrow-out entry points called by the dbt Python models."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .embeddings import Embeddings, as_embeddings
from .errors import ClusteringInputError
from .knn import (
    HnswParams,
    IvfParams,
    _pair_similarities,
    distinct_others,
    exact_knn,
    hnsw_knn,
    ivf_knn,
    knn_table,
    normalize_rows,
    query_knn,
    recall_from_kth,
    streamed_kth_similarity,
)
from .labels import match_labels
from .leiden import NO_CLUSTER, build_graph, leiden_cluster
from .placement import place_by_vote
from .snn import EDGE_WEIGHTS, neighbor_sets, shared_neighbor_weights

__all__ = [
    "centroid_similarities",
    "cluster_memberships",
    "knn_recall_table",
    "nearest_neighbors",
    "place_new_datasets",
    "reference_neighbors",
]

Progress = Callable[..., None] | None


def nearest_neighbors(
    embeddings: Embeddings | pa.Table,
    k: int,
    *,
    method: str = "exact",
    params: IvfParams | HnswParams | None = None,
    progress: Progress = None,
) -> pa.Table:
    """k-NN edges of every dataset: ``embeddings`` (dataset_id, embedding) -> long neighbour table.

    ``method`` is ``exact`` (:func:`mdc_clustering.knn.exact_knn`), ``ivf``
    (:func:`mdc_clustering.knn.ivf_knn`, ``params`` an
    :class:`~mdc_clustering.knn.IvfParams`) or ``hnsw``
    (:func:`mdc_clustering.knn.hnsw_knn`, ``params`` an
    :class:`~mdc_clustering.knn.HnswParams`); see
    :func:`mdc_clustering.knn.knn_table` for the columns, plus, the same on
    every row: ``search_dims`` (int16): the dimension the search compared rows
    in (the embedding's, or the principal components the index was built
    on); ``ivf_nlist`` and ``ivf_nprobe`` (int32, NULL unless ``ivf``): the
    index's cells and the cells each row scanned, after the pilot check.
    """
    started = time.perf_counter()
    emb = as_embeddings(embeddings)
    unit = emb.normalized
    info = {"search_dims": emb.matrix.shape[1], "nlist": None, "nprobe": None}
    if method == "ivf":
        indices, sims = ivf_knn(emb.matrix, k, params or IvfParams(), normalized=unit, info=info, progress=progress)
    elif method == "hnsw":
        indices, sims = hnsw_knn(emb.matrix, k, params or HnswParams(), normalized=unit, info=info, progress=progress)
    elif method == "exact":
        indices, sims = exact_knn(emb.matrix, k, normalized=unit, progress=progress)
    else:
        raise ClusteringInputError(f"k-NN method must be 'exact', 'ivf' or 'hnsw' here, got {method!r}")
    table = knn_table(emb.ids, indices, sims)
    rows = table.num_rows
    for name, value, arrow_type in (
        ("search_dims", info["search_dims"], pa.int16()),
        ("ivf_nlist", info["nlist"], pa.int32()),
        ("ivf_nprobe", info["nprobe"], pa.int32()),
    ):
        # one value repeated: a dictionary of it, one zero byte a row (calloc'd), not a filled column
        table = table.append_column(
            name, pa.DictionaryArray.from_arrays(pa.array(np.zeros(rows, np.int8)), pa.array([value], arrow_type))
        )
    if progress is not None:
        progress(
            f"{rows} neighbour rows ({len(emb)} datasets x {indices.shape[1]}, {method}, "
            f"{info['search_dims']} dims) in {time.perf_counter() - started:.1f}s",
            final=True,
        )
    return table


def knn_recall_table(
    search_space: Iterable[tuple[pa.Array, np.ndarray]],
    queries: Embeddings,
    sample_neighbors: pa.Table,
    *,
    method: str,
    k: int,
    params: IvfParams | HnswParams | None = None,
    tolerance: float = 1e-5,
    progress: Progress = None,
) -> pa.Table:
    """One row: the k-NN method used and its recall@k measured against exact search.

    The exact search streams the search space once, keeping only each
    sampled dataset's ``k`` best similarities and the embeddings of the
    neighbours the k-NN returned for them: memory is the sample's, never the
    whole matrix. The measure is :func:`mdc_clustering.knn.knn_recall`'s.

    Parameters
    ----------
    search_space
        ``(ids, unit rows)`` slices of every embedded dataset
        (:func:`mdc_clustering.embeddings.iter_embeddings` with ``normalize``).
    queries
        The sampled datasets' unit embeddings.
    sample_neighbors
        ``dataset_id``, ``neighbor_id``, ``neighbor_rank``, ``search_dims``,
        ``ivf_nlist``, ``ivf_nprobe``: the k-NN rows of the sampled datasets,
        as the k-NN model wrote them.
    params
        The method's parameters (:func:`mdc_clustering.knn.knn_settings`),
        reported in the row's ``hnsw_*`` columns.
    """
    started = time.perf_counter()
    sample_ids = queries.ids
    listed = sample_neighbors.column("dataset_id").combine_chunks().cast(pa.string())
    if pc.any(pc.is_null(pc.index_in(listed, value_set=sample_ids))).as_py():
        raise ClusteringInputError("k-NN rows name sampled datasets that have no embedding")
    neighbor_ids = sample_neighbors.column("neighbor_id").combine_chunks().cast(pa.string())
    space_ids = pc.unique(pa.concat_arrays([sample_ids.cast(pa.string()), neighbor_ids]))
    width = int(pc.max(sample_neighbors.column("neighbor_rank")).as_py() or 0)
    returned = np.full((len(sample_ids), width), -1, dtype=np.int64)
    if width:
        at = pc.index_in(listed, value_set=sample_ids).to_numpy(zero_copy_only=False).astype(np.int64)
        rank = sample_neighbors.column("neighbor_rank").to_numpy().astype(np.int64)
        returned[at, rank - 1] = pc.index_in(neighbor_ids, value_set=space_ids).to_numpy(zero_copy_only=False)
    sample = pc.index_in(sample_ids, value_set=space_ids).to_numpy(zero_copy_only=False).astype(np.int64)

    # one pass: the exact k-th similarity of each sampled dataset, and the vectors of every id named
    dim = queries.matrix.shape[1]
    space = np.zeros((len(space_ids), dim), dtype=np.float32)
    found = np.zeros(len(space_ids), dtype=bool)
    n_datasets = 0

    def tapped():
        nonlocal n_datasets
        for ids, rows in search_space:
            pos = pc.fill_null(pc.index_in(ids, value_set=space_ids), -1).to_numpy()
            hit = np.flatnonzero(pos >= 0)
            space[pos[hit]] = rows[hit]
            found[pos[hit]] = True
            n_datasets += len(ids)
            yield ids, rows

    if width and len(sample_ids):
        kth = streamed_kth_similarity(queries.matrix, sample_ids, tapped(), width)
        valid = distinct_others(returned, sample) & found[np.maximum(returned, 0)] & (returned >= 0)
        returned_sims = _pair_similarities(space, sample, np.where(valid, returned, 0))
        recall = recall_from_kth(valid, returned_sims, kth, tolerance=tolerance)
    else:
        for _ in tapped():
            pass
        recall = 1.0
    def used(column: str):
        return pc.max(sample_neighbors.column(column)).as_py() if width else None

    search_dims = used("search_dims")
    pca_dims = search_dims if search_dims is not None and search_dims < dim else None
    hnsw = params if method == "hnsw" else None
    seconds = time.perf_counter() - started
    if progress is not None:
        progress(f"recall@{width} of the {method} k-NN on {len(sample_ids)} sampled datasets: {recall:.4f} "
                 f"({seconds:.1f}s)", final=True)
    return pa.table(
        {
            "n_datasets": pa.array([n_datasets], pa.int64()),
            "k_neighbors": pa.array([int(k)], pa.int64()),
            "knn_method": pa.array([method]),
            "ivf_pca_dims": pa.array([pca_dims if method == "ivf" else None], pa.int64()),
            "ivf_nlist": pa.array([used("ivf_nlist") if method == "ivf" else None], pa.int64()),
            "ivf_nprobe": pa.array([used("ivf_nprobe") if method == "ivf" else None], pa.int64()),
            "hnsw_m": pa.array([hnsw.m if hnsw else None], pa.int64()),
            "hnsw_ef_construction": pa.array([hnsw.ef_construction if hnsw else None], pa.int64()),
            "hnsw_ef_search": pa.array([hnsw.ef_search if hnsw else None], pa.int64()),
            "hnsw_pca_dims": pa.array([pca_dims if hnsw else None], pa.int64()),
            "recall_sample_size": pa.array([len(sample_ids)], pa.int64()),
            "recall_at_k": pa.array([recall], pa.float64()),
            "recall_seconds": pa.array([seconds], pa.float64()),
        }
    )


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


def centroid_similarities(
    embeddings: Embeddings | pa.Table | Callable[[], Iterable[tuple[pa.Array, np.ndarray, pa.Array, pa.Array]]],
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
        returning ``(ids, unit rows, cluster, cluster_code)`` slices of the
        clustered datasets only, ``cluster_code`` numbering the clusters
        ``0..m-1`` (:func:`mdc_clustering.embeddings.iter_embeddings` over
        DuckDB's join of the embeddings and the memberships, with
        ``columns=("cluster", "cluster_code")``). The function is called twice
        (centroids, then similarities), so the matrix is never held whole.
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
        cluster = clustered.column("cluster").combine_chunks()
        codes = pc.index_in(cluster, value_set=pc.unique(cluster))
        one = (clustered.column("dataset_id").combine_chunks(), unit[rows.to_numpy()], cluster, codes)

        def slices():
            return [one]

    def as_codes(codes: pa.Array) -> np.ndarray:
        return np.asarray(codes.to_numpy(zero_copy_only=False), dtype=np.int64)

    sums = np.zeros((0, 0), dtype=np.float64)
    for _ids, rows, _cluster, codes in slices():
        at = as_codes(codes)
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
        for ids, rows, cluster, codes in slices():
            at = as_codes(codes)
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


def _previous_labels(node_ids: pa.Array, previous: pa.Table) -> pa.Array:
    """Each node's label in ``previous`` (``dataset_id``, ``cluster``); null where it has none."""
    rows = pc.index_in(node_ids, value_set=previous.column("dataset_id"))
    return previous.column("cluster").take(rows).combine_chunks() if len(node_ids) else pa.array([], pa.string())


def _node_index(node_ids: pa.Array, column: pa.ChunkedArray, name: str) -> np.ndarray:
    index = pc.index_in(column, value_set=node_ids)
    if index.null_count:
        missing = pc.filter(column, pc.is_null(index)).unique().to_pylist()[:5]
        raise ClusteringInputError(f"graph edges name datasets that have no embedding ({name}): {missing}")
    return index.to_numpy(zero_copy_only=False).astype(np.int64)


def _constant(value, arrow_type: pa.DataType, n: int) -> pa.Array:
    """One value on ``n`` rows as a dictionary of it: one zero byte a row, not a filled column."""
    return pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, np.int8)), pa.array([value], arrow_type))


def edge_weights(
    node_ids: pa.Array,
    sources: np.ndarray,
    targets: np.ndarray,
    similarities: np.ndarray,
    *,
    method: str = "cosine",
    neighbors: pa.Table | None = None,
    snn_k: int = 15,
) -> np.ndarray:
    """The weight of each graph edge: its cosine similarity, or its shared-neighbour (Jaccard) weight.

    ``neighbors`` (``dataset_id``, ``neighbor_id``, ``neighbor_rank``) is the
    k-NN table, needed for ``method='snn'``: see
    :func:`mdc_clustering.snn.shared_neighbor_weights` for the rule.
    """
    from .validation import choice, positive_int

    method = choice("edge_weight", method, EDGE_WEIGHTS)
    if method == "cosine":
        return np.asarray(similarities, dtype=np.float64)
    snn_k = positive_int("snn_k", snn_k)
    if neighbors is None:
        raise ClusteringInputError("edge_weight 'snn' needs the k-NN table (neighbors)")
    rows = _node_index(node_ids, neighbors.column("dataset_id"), "dataset_id")
    others = _node_index(node_ids, neighbors.column("neighbor_id"), "neighbor_id")
    ranks = neighbors.column("neighbor_rank").to_numpy().astype(np.int64)
    sets = neighbor_sets(len(node_ids), rows, others, ranks, snn_k)
    return shared_neighbor_weights(sources, targets, sets)


def cluster_memberships(
    nodes: pa.Table,
    edges: pa.Table,
    *,
    resolution: float | str = 1.0,
    seed: int = 42,
    min_cluster_size: int = 2,
    small_clusters: str = "attach",
    edge_weight: str = "cosine",
    neighbors: pa.Table | None = None,
    snn_k: int = 15,
    max_cluster_size: int | None = None,
    target_n_clusters: int | None = None,
    target_tolerance: float = 0.1,
    previous: pa.Table | None = None,
    registry: pa.Table | None = None,
    stable_labels: bool = True,
    min_label_overlap: float = 0.3,
    backend: str = "igraph",
    progress: Progress = None,
) -> pa.Table:
    """Leiden memberships of every node: one row per dataset, edgeless ones included.

    Parameters
    ----------
    nodes
        Table with a ``dataset_id`` column: every dataset of the graph.
    edges
        Table ``source_id``, ``target_id``, ``weight`` (the pair's cosine
        similarity): one row per undirected pair (as built by the
        ``int_graph_edges_filtered`` model).
    resolution, seed, min_cluster_size, small_clusters, max_cluster_size, target_n_clusters, target_tolerance
        See :func:`mdc_clustering.leiden.leiden_cluster`.
    edge_weight, neighbors, snn_k
        How edges are weighted for Leiden: see :func:`edge_weights` (the
        dbt project's default is ``snn``, with the k-NN table).
    previous
        ``dataset_id``, ``cluster``: the previous run's labels (the
        ``datasets`` table before this run).
    registry
        ``label_number``: every label number ever handed out.
    stable_labels
        When true (and ``previous`` holds labels), Leiden starts from the
        previous clusters and new clusters inherit the label of the previous
        cluster they match (:func:`mdc_clustering.labels.match_labels`);
        when false, labels are ``cluster_0..`` by size, as in a first run.
    min_label_overlap
        Smallest Jaccard overlap for a cluster to keep a previous label.
    backend
        Leiden implementation: ``igraph`` or ``leidenalg`` (see
        :func:`mdc_clustering.leiden.leiden_cluster`).

    Returns
    -------
    pyarrow.Table
        ``dataset_id``; ``cluster`` (label; null when dissolved);
        ``cluster_number`` (0 = largest this run); ``label_status`` ('kept'
        or 'born'); ``previous_cluster``; ``unclustered_reason`` (see
        :class:`mdc_clustering.leiden.ClusteringResult`); ``community``
        (Leiden community before the small-cluster rule) and
        ``community_size``; and, the same on every row, the run's
        ``leiden_resolution``, ``modularity``, ``n_components``,
        ``target_reached``, ``n_split``, ``n_attached``, ``edge_weight``,
        ``resolution_scan`` (JSON list, ``resolution='auto'`` only), and
        the label counts ``labels_kept``, ``labels_born``,
        ``labels_retired``, ``clusters_split``, ``clusters_merged``,
        ``share_kept_label``.
    """
    started = time.perf_counter()
    node_ids = nodes.column("dataset_id").combine_chunks()
    if len(node_ids) == 0:
        raise ClusteringInputError("no datasets to cluster: the embeddings table is empty")
    sources = _node_index(node_ids, edges.column("source_id"), "source_id")
    targets = _node_index(node_ids, edges.column("target_id"), "target_id")
    similarities = edges.column("weight").to_numpy().astype(np.float64)
    weights = edge_weights(
        node_ids, sources, targets, similarities, method=edge_weight, neighbors=neighbors, snn_k=snn_k
    )
    positive = (weights > 0) & (similarities > 0)
    if not positive.all() and progress is not None:
        progress(
            f"{int((~positive).sum())} edges with similarity or weight <= 0 left out of the graph "
            "(Leiden needs positive weights)",
            final=True,
        )
    sources, targets, weights = sources[positive], targets[positive], weights[positive]
    order = np.lexsort((targets, sources))  # edge order fixed, whatever the table's order
    graph = build_graph(len(node_ids), sources[order], targets[order], weights[order])
    previous_labels: list[str | None] = [None] * len(node_ids)
    if previous is not None and stable_labels:
        previous_labels = _previous_labels(node_ids, previous).to_pylist()
    warm = any(label is not None for label in previous_labels)
    initial = None
    if warm:
        # previous clusters as start communities; every other node alone, and so is a node
        # without edges (it cannot be held in a cluster by its past alone)
        prev = pa.array(previous_labels, pa.string())
        codes = pc.index_in(prev, value_set=pc.unique(prev.drop_null()).sort())
        codes = pc.fill_null(codes, -1).to_numpy(zero_copy_only=False).astype(np.int64)
        has_edge = np.asarray(graph.degree()) > 0
        alone = len(node_ids) + np.arange(len(node_ids), dtype=np.int64)
        initial = np.where((codes >= 0) & has_edge, codes, alone)
    if progress is not None:
        start = "warm start from the previous clusters" if warm else "cold start"
        progress(f"Leiden ({backend}) on {graph.vcount()} nodes, {graph.ecount()} edges ({start})", final=True)
    result = leiden_cluster(
        graph,
        resolution,
        seed=seed,
        min_cluster_size=min_cluster_size,
        small_clusters=small_clusters,
        max_cluster_size=max_cluster_size,
        target_n_clusters=target_n_clusters,
        target_tolerance=target_tolerance,
        initial_membership=initial,
        backend=backend,
    )
    n = len(node_ids)
    used = set()
    if registry is not None and stable_labels:
        used = {int(x) for x in registry.column("label_number").to_pylist() if x is not None}
    matching = match_labels(
        result.clusters,
        previous_labels,
        used_numbers=used if warm else set(),
        min_overlap=min_label_overlap,
    )
    if not warm:  # first run (or stable_labels off): plain numbering by size
        matching.labels = [None if c == NO_CLUSTER else f"cluster_{c}" for c in result.clusters.tolist()]
        matching.status = {label: "born" for label in set(matching.labels) if label is not None}
    labels = pa.array(matching.labels, pa.string())
    status = pa.array([matching.status.get(label) if label else None for label in matching.labels], pa.string())
    community_size = np.bincount(result.communities)[result.communities]
    table = pa.table(
        {
            "dataset_id": node_ids,
            "cluster": labels,
            "cluster_number": pa.array(result.clusters, mask=result.clusters == NO_CLUSTER),
            "label_status": status,
            "previous_cluster": pa.array(previous_labels, pa.string()),
            "unclustered_reason": pa.array(result.unclustered_reason.tolist(), pa.string()),
            "community": pa.array(result.communities),
            "community_size": pa.array(community_size.astype(np.int64)),
            "leiden_resolution": pa.array(np.full(n, result.resolution)),
            "modularity": pa.array(np.full(n, result.modularity), mask=np.full(n, np.isnan(result.modularity))),
            "n_components": pa.array(np.full(n, result.n_components, dtype=np.int64)),
            "target_reached": pa.array([result.target_reached] * n, pa.bool_()),
            "n_split": pa.array(np.full(n, result.n_split, dtype=np.int64)),
            "n_attached": _constant(result.n_attached, pa.int64(), n),
            "edge_weight": _constant(edge_weight, pa.string(), n),
            "resolution_scan": _constant(json.dumps(result.scan) if result.scan else None, pa.string(), n),
            "labels_kept": pa.array(np.full(n, matching.kept if warm else 0, dtype=np.int64)),
            "labels_born": pa.array(np.full(n, matching.born, dtype=np.int64)),
            "labels_retired": pa.array(np.full(n, matching.retired if warm else 0, dtype=np.int64)),
            "clusters_split": pa.array(np.full(n, matching.split if warm else 0, dtype=np.int64)),
            "clusters_merged": pa.array(np.full(n, matching.merged if warm else 0, dtype=np.int64)),
            "share_kept_label": pa.array([matching.share_kept if warm else None] * n, pa.float64()),
            "datasets_placed": pa.nulls(n, pa.int64()),
            "datasets_left_unplaced": pa.nulls(n, pa.int64()),
            "placement_seconds": pa.nulls(n, pa.float64()),
        }
    )
    if progress is not None:
        progress(
            f"{result.n_clusters} clusters, {int((result.clusters == NO_CLUSTER).sum())} datasets unclustered "
            f"({result.n_attached} attached from too-small communities), "
            f"modularity {result.modularity:.3f}, resolution {result.resolution:.4g}, "
            f"labels kept {matching.kept if warm else 0} / born {matching.born} "
            f"in {time.perf_counter() - started:.1f}s",
            final=True,
        )
    return table


def place_new_datasets(
    embeddings: Embeddings | pa.Table,
    previous: pa.Table,
    *,
    seen: pa.Table | None = None,
    k: int = 15,
    min_share: float = 0.5,
    progress: Progress = None,
) -> pa.Table:
    """Keep every existing membership; place only the datasets that are new since the last full run.

    Each embedded dataset whose previous cluster is NULL and that the last
    full run did not see (not in ``seen``) is placed by
    :func:`mdc_clustering.placement.place_by_vote` among the embedded
    datasets that have a cluster; the rest keep their label untouched, and a
    dataset the last full run left unclustered stays unclustered (with the
    reason that run gave) until the next full run.

    Parameters
    ----------
    seen
        ``dataset_id``, ``unclustered_reason``: the datasets the last full
        run clustered (``clustering_state.full_run_datasets``); None = none.

    Returns
    -------
    pyarrow.Table
        The columns of :func:`cluster_memberships` (Leiden facts NULL), with
        ``label_status`` 'kept' for existing members and 'placed' for placed
        datasets, and the run's ``datasets_placed``, ``datasets_left_unplaced``
        and ``placement_seconds`` on every row.
    """
    from .validation import positive_float, positive_int

    k = positive_int("placement_k", k)
    min_share = positive_float("placement_min_share", min_share)
    started = time.perf_counter()
    emb = as_embeddings(embeddings)
    ids = emb.ids
    n = len(ids)
    previous_arrow = _previous_labels(ids, previous)
    previous_labels: list[str | None] = previous_arrow.to_pylist()
    clustered = pc.is_valid(previous_arrow).to_numpy(zero_copy_only=False).astype(bool)
    seen_reason: list[str | None] = [None] * n
    was_seen = np.zeros(n, dtype=bool)
    if seen is not None and seen.num_rows:
        at = pc.index_in(ids, value_set=seen.column("dataset_id").combine_chunks())
        was_seen = pc.is_valid(at).to_numpy(zero_copy_only=False).astype(bool)
        seen_reason = seen.column("unclustered_reason").combine_chunks().take(at).to_pylist()
    if not clustered.any():
        raise ClusteringInputError(
            "clustering_mode 'place_new' needs a previous full run: no embedded dataset has a cluster yet. "
            "Run `dbt build` once with clustering_mode: full."
        )
    matrix = emb.matrix
    label_list = sorted({label for label in previous_labels if label is not None})
    code_of = {label: i for i, label in enumerate(label_list)}
    clustered_rows = np.flatnonzero(clustered)
    new_rows = np.flatnonzero(~clustered & ~was_seen)
    kept_unclustered = np.flatnonzero(~clustered & was_seen)
    codes, shares = place_by_vote(
        matrix[new_rows],
        matrix[clustered_rows],
        np.array([code_of[previous_labels[i]] for i in clustered_rows], dtype=np.int64),
        k,
        min_share=min_share,
    )
    labels = list(previous_labels)
    status: list[str | None] = ["kept" if c else None for c in clustered]
    for row, code in zip(new_rows.tolist(), codes.tolist(), strict=True):
        if code >= 0:
            labels[row] = label_list[code]
            status[row] = "placed"
    placed = int((codes >= 0).sum())
    reasons: list[str | None] = [None if label is not None else "not_placed" for label in labels]
    for row in kept_unclustered.tolist():  # left unclustered by the last full run: its reason stands
        reasons[row] = seen_reason[row] or "no_edge"
    seconds = time.perf_counter() - started
    nulls_f = pa.nulls(n, pa.float64())
    table = pa.table(
        {
            "dataset_id": ids,
            "cluster": pa.array(labels, pa.string()),
            "cluster_number": pa.nulls(n, pa.int64()),
            "label_status": pa.array(status, pa.string()),
            "previous_cluster": pa.array(previous_labels, pa.string()),
            "unclustered_reason": pa.array(reasons, pa.string()),
            "community": pa.nulls(n, pa.int64()),
            "community_size": pa.nulls(n, pa.int64()),
            "leiden_resolution": nulls_f,
            "modularity": nulls_f,
            "n_components": pa.nulls(n, pa.int64()),
            "target_reached": pa.nulls(n, pa.bool_()),
            "n_split": pa.nulls(n, pa.int64()),
            "n_attached": pa.nulls(n, pa.int64()),
            "edge_weight": pa.nulls(n, pa.string()),
            "resolution_scan": pa.nulls(n, pa.string()),
            "labels_kept": pa.array(np.full(n, len(label_list), dtype=np.int64)),
            "labels_born": pa.array(np.zeros(n, dtype=np.int64)),
            "labels_retired": pa.array(np.zeros(n, dtype=np.int64)),
            "clusters_split": pa.array(np.zeros(n, dtype=np.int64)),
            "clusters_merged": pa.array(np.zeros(n, dtype=np.int64)),
            "share_kept_label": pa.array(np.ones(n)),
            "datasets_placed": pa.array(np.full(n, placed, dtype=np.int64)),
            "datasets_left_unplaced": pa.array(np.full(n, len(new_rows) - placed, dtype=np.int64)),
            "placement_seconds": pa.array(np.full(n, seconds)),
        }
    )
    if progress is not None:
        progress(
            f"placed {placed} of {len(new_rows)} new datasets into {len(label_list)} existing clusters "
            f"({len(new_rows) - placed} left unclustered; {len(kept_unclustered)} that the last full run left "
            f"unclustered stay so) in {seconds:.2f}s; no re-clustering",
            final=True,
        )
    return table
