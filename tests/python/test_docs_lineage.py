"""`dbt docs` lineage, checked in headless Chromium: every step of the phase is a node, joined in order."""

from __future__ import annotations

import pytest

from mdc_clustering.lineage import REQUIRED_EDGES, missing_lineage, read_lineage


@pytest.fixture(scope="module")
def lineage(sample):
    sample.dbt("docs", "generate", "--static")
    html = sample.root / "target" / "static_index.html"
    assert html.is_file()
    return read_lineage(html, screenshot=sample.root / "lineage.png"), sample.root / "lineage.png"


def test_lineage_graph_holds_every_step(lineage):
    (nodes, edges), screenshot = lineage
    assert missing_lineage(nodes, edges) == []
    assert screenshot.stat().st_size > 20_000


def test_the_check_fails_when_a_node_disappears(lineage):
    (nodes, edges), _ = lineage
    gone = "model.mdc_clustering.int_graph_edges_filtered"
    problems = missing_lineage(nodes - {gone}, {e for e in edges if gone not in e})
    assert f"node {gone}" in problems
    assert any(p.startswith("edge") and gone in p for p in problems)
    assert len(REQUIRED_EDGES) >= 20


def test_every_model_source_column_and_macro_is_described(lineage, sample):
    import json

    manifest = json.loads((sample.root / "target" / "manifest.json").read_text())
    catalog = json.loads((sample.root / "target" / "catalog.json").read_text())
    missing = []
    for uid, node in {**manifest["nodes"], **manifest["sources"]}.items():
        if node["resource_type"] not in ("model", "source") or node["package_name"] != "mdc_clustering":
            continue
        if not node["description"].strip():
            missing.append(uid)
        documented = {name for name, col in node["columns"].items() if col["description"].strip()}
        # a source may hold more columns than the contract names, and so may the pipeline's own tables
        # that the marts of schema main merge into; the project's own models may not
        theirs = node["resource_type"] == "source" or node.get("schema") == "main"
        built = {} if theirs else catalog["nodes"].get(uid, {}).get("columns", {})
        missing += [f"{uid}.{col}" for col in node["columns"] if col not in documented]
        missing += [f"{uid}.{col}" for col in built if col.lower() not in documented]
    for uid, macro in manifest["macros"].items():
        if macro["package_name"] == "mdc_clustering" and not macro["description"].strip():
            missing.append(uid)
    assert missing == [], "\n".join(missing)
