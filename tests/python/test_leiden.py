"""Leiden wrapper: determinism, size rules, edge cases."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from sklearn.neighbors import NearestNeighbors

from mdc_clustering import ParameterError
from mdc_clustering.knn import exact_knn
from mdc_clustering.leiden import NO_CLUSTER, build_graph, cluster_labels, leiden_cluster
from mdc_clustering.tables import cluster_memberships


def blobs(rng, n_blobs=6, per_blob=60, d=24, spread=1.0):
    centres = rng.normal(size=(n_blobs, d)) * 4
    x = np.vstack([c + rng.normal(size=(per_blob, d)) * spread for c in centres]).astype(np.float32)
    return x, np.repeat(np.arange(n_blobs), per_blob)


def knn_graph(x, k=10):
    indices, sims = exact_knn(x, k)
    n = len(x)
    src = np.repeat(np.arange(n), indices.shape[1])
    a, b = np.minimum(src, indices.ravel()), np.maximum(src, indices.ravel())
    _, first = np.unique(a * n + b, return_index=True)
    return build_graph(n, a[first], b[first], sims.ravel()[first])


def test_recovers_separated_blobs(rng):
    x, truth = blobs(rng)
    result = leiden_cluster(knn_graph(x))
    assert result.n_clusters == 6
    # each blob is exactly one cluster
    for blob in range(6):
        assert len(set(result.clusters[truth == blob])) == 1
    assert 0.7 < result.modularity < 1


def test_same_seed_same_labels_other_seed_may_differ(rng):
    x, _ = blobs(rng, n_blobs=12, per_blob=40, spread=2.5)
    graph = knn_graph(x, k=15)
    first = leiden_cluster(graph, 1.0, seed=7)
    for _ in range(3):
        again = leiden_cluster(graph, 1.0, seed=7)
        np.testing.assert_array_equal(first.clusters, again.clusters)
        np.testing.assert_array_equal(first.communities, again.communities)
    other = leiden_cluster(graph, 1.0, seed=8)
    assert other.clusters.shape == first.clusters.shape  # allowed to differ; must be a full labelling


def test_min_size_dissolves_small_communities():
    # a triangle, a pair, and two isolated nodes
    graph = build_graph(7, np.array([0, 1, 0, 3]), np.array([1, 2, 2, 4]), np.ones(4))
    result = leiden_cluster(graph, min_cluster_size=3)
    assert result.clusters.tolist() == [0, 0, 0, NO_CLUSTER, NO_CLUSTER, NO_CLUSTER, NO_CLUSTER]
    result = leiden_cluster(graph, min_cluster_size=2)
    assert result.clusters.tolist() == [0, 0, 0, 1, 1, NO_CLUSTER, NO_CLUSTER]
    result = leiden_cluster(graph, min_cluster_size=1)
    assert result.clusters.tolist() == [0, 0, 0, 1, 1, 2, 3]  # isolated nodes become singletons


def test_labels_are_numbered_largest_first_ties_by_first_member():
    communities = np.array([5, 5, 9, 9, 9, 2, 2, 7])
    assert cluster_labels(communities, 2).tolist() == [1, 1, 0, 0, 0, 2, 2, NO_CLUSTER]


def test_max_size_splits_oversize_clusters(rng):
    x, truth = blobs(rng, n_blobs=4, per_blob=100)
    graph = knn_graph(x, k=12)
    plain = leiden_cluster(graph)
    assert np.bincount(plain.clusters[plain.clusters >= 0]).max() == 100
    capped = leiden_cluster(graph, max_cluster_size=40)
    sizes = np.bincount(capped.clusters[capped.clusters >= 0])
    assert sizes.max() <= 40
    assert capped.n_split >= 4
    # a split never mixes blobs, and the pieces stay large (no shattering)
    for cluster in np.unique(capped.clusters[capped.clusters >= 0]):
        assert len(set(truth[capped.clusters == cluster])) == 1
    assert sizes.mean() >= 20


def test_target_n_clusters_searches_the_resolution(rng):
    x, _ = blobs(rng, n_blobs=8, per_blob=50, spread=1.5)
    graph = knn_graph(x, k=15)
    result = leiden_cluster(graph, target_n_clusters=20, target_tolerance=0.1)
    assert result.target_reached
    assert abs(result.n_clusters - 20) <= 2
    assert result.resolution != 1.0
    assert result.search[0][0] == 1.0


def test_edgeless_graph_and_single_node():
    result = leiden_cluster(build_graph(3, np.array([]), np.array([]), np.array([])))
    assert result.clusters.tolist() == [NO_CLUSTER] * 3
    assert np.isnan(result.modularity) and result.n_components == 3
    result = leiden_cluster(build_graph(1, np.array([]), np.array([]), np.array([])), min_cluster_size=1)
    assert result.clusters.tolist() == [0]


def test_weights_are_used():
    # Two triangles joined by a heavy edge and light internal edges: with
    # weights, the heavy pair decides; without them it would not.
    edges = [(0, 1, 0.1), (1, 2, 0.1), (0, 2, 0.1), (3, 4, 0.1), (4, 5, 0.1), (3, 5, 0.1), (2, 3, 5.0)]
    s, t, w = (np.array(v) for v in zip(*edges, strict=True))
    weighted = leiden_cluster(build_graph(6, s, t, w), min_cluster_size=1)
    unweighted = leiden_cluster(build_graph(6, s, t, np.ones(7)), min_cluster_size=1)
    assert weighted.clusters[2] == weighted.clusters[3]
    assert unweighted.clusters[2] != unweighted.clusters[3]


def test_memberships_table_keeps_edgeless_nodes():
    nodes = pa.table({"dataset_id": ["a", "b", "c", "d", "e"]})
    edges = pa.table({"source_id": ["a", "a", "b"], "target_id": ["b", "c", "c"], "weight": [0.9, 0.8, 0.7]})
    table = cluster_memberships(nodes, edges)
    assert table.column("dataset_id").to_pylist() == ["a", "b", "c", "d", "e"]
    assert table.column("cluster").to_pylist() == ["cluster_0", "cluster_0", "cluster_0", None, None]
    assert table.column("community_size").to_pylist() == [3, 3, 3, 1, 1]


def test_memberships_do_not_depend_on_the_order_of_the_edge_rows(rng):
    x, _ = blobs(rng, n_blobs=4, per_blob=30)
    graph = knn_graph(x, k=6)
    ids = np.array([f"d{i:03d}" for i in range(len(x))])
    pairs = np.column_stack([graph.sources, graph.targets])
    edges = pa.table({"source_id": ids[pairs[:, 0]], "target_id": ids[pairs[:, 1]], "weight": graph.weights})
    nodes = pa.table({"dataset_id": ids})
    in_order = cluster_memberships(nodes, edges, resolution=2.0)
    shuffled = cluster_memberships(nodes, edges.take(rng.permutation(edges.num_rows)), resolution=2.0)
    assert shuffled.equals(in_order)


@pytest.mark.parametrize("edge_weight", ["cosine", "snn"])
def test_edges_named_by_integer_key_give_the_memberships_of_edges_named_by_id(rng, edge_weight):
    """The dbt model's edges carry dataset keys (not dense, not in id order); the string path is the oracle."""
    x, _ = blobs(rng, n_blobs=4, per_blob=30)
    graph = knn_graph(x, k=6)
    ids = np.array([f"d{i:03d}" for i in range(len(x))])
    keys = 5 + 3 * rng.permutation(len(x))
    pairs = np.column_stack([graph.sources, graph.targets])
    by_id = pa.table({"source_id": ids[pairs[:, 0]], "target_id": ids[pairs[:, 1]], "weight": graph.weights})
    # oriented by key, as the SQL writes them (source_key < target_key): not always the ids' order
    lo, hi = np.minimum(keys[pairs[:, 0]], keys[pairs[:, 1]]), np.maximum(keys[pairs[:, 0]], keys[pairs[:, 1]])
    by_key = pa.table({"source_key": lo, "target_key": hi, "weight": graph.weights})
    assert np.any(keys[pairs[:, 0]] > keys[pairs[:, 1]])  # some edges turn round
    owners, others = np.repeat(np.arange(len(x)), 6), np.argsort(-(x @ x.T), axis=1)[:, 1:7].reshape(-1)
    ranks = np.tile(np.arange(1, 7), len(x))
    lists_by_id = pa.table({"dataset_id": ids[owners], "neighbor_id": ids[others], "neighbor_rank": ranks})
    lists_by_key = pa.table({"dataset_key": keys[owners], "neighbor_key": keys[others], "neighbor_rank": ranks})
    options = {"resolution": 2.0, "edge_weight": edge_weight, "snn_k": 6}
    want = cluster_memberships(pa.table({"dataset_id": ids}), by_id, neighbors=lists_by_id, **options)
    got = cluster_memberships(pa.table({"dataset_id": ids, "dataset_key": keys}), by_key,
                              neighbors=lists_by_key, **options)
    assert got.equals(want)
    with pytest.raises(ValueError, match=r"dataset keys that have no embedding \(target_key\): \[999\]"):
        cluster_memberships(pa.table({"dataset_id": ids, "dataset_key": keys}),
                            pa.table({"source_key": [keys[0]], "target_key": [999], "weight": [0.5]}))
    with pytest.raises(ValueError, match="two datasets share a key"):
        cluster_memberships(pa.table({"dataset_id": ids[:2], "dataset_key": [4, 4]}), by_key.slice(0, 0))
    with pytest.raises(ValueError, match="need the nodes' dataset_key"):
        cluster_memberships(pa.table({"dataset_id": ids}), by_key)


def test_edges_to_unknown_datasets_are_refused():
    nodes = pa.table({"dataset_id": ["a", "b"]})
    edges = pa.table({"source_id": ["a"], "target_id": ["zz"], "weight": [0.5]})
    with pytest.raises(ValueError, match="no embedding.*zz"):
        cluster_memberships(nodes, edges)


def test_self_loops_are_refused():
    with pytest.raises(ValueError, match="self loops"):
        build_graph(2, np.array([1]), np.array([1]), np.array([1.0]))


@pytest.mark.parametrize(
    ("kwargs", "var"),
    [
        ({"resolution": 0}, "resolution"),
        ({"resolution": "abc"}, "resolution"),
        ({"min_cluster_size": 0}, "min_cluster_size"),
        ({"max_cluster_size": 1, "min_cluster_size": 2}, "max_cluster_size"),
        ({"target_n_clusters": -1}, "target_n_clusters"),
        ({"seed": -1}, "random_seed"),
        ({"seed": "x"}, "random_seed"),
    ],
)
def test_bad_parameters(kwargs, var):
    graph = build_graph(2, np.array([0]), np.array([1]), np.array([1.0]))
    with pytest.raises(ParameterError, match=var):
        leiden_cluster(graph, **kwargs)


def test_non_positive_edges_are_left_out_not_fatal():
    nodes = pa.table({"dataset_id": ["a", "b", "c"]})
    edges = pa.table({"source_id": ["a", "a"], "target_id": ["b", "c"], "weight": [0.9, -0.2]})
    lines = []
    table = cluster_memberships(nodes, edges, progress=lambda m, **k: lines.append(m))
    assert table.column("cluster").to_pylist() == ["cluster_0", "cluster_0", None]
    assert any("1 edges with similarity or weight <= 0 left out" in line for line in lines)
    with pytest.raises(ValueError, match="must be positive"):
        build_graph(2, np.array([0]), np.array([1]), np.array([-0.5]))


@pytest.mark.parametrize("backend", ["igraph", "leidenalg"])
def test_both_backends_recover_blobs_and_repeat(backend, rng):
    x, truth = blobs(rng, n_blobs=8, per_blob=50, spread=1.5)
    graph = knn_graph(x, k=12)
    result = leiden_cluster(graph, seed=3, backend=backend)
    from sklearn.metrics import adjusted_rand_score

    assert adjusted_rand_score(truth, result.clusters) > 0.95
    again = leiden_cluster(graph, seed=3, backend=backend)
    np.testing.assert_array_equal(result.communities, again.communities)


@pytest.mark.parametrize("backend", ["igraph", "leidenalg"])
def test_started_from_its_own_result_a_backend_keeps_it(backend, rng):
    x, _ = blobs(rng, n_blobs=10, per_blob=40, spread=3.0)  # overlapping: many near-ties
    graph = knn_graph(x, k=15)
    first = leiden_cluster(graph, seed=5, backend=backend)
    for seed in (5, 6):
        warm = leiden_cluster(graph, seed=seed, backend=backend, start=first.communities,
                              free=np.ones(graph.vcount(), bool))
        assert adjusted_partition_equal(warm.communities, first.communities)


@pytest.mark.parametrize("graph_seed", [19, 70])
def test_a_rerun_from_its_own_clusters_keeps_them_where_the_last_pass_gained_too_little(graph_seed):
    # k-NN graphs of overlapping groups on which a run used to end by taking a pass that gained less
    # than the tolerance: the run after it, from those clusters on the same graph, then moved 6 and 61
    # nodes (a 1M re-run with nothing changed moved 0.9% of labels this way)
    rng = np.random.default_rng(graph_seed)
    n = int(rng.integers(300, 3000))
    x = rng.normal(size=(n, 8)) + rng.integers(0, 6, n)[:, None] * 0.8
    _, indices = NearestNeighbors(n_neighbors=11).fit(x).kneighbors(x)  # euclidean, self first
    src = np.repeat(np.arange(n), 10)
    near = indices[:, 1:].ravel()
    pair = np.unique(np.minimum(src, near) * n + np.maximum(src, near))
    graph = build_graph(n, pair // n, pair % n, rng.uniform(0.5, 1.0, pair.size))
    first = leiden_cluster(graph, seed=42)
    again = leiden_cluster(graph, seed=42, start=first.clusters, free=np.ones(n, bool))
    assert adjusted_partition_equal(again.clusters, first.clusters)


def adjusted_partition_equal(a, b):
    pairs = set(zip(a.tolist(), b.tolist(), strict=True))
    return len(pairs) == len(set(a.tolist())) == len(set(b.tolist()))


def test_igraph_and_leidenalg_reach_similar_modularity(rng):
    x, _ = blobs(rng, n_blobs=15, per_blob=40, spread=2.5)
    graph = knn_graph(x, k=15)
    q = {b: leiden_cluster(graph, seed=1, backend=b).modularity for b in ("igraph", "leidenalg")}
    assert q["igraph"] == pytest.approx(q["leidenalg"], abs=0.01)


def test_unknown_backend_names_the_var():
    graph = build_graph(3, np.array([0]), np.array([1]), np.array([0.5]))
    with pytest.raises(ParameterError, match="leiden_backend"):
        leiden_cluster(graph, backend="louvain")


def _modularity_by_igraph(graph, membership, resolution=1.0):
    """The oracle: igraph's own modularity of the graph rebuilt from its arrays (self weights as loop edges)."""
    import igraph as ig

    g = ig.Graph(n=graph.vcount(), edges=np.column_stack([graph.sources, graph.targets]).tolist())
    weights = list(graph.weights)
    if graph.loops is not None:
        looped = np.flatnonzero(graph.loops)
        g.add_edges([(i, i) for i in looped.tolist()])
        weights += list(graph.loops[looped])
    return g.modularity(list(membership), weights=weights, resolution=resolution)


def test_aggregated_graph_keeps_the_modularity_of_every_partition_it_can_express(rng):
    """Contracting fixed members into super-nodes loses nothing: a partition of super-nodes has the
    modularity (igraph's, on the whole graph) of the partition it expands to."""
    from mdc_clustering.leiden import aggregate

    x, _ = blobs(rng, n_blobs=6, per_blob=40, spread=2.5)
    graph = knn_graph(x, k=10)
    first = leiden_cluster(graph, seed=1)
    free = rng.random(graph.vcount()) < 0.1
    agg = aggregate(graph, first.communities, free)
    assert agg.graph.vcount() == np.unique(first.communities[~free]).size + free.sum()
    assert agg.graph.weights.sum() + agg.graph.loops.sum() == pytest.approx(graph.weights.sum())
    for resolution in (0.5, 1.0, 2.0):
        for membership in (agg.start, rng.integers(0, 5, agg.graph.vcount())):
            expanded = membership[agg.node_of]
            whole = _modularity_by_igraph(graph, expanded, resolution)
            assert agg.graph.modularity(membership, resolution) == pytest.approx(whole, abs=1e-9)
            assert _modularity_by_igraph(agg.graph, membership, resolution) == pytest.approx(whole, abs=1e-9)
            assert graph.modularity(expanded, resolution) == pytest.approx(whole, abs=1e-9)


@pytest.mark.parametrize("backend", ["igraph", "leidenalg"])
def test_a_rerun_from_the_last_communities_moves_only_the_free_datasets_and_keeps_the_rest_together(rng, backend):
    """New datasets join the communities a fresh run would give them; fixed members never split."""
    x, truth = blobs(rng, n_blobs=8, per_blob=50, spread=1.5)
    graph = knn_graph(x, k=12)
    old = rng.random(len(x)) < 0.95
    first = leiden_cluster(knn_graph(x[old], k=12), seed=3, backend=backend)
    start = np.full(len(x), -1)
    start[old] = first.communities
    again = leiden_cluster(graph, seed=3, backend=backend, start=start)
    assert again.aggregated_nodes == np.unique(first.communities).size + (~old).sum()
    # every last community's members are still together
    pairs = set(zip(start[old].tolist(), again.communities[old].tolist(), strict=True))
    assert len(pairs) == np.unique(start[old]).size
    from sklearn.metrics import adjusted_rand_score

    assert adjusted_rand_score(truth, again.clusters) > 0.95  # the new ones went where they belong
    fresh = leiden_cluster(graph, seed=3, backend=backend)
    assert again.modularity == pytest.approx(fresh.modularity, rel=0.01)


def test_igraph_cpm_with_strength_weights_is_igraphs_modularity_leiden(rng):
    """The one Leiden call (CPM, node weight = strength, resolution / total) returns what igraph's
    modularity objective returns on a graph without self weights, pass for pass."""
    import random

    x, _ = blobs(rng, n_blobs=10, per_blob=40, spread=2.5)
    graph = knn_graph(x, k=10)
    g = graph.igraph
    for passes in (1, 2, 3):
        random_state = random.Random(9)
        import igraph as ig

        ig.set_random_number_generator(random_state)
        plain = g.community_leiden("modularity", weights="weight", resolution=1.5, n_iterations=passes)
        ig.set_random_number_generator(random.Random(9))
        cpm = g.community_leiden("CPM", weights="weight", node_weights=graph.strength.tolist(),
                                 resolution=1.5 / graph.strength.sum(), n_iterations=passes)
        ig.set_random_number_generator(random)
        assert plain.membership == cpm.membership


def _rerun_case(rng, n_blobs=6, per_blob=60, spread=2.0, k=10):
    x, _ = blobs(rng, n_blobs=n_blobs, per_blob=per_blob, spread=spread)
    ids = np.array([f"d{i:04d}" for i in range(len(x))])
    graph = knn_graph(x, k=k)
    edges = pa.table({"source_id": ids[graph.sources], "target_id": ids[graph.targets], "weight": graph.weights})
    hashes = rng.integers(1, 2**40, len(x))
    return ids, edges, hashes


def test_a_rerun_with_nothing_changed_keeps_every_community_and_label(rng):
    ids, edges, hashes = _rerun_case(rng)
    nodes = pa.table({"dataset_id": ids, "embedding_hash": hashes})
    first = cluster_memberships(nodes, edges)
    assert first["leiden_path"][0].as_py() == "full" and first["runs_since_full_leiden"][0].as_py() == 0
    lines = []
    again = cluster_memberships(nodes, edges, previous=first.select(["dataset_id", "cluster"]), last=first,
                                progress=lambda m, **k: lines.append(m))
    assert again["leiden_path"][0].as_py() == "aggregated"
    assert again["leiden_free_datasets"][0].as_py() == 0
    assert again["leiden_nodes"][0].as_py() == len(np.unique(first["community"].to_numpy()))
    assert again["cluster"].to_pylist() == first["cluster"].to_pylist()
    assert again["community"].to_pylist() == first["community"].to_pylist()
    assert again["runs_since_full_leiden"][0].as_py() == 1
    assert any("labels: kept" in line and "merged 0" in line for line in lines)


def test_a_changed_embedding_or_an_edited_label_frees_the_dataset_and_new_settings_run_a_full_leiden(rng):
    ids, edges, hashes = _rerun_case(rng)
    nodes = pa.table({"dataset_id": ids, "embedding_hash": hashes})
    first = cluster_memberships(nodes, edges)
    previous = first.select(["dataset_id", "cluster"])
    changed = hashes.copy()
    changed[:3] += 1
    edited = previous.set_column(1, "cluster", pa.array([None] + previous["cluster"].to_pylist()[1:], pa.string()))
    again = cluster_memberships(pa.table({"dataset_id": ids, "embedding_hash": changed}), edges,
                                previous=edited, last=first)
    assert again["leiden_free_datasets"][0].as_py() == 3  # ds 0 both changed and edited
    for more, why in [({"resolution": 1.5}, "settings changed"), ({"graph_settings": "k 20"}, "settings changed"),
                      ({"stable_labels": False}, "stable_labels is off"),
                      ({"target_n_clusters": 6}, "resolution is searched")]:
        run = cluster_memberships(nodes, edges, previous=previous, last=first, **more)
        assert run["leiden_path"][0].as_py() == "full" and why in run["leiden_reason"][0].as_py()
    # more than half new: a full Leiden
    half = cluster_memberships(nodes, edges, previous=previous, last=first.slice(0, len(ids) // 3))
    assert half["leiden_path"][0].as_py() == "full" and "new or changed" in half["leiden_reason"][0].as_py()
    # a table of an earlier version (no leiden_settings): a full Leiden, saying so
    old = cluster_memberships(nodes, edges, previous=previous, last=first.drop_columns(["leiden_settings"]))
    assert "earlier version" in old["leiden_reason"][0].as_py()


def test_the_drift_guard_runs_a_full_leiden_on_its_schedule_and_when_modularity_falls(rng):
    ids, edges, hashes = _rerun_case(rng, spread=2.5)
    nodes = pa.table({"dataset_id": ids, "embedding_hash": hashes})
    first = cluster_memberships(nodes, edges)
    previous = first.select(["dataset_id", "cluster"])
    runs = [first]
    for _ in range(3):
        runs.append(cluster_memberships(nodes, edges, previous=previous, last=runs[-1], full_every=3))
    assert [r["runs_since_full_leiden"][0].as_py() for r in runs] == [0, 1, 2, 0]
    checked = runs[-1]["leiden_reason"][0].as_py()
    assert "leiden_full_every" in checked and "was kept" in checked  # nothing changed: the full one is no better
    assert runs[-1]["cluster"].to_pylist() == first["cluster"].to_pylist()
    # a last full Leiden that reached far more than the aggregated result can: the guard runs a full one
    inflated = first.set_column(first.schema.get_field_index("full_leiden_modularity"), "full_leiden_modularity",
                                pa.array([0.99] * first.num_rows))
    guarded = cluster_memberships(nodes, edges, previous=previous, last=inflated)
    assert "fell more than" in guarded["leiden_reason"][0].as_py()
    assert guarded["runs_since_full_leiden"][0].as_py() == 0
    # a bad start (every dataset in its own community but kept apart as super-nodes is impossible to fix
    # without a full run): the full Leiden is taken
    scrambled = first.set_column(first.schema.get_field_index("community"), "community",
                                 pa.array(np.arange(first.num_rows) % 2))
    taken = cluster_memberships(nodes, edges, previous=previous, last=scrambled, full_every=1)
    assert taken["leiden_path"][0].as_py() == "full" and "was taken" in taken["leiden_reason"][0].as_py()
