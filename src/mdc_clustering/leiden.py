"""Leiden community detection on the thresholded similarity graph."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from functools import cached_property

import igraph as ig
import leidenalg
import numpy as np

from .errors import ClusteringInputError
from .validation import choice, nonnegative_int, optional_positive_int, positive_float, positive_int

__all__ = [
    "LEIDEN_BACKENDS",
    "SMALL_CLUSTER_POLICIES",
    "Aggregation",
    "ClusteringResult",
    "Graph",
    "aggregate",
    "attach_small_communities",
    "build_graph",
    "cluster_labels",
    "leiden_cluster",
    "stability_scan",
]

LEIDEN_BACKENDS = ("igraph", "leidenalg")
SMALL_CLUSTER_POLICIES = ("attach", "dissolve")
# The resolutions a label-free choice ('auto') scans, and the seeds each is run with.
STABILITY_GRID = tuple(round(2.0 ** (e / 2), 4) for e in range(-4, 7))  # 0.25 .. 8, x sqrt(2) apart
STABILITY_SEEDS = 3
# target_n_clusters: resolutions searched stay inside this range; past it a partition says more
# about the graph's components than about a resolution.
_TARGET_RESOLUTION_RANGE = (1e-4, 1e4)

NO_CLUSTER = -1
# Part of the graph fingerprint a re-run compares before it keeps the last run's communities
# (mdc_clustering.stages.clustering): raise it with any change to what a run returns for a graph.
LEIDEN_RULES_VERSION = 3
_MAX_SPLIT_DOUBLINGS = 40  # resolution x 2**40: every node alone long before
_MAX_LEIDEN_PASSES = 50  # igraph backend: passes until the partition is stable
# A Leiden pass (or a warm start's result) must gain more than this share of modularity
# to count as an improvement: a re-run on unchanged data then keeps its partition.
_QUALITY_TOLERANCE = 1e-5


@dataclass
class ClusteringResult:
    """Outcome of :func:`leiden_cluster`.

    Attributes
    ----------
    clusters
        ``int64`` array, one entry per node: the cluster number (0 = the
        largest cluster, ties broken by the smallest node index), or ``-1``
        where the node is left unclustered (see ``unclustered_reason``).
    communities
        ``int64`` array: the Leiden community of every node after oversize
        clusters were split, before the small-cluster rule.
    resolution
        The resolution used (the searched one when ``target_n_clusters`` was
        given, the scanned one when it was ``'auto'``).
    modularity
        Weighted modularity (resolution 1) of the final clusters on the graph
        (every unclustered node a community of its own); NaN for a graph
        without edges.
    n_components
        Connected components of the graph (isolated nodes count as one each).
    target_reached
        True when ``target_n_clusters`` was given (an unreachable target
        raises), None otherwise.
    n_split
        How many oversize clusters were split (``max_cluster_size``).
    n_attached
        Nodes whose too-small community was attached to a neighbouring
        cluster (``small_clusters='attach'``).
    unclustered_reason
        Object array, one entry per node: None for a clustered node, else
        ``'no_edge'`` (the graph gives it no neighbour), ``'small_component'``
        (its connected component is smaller than ``min_cluster_size``, so it
        has no cluster to join) or ``'dissolved'`` (its community was smaller
        than ``min_cluster_size`` and ``small_clusters='dissolve'``).
    search
        ``(resolution, count)`` of each step of the ``target_n_clusters`` search.
    scan
        The label-free scan of ``resolution='auto'`` (see :func:`stability_scan`).
    aggregated_nodes
        Nodes of the aggregated graph Leiden ran on when it started from
        ``start`` (super-nodes and free nodes), else None.
    """

    clusters: np.ndarray
    communities: np.ndarray
    resolution: float
    modularity: float
    n_components: int
    target_reached: bool | None = None
    n_split: int = 0
    n_attached: int = 0
    unclustered_reason: np.ndarray | None = None
    search: list[tuple[float, int]] = field(default_factory=list)
    scan: list[dict] = field(default_factory=list)
    aggregated_nodes: int | None = None

    @property
    def n_clusters(self) -> int:
        return int(self.clusters.max(initial=NO_CLUSTER) + 1)


@dataclass(frozen=True, eq=False)
class Graph:
    """An undirected weighted graph held as edge arrays: one entry per pair of distinct nodes.

    ``loops`` (optional, one value per node) is a node's self weight: the
    summed weight of the edges inside a super-node of an aggregated graph
    (:func:`aggregate`), counted once. igraph's graph is built only when a
    Leiden run asks for it (:attr:`igraph`); the cluster rules, components,
    degrees and modularity read the arrays.
    """

    n_nodes: int
    sources: np.ndarray
    targets: np.ndarray
    weights: np.ndarray
    loops: np.ndarray | None = None

    def vcount(self) -> int:
        return self.n_nodes

    def ecount(self) -> int:
        return int(self.sources.size)

    @cached_property
    def strength(self) -> np.ndarray:
        """Each node's summed edge weight, a self weight counted twice (as igraph's ``strength(loops=True)``)."""
        total = np.bincount(self.sources, self.weights, self.n_nodes) + np.bincount(
            self.targets, self.weights, self.n_nodes
        )
        return total if self.loops is None else total + 2.0 * self.loops

    def degree(self) -> np.ndarray:
        return np.bincount(self.sources, minlength=self.n_nodes) + np.bincount(self.targets, minlength=self.n_nodes)

    @cached_property
    def igraph(self) -> ig.Graph:
        """The same graph in igraph (a self weight as a loop edge), built on first use."""
        g = ig.Graph(n=self.n_nodes, directed=False)
        # python-igraph reads the edges pair by pair (its memoryview path, in the abi3 wheel, goes through
        # .tolist() too): tuples of Python ints are the cheapest pairs to read, an array of pairs the dearest
        g.add_edges(zip(self.sources.tolist(), self.targets.tolist(), strict=True))
        weights = self.weights
        if self.loops is not None:
            looped = np.flatnonzero(self.loops > 0)
            g.add_edges(zip(looped.tolist(), looped.tolist(), strict=True))
            weights = np.concatenate([weights, self.loops[looped]])
        g.es["weight"] = weights
        return g

    def components(self) -> np.ndarray:
        """The connected component of every node (int64), numbered by first node."""
        from scipy.sparse import coo_matrix
        from scipy.sparse.csgraph import connected_components

        adjacency = coo_matrix(
            (np.ones(self.sources.size, dtype=np.int8), (self.sources, self.targets)),
            shape=(self.n_nodes, self.n_nodes),
        )
        return connected_components(adjacency, directed=False)[1].astype(np.int64)

    def modularity(self, membership: np.ndarray, resolution: float = 1.0) -> float:
        """Weighted modularity of ``membership`` at ``resolution`` (self weights inside their node's community)."""
        membership = np.asarray(membership, dtype=np.int64)
        total = float(self.strength.sum())
        if total <= 0:
            return float("nan")
        size = int(membership.max(initial=-1)) + 1
        inside = membership[self.sources] == membership[self.targets]
        internal = 2.0 * float(self.weights[inside].sum())
        if self.loops is not None:
            internal += 2.0 * float(self.loops.sum())
        degree = np.bincount(membership, self.strength, size)
        return internal / total - resolution * float(np.dot(degree, degree)) / (total * total)

    def subgraph(self, members: np.ndarray) -> Graph:
        """The graph induced by ``members`` (node indices, increasing), its nodes numbered 0.. in that order."""
        position = np.full(self.n_nodes, -1, dtype=np.int64)
        position[members] = np.arange(members.size)
        a, b = position[self.sources], position[self.targets]
        inside = (a >= 0) & (b >= 0)
        loops = None if self.loops is None else self.loops[members]
        return Graph(int(members.size), a[inside], b[inside], self.weights[inside], loops)


def build_graph(n_nodes: int, sources: np.ndarray, targets: np.ndarray, weights: np.ndarray) -> Graph:
    """Undirected weighted graph from edge index arrays (one edge per pair), checked."""
    sources = np.asarray(sources, dtype=np.int64)
    targets = np.asarray(targets, dtype=np.int64)
    weights = np.asarray(weights, dtype=np.float64)
    if not (sources.shape == targets.shape == weights.shape):
        raise ClusteringInputError("edge arrays must have the same length")
    if sources.size and (min(sources.min(), targets.min()) < 0 or max(sources.max(), targets.max()) >= n_nodes):
        raise ClusteringInputError("edge endpoints must be node indices in [0, n_nodes)")
    if np.any(sources == targets):
        raise ClusteringInputError("the edge list has self loops; edges must join two different datasets")
    if sources.size and not np.all(np.isfinite(weights)):
        raise ClusteringInputError("edge weights must be finite")
    if sources.size and np.any(weights <= 0):
        raise ClusteringInputError(
            "edge weights must be positive (Leiden's modularity has no meaning for negative weights); "
            "leave edges with similarity <= 0 out of the graph"
        )
    return Graph(int(n_nodes), sources, targets, weights)


@dataclass(frozen=True)
class Aggregation:
    """A graph with the fixed members of each start community contracted into one node (see :func:`aggregate`).

    Attributes
    ----------
    graph
        The aggregated graph: one super-node per start community that keeps
        a fixed member (its self weight the weight of the edges among them),
        then one node per other dataset; edges between two nodes summed.
    node_of
        Each original node's node in ``graph`` (int64).
    start
        Each node of ``graph``'s start community, numbered ``0..``: a
        super-node's is its community, a free dataset starts in its start
        community when it has one, else alone.
    """

    graph: Graph
    node_of: np.ndarray
    start: np.ndarray


def aggregate(graph: Graph, start: np.ndarray, free: np.ndarray) -> Aggregation:
    """Contract ``graph`` by the start communities, leaving the ``free`` nodes (and those with no start) apart.

    Parameters
    ----------
    graph
        The whole graph (no self weights).
    start
        One start community per node (any integers), ``-1`` = none.
    free
        Boolean mask: nodes that may move on their own. Every other node
        with a start community moves only with the rest of that community's
        fixed members.
    """
    start = np.asarray(start, dtype=np.int64)
    free = np.asarray(free, dtype=bool) | (start < 0)
    n = graph.n_nodes
    fixed = ~free
    communities, super_of = np.unique(start[fixed], return_inverse=True)
    n_super = communities.size
    node_of = np.empty(n, dtype=np.int64)
    node_of[fixed] = super_of.ravel()
    node_of[free] = n_super + np.arange(int(free.sum()), dtype=np.int64)
    size = n_super + int(free.sum())
    a, b = node_of[graph.sources], node_of[graph.targets]
    same = a == b
    loops = np.bincount(a[same], graph.weights[same], size)
    lo, hi = np.minimum(a, b)[~same], np.maximum(a, b)[~same]
    keys, inverse = np.unique(lo * np.int64(size) + hi, return_inverse=True)  # sorted: source, then target
    summed = np.bincount(inverse.ravel(), graph.weights[~same], keys.size)
    aggregated = Graph(size, keys // size, keys % size, summed, loops)
    first_start = np.empty(size, dtype=np.int64)
    first_start[node_of] = np.where(start >= 0, start, int(start.max(initial=0)) + 1 + np.arange(n))
    return Aggregation(aggregated, node_of, _canonical(first_start))


def _leiden(
    graph: Graph, resolution: float, seed: int, initial: list[int] | None = None, backend: str = "igraph"
) -> np.ndarray:
    """One Leiden run optimising modularity with a resolution (RB configuration model), to convergence."""
    return _leiden_run(graph, resolution, seed, initial, backend)[0]


def _leiden_run(
    graph: Graph, resolution: float, seed: int, initial: list[int] | None = None, backend: str = "igraph"
) -> tuple[np.ndarray, float | None, float | None]:
    """:func:`_leiden`, and ``_quality`` of the membership returned and of ``initial`` when the run computed
    them (else None): a caller comparing the two need not compute them again (a pass over every edge each)."""
    if graph.ecount() == 0:
        return np.arange(graph.vcount(), dtype=np.int64), None, None
    if backend == "leidenalg":
        # leidenalg's modularity counts a self weight inside its node's community: it runs on aggregated graphs
        partition = leidenalg.find_partition(
            graph.igraph,
            leidenalg.RBConfigurationVertexPartition,
            weights="weight",
            resolution_parameter=resolution,
            seed=seed,
            n_iterations=-1,
            initial_membership=initial,
        )
        return np.asarray(partition.membership, dtype=np.int64), None, None
    # igraph's modularity objective leaves self weights out; CPM with each node's strength (self weight
    # included) as its node weight and the resolution over the total strength is the same objective with
    # them in: on a graph without self weights it returns igraph's modularity partitions exactly.
    # igraph draws from the generator set by set_random_number_generator (Python's `random`
    # module by default). igraph's own "until stable" (n_iterations < 0) can loop for ever at
    # very high resolutions, so run one pass at a time, each from a generator seeded afresh
    # (a pass is then a fixed function of its start partition), until a pass changes nothing
    # or gains less than _QUALITY_TOLERANCE (relative) in modularity at this resolution; such a
    # pass's moves are dropped.
    node_weights = graph.strength.tolist()
    cpm_resolution = resolution / float(graph.strength.sum())
    membership = _canonical(initial) if initial is not None else None
    quality = -np.inf if membership is None else graph.modularity(membership, resolution)
    start_quality = None if membership is None else quality
    try:
        for _ in range(_MAX_LEIDEN_PASSES):
            ig.set_random_number_generator(random.Random(seed))
            clustering = graph.igraph.community_leiden(
                objective_function="CPM",
                weights="weight",
                node_weights=node_weights,
                resolution=cpm_resolution,
                initial_membership=None if membership is None else membership.tolist(),
                n_iterations=1,
            )
            moved = _canonical(clustering.membership)
            if membership is not None and np.array_equal(moved, membership):
                break
            moved_quality = graph.modularity(moved, resolution)
            if membership is not None and moved_quality <= quality + _QUALITY_TOLERANCE * max(1.0, abs(quality)):
                # a pass that gains too little is not taken: the partition returned is then one whose
                # next pass is refused too, so a re-run from it on the same graph returns it unchanged
                # (taking that pass's moves left the next run a pass that could gain more)
                break
            membership, quality = moved, moved_quality
    finally:
        ig.set_random_number_generator(random)
    return membership, quality, start_quality


def _singletons_apart(clusters: np.ndarray) -> np.ndarray:
    """Cluster numbers with every unclustered node (``-1``) a community of its own, for modularity."""
    return np.where(clusters == NO_CLUSTER, clusters.max(initial=-1) + 1 + np.arange(clusters.size), clusters)


def _canonical(membership) -> np.ndarray:
    """Community numbers renumbered by first appearance, so equal partitions compare equal."""
    _, first, inverse = np.unique(np.asarray(membership), return_index=True, return_inverse=True)
    rank = np.empty(first.size, dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(first.size)
    return rank[inverse.ravel()]


def attach_small_communities(
    graph: Graph, communities: np.ndarray, min_size: int, max_size: int | None = None
) -> np.ndarray:
    """Merge every community smaller than ``min_size`` into the neighbour holding most of its edge weight.

    Rounds repeat until no small community can move. A small community moves
    only towards a larger one (by size, then by the smaller community
    number), so two small communities never swap; it joins another small one
    when that is where its weight goes, and the pair moves on together in a
    later round (a move whose target is itself moving waits a round). With
    ``max_size``, a move that would make its target larger than ``max_size``
    is not made (the next-heaviest neighbour that fits is taken instead).
    Communities left below ``min_size`` (a connected component smaller than
    ``min_size``, or one whose every neighbour is full) are returned as they
    are.

    Returns
    -------
    numpy.ndarray
        A new ``int64`` community array (the input is not modified).
    """
    communities = np.asarray(communities, dtype=np.int64).copy()
    sizes = np.bincount(communities)
    if graph.ecount() == 0 or min_size <= 1 or sizes[sizes > 0].min(initial=min_size) >= min_size:
        return communities  # nothing to attach
    src = np.concatenate([graph.sources, graph.targets])
    dst = np.concatenate([graph.targets, graph.sources])
    both = np.concatenate([graph.weights, graph.weights])
    for _ in range(communities.size):
        sizes = np.bincount(communities)
        c_src, c_dst = communities[src], communities[dst]
        out = (sizes[c_src] < min_size) & (c_src != c_dst)
        if not out.any():
            break
        width = np.int64(sizes.size)
        keys, inverse = np.unique(c_src[out] * width + c_dst[out], return_inverse=True)
        total = np.bincount(inverse, weights=both[out])
        small, other = keys // width, keys % width
        fits = (sizes[other] > sizes[small]) | ((sizes[other] == sizes[small]) & (other < small))
        if max_size is not None:
            fits &= sizes[other] + sizes[small] <= max_size
        small, other, total = small[fits], other[fits], total[fits]
        if not small.size:
            break
        # each small community's heaviest neighbour (ties: the larger, then the lower number)
        order = np.lexsort((other, -sizes[other], -total, small))
        small, other = small[order], other[order]
        first = np.r_[True, small[1:] != small[:-1]]
        small, other = small[first], other[first]
        settled = ~np.isin(other, small)  # a target that moves this round waits: its own move comes first
        small, other = small[settled], other[settled]
        if max_size is not None:  # several small ones into one target: take them while they fit
            order = np.lexsort((small, other))
            small, other = small[order], other[order]
            new_group = np.r_[True, other[1:] != other[:-1]]
            running = np.cumsum(sizes[small])  # members moved so far, over all groups
            group_start = np.r_[0, running][np.flatnonzero(new_group)]
            within = running - group_start[np.cumsum(new_group) - 1]  # members moved into this target so far
            keep = sizes[other] + within <= max_size
            small, other = small[keep], other[keep]
        if not small.size:
            break
        relabel = np.arange(sizes.size, dtype=np.int64)
        relabel[small] = other
        communities = relabel[communities]
    return communities


def _final_labels(graph, communities, min_size, policy, max_size=None):
    """Cluster numbers after the small-cluster rule: by size, -1 where a community stays too small."""
    if policy == "attach":
        communities = attach_small_communities(graph, communities, min_size, max_size)
    return cluster_labels(communities, min_size), communities


def _n_clusters(labels: np.ndarray) -> int:
    return int(labels.max(initial=NO_CLUSTER) + 1)


def _component_floor(graph: Graph, min_size: int) -> int:
    """Clusters no resolution can go below: components of at least ``min_size`` nodes (Leiden never joins two)."""
    sizes = np.bincount(graph.components())
    return int((sizes >= min_size).sum())


def _search_resolution(graph, start, seed, target, tolerance, min_size, policy, backend):
    """Geometric bisection on the resolution until the cluster count is within tolerance.

    Raises :class:`~mdc_clustering.errors.ClusteringInputError` naming the
    closest count reached (and the graph's component count) when no
    resolution inside ``_TARGET_RESOLUTION_RANGE`` gives a count within
    tolerance.
    """
    low_bound, high_bound = _TARGET_RESOLUTION_RANGE
    floor = _component_floor(graph, min_size)
    if target + tolerance < floor:
        raise ClusteringInputError(
            f"target_n_clusters={target} cannot be reached: the graph has {floor} connected components of at "
            f"least min_cluster_size={min_size} datasets, and Leiden never joins two components, so every "
            f"resolution gives {floor} clusters or more. Ask for at least {floor} clusters, or connect the graph: "
            "raise min_edges_per_dataset (each dataset keeps its edges to that many nearest neighbours) or "
            "target_degree, or lower similarity_threshold."
        )
    lo, hi = None, None
    resolution = min(max(start, low_bound), high_bound)
    tried: list[tuple[float, int, np.ndarray]] = []
    for _ in range(40):
        communities = _leiden(graph, resolution, seed, backend=backend)
        labels, _ = _final_labels(graph, communities, min_size, policy)
        count = _n_clusters(labels)
        tried.append((resolution, count, communities))
        if abs(count - target) <= tolerance:
            return resolution, communities, tried
        if count < target:
            lo = resolution
            resolution = resolution * 4 if hi is None else math.sqrt(lo * hi)
        else:
            hi = resolution
            resolution = resolution / 4 if lo is None else math.sqrt(lo * hi)
        if resolution < low_bound or resolution > high_bound:
            break
        if hi is not None and lo is not None and hi / lo < 1.0001:
            break
    best = min(tried, key=lambda t: (abs(t[1] - target), t[0]))
    why = (
        f"the count jumps from {max((t[1] for t in tried if t[1] < target), default=floor)} to "
        f"{min((t[1] for t in tried if t[1] > target), default=best[1])} between two resolutions less than "
        "0.01% apart (the graph has no partition in between)"
        if lo is not None and hi is not None
        else f"no resolution in [{low_bound:g}, {high_bound:g}] gets there"
    )
    raise ClusteringInputError(
        f"target_n_clusters={target} (tolerance {tolerance}) was not reached: the closest was {best[1]} "
        f"clusters at resolution {best[0]:.6g}; {why}. The graph has {floor} components of at least "
        f"min_cluster_size={min_size} datasets. Set target_n_clusters to a reachable count, widen "
        "target_n_clusters_tolerance, or set target_n_clusters: null and choose resolution instead."
    )


def stability_scan(
    graph: Graph,
    *,
    seed: int = 42,
    min_cluster_size: int = 2,
    small_clusters: str = "attach",
    backend: str = "igraph",
    grid: tuple[float, ...] = STABILITY_GRID,
    n_seeds: int = STABILITY_SEEDS,
) -> tuple[float, list[dict]]:
    """Choose a resolution without labels: the one whose partitions agree most across seeds.

    For each resolution of ``grid``, Leiden runs from ``n_seeds`` seeds
    (``seed``, ``seed + 1``, ...) and the partitions (after the small-cluster
    rule) are compared pairwise by the adjusted Rand index. A resolution at
    which the graph has a clear community structure gives the same partition
    whatever the seed; one between two structures flips between them.
    Resolutions whose partitions have fewer than two clusters are skipped
    (one cluster is trivially stable). Ties (within 0.002) go to the
    resolution nearest 1.

    Returns
    -------
    (float, list of dict)
        The chosen resolution, and one row per resolution scanned:
        ``resolution``, ``stability`` (mean pairwise ARI), ``n_clusters``
        (of the first seed's partition), ``modularity`` (at resolution 1).
    """
    from sklearn.metrics import adjusted_rand_score

    scan = []
    for resolution in grid:
        labels = []
        for offset in range(n_seeds):
            communities = _leiden(graph, resolution, seed + offset, backend=backend)
            labels.append(_final_labels(graph, communities, min_cluster_size, small_clusters)[0])
        n_clusters = _n_clusters(labels[0])
        agree = [
            adjusted_rand_score(labels[i], labels[j]) for i in range(n_seeds) for j in range(i + 1, n_seeds)
        ]
        modularity = graph.modularity(_singletons_apart(labels[0])) if graph.ecount() else float("nan")
        scan.append(
            {
                "resolution": float(resolution),
                "stability": float(np.mean(agree)) if agree else 1.0,
                "n_clusters": n_clusters,
                "modularity": float(modularity),
            }
        )
    usable = [row for row in scan if row["n_clusters"] >= 2]
    if not usable:
        return 1.0, scan
    top = max(row["stability"] for row in usable)
    near = [row for row in usable if row["stability"] >= top - 0.002]
    chosen = min(near, key=lambda row: (abs(math.log(row["resolution"])), row["resolution"]))
    return chosen["resolution"], scan


def _gentlest_split(sub: Graph, resolution: float, seed: int, backend: str) -> tuple[np.ndarray, float]:
    """Leiden partition of ``sub`` at (about) the smallest resolution that splits it in two or more parts.

    Splitting at the first resolution that splits at all, rather than at a
    fixed multiple, keeps the pieces as large as the size cap allows instead
    of shattering the cluster.
    """
    parts = _leiden(sub, resolution, seed, backend=backend)
    if parts.max() > 0:  # already splits: walk down to the last resolution that still does
        hi, hi_parts = resolution, parts
        lo = resolution
        for _ in range(_MAX_SPLIT_DOUBLINGS):
            lo /= 2.0
            parts = _leiden(sub, lo, seed, backend=backend)
            if parts.max() == 0:
                break
            hi, hi_parts = lo, parts
        else:  # splits at any resolution (e.g. a disconnected subgraph)
            return hi_parts, hi
    else:  # walk up until it splits
        lo = resolution
        for _ in range(_MAX_SPLIT_DOUBLINGS):
            hi = lo * 2.0
            hi_parts = _leiden(sub, hi, seed, backend=backend)
            if hi_parts.max() > 0:
                break
            lo = hi
        else:  # pragma: no cover - at resolution x 2**40 every node stands alone
            raise ClusteringInputError(f"could not split a community of {sub.vcount()} nodes")
    for _ in range(8):  # bisect (geometrically) to within a factor of ~1.003
        mid = math.sqrt(lo * hi)
        parts = _leiden(sub, mid, seed, backend=backend)
        if parts.max() > 0:
            hi, hi_parts = mid, parts
        else:
            lo = mid
    return hi_parts, hi


def _split_oversize(graph, communities, max_size, resolution, seed, backend):
    """Split every community larger than ``max_size`` by Leiden inside it, recursively."""
    communities = communities.copy()
    next_id = int(communities.max(initial=-1)) + 1
    sizes = np.bincount(communities)
    queue = [int(c) for c in np.flatnonzero(sizes > max_size)]
    n_split = 0
    while queue:
        community = queue.pop()
        members = np.flatnonzero(communities == community)
        parts, _ = _gentlest_split(graph.subgraph(members), resolution, seed, backend)
        n_split += 1
        for part in np.unique(parts):
            idx = members[parts == part]
            communities[idx] = next_id
            if idx.size > max_size:
                queue.append(next_id)
            next_id += 1
    return communities, n_split


def cluster_labels(communities: np.ndarray, min_size: int) -> np.ndarray:
    """Renumber communities 0..m-1 by decreasing size (ties: smallest member first); -1 below ``min_size``."""
    communities = np.asarray(communities, dtype=np.int64)
    n = communities.size
    result = np.full(n, NO_CLUSTER, dtype=np.int64)
    if n == 0:
        return result
    _, inverse, sizes = np.unique(communities, return_inverse=True, return_counts=True)
    first_member = np.full(sizes.size, n, dtype=np.int64)
    np.minimum.at(first_member, inverse, np.arange(n))
    order = np.lexsort((first_member, -sizes))  # largest first, then earliest member
    kept = order[sizes[order] >= min_size]
    new_number = np.full(sizes.size, NO_CLUSTER, dtype=np.int64)
    new_number[kept] = np.arange(kept.size)
    result[:] = new_number[inverse]
    return result


def leiden_cluster(
    graph: Graph,
    resolution: float | str = 1.0,
    *,
    seed: int = 42,
    min_cluster_size: int = 2,
    small_clusters: str = "attach",
    max_cluster_size: int | None = None,
    target_n_clusters: int | None = None,
    target_tolerance: float = 0.1,
    start: np.ndarray | None = None,
    free: np.ndarray | None = None,
    backend: str = "igraph",
) -> ClusteringResult:
    """Cluster a weighted undirected graph with Leiden (modularity with a resolution).

    Parameters
    ----------
    graph
        The weighted undirected graph (see :func:`build_graph`). Isolated
        nodes are allowed.
    resolution
        Resolution of the modularity objective (``RBConfigurationVertexPartition``);
        higher gives more, smaller clusters. ``'auto'``: chosen without labels
        by :func:`stability_scan`. The start of the search when
        ``target_n_clusters`` is given (1.0 when ``'auto'``).
    seed
        Seeds the backend's own random generator (``leidenalg``'s ``seed=``,
        or a ``random.Random(seed)`` handed to igraph for the call): the
        same graph and seed give the same clusters.
    min_cluster_size
        Smallest cluster kept; what happens to smaller communities is
        ``small_clusters``.
    small_clusters
        ``'attach'``: a community smaller than ``min_cluster_size`` joins the
        neighbouring cluster holding most of its edge weight
        (:func:`attach_small_communities`); only a connected component
        smaller than ``min_cluster_size`` stays unclustered. ``'dissolve'``:
        its nodes get ``-1``.
    max_cluster_size
        When given, every community larger than this is split by running
        Leiden on its induced subgraph at the smallest resolution (found by
        doubling / halving, then bisection) that splits it in two or more
        parts; pieces still too large are split again, until none is.
    target_n_clusters
        When given, the resolution is searched (geometric bisection) until the
        number of clusters (after the small-cluster rule) is within
        ``max(1, round(target_tolerance * target_n_clusters))`` of it. A
        target below the number of connected components of at least
        ``min_cluster_size`` nodes, or one no resolution in ``[1e-4, 1e4]``
        reaches, raises :class:`~mdc_clustering.errors.ClusteringInputError`
        naming the closest count reached and why.
    target_tolerance
        Relative tolerance for ``target_n_clusters``.
    start
        Optional start partition (one community number per node, ``-1`` =
        none), e.g. the last run's communities. Leiden then runs on the
        aggregated graph (:func:`aggregate`): the members of a start
        community that are not ``free`` move only together, as one node
        whose self weight is the weight inside it; the ``free`` nodes move
        on their own, from their start community. The result is kept only
        when its modularity (at ``resolution``) beats the start's, so an
        unchanged graph keeps its partition. Not used by the
        ``target_n_clusters`` search.
    free
        Boolean mask of the nodes that move on their own when ``start`` is
        given (nodes without a start community always do); default: only those.
    backend
        ``igraph`` (igraph's built-in ``community_leiden``, objective
        modularity) or ``leidenalg`` (``RBConfigurationVertexPartition``):
        the same objective.

    Returns
    -------
    ClusteringResult
    """
    auto = isinstance(resolution, str) and resolution.strip().lower() == "auto"
    resolution = 1.0 if auto else positive_float("resolution", resolution)
    seed = nonnegative_int("random_seed", seed)
    min_cluster_size = positive_int("min_cluster_size", min_cluster_size)
    small_clusters = choice("small_clusters", small_clusters, SMALL_CLUSTER_POLICIES)
    max_cluster_size = optional_positive_int("max_cluster_size", max_cluster_size)
    target_n_clusters = optional_positive_int("target_n_clusters", target_n_clusters)
    backend = choice("leiden_backend", backend, LEIDEN_BACKENDS)
    if max_cluster_size is not None and max_cluster_size < min_cluster_size:
        from .errors import ParameterError

        raise ParameterError(
            f"var 'max_cluster_size' ({max_cluster_size}) must be at least min_cluster_size ({min_cluster_size})"
        )

    target_reached = None
    aggregated_nodes = None
    search: list[tuple[float, int]] = []
    scan: list[dict] = []
    if target_n_clusters is not None:
        tolerance = max(1, round(positive_float("target_n_clusters_tolerance", target_tolerance) * target_n_clusters))
        resolution, communities, tried = _search_resolution(
            graph, resolution, seed, target_n_clusters, tolerance, min_cluster_size, small_clusters, backend
        )
        target_reached = True
        search = [(r, c) for r, c, _ in tried]
    else:
        if auto:
            resolution, scan = stability_scan(
                graph, seed=seed, min_cluster_size=min_cluster_size, small_clusters=small_clusters, backend=backend
            )
        if start is None:
            communities = _leiden(graph, resolution, seed, backend=backend)
        else:
            start = np.asarray(start, dtype=np.int64)
            aggregation = aggregate(graph, start, start < 0 if free is None else free)
            initial = aggregation.start.tolist()
            moved, after, before = _leiden_run(aggregation.graph, resolution, seed, initial, backend=backend)
            # keep the start partition unless Leiden found a strictly better one: a re-run on an
            # unchanged graph then changes nothing, whatever order the backend visits nodes in
            # (the igraph backend's run computed both qualities; the leidenalg backend's did not)
            if before is None:
                before = aggregation.graph.modularity(aggregation.start, resolution)
            if after is None:
                after = aggregation.graph.modularity(moved, resolution)
            if after <= before + _QUALITY_TOLERANCE * max(1.0, abs(before)):
                moved = aggregation.start
            communities = _canonical(moved[aggregation.node_of])
            aggregated_nodes = aggregation.graph.n_nodes

    n_split = 0
    if max_cluster_size is not None:
        communities, n_split = _split_oversize(graph, communities, max_cluster_size, resolution, seed, backend)

    clusters, attached = _final_labels(graph, communities, min_cluster_size, small_clusters, max_cluster_size)
    n_attached = int((attached != communities).sum())
    reason = np.full(clusters.size, None, dtype=object)
    component = graph.components()
    if clusters.size:
        unclustered = clusters == NO_CLUSTER
        degree = graph.degree()
        small_component = np.bincount(component)[component] < min_cluster_size
        reason[unclustered & small_component] = "small_component"
        reason[unclustered & ~small_component] = "dissolved"
        reason[unclustered & (degree == 0)] = "no_edge"
    if graph.ecount():
        modularity = graph.modularity(_singletons_apart(clusters))
    else:
        modularity = float("nan")
    return ClusteringResult(
        clusters=clusters,
        communities=communities,
        resolution=resolution,
        modularity=modularity,
        n_components=int(component.max(initial=-1)) + 1,
        target_reached=target_reached,
        n_split=n_split,
        n_attached=n_attached,
        unclustered_reason=reason,
        search=search,
        scan=scan,
        aggregated_nodes=aggregated_nodes,
    )
