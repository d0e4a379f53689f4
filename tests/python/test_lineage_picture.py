"""The README's lineage picture (docs/lineage.png), drawn from dbt's manifest, checked against independent facts:
the manifest's JSON read directly, the model files on disk and the colours in dbt_project.yml."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from dbt_runner import REPO, Warehouse

from mdc_clustering.lineage import main as lineage_main
from mdc_clustering.lineage_drawing import draw_lineage, lineage_graph

PROJECT = "mdc_clustering"


@pytest.fixture(scope="module")
def manifest(tmp_path_factory) -> dict:
    """`dbt parse` of the project (no build, no database needed)."""
    root = tmp_path_factory.mktemp("parse")
    Warehouse(root, load_sample=False).dbt("parse")
    return json.loads((root / "target" / "manifest.json").read_text())


@pytest.fixture(scope="module")
def drawn(manifest, tmp_path_factory):
    path = tmp_path_factory.mktemp("picture") / "lineage.png"
    return draw_lineage(manifest, path), path


def test_the_picture_holds_every_model_source_and_exposure_and_no_test(manifest, drawn):
    layout, _ = drawn
    ours = {
        uid for uid, n in manifest["nodes"].items() if n["package_name"] == PROJECT and n["resource_type"] == "model"
    }
    ours |= {uid for uid, s in manifest["sources"].items() if s["package_name"] == PROJECT}
    ours |= {uid for uid, e in manifest["exposures"].items() if e["package_name"] == PROJECT}
    assert set(layout.rank) == ours
    # and the models are exactly the model files on disk
    files = {p.stem for p in (REPO / "models").rglob("*.sql")}
    files |= {p.stem for p in (REPO / "python_models").rglob("*.py")}
    assert {n.label for n in layout.graph.nodes.values() if n.kind == "model"} == files
    assert not any(uid.startswith(("test.", "unit_test.")) for uid in layout.rank)


def test_every_edge_is_in_the_manifest_and_goes_down(manifest, drawn):
    layout, _ = drawn
    drawn_nodes = set(layout.rank)
    expected = {
        (parent, child)
        for parent, children in manifest["child_map"].items()
        for child in children
        if parent in drawn_nodes and child in drawn_nodes
    }
    assert set(layout.graph.edges) == expected
    assert len(expected) > 60
    assert all(layout.rank[a] < layout.rank[b] for a, b in expected)


def test_models_are_banded_and_coloured_by_folder_as_dbt_project_yml_says(manifest, drawn):
    layout, _ = drawn
    config = yaml.safe_load((REPO / "dbt_project.yml").read_text())["models"][PROJECT]
    colours = {folder: value["+docs"]["node_color"] for folder, value in config.items() if not folder.startswith("+")}
    folders = set()
    for uid, node in layout.graph.nodes.items():
        if node.kind != "model":
            continue
        folder = Path(manifest["nodes"][uid]["original_file_path"]).parts[1]
        folders.add(folder)
        assert layout.band[uid] == node.layer == folder, uid
        assert node.colour == colours[folder], uid
    # every model folder has its own colour in dbt_project.yml (so dbt docs groups them too)
    assert folders == set(colours)
    assert len(set(colours.values())) == len(colours)
    # bands, top to bottom, do not interleave: sources, staging, intermediate, marts, reports, exposures
    assert layout.graph.layers == ("sources", "staging", "intermediate", "marts", "reports", "exposures")
    spans = [[layout.rank[u] for u, b in layout.band.items() if b == layer] for layer in layout.graph.layers]
    assert all(max(upper) < min(lower) for upper, lower in zip(spans, spans[1:], strict=False))


def test_boxes_do_not_overlap_and_the_picture_fits_a_readme(drawn):
    from PIL import Image

    layout, path = drawn
    for row in layout.rows:
        for left, right in zip(row, row[1:], strict=False):
            assert layout.x[right] - layout.x[left] >= (layout.width[left] + layout.width[right]) / 2, (left, right)
    width, height = Image.open(path).size
    # 20 px labels: at least 9 px when the README shows the picture 900 px wide (the width sets that; the
    # height grows with the DAG's rows: the pull and the k-NN lists each run through a state table)
    assert 1600 <= width <= 2000 and 1000 <= height <= 3200


def tiny_manifest() -> dict:
    """A hand-built manifest: two sources, staging / marts models, a test, an exposure, and another package."""

    def model(name, folder, deps, colour, package="p"):
        return {
            "resource_type": "model", "package_name": package, "name": name, "fqn": [package, folder, name],
            "config": {"docs": {"node_color": colour}}, "relation_name": f'"db"."s"."{name}"', "language": "sql",
            "depends_on": {"nodes": deps},
        }

    nodes = {
        "model.p.stg_a": model("stg_a", "staging", ["source.p.raw.a"], "#111111"),
        "model.p.stg_b": model("stg_b", "staging", ["source.p.raw.b"], "#111111"),
        "model.p.int_ab_joined": model("int_ab_joined", "intermediate", ["model.p.stg_a", "model.p.stg_b"], "#222222"),
        "model.p.abs": model("abs", "marts", ["model.p.int_ab_joined", "model.p.stg_a"], "#333333"),
        # a staging model reading a mart: drawn below the mart, so the edge still goes down
        "model.p.stg_late": model("stg_late", "staging", ["model.p.abs"], "#111111"),
        "model.other.x": model("x", "marts", ["model.p.abs"], "#444444", package="other"),
        "test.p.unique_abs_id.1": {
            "resource_type": "test", "package_name": "p", "depends_on": {"nodes": ["model.p.abs"]},
        },
    }
    source = {"package_name": "p", "source_name": "raw", "relation_name": None}
    return {
        "metadata": {"project_name": "p"},
        "nodes": nodes,
        "sources": {"source.p.raw.a": {**source, "name": "a"}, "source.p.raw.b": {**source, "name": "b"}},
        "exposures": {"exposure.p.app": {"package_name": "p", "name": "app", "depends_on": {"nodes": ["model.p.abs"]}}},
    }


def test_a_removed_model_disappears_with_its_edges(tmp_path):
    whole = tiny_manifest()
    layout = draw_lineage(whole, tmp_path / "whole.png")
    assert set(layout.rank) == {
        "source.p.raw.a", "source.p.raw.b", "model.p.stg_a", "model.p.stg_b", "model.p.int_ab_joined",
        "model.p.abs", "model.p.stg_late", "exposure.p.app",
    }
    assert all(layout.rank[a] < layout.rank[b] for a, b in layout.graph.edges)
    assert layout.band["model.p.stg_late"] == "marts" and layout.graph.nodes["model.p.stg_late"].layer == "staging"
    assert layout.graph.layers == ("sources", "staging", "intermediate", "marts", "exposures")

    smaller = tiny_manifest()
    del smaller["nodes"]["model.p.int_ab_joined"]
    smaller["nodes"]["model.p.abs"]["depends_on"]["nodes"].remove("model.p.int_ab_joined")
    less = draw_lineage(smaller, tmp_path / "smaller.png")
    assert set(less.rank) == set(layout.rank) - {"model.p.int_ab_joined"}
    assert not any("model.p.int_ab_joined" in edge for edge in less.graph.edges)
    assert less.graph.edges == {e for e in layout.graph.edges if "model.p.int_ab_joined" not in e}
    assert "intermediate" not in less.graph.layers
    assert (tmp_path / "smaller.png").stat().st_size > 5_000


def test_a_manifest_without_the_packages_nodes_is_refused(tmp_path):
    with pytest.raises(ValueError, match="nothing to draw"):
        draw_lineage(tiny_manifest(), tmp_path / "x.png", package="nobody")
    assert lineage_graph(tiny_manifest(), package="other").nodes.keys() == {"model.other.x"}


def test_the_command_line_draws_from_a_manifest_file(tmp_path, capsys):
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps(tiny_manifest()))
    lineage_main(["--manifest", str(manifest), "--draw", str(tmp_path / "lineage.png")])
    assert "drew 8 nodes" in capsys.readouterr().out
    assert (tmp_path / "lineage.png").stat().st_size > 5_000
    with pytest.raises(SystemExit):
        lineage_main(["--draw", str(tmp_path / "other.png")])
