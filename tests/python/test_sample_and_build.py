"""The embedded sample loads idempotently and `dbt build` runs on it."""

from __future__ import annotations

from dbt_runner import Warehouse


def test_sample_load_is_idempotent(tmp_path):
    from mdc_clustering.sample import load_chroma, load_database

    wh = Warehouse(tmp_path)
    before = wh.query("select count(*), sum(hash(dataset_id, text)) from main.datasets")
    assert before[0][0] == 2293
    assert not load_chroma(wh.root.parent, wh.chroma, wh.collection, allow_outside_data=True)  # skipped: store exists
    from dbt_runner import REPO

    assert not load_database(REPO / "data" / "sample", wh.db, allow_outside_data=True)  # skipped: datasets present
    assert wh.query("select count(*), sum(hash(dataset_id, text)) from main.datasets") == before


def test_sample_tables_follow_the_contract(tmp_path):
    built = Warehouse(tmp_path)
    assert built.query("select count(*) from main.documents") == [(74,)]
    assert built.query("select count(*), count(cluster), count(dataset_type) from main.datasets") == [(2293, 0, 0)]
    names = built.query("select distinct feature_name from main.engineered_feature_values order by 1")
    assert [n for (n,) in names][:3] == ["context_char_length", "context_digit_share", "context_token_count"]
    pk = built.query(
        "select constraint_type from duckdb_constraints() "
        "where table_name = 'engineered_feature_values' and constraint_type = 'PRIMARY KEY'"
    )
    assert pk == [("PRIMARY KEY",)]


def test_build_pulls_every_embedding(sample):
    built = sample
    sql = "select count(*), min(len(embedding)), max(len(embedding)) from clustering.stg_chroma__embeddings"
    assert built.query(sql) == [(2293, 384, 384)]
    # every embedded dataset has a row in datasets and the same document
    assert built.query(
        "select count(*) from clustering.stg_chroma__embeddings e "
        "join main.datasets d using (dataset_id) where d.document_id = e.document_id"
    ) == [(2293,)]
