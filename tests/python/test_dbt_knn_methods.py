"""knn_method through dbt: IVF's and HNSW's neighbours against brute force, the measured recall, the warning test."""

from __future__ import annotations

import numpy as np
import pytest
from dbt_runner import Warehouse
from test_knn import brute_force


@pytest.fixture(scope="module")
def clustered(tmp_path_factory):
    rng = np.random.default_rng(11)
    centres = rng.normal(size=(12, 32))
    x = (centres[rng.integers(0, 12, 1500)] + 0.9 * rng.normal(size=(1500, 32))).astype(np.float32)
    ids = [f"ds{i:04d}" for i in range(len(x))]
    return Warehouse.from_arrays(tmp_path_factory.mktemp("knn_methods"), ids, x), ids, x


def neighbour_sets(wh, ids):
    index = {d: i for i, d in enumerate(ids)}
    rows = wh.query("select dataset_id, neighbor_id from clustering.int_dataset_neighbors_searched")
    sets = [set() for _ in ids]
    for a, b in rows:
        sets[index[a]].add(index[b])
    return sets


def test_hnsw_build_records_method_and_a_recall_that_matches_brute_force(clustered):
    wh, ids, x = clustered
    wh.dbt("build", vars={"knn_method": "hnsw", "k_neighbors": 10, "knn_recall_sample": 300})
    expected, _ = brute_force(x, 10)
    sets = neighbour_sets(wh, ids)
    true_recall = np.mean([len(sets[i] & set(expected[i])) / 10 for i in range(len(ids))])
    knn = wh.report["knn"]
    assert knn["method"] == "hnsw" and knn["hnsw_m"] == 32 and knn["recall_sample_size"] == 300
    assert knn["recall_at_k"] == pytest.approx(true_recall, abs=0.03)
    assert true_recall > 0.95


def test_ivf_build_records_what_the_pilot_chose_and_a_recall_that_matches_brute_force(clustered):
    wh, ids, x = clustered
    # ivf_nprobe 1 of ~39 cells cannot reach the bar: the pilot must raise it, and the report says to what
    wh.dbt("build", vars={"knn_method": "ivf", "k_neighbors": 10, "knn_recall_sample": 300, "ivf_nprobe": 1})
    expected, _ = brute_force(x, 10)
    sets = neighbour_sets(wh, ids)
    true_recall = np.mean([len(sets[i] & set(expected[i])) / 10 for i in range(len(ids))])
    knn = wh.report["knn"]
    assert knn["method"] == "ivf" and knn["hnsw_m"] is None and knn["recall_sample_size"] == 300
    assert knn["ivf_nlist"] == 1500 // 39 and 1 < knn["ivf_nprobe"] <= knn["ivf_nlist"]
    assert knn["ivf_pca_dims"] is None  # 32 components of 32 dimensions: the full vectors
    assert knn["recall_at_k"] == pytest.approx(true_recall, abs=0.03)
    assert true_recall > 0.95
    [(nprobe,)] = wh.query("select distinct ivf_nprobe from clustering.int_dataset_neighbors_searched")
    assert nprobe == knn["ivf_nprobe"]
    # the trained index is kept for the next run's update, under this run's k-NN fingerprint
    from mdc_clustering.neighbors import IvfModel

    [(fingerprint, blob)] = wh.query("select knn_fingerprint, ivf_model from clustering_state.knn_index")
    assert wh.query("select distinct knn_fingerprint from clustering_state.knn_state") == [(fingerprint,)]
    model = IvfModel.from_bytes(blob)
    assert (model.trained_rows, model.dim, model.nprobe, model.basis) == (1500, 32, nprobe, None)


def test_auto_is_exact_below_the_size_limit_and_ivf_above(clustered):
    wh, ids, x = clustered
    # cautious: no test of a model outside the selection (this test may run before any full build)
    only = ("--select", "+int_knn_recall_measured", "--indirect-selection", "cautious")
    wh.dbt("build", *only, vars={"knn_exact_max_n": 1500})
    assert wh.query("select knn_method, recall_at_k from clustering.int_knn_recall_measured") == [("exact", 1.0)]
    expected, _ = brute_force(x, 30)
    assert neighbour_sets(wh, ids) == [set(row) for row in expected]
    wh.dbt("build", *only, vars={"knn_exact_max_n": 1499})
    assert wh.query("select knn_method from clustering.int_knn_recall_measured") == [("ivf",)]


def test_recall_below_knn_min_recall_warns_and_the_build_goes_on(clustered):
    wh, _, _ = clustered
    weak = {"knn_method": "hnsw", "hnsw_m": 2, "hnsw_ef_construction": 4, "hnsw_ef_search": 1, "knn_min_recall": 0.99}
    result = wh.dbt("build", vars=weak)
    recall = wh.report["knn"]["recall_at_k"]
    assert recall < 0.99
    warned = [uid for uid, status in wh.run_results().items() if status == "warn"]
    assert any("at_least_var" in uid and "recall_at_k" in uid for uid in warned), warned
    assert "WARN" in result.stdout
