"""The clustering stage: Leiden on the k-NN graph, with labels carried over from the previous run."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import ClusteringInputError
from ..labels import match_labels
from ..leiden import (
    LEIDEN_RULES_VERSION,
    NO_CLUSTER,
    ClusteringResult,
    build_graph,
    leiden_cluster,
    start_communities,
)
from ..neighbors._common import key_positions, rows_of_keys
from ..snn import EDGE_WEIGHTS, neighbor_sets, shared_neighbor_weights
from ._arrow import Progress
from .memberships import labels_of, memberships_table


def node_index(node_ids: pa.Array, column: pa.ChunkedArray, name: str) -> np.ndarray:
    index = pc.index_in(column, value_set=node_ids)
    if index.null_count:
        missing = pc.filter(column, pc.is_null(index)).unique().to_pylist()[:5]
        raise ClusteringInputError(f"graph edges name datasets that have no embedding ({name}): {missing}")
    return index.to_numpy(zero_copy_only=False).astype(np.int64)


def keyed_index(positions: np.ndarray, column: pa.ChunkedArray, name: str) -> np.ndarray:
    """Node indices of an integer key column, through :func:`~mdc_clustering.neighbors._common.key_positions`'s
    look-up."""
    keys = column.to_numpy().astype(np.int64, copy=False)
    index = rows_of_keys(positions, keys)
    if np.any(index < 0):
        missing = np.unique(keys[index < 0])[:5].tolist()
        raise ClusteringInputError(f"graph edges name dataset keys that have no embedding ({name}): {missing}")
    return index


def edge_endpoints(
    node_ids: pa.Array, edges: pa.Table, positions: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Node indices of each edge's ``source_id`` and ``target_id`` (one look-up table for both columns), or
    of its ``source_key`` and ``target_key`` through ``positions``
    (:func:`~mdc_clustering.neighbors._common.key_positions`) when the edges name datasets by integer key."""
    if "source_key" in edges.column_names:
        if positions is None:
            raise ClusteringInputError("edges named by source_key/target_key need the nodes' dataset_key")
        sources = keyed_index(positions, edges.column("source_key"), "source_key")
        targets = keyed_index(positions, edges.column("target_key"), "target_key")
        # the smaller node first, as edges named by id come (source_id < target_id): key order is not id
        # order once new datasets arrive, and the graph (its edge order, so Leiden's result) must not depend on it
        return np.minimum(sources, targets), np.maximum(sources, targets)
    sources, targets = edges.column("source_id"), edges.column("target_id")
    both = pa.chunked_array(sources.chunks + targets.cast(sources.type).chunks, type=sources.type)
    index = pc.index_in(both, value_set=node_ids)
    if index.null_count:  # raise naming the column and the datasets
        node_index(node_ids, sources, "source_id")
        node_index(node_ids, targets, "target_id")
    index = index.to_numpy(zero_copy_only=False).astype(np.int64)
    return index[: len(sources)], index[len(sources) :]


def edge_weights(
    node_ids: pa.Array,
    sources: np.ndarray,
    targets: np.ndarray,
    similarities: np.ndarray,
    *,
    method: str = "cosine",
    neighbors: pa.Table | None = None,
    snn_k: int = 15,
    positions: np.ndarray | None = None,
) -> np.ndarray:
    """The weight of each graph edge: its cosine similarity, or its shared-neighbour (Jaccard) weight.

    ``neighbors`` (``dataset_id``, ``neighbor_id``, ``neighbor_rank``) is the
    k-NN table, needed for ``method='snn'`` (or ``dataset_key``,
    ``neighbor_key``, ``neighbor_rank`` with ``positions``, as
    :func:`edge_endpoints`): see
    :func:`mdc_clustering.snn.shared_neighbor_weights` for the rule.
    """
    from ..validation import choice, positive_int

    method = choice("edge_weight", method, EDGE_WEIGHTS)
    if method == "cosine":
        return np.asarray(similarities, dtype=np.float64)
    snn_k = positive_int("snn_k", snn_k)
    if neighbors is None:
        raise ClusteringInputError("edge_weight 'snn' needs the k-NN table (neighbors)")
    if "neighbor_key" in neighbors.column_names and positions is not None:
        rows = keyed_index(positions, neighbors.column("dataset_key"), "dataset_key")
        others = keyed_index(positions, neighbors.column("neighbor_key"), "neighbor_key")
    else:
        rows = node_index(node_ids, neighbors.column("dataset_id"), "dataset_id")
        others = node_index(node_ids, neighbors.column("neighbor_id"), "neighbor_id")
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
    reuse: pa.Table | Callable[[str], pa.Table | None] | None = None,
    progress: Progress = None,
) -> pa.Table:
    """Leiden memberships of every node: one row per dataset, edgeless ones included.

    Parameters
    ----------
    nodes
        Table with a ``dataset_id`` column: every dataset of the graph (and
        ``dataset_key``, its integer key, when the edges name datasets by
        key).
    edges
        Table ``source_id``, ``target_id``, ``weight`` (the pair's cosine
        similarity): one row per undirected pair; or ``source_key``,
        ``target_key``, ``weight`` (as built by the
        ``int_graph_edges_filtered`` model), mapped to nodes through a dense
        key look-up instead of a string search.
    resolution, seed, min_cluster_size, small_clusters, max_cluster_size, target_n_clusters, target_tolerance
        See :func:`mdc_clustering.leiden.leiden_cluster`.
    edge_weight, neighbors, snn_k
        How edges are weighted for Leiden: see :func:`edge_weights` (in the
        dbt project, the var ``edge_weight`` chooses; its default is set in
        :mod:`mdc_clustering.settings`).
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
    reuse
        The last run's result (this function's table, as the dbt model
        stored it), or a function that, given this run's
        :func:`graph_fingerprint`, returns it when it carries that
        fingerprint and None otherwise (the dbt model reads no row of its
        last table unless it can be kept). Its communities are kept, and Leiden does not run, when
        its ``graph_fingerprint`` is this run's (the same datasets, edges,
        weights and Leiden settings: :func:`graph_fingerprint`), every
        dataset's ``previous`` label is the label it gave, and no cluster
        rule changed its communities (nothing split, attached or dissolved,
        no small component) and the resolution was neither searched nor
        scanned. Leiden started from those clusters on that graph would
        return them unchanged (its last pass was refused or moved nothing,
        and a pass is a fixed function of its start), so the result is the
        one a run gives, at none of its cost. Labels are matched as usual.

    Returns
    -------
    pyarrow.Table
        In :data:`~mdc_clustering.stages.memberships.MEMBERSHIPS_SCHEMA`:
        ``dataset_id``; ``cluster`` (label; null when dissolved);
        ``cluster_number`` (0 = largest this run); ``label_status`` ('kept'
        or 'born'); ``previous_cluster``; ``unclustered_reason`` (see
        :class:`mdc_clustering.leiden.ClusteringResult`); ``community``
        (Leiden community before the small-cluster rule) and
        ``community_size``; and, the same on every row, the run's
        ``leiden_resolution``, ``modularity``, ``n_components``,
        ``target_reached``, ``n_split``, ``n_attached``, ``edge_weight``,
        ``resolution_scan`` (JSON list, ``resolution='auto'`` only), the
        label counts ``labels_kept``, ``labels_born``,
        ``labels_retired``, ``clusters_split``, ``clusters_merged``,
        ``share_kept_label``, and ``graph_fingerprint``, ``leiden_reused``
        (see ``reuse``).
    """
    started = time.perf_counter()
    node_ids = nodes.column("dataset_id").combine_chunks()
    if len(node_ids) == 0:
        raise ClusteringInputError("no datasets to cluster: the embeddings table is empty")
    positions = None
    if "dataset_key" in nodes.column_names:
        positions = key_positions(nodes.column("dataset_key").to_numpy(), "dataset_key")
    sources, targets = edge_endpoints(node_ids, edges, positions)
    similarities = edges.column("weight").to_numpy().astype(np.float64)
    weights = edge_weights(
        node_ids, sources, targets, similarities, method=edge_weight, neighbors=neighbors, snn_k=snn_k,
        positions=positions,
    )
    positive = (weights > 0) & (similarities > 0)
    if not positive.all() and progress is not None:
        progress(
            f"{int((~positive).sum())} edges with similarity or weight <= 0 left out of the graph "
            "(Leiden needs positive weights)",
            final=True,
        )
    if not positive.all():
        sources, targets, weights = sources[positive], targets[positive], weights[positive]
    fingerprint = graph_fingerprint(node_ids, sources, targets, weights, {
        "resolution": resolution, "seed": seed, "min_cluster_size": min_cluster_size, "small_clusters": small_clusters,
        "edge_weight": edge_weight, "snn_k": snn_k, "max_cluster_size": max_cluster_size,
        "target_n_clusters": target_n_clusters, "target_tolerance": target_tolerance, "backend": backend,
    })
    previous_labels = pa.nulls(len(node_ids), pa.string())
    if previous is not None and stable_labels:
        previous_labels = labels_of(node_ids, previous).cast(pa.string())
    warm = previous_labels.null_count < len(previous_labels)
    initial = None
    if warm:
        # previous clusters as start communities; every other node alone, and so is a node
        # without edges (it cannot be held in a cluster by its past alone)
        prev = previous_labels
        codes = pc.index_in(prev, value_set=pc.unique(prev.drop_null()).sort())
        codes = pc.fill_null(codes, -1).to_numpy(zero_copy_only=False).astype(np.int64)
        degree = np.bincount(sources, minlength=len(node_ids)) + np.bincount(targets, minlength=len(node_ids))
        alone = len(node_ids) + np.arange(len(node_ids), dtype=np.int64)
        initial = np.where((codes >= 0) & (degree > 0), codes, alone)
    result = None
    if reuse is not None and warm and isinstance(resolution, (int, float)) and target_n_clusters is None:
        last = reuse(fingerprint) if callable(reuse) else reuse
        if last is not None:
            result = _reused(last, node_ids, previous_labels, initial, fingerprint)
    reused = result is not None
    if reused:
        if progress is not None:
            progress(f"Leiden not run: the graph ({len(sources)} edges), its settings and the labels it starts "
                     f"from are the last run's; its {result.n_clusters} clusters kept", final=True)
    else:
        # edge order fixed, whatever the table's order: by (source, target), as np.lexsort((targets, sources))
        # gives it (one stable sort of a single key is the same order, and cheaper)
        key = sources * np.int64(len(node_ids)) + targets
        if np.any(key[1:] < key[:-1]):
            order = np.argsort(key, kind="stable")
            sources, targets, weights = sources[order], targets[order], weights[order]
        del key
        graph = build_graph(len(node_ids), sources, targets, weights)
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
        by_number = np.array([f"cluster_{c}" for c in range(result.n_clusters)] + [None], dtype=object)
        matching.labels = by_number[result.clusters].tolist()  # NO_CLUSTER (-1) picks the None
        matching.status = {label: "born" for label in by_number[:-1]}
    labels = pa.array(matching.labels, pa.string())
    # each node's label status: the status of its label, null where it has no label (or an empty one)
    named = pa.array(list(matching.status), pa.string())
    status = pa.array(list(matching.status.values()), pa.string()).take(pc.index_in(labels, value_set=named))
    status = pc.if_else(pc.equal(labels, ""), pa.scalar(None, pa.string()), status)
    community_size = np.bincount(result.communities)[result.communities]
    table = memberships_table(
        {
            "dataset_id": node_ids,
            "cluster": labels,
            "cluster_number": pa.array(result.clusters, mask=result.clusters == NO_CLUSTER),
            "label_status": status,
            "previous_cluster": previous_labels,
            "unclustered_reason": result.unclustered_reason.tolist(),
            "community": result.communities,
            "community_size": community_size,
        },
        {
            "leiden_resolution": result.resolution,
            "modularity": None if np.isnan(result.modularity) else result.modularity,
            "n_components": result.n_components,
            "target_reached": result.target_reached,
            "n_split": result.n_split,
            "n_attached": result.n_attached,
            "edge_weight": edge_weight,
            "resolution_scan": json.dumps(result.scan) if result.scan else None,
            "labels_kept": matching.kept if warm else 0,
            "labels_born": matching.born,
            "labels_retired": matching.retired if warm else 0,
            "clusters_split": matching.split if warm else 0,
            "clusters_merged": matching.merged if warm else 0,
            "share_kept_label": matching.share_kept if warm else None,
            "graph_fingerprint": fingerprint,
            "leiden_reused": reused,
        },
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


def graph_fingerprint(node_ids: pa.Array, sources: np.ndarray, targets: np.ndarray, weights: np.ndarray,
                      settings: dict) -> str:
    """What Leiden's communities depend on: the node ids (in order), the edges with their weights (in any order:
    a sum of mixed 64-bit hashes of the rows) and ``settings``, with :data:`LEIDEN_RULES_VERSION`."""
    import hashlib

    digest = hashlib.blake2b(digest_size=16)
    digest.update(json.dumps({**settings, "rules": LEIDEN_RULES_VERSION}, sort_keys=True, default=str).encode())
    digest.update("\n".join(node_ids.to_pylist()).encode())
    n = np.uint64(max(len(node_ids), 1))
    with np.errstate(over="ignore"):
        rows = _mix(_mix(sources.astype(np.uint64) * n + targets.astype(np.uint64))
                    ^ np.ascontiguousarray(weights, dtype=np.float64).view(np.uint64))
        total = rows.sum(dtype=np.uint64)
    digest.update(np.array([len(node_ids), len(sources), total], dtype=np.uint64).tobytes())
    return digest.hexdigest()


def _mix(z: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser, element-wise (uint64, wrapping)."""
    z = z + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def _reused(reuse: pa.Table, node_ids: pa.Array, previous_labels: pa.Array, initial: np.ndarray,
            fingerprint: str) -> ClusteringResult | None:
    """The last run's result as this run's Leiden result (see :func:`cluster_memberships`'s ``reuse``), or None."""
    needed = {"dataset_id", "cluster", "cluster_number", "unclustered_reason", "community", "graph_fingerprint",
              "n_split", "n_attached", "leiden_resolution", "modularity", "n_components", "target_reached"}
    if reuse.num_rows != len(node_ids) or not needed <= set(reuse.column_names):
        return None
    facts = reuse.slice(0, 1).to_pylist()[0]
    if facts["graph_fingerprint"] != fingerprint or facts["n_split"] or facts["n_attached"]:
        return None
    at = pc.index_in(node_ids, value_set=reuse.column("dataset_id").combine_chunks().cast(pa.string()))
    if at.null_count:
        return None
    rows = reuse.take(at)
    labels = rows.column("cluster").combine_chunks().cast(pa.string())
    same = pc.fill_null(pc.equal(labels, previous_labels), False)
    both_null = pc.and_(pc.is_null(labels), pc.is_null(previous_labels))
    if not pc.all(pc.or_(same, both_null)).as_py():
        return None
    reasons = rows.column("unclustered_reason").combine_chunks().cast(pa.string())
    if pc.any(pc.not_equal(reasons, "no_edge")).as_py():  # dissolved or small components: not carried over
        return None
    communities = start_communities(initial)  # what a run from these clusters returns
    stored = rows.column("community").to_numpy(zero_copy_only=False)
    pairs = np.unique(communities * np.int64(len(node_ids) + 1) + stored)
    if not (pairs.size == np.unique(communities).size == np.unique(stored).size):
        return None
    numbers = rows.column("cluster_number").combine_chunks()
    clusters = pc.fill_null(numbers, NO_CLUSTER).to_numpy(zero_copy_only=False).astype(np.int64)
    return ClusteringResult(
        clusters=clusters,
        communities=communities,
        resolution=facts["leiden_resolution"],
        modularity=float("nan") if facts["modularity"] is None else facts["modularity"],
        n_components=facts["n_components"],
        target_reached=facts["target_reached"],
        unclustered_reason=np.array(reasons.to_pylist(), dtype=object),
    )
