"""The dbt build end to end, on synthetic data with a numpy oracle, and on the sample."""

from __future__ import annotations

import math

import numpy as np
import pytest
from dbt_runner import REPO, Warehouse
from test_knn import brute_force


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    rng = np.random.default_rng(11)
    centres = rng.normal(size=(5, 12)) * 3
    x = np.vstack([c + rng.normal(size=(16, 12)) for c in centres]).astype(np.float32)
    ids = [f"ds{i:03d}" for i in range(len(x))]
    # blobs 0, 2, 4 PRIMARY and 1, 3 SECONDARY, three flipped, and a few unknown, for the purity report
    types = ["PRIMARY" if (i // 16) % 2 == 0 else "SECONDARY" for i in range(len(x))]
    types[3] = types[5] = types[7] = "SECONDARY"
    types[20] = types[21] = None
    wh = Warehouse.from_arrays(tmp_path_factory.mktemp("synthetic"), ids, x, dataset_types=types)
    wh.dbt("build", vars={"k_neighbors": 8, "target_degree": 5})
    return wh, ids, x


def oracle_thresholds(x, k, target_degree):
    idx, sims = brute_force(x, k)
    n = len(x)
    directed = sims.ravel()
    pairs, ranks = {}, {}
    for i in range(n):
        for rank, (j, s) in enumerate(zip(idx[i], sims[i], strict=True), start=1):
            key = (min(i, j), max(i, j))
            pairs[key] = max(pairs.get(key, -2.0), s)
            ranks[key] = min(ranks.get(key, k + 1), rank)
    pair_sims = np.sort(np.array(list(pairs.values())))[::-1]
    wanted = math.floor(target_degree * n / 2 + 0.5)
    desc = np.sort(directed)[::-1]
    gaps = desc[:-1] - desc[1:]
    return {
        "percentile_90": float(np.percentile(directed, 90)),
        "elbow_method": float(desc[int(np.argmax(gaps))]),
        "degree_target": float(pair_sims[min(wanted, len(pair_sims)) - 1]),
    }, pair_sims, (np.array(list(pairs.values())), np.array([ranks[key] for key in pairs]))


def test_knn_table_matches_brute_force(synthetic):
    wh, ids, x = synthetic
    idx, sims = brute_force(x, 8)
    rows = wh.query(
        "select dataset_id, neighbor_id, similarity from clustering.int_dataset_neighbors_searched "
        "order by dataset_id, neighbor_rank"
    )
    assert len(rows) == len(ids) * 8
    got = {(a, b): s for a, b, s in rows}
    for i in range(len(ids)):
        for j, s in zip(idx[i], sims[i], strict=True):
            assert got[(ids[i], ids[j])] == pytest.approx(s, abs=1e-5)


@pytest.mark.parametrize("method", ["degree_target", "percentile_90", "elbow_method", "given"])
def test_threshold_methods_match_the_oracle(synthetic, method):
    wh, ids, x = synthetic
    expected, pair_sims, (sims, best) = oracle_thresholds(x, 8, 5)
    vars = {"k_neighbors": 8, "target_degree": 5}
    if method == "given":
        vars["similarity_threshold"] = 0.7
        expected["given"] = 0.7
    else:
        vars["threshold_method"] = method
    vars["min_edges_per_dataset"] = 2  # each dataset's 2 nearest are edges whatever the threshold
    wh.dbt("run", "--select", "int_similarity_threshold_selected", "int_graph_edges_filtered", vars=vars)
    [(got_method, value, n_edges, mean_degree)] = wh.query(
        "select threshold_method, similarity_threshold, n_edges, mean_degree "
        "from clustering.int_similarity_threshold_selected"
    )
    assert got_method == method
    assert value == pytest.approx(expected[method], abs=1e-6)
    # float32 (table) vs float64 (oracle): count the pairs within 1e-6 of the threshold as either way
    assert int((pair_sims >= value + 1e-6).sum()) <= n_edges <= int((pair_sims >= value - 1e-6).sum())
    if method == "degree_target":
        assert n_edges == 5 * len(ids) // 2  # no float ties here
    assert mean_degree == pytest.approx(2 * n_edges / len(ids))
    # the graph: the pairs at or above the threshold, plus each dataset's 2 nearest (similarity > 0)
    near = (best <= 2) & (sims > 0)
    [(graph_edges,)] = wh.query("select count(*) from clustering.int_graph_edges_filtered")
    assert int(((sims >= value + 1e-6) | near).sum()) <= graph_edges <= int(((sims >= value - 1e-6) | near).sum())


def test_synthetic_blobs_become_clusters(synthetic):
    wh, ids, _ = synthetic
    rows = wh.query("select dataset_id, cluster from main.datasets order by dataset_id")
    blob_of = {dataset_id: int(dataset_id[2:]) // 16 for dataset_id in ids}
    by_cluster = {}
    for dataset_id, cluster in rows:
        if cluster is not None:
            by_cluster.setdefault(cluster, set()).add(blob_of[dataset_id])
    # degree_target (mean degree 5) leaves a few outliers without edges; the rest is one cluster per blob
    assert sum(c is not None for _, c in rows) >= 0.9 * len(ids)
    assert len(by_cluster) == 5 and all(len(b) == 1 for b in by_cluster.values())


def test_sample_build_twice_gives_identical_clusters(sample):
    first = sample.query("select dataset_id, cluster, updated_at from main.datasets order by dataset_id")
    sample.dbt("build")
    second = sample.query("select dataset_id, cluster, updated_at from main.datasets order by dataset_id")
    assert first == second  # same labels, and nothing rewritten
    assert sum(c is not None for _, c, _ in first) > 2000


def test_datasets_keeps_every_row_and_column(sample):
    from mdc_clustering.sample import load_database

    fresh = Warehouse(sample.root / "fresh", load_sample=False)
    load_database(REPO / "data" / "sample", fresh.db, allow_outside_data=True)
    cols = "dataset_id, document_id, total_tokens, avg_tokens_per_chunk, total_char_length, " \
        "clean_text_length, dataset_type, text, created_at"
    assert sample.query(f"select {cols} from main.datasets order by 1") == fresh.query(
        f"select {cols} from main.datasets order by 1"
    )
    pk = sample.query(
        "select count(*) from duckdb_constraints() where table_name = 'datasets' and constraint_type = 'PRIMARY KEY'"
    )
    assert pk == [(1,)]


def test_full_refresh_does_not_rebuild_datasets(sample):
    before = sample.query("select dataset_id, cluster, updated_at from main.datasets order by 1")
    sample.dbt("build", "--full-refresh", "--select", "datasets")
    assert sample.query("select dataset_id, cluster, updated_at from main.datasets order by 1") == before


def test_report_json(sample):
    report = sample.report
    [(n_clusters, n_null)] = sample.query(
        "select count(distinct cluster), count(*) filter (where cluster is null) from main.datasets"
    )
    assert report["clusters"]["n_clusters"] == n_clusters
    assert sum(c["size"] for c in report["clusters"]["sizes"]) + report["datasets_unclustered"] == 2293
    assert report["datasets_unclustered"] == n_null
    assert report["threshold"]["method"] == "degree_target"
    assert report["graph"]["nodes"] == 2293
    # the graph Leiden clustered: every kept edge, threshold or nearest-neighbour guarantee
    [(edges, nearest_only)] = sample.query(
        "select count(*), count(*) filter (where is_below_threshold) from clustering.int_graph_edges_filtered"
    )
    assert report["graph"]["edges"] == edges and report["graph"]["edges_nearest_only"] == nearest_only
    assert report["graph"]["mean_degree"] == pytest.approx(2 * edges / 2293)
    assert 2 * report["graph"]["edges_above_threshold"] / 2293 == pytest.approx(30, abs=0.1)  # target_degree
    reasons = report["unclustered_by_reason"]
    assert sum(v for k, v in reasons.items() if k != "no_embedding") == report["datasets_unclustered"]
    assert 0 < report["leiden"]["modularity"] < 1
    assert report["parameters"]["random_seed"] == 42
    assert report["clusters"]["size_min"] >= 2


def test_report_purity_per_cluster_where_dataset_type_is_known(synthetic):
    wh, _, _ = synthetic
    rows = wh.query("select cluster, dataset_type from main.datasets where cluster is not null")
    expected = {}
    for cluster, dtype in rows:
        counts = expected.setdefault(cluster, {"PRIMARY": 0, "SECONDARY": 0})
        if dtype is not None:
            counts[dtype] += 1
    purity = {p["cluster"]: p for p in wh.report["dataset_type_purity"]}
    assert set(purity) == {c for c, n in expected.items() if n["PRIMARY"] + n["SECONDARY"] > 0}
    for cluster, counts in expected.items():
        typed = counts["PRIMARY"] + counts["SECONDARY"]
        assert purity[cluster]["n_typed"] == typed
        assert purity[cluster]["purity"] == pytest.approx(max(counts.values()) / typed)
    assert min(p["purity"] for p in purity.values()) < 1  # the flipped one shows


def _digest(rows) -> str:
    import hashlib

    return hashlib.md5(repr(rows).encode()).hexdigest()


def test_target_n_clusters_is_reached_or_stops_the_build_before_any_write(tmp_path):
    rng = np.random.default_rng(5)
    centres = rng.normal(size=(6, 12)) * 3
    x = np.vstack([c + rng.normal(size=(25, 12)) for c in centres]).astype(np.float32)
    ids = [f"t{i:03d}" for i in range(len(x))]
    wh = Warehouse.from_arrays(tmp_path, ids, x)
    wh.dbt("build", vars={"target_n_clusters": 6, "target_n_clusters_tolerance": 0.01})
    clusters = {c for (c,) in wh.query("select cluster from main.datasets")}
    assert abs(len(clusters) - 6) <= 1 and None not in clusters  # tolerance: max(1, round(0.01 * 6))
    assert wh.report["leiden"]["target_reached"] is True and wh.report["clusters"]["n_clusters"] == len(clusters)
    # a graph of one component per blob (a high given threshold, no guaranteed edges) cannot give 2 clusters
    before = {table: _digest(rows) for table, rows in wh.snapshot().items()}
    seed_graph = {"similarity_threshold": 0.8, "min_edges_per_dataset": 0, "target_n_clusters": 2}
    result = wh.dbt("build", vars=seed_graph, check=False)
    assert result.returncode != 0
    assert "target_n_clusters=2 cannot be reached" in result.stdout and "connected components" in result.stdout
    assert {table: _digest(rows) for table, rows in wh.snapshot().items()} == before
