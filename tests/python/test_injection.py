"""Hostile vars (quotes, semicolons, SQL, Jinja, path traversal) cannot run SQL or write files.

Each test runs `dbt build` with one hostile var on a small built warehouse and
checks: (a) a clear error naming the var, or harmless use as a literal;
(b) the shared tables unchanged (and not dropped); (c) no file written outside
the folders dbt and the project write by design (target/, logs/,
reports/clustering/), in particular not where a traversal would lead.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from dbt_runner import Warehouse

VARS = {"k_neighbors": 8, "target_degree": 4}
DROP = "x'; drop table main.datasets; --"
JINJA = "{{ run_query('drop table main.datasets') }}"
TRAVERSAL = "../../escaped"
# folders of the warehouse that dbt and the project write to by design
WRITABLE = ("target", "logs", os.path.join("reports", "clustering"))


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Warehouse:
    """A built synthetic warehouse at <site>/a/wh; <site>/outside is an empty folder next to it."""
    root = tmp_path_factory.mktemp("site")
    (root / "outside").mkdir()
    rng = np.random.default_rng(5)
    vectors = np.vstack([c + 0.3 * rng.normal(size=(20, 8)) for c in rng.normal(size=(3, 8)) * 3])
    wh = Warehouse.from_arrays(root / "a" / "wh", [f"ds-{i:02d}" for i in range(len(vectors))], vectors)
    wh.dbt("build", vars=VARS)
    wh.site = root
    return wh


def _files(root: Path, wh: Warehouse) -> dict[str, tuple[int, int]]:
    """Every file under ``root`` outside the warehouse's by-design folders, with its size and mtime."""
    skip = [wh.root / w for w in WRITABLE] + [wh.chroma]
    found = {}
    for folder, dirs, names in os.walk(root):
        here = Path(folder)
        dirs[:] = [d for d in dirs if here / d not in skip]
        for name in names:
            path = here / name
            if path.parent == wh.root and name.startswith("pipeline.duckdb"):
                continue  # the database itself: compared by content below
            stat = path.stat()
            found[str(path.relative_to(root))] = (stat.st_size, stat.st_mtime_ns)
    return found


def _run_hostile(wh: Warehouse, reliability, name: str, value, *, succeeds: bool = False):
    reliability.bad_input(f"{name} = {value!r}")
    before_tables = wh.snapshot()
    before_files = _files(wh.site, wh)
    escaped = (wh.root / TRAVERSAL).resolve()
    result = wh.dbt("build", vars={**VARS, name: value}, check=False)
    after_tables = wh.snapshot()  # fails if a table was dropped
    reliability.compare(before_tables, after_tables)
    assert after_tables == before_tables, "the shared tables changed"
    assert _files(wh.site, wh) == before_files, "a file was written outside target/, logs/, reports/clustering/"
    assert not escaped.exists() and not any((wh.site / "outside").iterdir())
    assert (result.returncode == 0) == succeeds, result.stdout[-3000:]
    return result


@pytest.mark.bad_input
@pytest.mark.parametrize("value", [DROP, TRAVERSAL])
def test_hostile_collection_name_is_refused_naming_the_var(site, reliability, value):
    result = _run_hostile(site, reliability, "chroma_collection", value)
    assert "var 'chroma_collection' must be a Chroma collection name" in result.stdout
    assert "START python table model" not in result.stdout


@pytest.mark.bad_input
@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("chroma_collection", JINJA),
        ("chroma_path", "{% do run_query('drop table main.datasets') %}"),
        ("reference_chroma_path", "{{ adapter.execute('drop table main.datasets') }}"),
        ("k_neighbors", "{{ 30 }}"),
        ("not_a_var_of_this_project", JINJA),
    ],
)
def test_jinja_in_a_var_is_refused_before_dbt_renders_it(site, reliability, name, value):
    # dbt renders a string var as Jinja when it is read: without the check, the first of these
    # dropped main.datasets from inside on-run-start.
    result = _run_hostile(site, reliability, name, value)
    assert f"var '{name}' holds Jinja markup" in result.stdout
    assert "START python table model" not in result.stdout


@pytest.mark.bad_input
@pytest.mark.parametrize("value", [DROP])
def test_hostile_reference_collection_is_refused_naming_the_var(site, reliability, value):
    result = _run_hostile(site, reliability, "reference_collection", value)
    assert "var 'reference_collection' must be a Chroma collection name" in result.stdout


@pytest.mark.bad_input
@pytest.mark.parametrize(
    ("name", "role", "value"),
    [
        ("chroma_path", "clustered", DROP),
        ("chroma_path", "clustered", TRAVERSAL),
        ("reference_chroma_path", "reference", DROP),
    ],
)
def test_hostile_chroma_path_is_a_harmless_literal_and_a_missing_store(site, reliability, name, role, value):
    result = _run_hostile(site, reliability, name, value)
    # stored verbatim (quoted literal, never rendered as Jinja), then read as a path: no such store
    assert site.query(f"select chroma_path from chroma.collections where collection_role = '{role}'") == [(value,)]
    assert "Chroma store not found" in result.stdout
    assert repr(value) in result.stdout or str((site.root / value).resolve()) in result.stdout


@pytest.mark.bad_input
@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("chroma_path", "data/chroma\n; drop table main.datasets"),
        ("chroma_path", ["not", "a", "path"]),
        ("reference_chroma_path", ""),
    ],
)
def test_path_var_that_is_not_plain_text_is_refused_naming_the_var(site, reliability, name, value):
    result = _run_hostile(site, reliability, name, value)
    assert f"var '{name}' must be a path to a Chroma persistent directory" in result.stdout
    assert "START python table model" not in result.stdout


@pytest.mark.bad_input
@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("data", "var 'cluster_term_stop_words' must be a list of words"),
        (["fine", "has,comma"], "var 'cluster_term_stop_words' must be a list of words"),
        (None, "var 'cluster_term_stop_words' must be a list of words"),
    ],
)
def test_stop_words_that_are_not_a_list_of_words_are_refused(site, reliability, value, message):
    result = _run_hostile(site, reliability, "cluster_term_stop_words", value)
    assert message in result.stdout


@pytest.mark.bad_input
def test_hostile_stop_words_are_only_words(site, reliability):
    words = [DROP, JINJA, TRAVERSAL, "'''; import os; os.system('touch pwned') #", '"); drop table x; --']
    _run_hostile(site, reliability, "cluster_term_stop_words", words, succeeds=True)
    assert not list(site.root.rglob("pwned"))
    assert site.query("select count(*) from clustering.clusters")[0][0] > 0


@pytest.mark.bad_input
@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("threshold_method", DROP, "var 'threshold_method' must be one of"),
        ("min_cluster_size", "2; drop table main.datasets", "var 'min_cluster_size' must be a positive integer"),
        ("resolution", "1) as x; drop table main.datasets; --", "var 'resolution' must be a positive number"),
    ],
)
def test_hostile_value_of_a_var_rendered_into_sql_is_refused(site, reliability, name, value, message):
    result = _run_hostile(site, reliability, name, value)
    assert message in result.stdout
