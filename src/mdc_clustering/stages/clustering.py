"""The clustering stage: Leiden on the k-NN graph, with labels carried over from the previous run."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import ClusteringInputError
from ..labels import match_labels
from ..leiden import LEIDEN_RULES_VERSION, NO_CLUSTER, build_graph, leiden_cluster
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


# A re-run lets Leiden move on their own only the datasets that are new, whose embedding changed, or whose
# label was changed by hand; every other member of a last-run community moves only with that community
# (benchmarks/RESULTS.md, "Re-runs": freeing their graph neighbours too gave the same modularity at 3-15x the
# Leiden time). Above this share of free datasets a fresh Leiden runs instead.
MAX_FREE_SHARE = 0.5


@dataclass(frozen=True)
class LeidenPlan:
    """How :func:`cluster_memberships` runs Leiden this run (see :func:`plan_leiden`).

    Attributes
    ----------
    path
        ``'aggregated'`` (from the last run's communities, on the aggregated
        graph) or ``'full'`` (a fresh Leiden on the whole graph).
    reason
        Why, in words.
    start, free
        For ``'aggregated'``: each dataset's last community (-1 = none) and
        whether it moves on its own.
    check_full
        A full Leiden also runs this run, on the schedule (``leiden_full_every``).
    runs_since_full
        Runs since the last full Leiden, this one included.
    reference
        The modularity the last full Leiden reached (None on the full path).
    """

    path: str
    reason: str
    start: np.ndarray | None = None
    free: np.ndarray | None = None
    check_full: bool = False
    runs_since_full: int = 0
    reference: float | None = None


def plan_leiden(node_ids: pa.Array, hashes: np.ndarray | None, previous_labels: pa.Array, last: pa.Table | None,
                settings_fingerprint: str, full_every: int) -> LeidenPlan:
    """Choose this run's Leiden path from the last run's memberships table (``last``, None when there is none).

    Aggregated when the last table was written with the same settings and a
    re-run's share of free datasets (new, embedding changed: ``hashes``
    differ from its ``embedding_hash``, or a label that is not the one it
    gave) is at most :data:`MAX_FREE_SHARE`; every ``full_every``-th run
    since a full Leiden also runs a full one (``check_full``).
    """
    needed = {"dataset_id", "community", "cluster", "embedding_hash", "leiden_settings", "runs_since_full_leiden",
              "full_leiden_modularity"}
    if last is None or last.num_rows == 0:
        return LeidenPlan("full", "no last memberships (a first run, or incremental off)")
    if not needed <= set(last.column_names):
        return LeidenPlan("full", "the last memberships were written by an earlier version")
    facts = last.slice(0, 1).select(["leiden_settings", "runs_since_full_leiden", "full_leiden_modularity"])
    facts = facts.to_pylist()[0]
    if facts["leiden_settings"] != settings_fingerprint:
        return LeidenPlan("full", "the graph or Leiden settings changed since the last run")
    if facts["full_leiden_modularity"] is None:
        return LeidenPlan("full", "the last run's graph had no edges (no modularity to guard)")
    at = pc.index_in(node_ids, value_set=last.column("dataset_id").combine_chunks().cast(pa.string()))
    known = pc.is_valid(at).to_numpy(zero_copy_only=False)
    rows = last.take(pc.fill_null(at, 0))
    start = np.where(known, pc.fill_null(rows.column("community"), -1).to_numpy(zero_copy_only=False), -1)
    labels = rows.column("cluster").combine_chunks().cast(pa.string())
    same_label = pc.fill_null(pc.equal(labels, previous_labels), False)
    same_label = pc.or_(same_label, pc.and_(pc.is_null(labels), pc.is_null(previous_labels)))
    free = ~known | ~same_label.to_numpy(zero_copy_only=False)
    if hashes is not None:
        stored = pc.fill_null(rows.column("embedding_hash"), 0).to_numpy(zero_copy_only=False)
        free |= stored != hashes
    start = np.where(free & ~known, -1, start).astype(np.int64)
    share = float(free.mean()) if free.size else 0.0
    if share > MAX_FREE_SHARE:
        return LeidenPlan("full", f"{share:.0%} of the datasets are new or changed (more than "
                                  f"{MAX_FREE_SHARE:.0%})")
    runs = int(facts["runs_since_full_leiden"] or 0) + 1
    check = runs >= full_every
    reason = (f"{int(free.sum())} new or changed datasets free, every other dataset moves with its last "
              f"community; run {runs} since the last full Leiden")
    return LeidenPlan("aggregated", reason, start, free, check, runs, float(facts["full_leiden_modularity"]))


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
    last: pa.Table | None = None,
    full_every: int = 10,
    drift_bound: float = 0.01,
    graph_settings: str = "",
    progress: Progress = None,
) -> pa.Table:
    """Leiden memberships of every node: one row per dataset, edgeless ones included.

    Parameters
    ----------
    nodes
        Table with a ``dataset_id`` column: every dataset of the graph (and
        ``dataset_key``, its integer key, when the edges name datasets by
        key; and ``embedding_hash``, its embedding fingerprint, which the
        next run compares to find changed embeddings).
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
        When true (and ``previous`` holds labels), new clusters inherit the
        label of the previous cluster they match
        (:func:`mdc_clustering.labels.match_labels`), and a re-run starts
        from ``last``; when false, labels are ``cluster_0..`` by size and
        Leiden runs afresh, as in a first run.
    min_label_overlap
        Smallest Jaccard overlap for a cluster to keep a previous label.
    backend
        Leiden implementation: ``igraph`` or ``leidenalg`` (see
        :func:`mdc_clustering.leiden.leiden_cluster`).
    last
        This function's table from the last run (None on a first run). A
        re-run runs Leiden from its communities on the aggregated graph
        (:func:`plan_leiden` says when): the datasets that are new, whose
        embedding changed or whose label is not the one it gave move on
        their own, every other dataset only with the rest of its last
        community. The drift guard: every ``full_every``-th run since the
        last full Leiden, or when the aggregated result's modularity falls
        more than ``drift_bound`` (relative) below the last full Leiden's,
        a full Leiden runs too, and its result is taken when its modularity
        beats the aggregated one's by more than ``drift_bound``.
    graph_settings
        Text naming the settings the edges were built with (threshold,
        degree, k): a change of it, or of the Leiden settings, makes the
        run a full one.

    Returns
    -------
    pyarrow.Table
        In :data:`~mdc_clustering.stages.memberships.MEMBERSHIPS_SCHEMA`:
        ``dataset_id``; ``cluster`` (label; null when dissolved);
        ``cluster_number`` (0 = largest this run); ``label_status`` ('kept'
        or 'born'); ``previous_cluster``; ``unclustered_reason`` (see
        :class:`mdc_clustering.leiden.ClusteringResult`); ``community``
        (Leiden community before the small-cluster rule) and
        ``community_size``; ``embedding_hash``; and, the same on every
        row, the run's ``leiden_resolution``, ``modularity``,
        ``n_components``, ``target_reached``, ``n_split``, ``n_attached``,
        ``edge_weight``, ``resolution_scan`` (JSON list,
        ``resolution='auto'`` only), the label counts ``labels_kept``,
        ``labels_born``, ``labels_retired``, ``clusters_split``,
        ``clusters_merged``, ``share_kept_label``, and the Leiden path:
        ``leiden_path``, ``leiden_reason``, ``leiden_nodes``,
        ``leiden_free_datasets``, ``runs_since_full_leiden``,
        ``full_leiden_modularity``, ``aggregated_modularity``,
        ``leiden_settings``.
    """
    started = time.perf_counter()
    node_ids = nodes.column("dataset_id").combine_chunks()
    if len(node_ids) == 0:
        raise ClusteringInputError("no datasets to cluster: the embeddings table is empty")
    positions = None
    if "dataset_key" in nodes.column_names:
        positions = key_positions(nodes.column("dataset_key").to_numpy(), "dataset_key")
    hashes = None
    if "embedding_hash" in nodes.column_names:
        hashes = pc.fill_null(nodes.column("embedding_hash"), 0).to_numpy().astype(np.int64)
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
    settings_fingerprint = _settings_fingerprint({
        "resolution": resolution, "seed": seed, "min_cluster_size": min_cluster_size, "small_clusters": small_clusters,
        "edge_weight": edge_weight, "snn_k": snn_k, "max_cluster_size": max_cluster_size, "backend": backend,
        "graph": graph_settings,
    })
    previous_labels = pa.nulls(len(node_ids), pa.string())
    if previous is not None and stable_labels:
        previous_labels = labels_of(node_ids, previous).cast(pa.string())
    warm = previous_labels.null_count < len(previous_labels)
    if not stable_labels:
        plan = LeidenPlan("full", "stable_labels is off: a fresh run")
    elif target_n_clusters is not None or isinstance(resolution, str):
        plan = LeidenPlan("full", "the resolution is searched (target_n_clusters or resolution auto)")
    else:
        plan = plan_leiden(node_ids, hashes, previous_labels, last, settings_fingerprint, full_every)
    # edge order fixed, whatever the table's order: by (source, target), as np.lexsort((targets, sources))
    # gives it (one stable sort of a single key is the same order, and cheaper)
    key = sources * np.int64(len(node_ids)) + targets
    if np.any(key[1:] < key[:-1]):
        order = np.argsort(key, kind="stable")
        sources, targets, weights = sources[order], targets[order], weights[order]
    del key
    graph = build_graph(len(node_ids), sources, targets, weights)
    options = {
        "seed": seed, "min_cluster_size": min_cluster_size, "small_clusters": small_clusters,
        "max_cluster_size": max_cluster_size, "backend": backend,
    }
    def fresh():  # a full Leiden on the whole graph
        return leiden_cluster(graph, resolution, target_n_clusters=target_n_clusters,
                              target_tolerance=target_tolerance, **options)

    path, reason, aggregated_modularity = plan.path, plan.reason, None
    if plan.path == "aggregated":
        result = leiden_cluster(graph, resolution, start=plan.start, free=plan.free, **options)
        aggregated_modularity = result.modularity
        drifted = result.modularity < plan.reference - drift_bound * abs(plan.reference)
        check = plan.check_full or drifted
        if check:
            why = (f"run {plan.runs_since_full} since the last full Leiden (leiden_full_every)" if plan.check_full
                   else f"modularity {result.modularity:.4f} fell more than {drift_bound:g} below the last full "
                        f"Leiden's {plan.reference:.4f}")
            full = fresh()
            if full.modularity > result.modularity + drift_bound * abs(result.modularity):
                path, result = "full", full
                reason = (f"{why}: the full Leiden's modularity {full.modularity:.4f} beat the aggregated "
                          f"{aggregated_modularity:.4f} by more than {drift_bound:g}, so it was taken")
            else:
                reason = (f"{plan.reason}; {why}: the full Leiden's modularity {full.modularity:.4f} is within "
                          f"{drift_bound:g} of the aggregated {aggregated_modularity:.4f}, which was kept")
        runs_since_full = 0 if check else plan.runs_since_full
        reference = full.modularity if check else plan.reference
    else:
        result = fresh()
        runs_since_full, reference = 0, result.modularity
    if progress is not None:
        progress(f"Leiden ({backend}, {path}) on {result.aggregated_nodes or graph.vcount()} nodes of "
                 f"{graph.vcount()} datasets, {graph.ecount()} edges: {reason}", final=True)
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
    label_counts = {
        "labels_kept": matching.kept if warm else 0,
        "labels_born": matching.born,
        "labels_retired": matching.retired if warm else 0,
        "clusters_split": matching.split if warm else 0,
        "clusters_merged": matching.merged if warm else 0,
    }
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
            "embedding_hash": hashes,
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
            **label_counts,
            "share_kept_label": matching.share_kept if warm else None,
            "leiden_path": path,
            "leiden_reason": reason,
            "leiden_nodes": result.aggregated_nodes or graph.vcount(),
            "leiden_free_datasets": None if plan.free is None else int(plan.free.sum()),
            "runs_since_full_leiden": runs_since_full,
            "full_leiden_modularity": None if reference is None or np.isnan(reference) else reference,
            "aggregated_modularity": (None if aggregated_modularity is None or np.isnan(aggregated_modularity)
                                      else aggregated_modularity),
            "leiden_settings": settings_fingerprint,
        },
    )
    if progress is not None:
        events = ", ".join(f"{name.split('_')[1]} {count}" for name, count in label_counts.items())
        progress(
            f"{result.n_clusters} clusters, {int((result.clusters == NO_CLUSTER).sum())} datasets unclustered "
            f"({result.n_attached} attached from too-small communities), "
            f"modularity {result.modularity:.3f}, resolution {result.resolution:.4g}; "
            f"labels: {events} in {time.perf_counter() - started:.1f}s",
            final=True,
        )
    return table


def _settings_fingerprint(settings: dict) -> str:
    """What a partition depends on besides the graph: the settings, with :data:`LEIDEN_RULES_VERSION`."""
    import hashlib

    text = json.dumps({**settings, "rules": LEIDEN_RULES_VERSION}, sort_keys=True, default=str)
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()
