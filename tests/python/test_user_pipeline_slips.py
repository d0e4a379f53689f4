"""Slips on the user's own pipeline cost an error message, never rows (issue 15).

Each test works on a throw-away pipeline that is not the sample: a DuckDB
file named `user_pipeline.duckdb` with its own datasets, an earlier phase's
features, this phase's features and clusters (from one good build), and its
own Chroma store `user_chroma`. Every slip is checked by md5 of the user's
rows before and after: `datasets`, the earlier phase's feature rows, this
phase's feature rows and the label registry.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import make_store
from dbt_runner import REPO, Warehouse

VARS = {"k_neighbors": 8, "target_degree": 4}
N = 60


def store_env(wh: Warehouse) -> dict:
    """The environment that names the pipeline's own store (the way README's block does)."""
    return {"MDC_CHROMA_PATH": str(wh.chroma), "MDC_CHROMA_COLLECTION": wh.collection}


@pytest.fixture(scope="module")
def user(tmp_path_factory) -> Warehouse:
    """The user's pipeline, built once with its store named by MDC_CHROMA_PATH / MDC_CHROMA_COLLECTION."""
    import duckdb

    root = tmp_path_factory.mktemp("user")
    rng = np.random.default_rng(15)
    vectors = np.vstack([c + 0.3 * rng.normal(size=(N // 3, 8)) for c in rng.normal(size=(3, 8)) * 3])
    ids = [f"user-{i:02d}" for i in range(N)]
    wh = Warehouse.from_arrays(
        root, ids, vectors, collection="user_datasets", db_name="user_pipeline.duckdb", chroma_name="user_chroma"
    )
    con = duckdb.connect(str(wh.db))
    con.execute("""
        insert into main.engineered_feature_values
        select dataset_id, document_id, 'context_token_count', length(text),
               timestamp '2026-01-01', timestamp '2026-01-01'
        from main.datasets
    """)  # an earlier phase's features
    con.close()
    # the sample's (another pipeline's) report folder next to it: never touched
    (root / "reports" / "clustering" / "sample").mkdir(parents=True)
    (root / "reports" / "clustering" / "sample" / "clustering_report.json").write_text("{}\n")
    wh.dbt("build", vars={**VARS, "figures": True}, chroma_vars=False, env=store_env(wh))
    return wh


NO_STORE_ENV = {"MDC_CHROMA_PATH": None, "MDC_CHROMA_COLLECTION": None}


def md5s(wh: Warehouse) -> dict[str, str]:
    """md5 of the user's rows: datasets, earlier-phase features, this phase's features, label registry."""
    from dbt_runner import PHASE_FEATURES

    features = wh.query("select * from main.engineered_feature_values order by dataset_id, document_id, feature_name")
    parts = {
        "datasets": wh.query("select * from main.datasets order by dataset_id"),
        "earlier_phase_features": [row for row in features if row[2] not in PHASE_FEATURES],
        "this_phase_features": [row for row in features if row[2] in PHASE_FEATURES],
        "label_registry": wh.query("select * from clustering_state.cluster_label_registry order by label"),
    }
    return {name: hashlib.md5(repr(rows).encode()).hexdigest() for name, rows in parts.items()}


def _unchanged(wh: Warehouse, reliability, before_md5, before_rows) -> None:
    assert md5s(wh) == before_md5
    assert reliability.compare(before_rows, wh.snapshot()) == 0


def test_the_users_pipeline_built_from_its_own_store(user):
    assert user.query("select count(*), count(cluster) from main.datasets")[0][0] == N
    assert user.query("select count(*) from main.datasets where dataset_id not like 'user-%'") == [(0,)]
    assert user.query("select count(distinct feature_name) from main.engineered_feature_values")[0][0] > 1
    # its report went to its own folder, created by the build; the other pipeline's folder is untouched
    assert user.report_dir == user.root / "reports" / "clustering" / "user_pipeline"
    # the file as the profile gave it (dbt runs in the warehouse's folder, so a relative path is the same file)
    assert (user.root / user.report["parameters"]["pipeline_database"]).resolve() == user.db.resolve()
    assert user.report["parameters"]["chroma_collection"] == "user_datasets"
    assert {p.name for p in user.report_dir.iterdir()} >= {"clustering_report.json", "cluster_map.png"}
    assert (user.root / "reports" / "clustering" / "sample" / "clustering_report.json").read_text() == "{}\n"


@pytest.mark.bad_input
def test_slip_1_forgotten_chroma_settings_stop_before_anything_is_written(user, reliability):
    before_md5, before_rows = md5s(user), user.snapshot()
    # no --vars, no MDC_CHROMA_*: the run used to fall back to the sample's data/chroma
    result = user.dbt("build", chroma_vars=False, env=NO_STORE_ENV, check=False)
    assert result.returncode != 0
    assert f"No Chroma store is set for the pipeline database {user.given(user.db)}" in result.stdout
    assert "MDC_CHROMA_PATH and MDC_CHROMA_COLLECTION are unset" in result.stdout
    assert "--vars '{chroma_path:" in result.stdout and "Nothing was written" in result.stdout
    assert "START" not in result.stdout  # no hook, no model ran
    _unchanged(user, reliability, before_md5, before_rows)
    # one of the two set is not enough either
    result = user.dbt("build", chroma_vars=False, env={**NO_STORE_ENV, "MDC_CHROMA_PATH": str(user.chroma)},
                      check=False)
    assert "MDC_CHROMA_COLLECTION is unset" in result.stdout
    _unchanged(user, reliability, before_md5, before_rows)


@pytest.fixture(scope="module")
def other_store(user) -> Path:
    """Another pipeline's store: one collection with none of the user's ids, one sharing a fifth of them."""
    rng = np.random.default_rng(1)
    path = user.root / "other_chroma"
    make_store(path, "other_datasets", [f"R/ds{i:03d}" for i in range(40)], rng.normal(size=(40, 8)),
               [{"document_id": "rdatasets:R"}] * 40)
    shared = [f"user-{i:02d}" for i in range(12)] + [f"R/ds{i:03d}" for i in range(48)]
    from mdc_clustering.chroma_reader import get_client

    get_client(path).create_collection("partly_shared", embedding_function=None).add(
        ids=shared, embeddings=rng.normal(size=(60, 8)).astype(np.float32),
        metadatas=[{"document_id": "x"}] * 60,
    )
    return path


@pytest.mark.bad_input
@pytest.mark.parametrize(
    ("collection", "counts"),
    [
        ("other_datasets", "0 ids in common; main.datasets of {db} has 60 rows, 0.0% of them in the collection; "
                           "Chroma collection 'other_datasets' at {store} has 40 ids, 0.0% of them in datasets"),
        ("partly_shared", "12 ids in common; main.datasets of {db} has 60 rows, 20.0% of them in the collection; "
                          "Chroma collection 'partly_shared' at {store} has 60 ids, 20.0% of them in datasets"),
    ],
)
def test_store_of_another_pipeline_stops_before_any_model_writes(user, other_store, reliability, collection, counts):
    before_md5, before_rows = md5s(user), user.snapshot()
    result = user.dbt(
        "build", vars={**VARS, "chroma_path": str(other_store), "chroma_collection": collection}, check=False
    )
    assert result.returncode != 0
    out = result.stdout
    assert "ClusteringInputError: The Chroma collection and the datasets table do not belong to the same" in out
    assert counts.format(db=user.given(user.db), store=other_store) in out
    assert "Only in Chroma, e.g.: 'R/ds" in out and "Only in datasets, e.g.: 'user-" in out
    assert "Traceback" not in out
    status = user.run_results()
    assert status["model.mdc_clustering.stg_chroma__ids"] == "error"
    for writer in ("datasets", "engineered_feature_values", "cluster_label_registry"):
        assert status[f"model.mdc_clustering.{writer}"] == "skipped"
    _unchanged(user, reliability, before_md5, before_rows)


@pytest.mark.bad_input
def test_slip_2_typo_in_the_duckdb_path_creates_no_file(user, reliability):
    before_md5, before_rows = md5s(user), user.snapshot()
    typo = user.root / "user_pipline.duckdb"
    result = user.dbt("build", vars=VARS, env={"MDC_DUCKDB_PATH": str(typo)}, check=False)
    assert result.returncode != 0
    assert f"The pipeline's DuckDB file {typo}" in result.stdout
    assert "does not exist; nothing was created" in result.stdout
    assert not typo.exists() and not Path(f"{typo}.wal").exists()
    _unchanged(user, reliability, before_md5, before_rows)


@pytest.mark.bad_input
def test_slip_2_build_script_with_a_users_path_loads_no_sample_and_creates_no_file(user, reliability, tmp_path):
    before_md5, before_rows = md5s(user), user.snapshot()
    typo = user.root / "user_pipline.duckdb"
    env = {
        **os.environ,
        "MDC_DUCKDB_PATH": str(typo),
        **store_env(user),
        "DBT_TARGET_PATH": str(tmp_path / "target"),
        "DBT_LOG_PATH": str(tmp_path / "logs"),
    }
    result = subprocess.run(
        ["bash", str(REPO / "scripts" / "build.sh"), "--vars", "{k_neighbors: 8}"],
        env=env, capture_output=True, text=True, timeout=600,
    )
    out = result.stdout + result.stderr
    assert result.returncode != 0
    assert "the sample is not loaded" in out and "[sample]" not in out
    assert "does not exist; nothing was created or written" in out
    assert not typo.exists()
    _unchanged(user, reliability, before_md5, before_rows)


@pytest.mark.bad_input
def test_contract_violation_stops_naming_the_columns(user, reliability, tmp_path):
    import duckdb

    db = tmp_path / "old_pipeline.duckdb"
    con = duckdb.connect(str(db))
    con.execute("create table main.documents (doi varchar primary key)")
    con.execute("create table main.datasets (dataset_id varchar primary key, document_id varchar, cluster integer)")
    con.execute("insert into main.datasets values ('a', 'd', null)")
    con.close()
    tables = "select table_schema, table_name from information_schema.tables order by all"
    con = duckdb.connect(str(db), read_only=True)
    before = con.execute(tables).fetchall(), con.execute("select * from main.datasets").fetchall()
    con.close()
    result = user.dbt("build", env={"MDC_DUCKDB_PATH": str(db)}, check=False)
    assert result.returncode != 0
    assert (
        f"The table main.datasets of the pipeline database {db} does not follow the data contract: it needs "
        "cluster VARCHAR (is INTEGER), dataset_type VARCHAR (missing), text VARCHAR (missing), "
        "updated_at TIMESTAMP (missing)"
    ) in result.stdout
    con = duckdb.connect(str(db), read_only=True)
    after = con.execute(tables).fetchall(), con.execute("select * from main.datasets").fetchall()
    con.close()
    assert after == before  # the rows, and no table created: not even engineered_feature_values


# --- The sample goes into the project's data/ only ---------------------------------------------------


@pytest.mark.bad_input
def test_no_code_path_writes_the_sample_outside_data_without_the_flag(tmp_path, monkeypatch):
    from mdc_clustering import sample
    from mdc_clustering.sample import SampleTargetError, add_from_sample, load_chroma, load_database

    db, store = tmp_path / "user_pipeline.duckdb", tmp_path / "chroma"
    sample_dir = REPO / "data" / "sample"
    for write in (
        lambda: load_chroma(sample_dir, store, "c_1"),
        lambda: load_database(sample_dir, db),
        lambda: add_from_sample(sample_dir, db, store, "c_1", {"AER/Affairs"}),
    ):
        with pytest.raises(SampleTargetError, match="outside the project's data folder"):
            write()
    # the command line: refused before either is written, naming the flag
    result = subprocess.run(
        [sys.executable, "-m", "mdc_clustering.sample", "--db", str(db), "--chroma", str(store)],
        capture_output=True, text=True, cwd=tmp_path,
    )
    assert result.returncode == 2 and "--allow-outside-data" in result.stderr
    assert not db.exists() and not store.exists() and list(tmp_path.iterdir()) == []
    # its defaults are the project's data/, whatever MDC_DUCKDB_PATH says
    calls = []
    monkeypatch.setattr(sample, "load_chroma", lambda *a, **k: calls.append(("chroma", a[1], k)))
    monkeypatch.setattr(sample, "load_database", lambda *a, **k: calls.append(("db", a[1], k)))
    monkeypatch.setenv("MDC_DUCKDB_PATH", str(db))
    sample.main([])
    assert [(what, path) for what, path, _ in calls] == [
        ("chroma", sample.PROJECT_DATA / "chroma"), ("db", sample.PROJECT_DATA / "pipeline.duckdb")
    ]
    assert all(not k["allow_outside_data"] for _, _, k in calls)
    # and nothing else in the project reads the sample's files to write them somewhere
    readers = []
    for folder in ("src", "scripts", "benchmarks", "python_models", "macros", "models"):
        for path in (REPO / folder).rglob("*"):
            if path.suffix in (".py", ".sh", ".sql") and path.name not in ("sample.py", "make_sample_embeddings.py"):
                text = path.read_text()
                if "embeddings.parquet" in text or "datasets.parquet" in text:
                    readers.append(str(path.relative_to(REPO)))
    assert readers == []
    build_sh = (REPO / "scripts" / "build.sh").read_text()
    assert "mdc_clustering.sample --db" not in build_sh and "--allow-outside-data" not in build_sh


def test_id_overlap_above_the_threshold_passes_and_counts_both_sides():
    from mdc_clustering.errors import ClusteringInputError
    from mdc_clustering.validation import check_id_overlap

    names = {"chroma_source": "store", "datasets_source": "datasets"}
    chroma, datasets = ["a", "b", "c", "x"], ["a", "b", "c", "d", "e"]
    assert check_id_overlap(chroma, datasets, min_share=0.5, **names) == (2, 1)  # 3/5 and 3/4 reach 0.5
    with pytest.raises(ClusteringInputError, match=r"3 ids in common; datasets has 5 rows, 60.0%.*store has 4 ids"):
        check_id_overlap(chroma, datasets, min_share=0.7, **names)
    assert check_id_overlap(["q"], datasets, min_share=0, **names) == (5, 1)  # 0 never stops
    with pytest.raises(ClusteringInputError, match="datasets has 0 rows"):
        check_id_overlap(chroma, [], min_share=0.5, **names)


def test_readme_and_docs_list_the_contract_that_the_build_checks():
    import re

    macro = (REPO / "macros" / "pipeline_tables.sql").read_text()
    body = macro[macro.index("macro pipeline_contract"):macro.index("endmacro")]
    checked, table = set(), None
    for line in body.splitlines():
        if m := re.match(r"\s*'(\w+)': \[", line):
            table = m.group(1)
        for column, type_ in re.findall(r"\('(\w+)', '(\w+)'\)", line):
            checked.add((table, column, type_))
    assert len(checked) == 13
    row = re.compile(r"^\| `(\w+)` \| `(\w+)`(?: \(primary key\))? \| `(\w+)` \|", re.M)
    for doc in ("README.md", "models/_shared__docs.md"):
        assert set(row.findall((REPO / doc).read_text())) == checked, doc
