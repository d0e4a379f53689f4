"""The default graph's parts: shared-neighbour weights, small-cluster attachment, reachable targets, auto resolution.

Each is checked against an oracle computed independently here: Python sets
for the Jaccard weights, hand-built graphs whose right answer is obvious, a
component count from scipy.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from mdc_clustering import ClusteringInputError
from mdc_clustering.knn import exact_knn
from mdc_clustering.leiden import NO_CLUSTER, attach_small_communities, build_graph, leiden_cluster, stability_scan
from mdc_clustering.snn import neighbor_sets, shared_neighbor_weights
from mdc_clustering.tables import cluster_memberships


def _blobs(rng, sizes, d=16, spread=1.0):
    centres = rng.normal(size=(len(sizes), d)) * 5
    x = np.vstack([c + rng.normal(size=(s, d)) * spread for c, s in zip(centres, sizes, strict=True)])
    return x.astype(np.float32), np.repeat(np.arange(len(sizes)), sizes)


def _knn_pairs(x, k):
    idx, sims = exact_knn(x, k)
    n = len(x)
    src = np.repeat(np.arange(n), idx.shape[1])
    a, b = np.minimum(src, idx.ravel()), np.maximum(src, idx.ravel())
    _, first = np.unique(a * n + b, return_index=True)
    return idx, a[first], b[first], sims.ravel()[first]


def test_shared_neighbor_weights_equal_python_set_jaccard(rng):
    x = rng.normal(size=(60, 8)).astype(np.float32)
    k = 6
    idx, a, b, _ = _knn_pairs(x, 10)
    n = len(x)
    rows = np.repeat(np.arange(n), idx.shape[1])
    ranks = np.tile(np.arange(1, idx.shape[1] + 1), n)
    sets = neighbor_sets(n, rows, idx.ravel(), ranks, k)
    got = shared_neighbor_weights(a, b, sets)
    members = [{i, *idx[i, :k].tolist()} for i in range(n)]
    expected = [len(members[i] & members[j]) / len(members[i] | members[j]) for i, j in zip(a, b, strict=True)]
    np.testing.assert_allclose(got, expected)
    # a pair among each other's k nearest always keeps a positive weight
    near = np.array([j in members[i] for i, j in zip(a, b, strict=True)])
    assert np.all(got[near] >= 1 / (2 * k + 1))


def test_neighbor_sets_pad_short_lists_and_never_match_padding():
    sets = neighbor_sets(3, np.array([0]), np.array([1]), np.array([1]), 2)
    assert sets.tolist() == [[0, 1, -1], [1, -1, -1], [2, -1, -1]]
    # node 1 and node 2 share nothing: their padding must not count as shared
    assert shared_neighbor_weights(np.array([1, 0]), np.array([2, 1]), sets).tolist() == [0.0, 1 / 2]


def test_small_community_joins_the_neighbour_with_most_weight():
    # triangles {0,1,2} and {3,4,5}; node 6 tied to the first by 0.2 and to the second by 0.9
    src = np.array([0, 1, 0, 3, 4, 3, 6, 6])
    dst = np.array([1, 2, 2, 4, 5, 5, 0, 3])
    w = np.array([1, 1, 1, 1, 1, 1, 0.2, 0.9])
    graph = build_graph(7, src, dst, w)
    communities = np.array([0, 0, 0, 1, 1, 1, 2])
    attached = attach_small_communities(graph, communities, 2)
    assert attached.tolist() == [0, 0, 0, 1, 1, 1, 1]
    assert communities.tolist() == [0, 0, 0, 1, 1, 1, 2]  # input untouched
    # with a cap of 3 the heavier neighbour is full: the next one that fits takes it
    assert attach_small_communities(graph, communities, 2, max_size=3).tolist() == [0, 0, 0, 1, 1, 1, 2]
    assert attach_small_communities(graph, communities, 2, max_size=4).tolist() == [0, 0, 0, 1, 1, 1, 1]


def test_two_small_communities_move_together_without_swapping():
    # pair {2,3} hangs off triangle {4,5,6}; single node 0 hangs off the pair; node 1 alone, no edge
    src = np.array([2, 0, 4, 5, 4, 3])
    dst = np.array([3, 2, 5, 6, 6, 4])
    graph = build_graph(7, src, dst, np.ones(6))
    communities = np.array([0, 1, 2, 2, 3, 3, 3])
    attached = attach_small_communities(graph, communities, 3)
    assert attached.tolist() == [3, 1, 3, 3, 3, 3, 3]


def test_attach_versus_dissolve_and_the_reasons_for_no_cluster():
    # a triangle, a pair joined to it by a weak edge, a separate pair, an isolated node
    src = np.array([0, 1, 0, 3, 2, 5])
    dst = np.array([1, 2, 2, 4, 3, 6])
    w = np.array([1, 1, 1, 1, 0.01, 1])
    graph = build_graph(8, src, dst, w)
    attach = leiden_cluster(graph, min_cluster_size=3, small_clusters="attach")
    assert attach.clusters.tolist() == [0, 0, 0, 0, 0, NO_CLUSTER, NO_CLUSTER, NO_CLUSTER]
    assert attach.n_attached == 2
    assert attach.unclustered_reason.tolist() == [None] * 5 + ["small_component"] * 2 + ["no_edge"]
    dissolve = leiden_cluster(graph, min_cluster_size=3, small_clusters="dissolve")
    assert dissolve.clusters.tolist() == [0, 0, 0] + [NO_CLUSTER] * 5
    assert dissolve.unclustered_reason.tolist() == [None] * 3 + ["dissolved"] * 2 + ["small_component"] * 2 + [
        "no_edge"
    ]


def test_target_below_the_component_count_stops_with_the_count(rng):
    x, _ = _blobs(rng, [30] * 6, spread=0.2)
    _, a, b, sims = _knn_pairs(x, 5)
    keep = sims > 0.5
    graph = build_graph(len(x), a[keep], b[keep], sims[keep])
    n_comp, labels = connected_components(coo_matrix((np.ones(keep.sum()), (a[keep], b[keep])), shape=(180, 180)))
    big = int((np.bincount(labels) >= 2).sum())
    assert big >= 6
    with pytest.raises(ClusteringInputError, match=rf"has {big} connected components.*min_edges_per_dataset"):
        leiden_cluster(graph, target_n_clusters=2, target_tolerance=0.1)


def test_target_is_reached_on_a_connected_graph_and_counts_after_attaching(rng):
    x, truth = _blobs(rng, [80, 60, 50, 40, 30, 20], spread=4.0)
    _, a, b, sims = _knn_pairs(x, 12)
    keep = sims > 0
    graph = build_graph(len(x), a[keep], b[keep], sims[keep])
    assert connected_components(coo_matrix((np.ones(keep.sum()), (a[keep], b[keep])), shape=(280, 280)))[0] == 1
    for target in (3, 6, 12):
        result = leiden_cluster(graph, target_n_clusters=target, target_tolerance=0.1, min_cluster_size=5)
        assert abs(result.n_clusters - target) <= max(1, round(0.1 * target))
        assert result.target_reached is True
        assert np.bincount(result.clusters[result.clusters >= 0]).min() >= 5


def test_an_unreachable_target_names_the_closest_count():
    # two disjoint 4-cliques: any resolution gives 2 clusters (or, very high, singletons of size < min)
    edges = [(i, j) for base in (0, 4) for i in range(base, base + 4) for j in range(i + 1, base + 4)]
    src, dst = np.array(edges).T
    graph = build_graph(8, src, dst, np.ones(len(edges)))
    with pytest.raises(ClusteringInputError, match=r"target_n_clusters=5 .*not reached: the closest was 2 clusters"):
        leiden_cluster(graph, target_n_clusters=5, target_tolerance=0.01, min_cluster_size=4)


def test_auto_resolution_finds_planted_communities_and_reports_its_scan(rng):
    x, truth = _blobs(rng, [60] * 8, spread=1.2)
    _, a, b, sims = _knn_pairs(x, 15)
    keep = sims > 0
    graph = build_graph(len(x), a[keep], b[keep], sims[keep])
    chosen, scan = stability_scan(graph, seed=1)
    assert [row["resolution"] for row in scan] == sorted(row["resolution"] for row in scan)
    best = max(row["stability"] for row in scan if row["n_clusters"] >= 2)
    assert next(row for row in scan if row["resolution"] == chosen)["stability"] >= best - 0.002
    result = leiden_cluster(graph, "auto", seed=1)
    assert result.resolution == chosen and result.scan == scan
    from sklearn.metrics import adjusted_rand_score

    assert adjusted_rand_score(truth, result.clusters) > 0.95


def test_memberships_table_carries_reasons_weighting_and_the_snn_path(rng):
    x, truth = _blobs(rng, [40, 40, 40], spread=1.0)
    idx, a, b, sims = _knn_pairs(x, 10)
    ids = [f"d{i:03d}" for i in range(len(x))]
    nodes = pa.table({"dataset_id": ids + ["lonely"]})
    edges = pa.table(
        {"source_id": [ids[i] for i in a], "target_id": [ids[i] for i in b], "weight": sims.astype(np.float64)}
    )
    n = len(x)
    neighbors = pa.table(
        {
            "dataset_id": [ids[i] for i in np.repeat(np.arange(n), idx.shape[1])],
            "neighbor_id": [ids[j] for j in idx.ravel()],
            "neighbor_rank": np.tile(np.arange(1, idx.shape[1] + 1), n),
        }
    )
    table = cluster_memberships(nodes, edges, edge_weight="snn", neighbors=neighbors, snn_k=10)
    assert table.column("edge_weight").to_pylist()[0] == "snn"
    reasons = table.column("unclustered_reason").to_pylist()
    assert reasons[-1] == "no_edge" and all(r is None for r in reasons[:-1])
    from sklearn.metrics import adjusted_rand_score

    labels = table.column("cluster").to_pylist()[:-1]
    assert adjusted_rand_score(truth, labels) > 0.95
    with pytest.raises(ClusteringInputError, match="needs the k-NN table"):
        cluster_memberships(nodes, edges, edge_weight="snn")
