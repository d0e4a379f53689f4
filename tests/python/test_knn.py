"""Exact k-NN against a brute-force numpy oracle."""

from __future__ import annotations

import numpy as np
import pytest

from mdc_clustering import ParameterError
from mdc_clustering.knn import exact_knn, knn_table


def brute_force(vectors: np.ndarray, k: int):
    x = vectors.astype(np.float64)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    sims = x @ x.T
    np.fill_diagonal(sims, -np.inf)
    order = np.argsort(-sims, axis=1, kind="stable")[:, : min(k, len(x) - 1)]
    return order, np.take_along_axis(sims, order, axis=1)


@pytest.mark.parametrize(("n", "d", "k", "batch"), [(300, 16, 10, None), (301, 8, 30, 7), (50, 384, 5, 1)])
def test_matches_brute_force(n, d, k, batch, rng):
    vectors = rng.normal(size=(n, d)).astype(np.float32)
    indices, sims = exact_knn(vectors, k, batch_rows=batch)
    expected_idx, expected_sims = brute_force(vectors, k)
    assert indices.shape == (n, k)
    np.testing.assert_allclose(sims, expected_sims, atol=1e-5)
    # Same neighbour sets (order can only differ among float-equal similarities).
    assert (np.sort(indices, axis=1) == np.sort(expected_idx, axis=1)).mean() > 0.999
    assert not np.any(indices == np.arange(n)[:, None])  # never itself
    assert np.all(np.diff(sims, axis=1) <= 1e-7)  # decreasing similarity


def test_k_at_least_n_gives_every_other_point(rng):
    vectors = rng.normal(size=(6, 4)).astype(np.float32)
    for k in (5, 6, 100):
        indices, sims = exact_knn(vectors, k)
        assert indices.shape == (6, 5)
        for i in range(6):
            assert sorted(indices[i]) == [j for j in range(6) if j != i]


def test_single_point_has_no_neighbours():
    indices, sims = exact_knn(np.ones((1, 3), np.float32), 30)
    assert indices.shape == (1, 0) and sims.shape == (1, 0)


def test_duplicates_are_neighbours_not_self(rng):
    base = rng.normal(size=(1, 8)).astype(np.float32)
    vectors = np.vstack([base, base, base, rng.normal(size=(5, 8)).astype(np.float32)])
    indices, sims = exact_knn(vectors, 2)
    assert sorted(indices[0]) == [1, 2] and sorted(indices[1]) == [0, 2]
    np.testing.assert_allclose(sims[:3], 1.0, atol=1e-6)
    assert sims.max() <= 1.0  # clipped


def test_table_layout(rng):
    vectors = rng.normal(size=(4, 3)).astype(np.float32)
    indices, sims = exact_knn(vectors, 2)
    table = knn_table(["a", "b", "c", "d"], indices, sims)
    assert table.column_names == ["dataset_id", "neighbor_id", "neighbor_rank", "similarity"]
    assert table.num_rows == 8
    assert table.column("dataset_id").to_pylist() == ["a", "a", "b", "b", "c", "c", "d", "d"]
    assert table.column("neighbor_rank").to_pylist() == [1, 2] * 4
    assert table.column("neighbor_id")[0].as_py() == "abcd"[indices[0, 0]]


@pytest.mark.parametrize("k", [0, -3, 2.5, "x", True])
def test_bad_k(k, rng):
    with pytest.raises(ParameterError, match="k_neighbors"):
        exact_knn(rng.normal(size=(4, 3)), k)


def test_distinct_sorted_is_numpy_unique(rng):
    from mdc_clustering.neighbors._common import distinct_sorted

    for values in (rng.integers(0, 50, 1000), rng.integers(-(10**12), 10**12, 5000), np.array([], np.int64),
                   np.array([7]), np.array([[3, 1], [3, 2]])):
        np.testing.assert_array_equal(distinct_sorted(values), np.unique(values))
