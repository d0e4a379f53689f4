"""Neighbourhood and cluster features in engineered_feature_values: oracle and no-loss guarantees."""

from __future__ import annotations

import shutil

import duckdb
import numpy as np
import pyarrow as pa
import pytest
from dbt_runner import REPO, Warehouse

from mdc_clustering.tables import centroid_similarities, reference_neighbors

EARLIER = "select * from main.engineered_feature_values where feature_name like 'context_%' order by all"
SIX = [f"neighbor_{w}_{s}" for w in ("similarity", "norm") for s in ("mean", "max", "var")]


def sample_matrix():
    import pyarrow.parquet as pq

    table = pq.read_table(REPO / "data" / "sample" / "embeddings.parquet")
    col = table.column("embedding").combine_chunks()
    x = col.flatten().to_numpy().reshape(-1, col.type.list_size).astype(np.float32)
    return table.column("dataset_id").to_pylist(), x


def features(wh, names):
    rows = wh.query(
        "select dataset_id, feature_name, feature_value from main.engineered_feature_values "
        f"where feature_name in ({', '.join(repr(n) for n in names)})"
    )
    return {(d, f): v for d, f, v in rows}


def test_six_statistics_match_numpy_for_every_dataset(sample):
    ids, x = sample_matrix()
    norms = np.linalg.norm(x.astype(np.float64), axis=1)
    unit = x.astype(np.float64) / norms[:, None]
    sims = unit @ unit.T
    np.fill_diagonal(sims, -np.inf)
    top = np.argsort(-sims, axis=1, kind="stable")[:, :5]
    s = np.take_along_axis(sims, top, axis=1)
    nrm = norms[top]
    expected = {
        "neighbor_similarity_mean": s.mean(1), "neighbor_similarity_max": s.max(1),
        "neighbor_similarity_var": s.var(1), "neighbor_norm_mean": nrm.mean(1),
        "neighbor_norm_max": nrm.max(1), "neighbor_norm_var": nrm.var(1),
    }
    got = features(sample, SIX)
    assert len(got) == 6 * len(ids)
    worst = 0.0
    for name, values in expected.items():
        for i, dataset_id in enumerate(ids):
            worst = max(worst, abs(got[(dataset_id, name)] - values[i]))
    assert worst < 1e-6, worst


def test_cluster_features_match_numpy(sample):
    ids, x = sample_matrix()
    row = {d: i for i, d in enumerate(ids)}
    clusters = dict(sample.query("select dataset_id, cluster from main.datasets where cluster is not null"))
    got = features(sample, ["cluster_size", "cluster_centroid_similarity"])
    assert len(got) == 2 * len(clusters)
    unit = x.astype(np.float64) / np.linalg.norm(x.astype(np.float64), axis=1, keepdims=True)
    members = {}
    for dataset_id, cluster in clusters.items():
        members.setdefault(cluster, []).append(row[dataset_id])
    for dataset_id, cluster in clusters.items():
        centroid = unit[members[cluster]].mean(0)
        expected = unit[row[dataset_id]] @ centroid / np.linalg.norm(centroid)
        assert got[(dataset_id, "cluster_size")] == len(members[cluster])
        assert got[(dataset_id, "cluster_centroid_similarity")] == pytest.approx(expected, abs=1e-6)


def test_earlier_phase_rows_survive_build_rebuild_and_full_refresh(sample):
    fresh = Warehouse(sample.root / "pristine", load_sample=False)
    from mdc_clustering.sample import load_database

    load_database(REPO / "data" / "sample", fresh.db, allow_outside_data=True)
    original = fresh.query(EARLIER)
    assert len(original) == 3 * 2293
    assert sample.query(EARLIER) == original  # after the session's first build
    stamp = "select count(*), max(updated_at), min(created_at) from main.engineered_feature_values"
    after_one = sample.query(stamp)
    sample.dbt("build")
    assert sample.query(EARLIER) == original
    assert sample.query(stamp) == after_one  # nothing rewritten on an unchanged re-run
    sample.dbt("build", "--full-refresh")
    assert sample.query(EARLIER) == original
    assert sample.query(stamp) == after_one
    assert sample.query(
        "select count(*) from duckdb_constraints() "
        "where table_name = 'engineered_feature_values' and constraint_type = 'PRIMARY KEY'"
    ) == [(1,)]
    counts = dict(sample.query("select feature_name, count(*) from main.engineered_feature_values group by 1"))
    assert all(counts[name] == 2293 for name in SIX)


@pytest.fixture
def copy_of_sample(sample, tmp_path):
    """A private copy of the built sample warehouse (database and Chroma store)."""
    shutil.copy(sample.db, tmp_path / "pipeline.duckdb")
    shutil.copytree(sample.chroma, tmp_path / "chroma")
    return Warehouse(tmp_path, load_sample=False)


def test_dataset_leaving_the_collection_loses_only_this_phases_rows(copy_of_sample):
    wh = copy_of_sample
    from mdc_clustering.chroma_reader import get_client

    gone = "AER/Affairs"
    before = wh.query(EARLIER)
    get_client(wh.chroma).get_collection(wh.collection).delete(ids=[gone])
    wh.dbt("build")
    rows = wh.query(f"select feature_name from main.engineered_feature_values where dataset_id = '{gone}' order by 1")
    assert [r for (r,) in rows] == ["context_char_length", "context_digit_share", "context_token_count"]
    assert wh.query(EARLIER) == before
    assert wh.query(f"select cluster from main.datasets where dataset_id = '{gone}'") == [(None,)]


def test_missing_feature_table_is_created_with_its_primary_key(tmp_path):
    wh = Warehouse(tmp_path)
    con = duckdb.connect(str(wh.db))
    con.execute("drop table main.engineered_feature_values")
    con.close()
    wh.dbt("build")
    assert wh.query(
        "select count(*) from duckdb_constraints() "
        "where table_name = 'engineered_feature_values' and constraint_type = 'PRIMARY KEY'"
    ) == [(1,)]
    assert wh.query("select count(*) from main.engineered_feature_values")[0][0] > 6 * 2293


def test_missing_datasets_table_names_the_database(tmp_path):
    wh = Warehouse(tmp_path)
    con = duckdb.connect(str(wh.db))
    con.execute("drop table main.datasets")
    con.close()
    result = wh.dbt("build", check=False)
    assert result.returncode != 0
    assert f"The pipeline database {wh.given(wh.db)} has no table main.datasets" in result.stdout
    assert "MDC_DUCKDB_PATH" in result.stdout


def test_reference_neighbors_exclude_the_dataset_itself(rng):
    x = rng.normal(size=(30, 6)).astype(np.float32)
    ref_rows = list(range(10, 30)) + [0]  # datasets 10..29 and 0 are also reference items
    ref_x = np.vstack([x[10:30], x[0:1], rng.normal(size=(5, 6)).astype(np.float32)])
    ref_ids = [f"d{i}" for i in ref_rows] + [f"r{i}" for i in range(5)]
    emb = pa.table({"dataset_id": [f"d{i}" for i in range(30)],
                    "embedding": pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), 6)})
    ref = pa.table({"dataset_id": ref_ids, "embedding": pa.FixedSizeListArray.from_arrays(pa.array(ref_x.ravel()), 6)})
    table = reference_neighbors(emb, ref, 4)
    got = {}
    columns = (table.column(c).to_pylist() for c in ("dataset_id", "neighbor_id", "similarity"))
    for d, n, s in zip(*columns, strict=True):
        got.setdefault(d, []).append((n, s))

    def unit(m):
        return m / np.linalg.norm(m, axis=1, keepdims=True)

    sims = unit(x.astype(np.float64)) @ unit(ref_x.astype(np.float64)).T
    for i in range(30):
        row = sims[i].copy()
        if f"d{i}" in ref_ids:
            row[ref_ids.index(f"d{i}")] = -np.inf
        order = np.argsort(-row, kind="stable")[:4]
        assert [n for n, _ in got[f"d{i}"]] == [ref_ids[j] for j in order]
        assert f"d{i}" not in [n for n, _ in got[f"d{i}"]]
        np.testing.assert_allclose([s for _, s in got[f"d{i}"]], row[order], atol=1e-6)


def test_reference_collection_in_the_build(copy_of_sample):
    wh = copy_of_sample
    from mdc_clustering.chroma_reader import get_client

    ids, x = sample_matrix()
    client = get_client(wh.chroma)
    train = client.create_collection("train_half", embedding_function=None)
    half = list(range(0, len(ids), 2))
    train.add(ids=[ids[i] for i in half], embeddings=x[half], metadatas=[{"document_id": "t"} for _ in half])
    wh.dbt("build", "--select", "+engineered_feature_values", vars={"reference_collection": "train_half"})
    got = features(wh, ["neighbor_similarity_max", "neighbor_similarity_mean"])
    unit = x.astype(np.float64) / np.linalg.norm(x.astype(np.float64), axis=1, keepdims=True)
    sims = unit @ unit[half].T
    for i in half:
        sims[i, half.index(i)] = -np.inf  # a training dataset never counts itself
    top = -np.sort(-sims, axis=1)[:, :5]
    for i in (0, 1, 2, 3, 500, 501):
        assert got[(ids[i], "neighbor_similarity_max")] == pytest.approx(top[i, 0], abs=1e-6)
        assert got[(ids[i], "neighbor_similarity_mean")] == pytest.approx(top[i].mean(), abs=1e-6)


def test_neighborhood_wider_than_the_knn_searches_the_clustered_vectors(copy_of_sample):
    # neighborhood_k > k_neighbors with the default reference (the clustered collection): the reference
    # table holds no vectors, so the features search stg_chroma__embeddings itself
    wh = copy_of_sample
    wh.dbt("build", "--select", "+engineered_feature_values", vars={"k_neighbors": 4, "neighborhood_k": 9})
    assert wh.query("select count(*) from clustering.stg_chroma__reference_embeddings where embedding is not null")[
        0
    ] == (0,)
    ids, x = sample_matrix()
    got = features(wh, SIX)
    norms = np.linalg.norm(x.astype(np.float64), axis=1)
    unit = x.astype(np.float64) / norms[:, None]
    sims = unit @ unit.T
    np.fill_diagonal(sims, -np.inf)
    top = np.argsort(-sims, axis=1, kind="stable")[:, :9]
    for i in (0, 1, 2, 700, 1500, len(ids) - 1):
        s, nrm = sims[i, top[i]], norms[top[i]]
        assert got[(ids[i], "neighbor_similarity_mean")] == pytest.approx(s.mean(), abs=1e-6)
        assert got[(ids[i], "neighbor_similarity_var")] == pytest.approx(s.var(), abs=1e-6)
        assert got[(ids[i], "neighbor_norm_mean")] == pytest.approx(nrm.mean(), abs=1e-6)


def test_centroid_similarity_of_a_tiny_cluster():
    emb = pa.table({"dataset_id": ["a", "b", "c"],
                    "embedding": pa.FixedSizeListArray.from_arrays(pa.array([1.0, 0, 0, 1, 5, 5], pa.float32()), 2)})
    memberships = pa.table({"dataset_id": ["a", "b", "c"], "cluster": ["k", "k", None]})
    table = centroid_similarities(emb, memberships).to_pydict()
    # centroid of (1,0) and (0,1) is (0.5, 0.5): cosine 1/sqrt(2) to each
    assert table["dataset_id"] == ["a", "b"]
    assert table["cluster_size"] == [2, 2]
    np.testing.assert_allclose(table["centroid_similarity"], [2 ** -0.5] * 2)


def test_centroid_similarities_streamed_in_slices_match_numpy(rng):
    import duckdb
    from test_embeddings import _relation

    from mdc_clustering.embeddings import iter_embeddings

    x = rng.normal(size=(600, 8)).astype(np.float32)
    ids = [f"d{i:04d}" for i in rng.permutation(600)]
    labels = [None if i % 7 == 0 else f"c_{i % 5}" for i in range(600)]
    con = duckdb.connect()
    rel = _relation(con, ids, x)
    memberships = pa.table({"member_id": ids, "cluster": labels})
    members = rel.join(
        con.from_arrow(memberships)
        .filter("cluster is not null")
        .select("member_id, cluster")
        .set_alias("m"),
        "dataset_id = member_id",
    ).select("dataset_id, embedding, cluster")
    table = centroid_similarities(
        lambda: iter_embeddings(members, normalize=True, batch_rows=97, columns=("cluster",))
    ).to_pydict()
    unit = x.astype(np.float64) / np.linalg.norm(x.astype(np.float64), axis=1, keepdims=True)
    row = {d: i for i, d in enumerate(ids)}
    assert len(table["dataset_id"]) == sum(label is not None for label in labels)
    for dataset_id, cluster, size, got in zip(*table.values(), strict=True):
        members = [i for i, label in enumerate(labels) if label == cluster]
        centroid = unit[members].mean(0)
        assert size == len(members)
        assert got == pytest.approx(unit[row[dataset_id]] @ centroid / np.linalg.norm(centroid), abs=1e-6)
