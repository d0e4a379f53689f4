"""Approximate (IVF, HNSW) k-NN and the recall measurement, against brute-force numpy."""

from __future__ import annotations

import numpy as np
import pytest
from test_knn import brute_force

from mdc_clustering import ParameterError
from mdc_clustering.knn import HnswParams, IvfParams, choose_knn_method, hnsw_knn, ivf_knn, knn_recall


def clustered(rng, n=3000, d=48, centres=30, spread=0.6):
    c = rng.normal(size=(centres, d))
    return (c[rng.integers(0, centres, n)] + spread * rng.normal(size=(n, d))).astype(np.float32)


def oracle_recall(indices, expected, rows):
    return np.mean([len(set(indices[i]) & set(expected[i])) / expected.shape[1] for i in rows])


def test_hnsw_finds_nearly_all_true_neighbours(rng):
    x = clustered(rng)
    found = hnsw_knn(x, 15)
    indices, sims = found.indices, found.similarities
    expected, expected_sims = brute_force(x, 15)
    assert indices.shape == sims.shape == (3000, 15)
    assert oracle_recall(indices, expected, range(3000)) > 0.97
    assert not np.any(indices == np.arange(3000)[:, None])  # never itself
    assert np.all(np.diff(sims, axis=1) <= 1e-6)  # decreasing similarity
    # the similarities are the true cosines of the returned pairs
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    np.testing.assert_allclose(sims, np.einsum("ij,ikj->ik", unit, unit[indices]), atol=1e-5)


def test_hnsw_is_repeatable(rng):
    x = clustered(rng, n=2000)
    first = hnsw_knn(x, 10, HnswParams(m=16, ef_construction=40, ef_search=32))
    second = hnsw_knn(x, 10, HnswParams(m=16, ef_construction=40, ef_search=32))
    np.testing.assert_array_equal(first.indices, second.indices)
    np.testing.assert_array_equal(first.similarities, second.similarities)


def test_hnsw_with_k_at_least_n_gives_every_other_point(rng):
    x = rng.normal(size=(7, 5)).astype(np.float32)
    indices = hnsw_knn(x, 30).indices
    assert indices.shape == (7, 6)
    for i in range(7):
        assert sorted(indices[i]) == [j for j in range(7) if j != i]


def test_weak_hnsw_parameters_show_in_the_measured_recall(rng):
    x = clustered(rng, n=4000, d=64, spread=1.5)
    expected, _ = brute_force(x, 20)
    sample = np.arange(0, 4000, 7)
    weak = hnsw_knn(x, 20, HnswParams(m=2, ef_construction=4, ef_search=1)).indices
    truth = oracle_recall(weak, expected, sample)
    assert truth < 0.9  # the weak index really misses neighbours
    assert knn_recall(x, sample, weak[sample]) == pytest.approx(truth, abs=0.01)


def test_recall_by_hand():
    # 1-d angles: the neighbours of point 0 by cosine are 1, 2, 3, 4 in that order
    angles = np.array([0.0, 0.1, 0.2, 0.3, 0.4, 2.0, 2.5])
    x = np.column_stack([np.cos(angles), np.sin(angles)]).astype(np.float32)
    sample = np.array([0])
    assert knn_recall(x, sample, np.array([[1, 2, 3]])) == 1.0
    assert knn_recall(x, sample, np.array([[1, 2, 5]])) == pytest.approx(2 / 3)
    assert knn_recall(x, sample, np.array([[1, 1, 1]])) == pytest.approx(1 / 3)  # a repeat counts once
    assert knn_recall(x, sample, np.array([[1, 0, -1]])) == pytest.approx(1 / 3)  # itself and missing: misses


def test_recall_counts_a_tie_with_the_kth_as_a_hit():
    x = np.array([[1, 0], [1, 0.1], [1, 0.1], [0, 1]], np.float32)  # rows 1 and 2 are the same point
    assert knn_recall(x, np.array([0]), np.array([[2]])) == 1.0
    assert knn_recall(x, np.array([0]), np.array([[1]])) == 1.0


@pytest.mark.parametrize(
    ("n", "method", "expected"), [(100, "auto", "exact"), (20_000, "auto", "exact"), (20_001, "auto", "ivf"),
                                  (10, "hnsw", "hnsw"), (10, "ivf", "ivf"), (10**6, "exact", "exact")]
)
def test_auto_picks_by_size(n, method, expected):
    assert choose_knn_method(n, method, 20_000) == expected


def test_unknown_method_names_the_var():
    with pytest.raises(ParameterError, match="knn_method"):
        choose_knn_method(10, "annoy", 100)
    with pytest.raises(ParameterError, match="hnsw_m"):
        HnswParams.from_vars(0, 40, 40)


def test_hnsw_on_a_pca_projection_reranks_to_exact_similarities(rng):
    # 128-d rows whose spread lies in 12 dimensions, indexed on 16 principal components
    basis = np.linalg.qr(rng.normal(size=(128, 12)))[0].T
    centres = rng.normal(size=(20, 12))
    x = ((centres[rng.integers(0, 20, 3000)] + 0.5 * rng.normal(size=(3000, 12))) @ basis).astype(np.float32)
    x += 0.01 * rng.normal(size=x.shape).astype(np.float32)
    expected, _ = brute_force(x, 15)
    found = hnsw_knn(x, 15, HnswParams(pca_dims=16))
    indices, sims = found.indices, found.similarities
    assert oracle_recall(indices, expected, range(3000)) > 0.95
    assert not np.any(indices == np.arange(3000)[:, None])
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    np.testing.assert_allclose(sims, np.einsum("ij,ikj->ik", unit, unit[indices]), atol=1e-5)  # full-dim cosines
    assert np.all(np.diff(sims, axis=1) <= 1e-6)
    # too few components lose neighbours, and the measured recall says so
    poor = hnsw_knn(x, 15, HnswParams(pca_dims=2)).indices
    sample = np.arange(0, 3000, 5)
    assert oracle_recall(poor, expected, sample) < 0.9
    assert knn_recall(x, sample, poor[sample]) == pytest.approx(oracle_recall(poor, expected, sample), abs=0.01)


def test_knn_settings_check_the_arguments():
    from mdc_clustering.knn import knn_settings

    config = {"knn_method": "auto", "knn_exact_max_n": 100, "ivf_pca_dims": 16, "ivf_nlist": None,
              "ivf_nprobe": 8, "hnsw_m": 16, "hnsw_ef_construction": 40, "hnsw_ef_search": 50,
              "hnsw_pca_dims": None}
    assert knn_settings(101, **config) == ("ivf", IvfParams(pca_dims=16, nlist=None, nprobe=8))
    assert knn_settings(100, **config) == ("exact", None)
    hnsw = {**config, "knn_method": "hnsw"}
    assert knn_settings(5, **hnsw) == ("hnsw", HnswParams(m=16, ef_construction=40, ef_search=50, pca_dims=None))
    # every argument is checked, whichever method the size picks; a string is never parsed as a number
    for name, bad in [("hnsw_pca_dims", -3), ("ivf_nprobe", 0), ("ivf_nlist", 2.5), ("ivf_pca_dims", "16"),
                      ("ivf_nlist", "None"), ("hnsw_m", True)]:
        with pytest.raises(ParameterError, match=name):
            knn_settings(10, **{**config, name: bad})


def test_pair_similarities_are_the_dot_products_and_missing_is_minus_inf(rng):
    from mdc_clustering.neighbors import pair_similarities

    x = rng.normal(size=(500, 24)).astype(np.float32)
    rows = rng.integers(0, 500, 60)
    others = rng.integers(0, 500, (60, 9))
    others[3, 2] = -1
    got = pair_similarities(x, rows, others)
    expected = np.einsum("ij,ikj->ik", x[rows].astype(np.float64), x[others].astype(np.float64))
    expected[3, 2] = -np.inf
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_pilot_recall_keeps_the_projection_only_where_it_works(rng):
    # low intrinsic dimension: 16 principal components keep the neighbours, so the projection stays
    basis = np.linalg.qr(rng.normal(size=(96, 8)))[0].T
    centres = rng.normal(size=(15, 8))
    low = ((centres[rng.integers(0, 15, 2000)] + 0.4 * rng.normal(size=(2000, 8))) @ basis).astype(np.float32)
    low += 0.01 * rng.normal(size=low.shape).astype(np.float32)
    result = hnsw_knn(low, 10, HnswParams(pca_dims=16, pca_min_recall=0.9))
    assert result.search_dims == 16 and result.pilot_recall >= 0.9
    # isotropic noise: 4 components lose the neighbours; the pilot sees it and the full rows are indexed
    iso = rng.normal(size=(2000, 96)).astype(np.float32)
    result = hnsw_knn(iso, 10, HnswParams(pca_dims=4, pca_min_recall=0.9))
    indices = result.indices
    expected, _ = brute_force(iso, 10)
    assert result.pilot_recall < 0.5 and result.search_dims == 96
    assert oracle_recall(indices, expected, range(2000)) > 0.9
    # without the check the projection is used whatever it costs
    poor = hnsw_knn(iso, 10, HnswParams(pca_dims=4)).indices
    assert oracle_recall(poor, expected, range(2000)) < 0.5


@pytest.mark.parametrize("batch_rows", [37, 5000])
def test_streamed_recall_equals_the_in_memory_measure(rng, batch_rows):
    import duckdb
    import pyarrow as pa
    from test_embeddings import _relation

    from mdc_clustering.embeddings import iter_embeddings, rows_reader
    from mdc_clustering.stages.pull import embedding_hashes
    from mdc_clustering.tables import recall_summary, scored_recall_sample

    x = clustered(rng, n=1500, d=16, centres=10)
    x[7] = x[8]  # a duplicate: ties with the k-th must count as hits in both
    ids = [f"d{i:05d}" for i in range(len(x))]
    weak = hnsw_knn(x, 12, HnswParams(m=2, ef_construction=4, ef_search=1)).indices
    sample = np.sort(rng.choice(len(x), 80, replace=False))
    sample[0] = 7
    con = duckdb.connect()
    rel = _relation(con, ids, x)
    rows = [(ids[i], ids[j], r + 1, 16) for i in sample for r, j in enumerate(weak[i])]
    sample_neighbors = pa.table(
        {
            "dataset_id": [a for a, _, _, _ in rows],
            "neighbor_id": [b for _, b, _, _ in rows],
            "neighbor_rank": [r for _, _, r, _ in rows],
            "search_dims": [d for _, _, _, d in rows],
            "ivf_nlist": pa.nulls(len(rows), pa.int32()),
            "ivf_nprobe": pa.nulls(len(rows), pa.int32()),
        }
    )
    current = pa.table({"dataset_id": ids, "embedding_hash": pa.array(embedding_hashes(x), pa.int64())})
    table = recall_summary(scored_recall_sample(
        current,
        pa.array([ids[i] for i in sample]),
        sample_neighbors,
        rows_of=rows_reader(rel, con),
        search_space=lambda: iter_embeddings(rel, normalize=True, batch_rows=batch_rows),
        method="hnsw",
        k=12,
        params=HnswParams(),
    ))
    expected = knn_recall(x, sample, weak[sample])
    assert table.column("recall_at_k")[0].as_py() == pytest.approx(expected, abs=1e-9)
    assert 0.2 < expected < 0.95  # the weak index really misses neighbours
    assert table.column("n_datasets")[0].as_py() == 1500
    assert table.column("recall_sample_size")[0].as_py() == 80
    assert table.column("hnsw_pca_dims")[0].as_py() is None  # 16 = the full dimension
    assert table.column("hnsw_m")[0].as_py() == 32 and table.column("ivf_nprobe")[0].as_py() is None


def test_streamed_kth_with_fewer_rows_than_k():
    from mdc_clustering.knn import streamed_kth_similarity

    x = np.array([[1, 0], [0.8, 0.6], [0, 1]], np.float32)
    ids = pa_strings(["a", "b", "c"])
    batches = [(ids.slice(0, 2), x[:2]), (ids.slice(2), x[2:])]
    kth = streamed_kth_similarity(x[:1], ids.slice(0, 1), batches, 5)
    assert kth[0] == pytest.approx(0.0)  # only two others: the smaller of 0.8 and 0.0


def pa_strings(values):
    import pyarrow as pa

    return pa.array(values, pa.string())


def low_dimensional(rng, n=6000, d=96, intrinsic=8, centres=40, spread=0.5, noise=0.02):
    """Clusters whose spread lies in a low-dimensional subspace, plus a little isotropic noise."""
    basis = np.linalg.qr(rng.normal(size=(d, intrinsic)))[0].T
    c = rng.normal(size=(centres, intrinsic))
    x = (c[rng.integers(0, centres, n)] + spread * rng.normal(size=(n, intrinsic))) @ basis
    return (x + noise * rng.normal(size=x.shape)).astype(np.float32)


def test_ivf_finds_nearly_all_true_neighbours_with_exact_similarities(rng):
    x = low_dimensional(rng)
    result = ivf_knn(x, 15, IvfParams(pca_dims=16, nprobe=4, min_recall=0.95))
    indices, sims = result.indices, result.similarities
    expected, expected_sims = brute_force(x, 15)
    assert indices.shape == sims.shape == (6000, 15)
    # the pilot raised nprobe from 4 until its 500 rows reached 0.955; the whole set agrees with brute force
    assert result.nprobe > 4 and result.pilot_recall >= 0.955 and result.search_dims == 16
    assert oracle_recall(indices, expected, range(6000)) > 0.95
    assert not np.any(indices == np.arange(6000)[:, None])
    assert np.all(np.diff(sims, axis=1) <= 1e-6)
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    np.testing.assert_allclose(sims, np.einsum("ij,ikj->ik", unit, unit[indices]), atol=1e-5)


def test_ivf_pilot_grows_a_projection_too_narrow_for_the_data(rng):
    # 8 intrinsic dimensions: 3 principal components cannot hold the neighbours, and the pilot sees it
    x = low_dimensional(rng, n=4000, intrinsic=8)
    expected, _ = brute_force(x, 15)
    result = ivf_knn(x, 15, IvfParams(pca_dims=3, nprobe=4, min_recall=0.95))
    indices = result.indices
    assert result.search_dims > 3
    assert oracle_recall(indices, expected, range(4000)) > 0.95
    narrow = ivf_knn(x, 15, IvfParams(pca_dims=3, nprobe=10**6)).indices  # every cell, no pilot: the projection's loss
    assert oracle_recall(narrow, expected, range(4000)) < 0.9


def test_ivf_pilot_recall_is_the_recall_of_what_it_searched(rng):
    # nprobe fixed (no pilot bar): few cells scanned, and the measured recall shows it
    x = clustered(rng, n=4000, d=64, spread=1.5)
    expected, _ = brute_force(x, 20)
    weak = ivf_knn(x, 20, IvfParams(pca_dims=8, nlist=200, nprobe=1)).indices
    sample = np.arange(0, 4000, 7)
    truth = oracle_recall(weak, expected, sample)
    assert truth < 0.8
    assert knn_recall(x, sample, weak[sample]) == pytest.approx(truth, abs=0.01)
    # every cell scanned and the full vectors kept: the candidates are the exact neighbours' superset
    full = ivf_knn(x, 20, IvfParams(pca_dims=None, nlist=20, nprobe=20)).indices
    assert oracle_recall(full, expected, sample) > 0.97


def test_ivf_is_repeatable_and_handles_tiny_inputs(rng):
    x = low_dimensional(rng, n=3000)
    first = ivf_knn(x, 10, IvfParams(pca_dims=15, nprobe=8))  # odd dimension: padded with a zero column
    second = ivf_knn(x, 10, IvfParams(pca_dims=15, nprobe=8))
    np.testing.assert_array_equal(first.indices, second.indices)
    np.testing.assert_array_equal(first.similarities, second.similarities)
    tiny = rng.normal(size=(7, 5)).astype(np.float32)
    indices = ivf_knn(tiny, 30).indices
    assert indices.shape == (7, 6)
    for i in range(7):
        assert sorted(indices[i]) == [j for j in range(7) if j != i]
