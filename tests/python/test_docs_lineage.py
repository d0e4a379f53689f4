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
