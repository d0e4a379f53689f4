"""Property tests (hypothesis) on random embeddings and parameters."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mdc_clustering.leiden import NO_CLUSTER, build_graph, leiden_cluster
from mdc_clustering.tables import cluster_memberships, nearest_neighbors

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def embeddings(draw):
    n = draw(st.integers(1, 60))
    d = draw(st.integers(2, 12))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32)
    if n > 3 and draw(st.booleans()):  # exact duplicates and near-duplicates happen in real data
        x[1] = x[0]
        x[2] = x[0] + 1e-6
    return x


def _table(x):
    ids = [f"d{i:03d}" for i in range(len(x))]
    embedding = pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), x.shape[1])
    return pa.table({"dataset_id": ids, "embedding": embedding})


def _edges(knn, threshold):
    pairs = {}
    columns = (knn.column(c).to_pylist() for c in ("dataset_id", "neighbor_id", "similarity"))
    for a, b, s in zip(*columns, strict=True):
        key = (min(a, b), max(a, b))
        pairs[key] = max(pairs.get(key, -2.0), s)
    kept = [(a, b, s) for (a, b), s in sorted(pairs.items()) if s >= threshold]
    return pa.table(
        {
            "source_id": pa.array([a for a, _, _ in kept], pa.string()),
            "target_id": pa.array([b for _, b, _ in kept], pa.string()),
            "weight": pa.array([s for _, _, s in kept], pa.float64()),
        }
    )


@SETTINGS
@given(x=embeddings(), k=st.integers(1, 40))
def test_knn_has_no_self_loops_or_duplicates_and_finite_similarities(x, k):
    knn = nearest_neighbors(_table(x), k)
    a = knn.column("dataset_id").to_pylist()
    b = knn.column("neighbor_id").to_pylist()
    s = knn.column("similarity").to_numpy()
    assert all(u != v for u, v in zip(a, b, strict=True))
    assert len(set(zip(a, b, strict=True))) == len(a)
    assert len(a) == len(x) * min(k, len(x) - 1)
    assert np.all(np.isfinite(s)) and np.all(np.abs(s) <= 1.0)


@SETTINGS
@given(
    x=embeddings(),
    k=st.integers(1, 20),
    threshold=st.floats(-1, 1),
    min_size=st.integers(1, 6),
    resolution=st.floats(0.05, 5),
    seed=st.integers(0, 10_000),
)
def test_memberships_cover_every_node_respect_sizes_and_repeat(x, k, threshold, min_size, resolution, seed):
    table = _table(x)
    edges = _edges(nearest_neighbors(table, k), threshold)
    nodes = table.select(["dataset_id"])
    kwargs = {"resolution": resolution, "seed": seed, "min_cluster_size": min_size}
    first = cluster_memberships(nodes, edges, **kwargs)
    assert first.column("dataset_id").to_pylist() == nodes.column("dataset_id").to_pylist()
    labels = first.column("cluster").to_pylist()
    sizes = {}
    for label in labels:
        if label is not None:
            sizes[label] = sizes.get(label, 0) + 1
    assert all(size >= min_size for size in sizes.values())
    again = cluster_memberships(nodes, edges, **kwargs)
    assert again.column("cluster").to_pylist() == labels


@SETTINGS
@given(n=st.integers(2, 40), density=st.floats(0.05, 0.6), cap=st.integers(2, 10), seed=st.integers(0, 999))
def test_max_cluster_size_is_always_respected(n, density, cap, seed):
    rng = np.random.default_rng(seed)
    a, b = np.triu_indices(n, 1)
    keep = rng.random(a.size) < density
    graph = build_graph(n, a[keep], b[keep], rng.uniform(0.1, 1.0, int(keep.sum())))
    result = leiden_cluster(graph, seed=seed, min_cluster_size=2, max_cluster_size=cap)
    clustered = result.clusters[result.clusters != NO_CLUSTER]
    assert clustered.size == 0 or np.bincount(clustered).max() <= cap
