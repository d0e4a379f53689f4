"""Check the lineage graph of `dbt docs` in a real (headless) browser, or draw the DAG from the manifest.

Opens the single-file docs page (`dbt docs generate --static` ->
`target/static_index.html`) in Chromium through Playwright, waits for the
docs app to build its lineage graph, and reads the graph's nodes and edges
out of the app itself (its `graph` service), so that what is checked is what
a person sees. Needs the dev extra (playwright) and Debian's chromium.

The README's picture is not that page's screenshot (at README width its
labels cannot be read): :func:`mdc_clustering.lineage_drawing.draw_lineage`
draws the sources, models and exposures from ``target/manifest.json``.

Usage::

    python -m mdc_clustering.lineage target/static_index.html [--screenshot lineage_page.png]
    python -m mdc_clustering.lineage --manifest target/manifest.json --draw docs/lineage.png
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

__all__ = ["REQUIRED_EDGES", "find_chromium", "missing_lineage", "read_lineage"]

_M = "model.mdc_clustering."
# The phase's lineage, edge by edge: Chroma -> embeddings -> k-NN -> threshold
# -> edges -> Leiden -> datasets / engineered_feature_values / report.
REQUIRED_EDGES = [
    ("source.mdc_clustering.chroma.collections", _M + "stg_chroma__ids"),
    (_M + "stg_chroma__ids", _M + "stg_chroma__embeddings_pulled"),
    (_M + "stg_chroma__embeddings_pulled", _M + "embedding_cache"),
    (_M + "embedding_cache", _M + "stg_chroma__embeddings"),
    (_M + "stg_chroma__embeddings", _M + "int_dataset_neighbors_updated"),
    (_M + "int_dataset_neighbors_updated", _M + "knn_state"),
    (_M + "knn_state", _M + "int_dataset_neighbors_searched"),
    (_M + "int_dataset_neighbors_searched", _M + "int_neighbor_pairs_deduplicated"),
    (_M + "int_neighbor_pairs_deduplicated", _M + "int_similarity_threshold_selected"),
    (_M + "int_similarity_threshold_selected", _M + "int_graph_edges_filtered"),
    (_M + "int_graph_edges_filtered", _M + "int_datasets_clustered"),
    (_M + "int_datasets_clustered", _M + "datasets"),
    ("source.mdc_clustering.pipeline.datasets", _M + "stg_pipeline__datasets"),
    (_M + "stg_pipeline__datasets", _M + "datasets"),
    (_M + "int_datasets_clustered", _M + "rpt_clustering_summary"),
    (_M + "rpt_clustering_summary", "exposure.mdc_clustering.clustering_report"),
    (_M + "rpt_clustering_figures", "exposure.mdc_clustering.clustering_report"),
    (_M + "int_dataset_neighbors_searched", _M + "int_reference_neighbors_searched"),
    (_M + "int_reference_neighbors_searched", _M + "int_neighborhood_stats_computed"),
    (_M + "int_neighborhood_stats_computed", _M + "int_dataset_features_unpivoted"),
    (_M + "int_datasets_clustered", _M + "int_datasets_centroid_scored"),
    (_M + "int_datasets_centroid_scored", _M + "int_dataset_features_unpivoted"),
    (_M + "int_dataset_features_unpivoted", _M + "engineered_feature_values"),
    ("source.mdc_clustering.pipeline.engineered_feature_values", _M + "stg_pipeline__engineered_feature_values"),
    (_M + "engineered_feature_values", "exposure.mdc_clustering.dataset_type_classifier"),
]

_CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def find_chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    raise FileNotFoundError(
        "No Chromium found: install Debian's package (apt-get install chromium); "
        "scripts/test.sh does this when it runs as root."
    )


def read_lineage(html: str | Path, *, screenshot: str | Path | None = None) -> tuple[set[str], set[tuple[str, str]]]:
    """Open the docs page in headless Chromium and return the lineage graph's (nodes, edges).

    When ``screenshot`` is given, the full lineage graph (data tests hidden)
    is saved there as a PNG.
    """
    from playwright.sync_api import sync_playwright

    url = Path(html).resolve().as_uri() + "#!/overview?g_v=1"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=find_chromium(), args=_CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1500, "height": 850}, device_scale_factor=2)
            page.goto(url)
            page.wait_for_function(
                "() => { try { const g = angular.element(document.body).injector().get('graph');"
                " return Object.keys(g.graph.pristine.nodes).length > 0; } catch (e) { return false; } }",
                timeout=60_000,
            )
            nodes, edges = page.evaluate(
                """() => {
                    const g = angular.element(document.body).injector().get('graph').graph.pristine;
                    const edges = [];
                    for (const list of Object.values(g.edges)) {
                        for (const e of list) { edges.push([e.data.source, e.data.target]); }
                    }
                    return [Object.keys(g.nodes), edges];
                }"""
            )
            if screenshot is not None:
                page.goto(
                    Path(html).resolve().as_uri()
                    + "#!/overview?g_v=1&g_e=test_type:data test_type:unit"
                )
                page.wait_for_timeout(4000)
                page.screenshot(path=str(screenshot))
        finally:
            browser.close()
    return set(nodes), {(a, b) for a, b in edges}


def missing_lineage(nodes: set[str], edges: set[tuple[str, str]]) -> list[str]:
    """The required nodes and edges that the graph lacks (empty when all are there)."""
    problems = []
    for a, b in REQUIRED_EDGES:
        for node in (a, b):
            if node not in nodes and f"node {node}" not in problems:
                problems.append(f"node {node}")
        if (a, b) not in edges:
            problems.append(f"edge {a} -> {b}")
    return problems


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="Check the dbt docs lineage graph in headless Chromium, or draw the DAG from the manifest."
    )
    parser.add_argument("html", type=Path, nargs="?", help="target/static_index.html from `dbt docs generate --static`")
    parser.add_argument("--screenshot", type=Path, default=None, help="save the docs page's lineage graph here")
    parser.add_argument("--manifest", type=Path, default=None, help="target/manifest.json (from `dbt parse`)")
    parser.add_argument("--draw", type=Path, default=None, help="draw the manifest's DAG to this PNG")
    args = parser.parse_args(argv)
    if (args.manifest is None) != (args.draw is None):
        parser.error("--manifest and --draw go together")
    if args.html is None and args.manifest is None:
        parser.error("give the docs page to check, or --manifest and --draw")
    if args.manifest is not None:
        from .lineage_drawing import draw_lineage

        layout = draw_lineage(args.manifest, args.draw)
        print(f"drew {len(layout.graph.nodes)} nodes, {len(layout.graph.edges)} edges in {len(layout.rows)} rows "
              f"({layout.crossings} crossings) to {args.draw}")
    if args.html is None:
        return
    nodes, edges = read_lineage(args.html, screenshot=args.screenshot)
    problems = missing_lineage(nodes, edges)
    print(f"lineage graph: {len(nodes)} nodes, {len(edges)} edges; {len(REQUIRED_EDGES)} required edges checked")
    for problem in problems:
        print(f"missing {problem}")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
