"""The cluster browser (one offline HTML file) in headless Chromium, its colours and the map's layout."""

from __future__ import annotations

import colorsys

import numpy as np
import pyarrow as pa
import pytest

from mdc_clustering.browser import UNCLUSTERED_COLOUR, cluster_colours, inspect_browser, write_browser
from mdc_clustering.layout import layout_2d, stratified_rows


def _hls(colour: str) -> tuple[float, float, float]:
    return colorsys.rgb_to_hls(*(int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)))


def test_cluster_colours_are_distinct_and_never_grey():
    colours = cluster_colours(60)
    assert len(set(colours)) == 60
    _, grey_lightness, _ = _hls(UNCLUSTERED_COLOUR)
    for colour in colours:
        _, lightness, saturation = _hls(colour)
        assert saturation >= 0.5, colour  # a grey has saturation 0
        assert lightness <= 0.6 < grey_lightness, colour  # never as pale as the unclustered grey
    assert cluster_colours(3) == colours[:3]  # the largest clusters keep their colours as the count grows


def test_stratified_rows_keep_every_label_within_the_size():
    labels = np.r_[np.zeros(10_000, int), np.arange(1, 51).repeat(2), np.full(500, -1)]
    rows = stratified_rows(labels, 1_000, min_per_label=3, seed=1)
    assert len(rows) == 1_000 and len(np.unique(rows)) == 1_000
    assert set(labels[rows]) >= set(range(51))  # every label, even those of 2 rows
    assert np.array_equal(rows, stratified_rows(labels, 1_000, min_per_label=3, seed=1))
    many = stratified_rows(np.arange(5_000), 100)  # more labels than room: still at most the size
    assert len(many) == 100


def _blobs(n_per: int, k: int, dim: int = 32, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((k, dim))
    x = np.repeat(centres, n_per, axis=0) + 0.35 * rng.standard_normal((k * n_per, dim))
    return x.astype(np.float32), np.repeat(np.arange(k), n_per)


def test_layout_separates_clusters_better_than_principal_axes():
    from sklearn.metrics import silhouette_score

    x, truth = _blobs(150, 12)
    tsne = layout_2d(x, labels=truth, fit_points=800)
    pca = layout_2d(x, "pca")
    assert tsne.xy.shape == (len(x), 2) and np.isfinite(tsne.xy).all()
    assert len(tsne.fit_rows) == 800 and tsne.neighbours == 10  # the rest placed by their fitted neighbours
    assert silhouette_score(tsne.xy, truth) > silhouette_score(pca.xy, truth) + 0.2
    assert np.array_equal(tsne.xy, layout_2d(x, labels=truth, fit_points=800).xy)  # seeded


def _synthetic_browser(path, *, n_per=60, k=5, unclustered=7):
    rng = np.random.default_rng(3)
    n = n_per * k + unclustered
    ids = [f"pkg{i % 4}/set_{i:04d}" for i in range(n)]
    clusters = [f"cluster_{i // n_per}" if i < n_per * k else None for i in range(n)]
    words = [f"topic{c[-1] if c else 'none'} measurements of thing {i}" for i, c in enumerate(clusters)]
    words[5] = "a </script><script>alert(1)</script> text"  # must not break out of the page's data
    centres = rng.normal(0, 10, (k + 1, 2))
    xy = centres[[int(c[-1]) if c else k for c in clusters]] + rng.normal(0, 1, (n, 2))
    points = pa.table({"dataset_id": ids, "cluster": clusters, "x": xy[:, 0], "y": xy[:, 1], "first_words": words})
    table = pa.table({
        "cluster": [f"cluster_{c}" for c in range(k)] + ["cluster_9"],  # cluster_9: in the run, not drawn
        "size": [n_per] * k + [1],
        "top_terms": [[f"topic{c}", "thing"] for c in range(k)] + [["rare"]],
        "exemplar_ids": [[ids[c * n_per]] for c in range(k)] + [[]],
        "exemplar_texts": [[words[c * n_per]] for c in range(k)] + [[]],
        "display_name": [None, "named by hand"] + [None] * (k - 1),  # mdc_rename_label's name
    })
    unclustered_table = pa.table({"dataset_id": ids[n_per * k :], "unclustered_reason": ["no_edge"] * unclustered})
    return write_browser(points, table, path, n_datasets=n + 1, unclustered=unclustered_table, title="Synthetic",
                         cap=50_000), ids


@pytest.fixture(scope="module")
def synthetic_page(tmp_path_factory):
    return _synthetic_browser(tmp_path_factory.mktemp("browser") / "cluster_browser.html")


def test_browser_renders_lists_and_finds_offline(synthetic_page):
    path, ids = synthetic_page
    seen = inspect_browser(path, search=ids[123])
    assert seen["errors"] == [] and seen["requests"] == []  # no script error, nothing fetched
    assert seen["painted"] > 2_000  # the map is drawn: thousands of non-white canvas pixels
    assert seen["clusters_listed"] == 6  # every cluster of the run, the undrawn one too
    assert seen["unclustered_listed"] == 7
    assert seen["found_id"] == ids[123] and seen["found"] == f"Found {ids[123]}"
    assert "307 of 308 datasets drawn" in seen["note"] and "6 clusters" in seen["summary"]
    assert path.read_text().count("named by hand") == 1  # the one given name, in the page's data


def test_browser_word_search_and_cluster_click(synthetic_page):
    path, ids = synthetic_page
    by_word = inspect_browser(path, search="topic3")
    assert by_word["found_id"] in ids[180:240]  # a member of cluster_3, whose texts hold the word
    clicked = inspect_browser(path, select="cluster_2", hover=ids[130])
    assert clicked["selected"] == "cluster_2"
    assert clicked["tooltip"].startswith(ids[130]) and "topic2 measurements of thing 130" in clicked["tooltip"]
    missing = inspect_browser(path, search="no-such-dataset")
    assert missing["found_id"] is None and missing["found"].startswith("No drawn dataset matches")


def test_browser_size_is_its_data(tmp_path):
    from pathlib import Path

    import mdc_clustering.browser

    path, ids = _synthetic_browser(tmp_path / "b.html", n_per=2_000, k=5, unclustered=0)
    template = Path(mdc_clustering.browser.__file__).with_name("browser_page.html").stat().st_size
    assert template < 40_000  # the renderer is a few hundred lines, no library inlined
    texts = sum(len(i) + len("topic0 measurements of thing 0000") for i in ids)
    assert path.stat().st_size - template < texts + 30 * len(ids)  # the rest: ids, words, ~30 bytes of numbers
    assert "http://" not in path.read_text() and "https://" not in path.read_text()


def test_sample_build_writes_a_working_browser(sample, tmp_path):
    """The figures model of a real build: the browser beside the report, and the map PNG on the same layout."""
    # the session's sample may have been rebuilt without pictures by another module: draw them now
    sample.dbt("run", "--select", "rpt_clustering_figures", vars={"figures": True})
    html = sample.report_dir / "cluster_browser.html"
    figures = dict(sample.query("select figure, n_points from clustering.rpt_clustering_figures"))
    assert figures["browser"] == figures["map"] == 2_293
    [(n_clusters,)] = sample.query("select count(*) from clustering.clusters")
    [(exemplar,)] = sample.query("select exemplar_ids[1] from clustering.clusters order by size desc limit 1")
    seen = inspect_browser(html, search=exemplar, screenshot=tmp_path / "browser.png")
    assert seen["errors"] == [] and seen["requests"] == []
    assert seen["clusters_listed"] == n_clusters
    assert seen["found_id"] == exemplar
    assert seen["painted"] > 20_000
    assert (tmp_path / "browser.png").stat().st_size > 20_000


def test_browser_of_an_empty_run_and_a_bad_layout(tmp_path):
    empty = pa.table({"dataset_id": pa.array([], pa.string()), "cluster": pa.array([], pa.string()),
                      "x": pa.array([], pa.float64()), "y": pa.array([], pa.float64())})
    none = pa.table({"cluster": pa.array([], pa.string()), "size": pa.array([], pa.int64())})
    page = write_browser(empty, none, tmp_path / "empty.html").read_text()
    assert '"points":{"x":[],"y":[],"c":[],"id":[],"t":[]}' in page
    nan = pa.table({"dataset_id": ["a"], "cluster": [None], "x": [float("nan")], "y": [0.0]})
    with pytest.raises(ValueError, match="NaN or infinite"):
        write_browser(nan, none, tmp_path / "nan.html")
    stray = pa.table({"dataset_id": ["a"], "cluster": ["cluster_7"], "x": [0.0], "y": [0.0]})
    with pytest.raises(ValueError, match="cluster_7"):
        write_browser(stray, none, tmp_path / "stray.html")
