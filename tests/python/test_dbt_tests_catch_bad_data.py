"""The dbt tests for the cluster rules fail on deliberately broken tables."""

from __future__ import annotations

import shutil

import duckdb
import pytest
from dbt_runner import Warehouse

BREAKAGES = {
    # test name prefix (as dbt names it) -> SQL that breaks the rule it guards
    "cluster_size_at_least_int_datasets_clustered": (
        "update clustering.int_datasets_clustered set cluster = 'cluster_lonely' "
        "where dataset_id = (select min(dataset_id) from clustering.int_datasets_clustered where cluster is not null)"
    ),
    "unique_int_datasets_clustered_dataset_id": (
        "insert into clustering.int_datasets_clustered "
        "select * from clustering.int_datasets_clustered order by dataset_id desc limit 1"
    ),
    "undirected_pairs_once_int_graph_edges_filtered": (
        "insert into clustering.int_graph_edges_filtered "
        "select target_key, source_key, weight, is_mutual, is_below_threshold "
        "from clustering.int_graph_edges_filtered limit 1"
    ),
    "values_between_int_dataset_neighbors_updated_similarity": (
        "update clustering.int_dataset_neighbors_updated set similarity = 1.5 where neighbor_rank = 1 "
        "and dataset_id = (select min(dataset_id) from clustering.int_dataset_neighbors_updated)"
    ),
    "no_self_loops_int_dataset_neighbors_updated": (
        "update clustering.int_dataset_neighbors_updated set neighbor_key = dataset_key where neighbor_rank = 30 "
        "and dataset_id = (select max(dataset_id) from clustering.int_dataset_neighbors_updated)"
    ),
    # the view's test checks the lists the last run wrote: a list written (list_changed) and stored twice
    "unique_combination_of_columns_int_dataset_neighbors_searched_dataset_key__neighbor_rank": (
        "update clustering.int_dataset_neighbors_updated set list_changed = true "
        "where dataset_id = (select min(dataset_id) from clustering.int_dataset_neighbors_updated); "
        "insert into clustering_state.knn_state select * from clustering_state.knn_state "
        "where dataset_id = (select min(dataset_id) from clustering.int_dataset_neighbors_updated) "
        "and neighbor_rank = 1"
    ),
    "assert_threshold_has_one_row": "delete from clustering.int_similarity_threshold_selected",
    "clustered_datasets_are_embedded_datasets": (
        "delete from clustering_state.embedding_cache where dataset_id = "
        "(select min(dataset_id) from main.datasets where cluster is not null)"
    ),
}


@pytest.fixture(scope="module")
def broken(sample, tmp_path_factory):
    root = tmp_path_factory.mktemp("broken")
    shutil.copy(sample.db, root / "pipeline.duckdb")
    wh = Warehouse(root, load_sample=False)
    wh.chroma = sample.chroma
    con = duckdb.connect(str(wh.db))
    for sql in BREAKAGES.values():
        con.execute(sql)
    con.close()
    result = wh.dbt("test", check=False)
    assert result.returncode != 0
    return wh.run_results()


@pytest.mark.parametrize("test_name", sorted(BREAKAGES))
def test_broken_rule_is_caught(broken, test_name):
    statuses = {uid: status for uid, status in broken.items() if test_name in uid}
    assert statuses, f"no dbt test named like {test_name}"
    assert "fail" in statuses.values(), statuses


def test_untouched_rules_still_pass(broken):
    # the unit tests and the source tests saw no broken data
    unit = "unit_test.mdc_clustering.int_neighbor_pairs_deduplicated.pairs_are_undirected_once_each_without_self_loops"
    assert broken[unit] == "pass"
    assert all(s == "pass" for uid, s in broken.items() if "source_unique_pipeline" in uid)


def test_max_cluster_size_rule(sample):
    selector = "test_name:cluster_size_at_most"
    result = sample.dbt("test", "--select", selector, vars={"max_cluster_size": 5}, check=False)
    assert result.returncode != 0
    statuses = {s for uid, s in sample.run_results().items() if uid.startswith("test.")}
    assert statuses == {"fail"}
    sample.dbt("test", "--select", selector)  # passes without the cap
