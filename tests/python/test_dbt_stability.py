"""Labels that survive re-runs, on the embedded sample: 5% more datasets, place_new, full refresh."""

from __future__ import annotations

import hashlib
import json
import shutil

import pyarrow.parquet as pq
import pytest
from dbt_runner import REPO, Warehouse

from mdc_clustering.sample import add_from_sample

SAMPLE = REPO / "data" / "sample"


@pytest.fixture(scope="module")
def held_back():
    ids = sorted(pq.read_table(SAMPLE / "datasets.parquet", columns=["dataset_id"])["dataset_id"].to_pylist())
    return set(ids[::20])  # 115 of 2,293: the "5% more" that arrive later


@pytest.fixture(scope="module")
def grown(tmp_path_factory, held_back):
    wh = Warehouse(tmp_path_factory.mktemp("grown"), exclude=held_back)
    wh.dbt("build")
    before = dict(wh.query("select dataset_id, cluster from main.datasets"))
    registry_before = wh.query(
        "select label, label_number, status, created_run_id from clustering_state.cluster_label_registry order by label"
    )
    # a second root with the same starting point, for place_new
    twin_root = tmp_path_factory.mktemp("twin")
    shutil.copy(wh.db, twin_root / "pipeline.duckdb")
    shutil.copytree(wh.chroma, twin_root / "chroma")
    twin = Warehouse(twin_root, load_sample=False)
    keys_before = dict(wh.query("select dataset_id, dataset_key from clustering_state.embedding_cache"))
    added = add_from_sample(SAMPLE, wh.db, wh.chroma, wh.collection, held_back, allow_outside_data=True)
    assert added == len(held_back)
    wh.dbt("build")
    wh.keys_before = keys_before
    return wh, twin, before, registry_before


def test_most_labels_survive_five_percent_growth(grown):
    wh, _, before, _ = grown
    report = wh.report
    share = report["labels"]["share_of_datasets_keeping_label"]
    after = dict(wh.query("select dataset_id, cluster from main.datasets"))
    had = [d for d, c in before.items() if c is not None]
    recomputed = sum(after[d] == before[d] for d in had) / len(had)
    assert share == pytest.approx(recomputed)
    assert share >= 0.95, share
    print(f"\nshare of previously clustered datasets keeping their label after +5%: {share:.3f}; "
          f"labels kept {report['labels']['kept']}, born {report['labels']['born']}, "
          f"retired {report['labels']['retired']}, split {report['labels']['split']}, "
          f"merged {report['labels']['merged']}")


def test_the_rerun_updated_the_stored_knn_lists_to_what_a_full_search_gives(grown):
    """The +5% build read 115 embeddings from Chroma and updated the stored k-NN lists: equal to brute force."""
    import numpy as np

    wh, _, _, _ = grown
    report = wh.report
    assert (report["pull"]["path"], report["pull"]["read_from_chroma"]) == ("incremental", 115)
    assert report["knn_update"]["path"] == "incremental"
    assert report["knn_update"]["reason"].startswith("incremental update: 5.0% of datasets touched (115 new")
    ids = [d for (d,) in wh.query("select dataset_id from clustering.stg_chroma__embeddings order by dataset_id")]
    x = np.asarray([e for (e,) in wh.query("select embedding from clustering.stg_chroma__embeddings "
                                            "order by dataset_id")], np.float64)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    sims = x @ x.T
    np.fill_diagonal(sims, -np.inf)
    k = 30
    best = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    got = {}
    for dataset_id, neighbor_id, similarity in wh.query(
            "select dataset_id, neighbor_id, similarity from clustering.int_dataset_neighbors_searched"):
        got.setdefault(dataset_id, {})[neighbor_id] = similarity
    at = {d: i for i, d in enumerate(ids)}
    mismatched = 0
    for i, dataset_id in enumerate(ids):
        want = {ids[j] for j in best[i]}
        if set(got[dataset_id]) != want:  # allowed only for a tie at the k-th place (rounding)
            kth = sims[i, best[i, -1]]
            assert all(abs(sims[i, at[n]] - kth) < 1e-6 for n in set(got[dataset_id]) ^ want), dataset_id
            mismatched += 1
        for neighbor_id, similarity in got[dataset_id].items():
            assert similarity == pytest.approx(sims[i, at[neighbor_id]], abs=1e-5)
    print(f"\n{mismatched} lists differ from brute force only by a tie at the k-th place (duplicate texts)")
    # the stored state holds this run's lists
    assert wh.query("select count(*), count(distinct dataset_id) from clustering_state.knn_state") == [
        (len(ids) * k, len(ids))]


def test_datasets_keep_their_keys_and_the_graph_named_by_key_is_the_graph_named_by_id(grown, held_back):
    """Keys: kept across the re-run, new ones above every old one; lists, pairs and edges agree with the ids."""
    wh = grown[0]
    keys = dict(wh.query("select dataset_id, dataset_key from clustering.stg_chroma__embeddings"))
    assert len(set(keys.values())) == len(keys)
    assert {d: keys[d] for d in wh.keys_before} == wh.keys_before
    assert min(keys[d] for d in held_back) > max(wh.keys_before.values())
    lists = wh.query("select dataset_id, neighbor_id, dataset_key, neighbor_key, neighbor_rank, similarity "
                     "from clustering.int_dataset_neighbors_searched")
    assert all((dk, nk) == (keys[d], keys[n]) for d, n, dk, nk, _, _ in lists)
    # the undirected pairs, recomputed by id from the lists: the model's pairs, by key
    want = {}
    for d, n, _, _, rank, sim in lists:
        pair = (min(d, n), max(d, n))
        want.setdefault(pair, []).append((sim, rank))
    name = {k: d for d, k in keys.items()}
    got = {}
    for source_key, target_key, similarity, is_mutual, best_rank in wh.query(
            "select source_key, target_key, similarity, is_mutual, best_rank "
            "from clustering.int_neighbor_pairs_deduplicated"):
        assert source_key < target_key
        got[tuple(sorted((name[source_key], name[target_key])))] = (similarity, is_mutual, best_rank)
    assert set(got) == set(want)
    for pair, seen in want.items():
        assert got[pair] == (max(s for s, _ in seen), len(seen) == 2, min(r for _, r in seen)), pair


def test_state_written_before_keys_existed_is_rebuilt_with_keys_and_the_labels_stay(grown, tmp_path):
    """A cache and k-NN lists of an older version (no key columns): one full read and search, same clusters."""
    wh = grown[0]
    shutil.copy(wh.db, tmp_path / "pipeline.duckdb")
    shutil.copytree(wh.chroma, tmp_path / "chroma")
    old = Warehouse(tmp_path, load_sample=False)
    old.query_write("alter table clustering_state.embedding_cache drop column dataset_key")
    old.query_write("alter table clustering_state.knn_state drop column dataset_key")
    old.query_write("alter table clustering_state.knn_state drop column neighbor_key")
    clusters = old.query("select dataset_id, cluster from main.datasets order by dataset_id")
    old.dbt("build")
    report = old.report
    assert report["pull"]["path"] == "full"
    assert "before datasets had integer keys" in report["pull"]["reason"]
    assert report["knn_update"]["path"] == "full"
    assert "before datasets had integer keys" in report["knn_update"]["reason"]
    assert old.query("select count(*), count(distinct dataset_key), count(dataset_key) "
                     "from clustering_state.embedding_cache") == [(len(clusters),) * 3]
    assert old.query("select count(*) from clustering_state.knn_state where neighbor_key is null") == [(0,)]
    assert old.query("select dataset_id, cluster from main.datasets order by dataset_id") == clusters


def test_the_rerun_updated_the_stored_recall_answers_to_what_a_full_computation_gives(grown):
    """The +5% build updated the recall sample's stored exact answers: equal to brute force and to a full
    measurement (the package's full path on the same rows, what `incremental: false` builds)."""
    import duckdb
    import numpy as np
    import pyarrow as pa

    from mdc_clustering.embeddings import iter_embeddings, rows_reader
    from mdc_clustering.stages.recall import recall_summary, scored_recall_sample

    wh, _, _, _ = grown
    [(path, reason, searched, recall)] = wh.query(
        "select recall_path, recall_reason, samples_searched, recall_at_k from clustering.int_knn_recall_measured")
    assert path == "incremental" and reason.startswith("incremental update: 5.0% of datasets touched (115 new")
    assert 0 < searched < 1000  # the new datasets that entered the sample, and lists that a new one could not join
    con = duckdb.connect()
    embeddings = pa.table({name: [row[i] for row in wh.query(
        "select dataset_id, embedding, embedding_hash from clustering.stg_chroma__embeddings order by dataset_id")]
        for i, name in enumerate(["dataset_id", "embedding", "embedding_hash"])})
    x = np.asarray(embeddings.column("embedding").to_pylist(), np.float32)
    d = x.shape[1]
    con.register("src", embeddings)
    relation = con.sql(f"select dataset_id, embedding::float[{d}] as embedding, embedding_hash from src")
    scored = wh.query("select dataset_id, exact_kth_similarity, found from clustering.int_knn_recall_sample_scored "
                      "order by dataset_id")
    sample = [row[0] for row in scored]
    neighbors = pa.table({name: [row[i] for row in wh.query(
        "select dataset_id, neighbor_id, neighbor_rank, search_dims, ivf_nlist, ivf_nprobe "
        f"from clustering.int_dataset_neighbors_searched where dataset_id in {tuple(sample)}")]
        for i, name in enumerate(["dataset_id", "neighbor_id", "neighbor_rank", "search_dims", "ivf_nlist",
                                  "ivf_nprobe"])})
    full = scored_recall_sample(
        embeddings.select(["dataset_id", "embedding_hash"]), pa.array(sample), neighbors,
        rows_of=rows_reader(relation, con), search_space=lambda: iter_embeddings(relation, normalize=True),
        method="exact", k=30, incremental=False)
    assert full["recall_path"][0].as_py() == "full"
    assert recall_summary(full)["recall_at_k"][0].as_py() == recall
    assert full.column("found").to_pylist() == [row[2] for row in scored]
    # brute force: each sampled dataset's 30th similarity among all others
    unit = x.astype(np.float64) / np.linalg.norm(x, axis=1, keepdims=True)
    at = {i: n for n, i in enumerate(embeddings.column("dataset_id").to_pylist())}
    rows = np.array([at[i] for i in sample])
    sims = unit[rows] @ unit.T
    sims[np.arange(len(rows)), rows] = -np.inf
    kth = -np.sort(-sims, axis=1)[:, 29]
    np.testing.assert_allclose([row[1] for row in scored], kth, atol=1e-5)
    # the state holds every dataset's fingerprint and the sample's answers
    assert wh.query("select count(*), count(exact_neighbor_ids) from clustering_state.recall_state") == [
        (len(at), 1000)]


def test_registry_never_reuses_a_label(grown):
    wh, _, _, registry_before = grown
    rows = wh.query("select label, label_number, status, created_run_id from clustering_state.cluster_label_registry")
    numbers = [n for _, n, _, _ in rows]
    assert len(numbers) == len(set(numbers))
    old = {label: created for label, _, _, created in registry_before}
    for label, _, _status, created in rows:
        if label in old:
            assert created == old[label]  # created_* written once
    active = {label for label, _, status, _ in rows if status == "active"}
    assert active == {c for (c,) in wh.query("select distinct cluster from main.datasets where cluster is not null")}
    born = {label for label, _, _, created in rows if label not in old}
    assert all(int(b.split("_")[1]) > max(n for _, n, _, _ in registry_before) for b in born)


def test_clusters_mart_is_readable(grown):
    wh, _, _, _ = grown
    rows = wh.query(
        "select cluster, size, top_terms, exemplar_ids, exemplar_texts, mean_centroid_similarity, "
        "created_run_id, last_changed_run_id from clustering.clusters order by size desc"
    )
    assert len(rows) == wh.report["clusters"]["n_clusters"]
    for _cluster, size, terms, exemplars, texts, cohesion, created, changed in rows:
        assert len(terms) == 10 and len(exemplars) == min(3, size) and len(texts) == len(exemplars)
        assert 0 < cohesion <= 1 and created and changed
    print("\n" + "\n".join(f"{c} ({s}): {', '.join(t[:6])} | e.g. {x[0]}" for c, s, t, _, x, *_ in rows[:6]))


def test_full_refresh_keeps_the_state_and_every_run_is_in_the_history(grown):
    wh, _, _, _ = grown
    kept = "select label, label_number, created_run_id, created_at, status from clustering_state.cluster_label_registry"
    before = wh.query(kept + " order by label")
    edited = [d for (d,) in wh.query("select dataset_id from main.datasets order by dataset_id limit 5")]
    wh.query_write(f"update main.datasets set text = text || ' (revised)' where dataset_id in {tuple(edited)}")
    wh.dbt("build", "--full-refresh", vars={"figures": True})
    assert wh.query(kept + " order by label") == before  # same data: only last_seen_* moved
    assert wh.query(
        "select count(*) from duckdb_constraints() "
        "where table_name = 'cluster_label_registry' and constraint_type = 'PRIMARY KEY'"
    ) == [(1,)]
    # the third run read from Chroma only the five datasets whose text changed
    assert wh.report["pull"]["path"] == "incremental"
    assert (wh.report["pull"]["read_from_chroma"], wh.report["pull"]["from_cache"]) == (5, 2293 - 5)
    # the same embeddings: the stored k-NN lists are reused whole, none changed
    assert (wh.report["knn_update"]["path"], wh.report["knn_update"]["lists_changed"]) == ("incremental", 0)
    # and the recall sample's exact answers too: no search at all
    assert wh.query("select recall_path, samples_searched from clustering.int_knn_recall_measured") == [
        ("incremental", 0)]
    # three builds, three rows, oldest first: 95% of the sample, then all of it (115 new read), then 5 re-read
    history = wh.query(
        "select pull_path, n_datasets, n_clusters, labels_kept, step_seconds from clustering_state.run_history "
        "order by run_started_at, run_id"
    )
    assert [(path, n) for path, n, *_ in history] == [("full", 2178), ("incremental", 2293), ("incremental", 2293)]
    assert history[2][2] == history[2][3] == wh.report["labels"]["kept"]  # the same data: every cluster kept
    assert wh.report["labels"]["share_of_datasets_keeping_label"] == 1.0  # and every dataset its label
    for *_, seconds in history:
        steps = json.loads(seconds)
        assert {"stg_chroma__embeddings", "int_datasets_clustered", "run_history"} <= steps.keys()
        assert all(value >= 0 for value in steps.values())
    # the picture was drawn before the third run's on-run-end hook wrote its step times, and says so
    [(runs, timed, note)] = wh.query("select n_runs, n_runs_timed, note from clustering.rpt_run_history_drawn")
    assert (runs, timed) == (3, 2) and (wh.report_dir / "run_history.png").stat().st_size > 10_000
    assert note.startswith("run 3 (this one): its step times are recorded when it ends")


def test_place_new_places_only_new_datasets_and_leaves_the_full_runs_unclustered_alone(grown, held_back):
    _, twin, _, _ = grown
    # a full run that leaves datasets unclustered on purpose: the seed's graph (threshold only), dissolving
    seed_graph = {"min_edges_per_dataset": 0, "small_clusters": "dissolve"}
    twin.dbt("build", vars=seed_graph)
    before = dict(twin.query("select dataset_id, cluster from main.datasets"))
    left_alone = {d for d, c in before.items() if c is None}
    assert left_alone, "the seed's graph should leave some datasets unclustered"
    assert dict(twin.query("select dataset_id, unclustered_reason from clustering_state.full_run_datasets "
                           "where cluster is null")).keys() == left_alone
    add_from_sample(SAMPLE, twin.db, twin.chroma, twin.collection, held_back, allow_outside_data=True)
    result = twin.dbt("build", "--selector", "place_new", vars={**seed_graph, "clustering_mode": "place_new"})
    assert "placed" in result.stdout and "no re-clustering" in result.stdout
    after = dict(twin.query("select dataset_id, cluster from main.datasets"))
    for dataset_id, cluster in before.items():
        assert after[dataset_id] == cluster  # existing memberships untouched, the full run's unclustered too
    [(placed, unplaced, seconds)] = twin.query(
        "select any_value(datasets_placed), any_value(datasets_left_unplaced), any_value(placement_seconds) "
        "from clustering.int_datasets_clustered"
    )
    newly = [d for d in held_back if after[d] is not None]
    assert placed + unplaced == len(held_back) and placed == len(newly)
    assert placed > len(held_back) / 2
    assert seconds < 5
    # the state still names the last full run's datasets only: a place_new run writes nothing there
    assert twin.query("select count(*) from clustering_state.full_run_datasets") == [(len(before),)]


def _md5(rows) -> str:
    return hashlib.md5(repr(rows).encode()).hexdigest()


def test_run_operations_show_rename_and_withdraw_labels_writing_only_what_they_say(grown):
    wh, _, _, _ = grown
    shared = {table: _md5(rows) for table, rows in wh.snapshot().items()}  # datasets, engineered_feature_values
    registry = "select * from clustering_state.cluster_label_registry order by label"
    registry_before = wh.query(registry)
    biggest, second = [c for (c,) in wh.query("select cluster from clustering.clusters order by size desc limit 2")]

    shown = wh.dbt("run-operation", "mdc_show_settings", vars={"resolution": 2.0}).stdout
    assert "* resolution = 2.0   (default 1.0)" in shown and "  k_neighbors = 30" in shown
    shown = wh.dbt("run-operation", "mdc_show_cluster", "--args", f"{{label: {biggest}, limit: 3}}").stdout
    [(size, terms)] = wh.query(f"select size, top_terms from clustering.clusters where cluster = '{biggest}'")
    assert f"size this run: {size}" in shown and ", ".join(terms[:8]) in shown
    members = [d for (d,) in wh.query(f"select dataset_id from main.datasets where cluster = '{biggest}' "
                                      "order by dataset_id limit 3")]
    assert all(f"    {m}  " in shown for m in members)

    # bad input: nothing changes
    for args, message in [
        (("mdc_retire_label", "--args", "{label: cluster_99999}"), "no label cluster_99999"),
        (("mdc_retire_label", "--args", "{label: 'x; drop table main.datasets'}"), "label must be a cluster label"),
        (("mdc_rename_label", "--args", f"{{label: {biggest}, name: ''}}"), "name must be text of 1-100"),
    ]:
        result = wh.dbt("run-operation", *args, check=False)
        assert result.returncode != 0 and message in result.stdout, result.stdout[-2000:]
    assert wh.query(registry) == registry_before

    wh.dbt("run-operation", "mdc_rename_label", "--args", f"{{label: {biggest}, name: 'first name'}}")
    wh.dbt("run-operation", "mdc_rename_label", "--args", f"{{label: {biggest}, name: \"it's the name\"}}")
    wh.dbt("run-operation", "mdc_retire_label", "--args", f"{{label: {second}}}")
    after = wh.query(registry)
    changed = [row for row in after if row not in registry_before]
    assert [(row[0], row[-1]) for row in changed] == [(second, "withdrawn")]  # one row, its status
    assert {table: _md5(rows) for table, rows in wh.snapshot().items()} == shared  # the pipeline's tables untouched
    assert wh.query("select label, display_name from clustering_state.cluster_label_names order by named_at") == [
        (biggest, "first name"), (biggest, "it's the name")]  # every rename kept

    members_of_second = {d for (d,) in wh.query(f"select dataset_id from main.datasets where cluster = '{second}'")}
    wh.dbt("build")
    assert wh.query(f"select display_name from clustering.clusters where cluster = '{biggest}'") == [
        ("it's the name",)]
    assert wh.query(f"select count(*) from main.datasets where cluster = '{second}'") == [(0,)]  # never again
    assert wh.query(f"select status from clustering_state.cluster_label_registry where label = '{second}'") == [
        ("withdrawn",)]
    relabelled = dict(wh.query("select dataset_id, cluster from main.datasets"))
    assert all(relabelled[d] is not None for d in members_of_second)  # its datasets got another label
