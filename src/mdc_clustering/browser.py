"""A self-contained, offline cluster browser: one static HTML file.

The file holds its data (JSON) and a small hand-written canvas renderer in
vanilla JavaScript (``browser_page.html`` beside this module, a few hundred
lines): no server, no CDN, no network, so it opens from disk. A plotting
library inlined would add megabytes before a single point is drawn; this
renderer draws each point as a dot on a 2-D canvas and stays fast at the cap
of drawn points, so the file's size is its data.

What it shows: the 2-D map (points coloured by cluster, unclustered in light
grey with a toggle), a tooltip with the dataset id and the first words of its
text, the list of every cluster (size, top terms, exemplars; a click
highlights the cluster on the map), a search by dataset id or word, and the
unclustered datasets listed apart. Beyond :data:`~mdc_clustering.figures.MAP_POINTS`
datasets only a stratified sample is drawn and searchable (the page says so);
the cluster list always holds every cluster.
"""

from __future__ import annotations

import colorsys
import html
import json
from pathlib import Path

import numpy as np
import pyarrow as pa

__all__ = ["UNCLUSTERED_COLOUR", "UNCLUSTERED_LISTED", "cluster_colours", "inspect_browser", "write_browser"]

UNCLUSTERED_COLOUR = "#cfcfcf"
UNCLUSTERED_LISTED = 2_000  # unclustered datasets listed by id in the page (the count is always given)
_GRID = 10_000  # coordinates are written as integers in [0, _GRID]
_GOLDEN = 0.381966  # golden-angle step of the hue, as a share of the circle
_PAGE = "browser_page.html"  # the page template: style and renderer; __TITLE__ and __DATA__ are filled in


# The first colours, picked by hand to be far apart (no grey, brown or pale tint); then golden-angle hues.
_FIRST_COLOURS = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#7b3fbf", "#17becf",
    "#e6399b", "#8c6d00", "#0b3d91", "#00a36c", "#b8451a", "#9e0059",
]


def cluster_colours(n: int) -> list[str]:
    """``n`` distinct, saturated colours (``#rrggbb``), the first for the largest cluster.

    Twelve hand-picked colours, then hues stepping round the circle by the
    golden angle (neighbours in the list differ most) with saturation
    0.65-0.85 and lightness 0.33-0.55: no colour is a grey or close to
    :data:`UNCLUSTERED_COLOUR`. Beyond a dozen or so clusters some colours
    are necessarily alike; the map names the clusters and the browser
    highlights one on click.
    """
    out = list(_FIRST_COLOURS[:n])
    for i in range(n - len(out)):
        hue = (0.07 + i * _GOLDEN) % 1.0
        lightness = (0.45, 0.33, 0.55)[(i // 5) % 3]
        saturation = (0.85, 0.65)[(i // 15) % 2]
        r, g, b = colorsys.hls_to_rgb(hue, lightness, saturation)
        out.append(f"#{round(r * 255):02x}{round(g * 255):02x}{round(b * 255):02x}")
    return out


def _column(table: pa.Table, name: str) -> list:
    return table.column(name).to_pylist() if name in table.column_names else [None] * table.num_rows


def _quantise(xy: np.ndarray) -> tuple[list[int], list[int]]:
    """Coordinates scaled into ``[0, _GRID]`` (one scale for both axes, centred), as integers; y grows upwards."""
    if len(xy) == 0:
        return [], []
    lo, hi = xy.min(axis=0), xy.max(axis=0)
    scale = _GRID / max(float((hi - lo).max()), 1e-12)
    margin = (_GRID - (hi - lo) * scale) / 2  # the shorter axis centred in the square
    q = np.rint((xy - lo) * scale + margin).astype(np.int64)
    return q[:, 0].tolist(), q[:, 1].tolist()


def write_browser(
    points: pa.Table,
    clusters: pa.Table,
    path: str | Path,
    *,
    n_datasets: int | None = None,
    unclustered: pa.Table | None = None,
    title: str = "Clusters",
    cap: int | None = None,
) -> Path:
    """Write the cluster browser to ``path`` (one HTML file) and return the path.

    Parameters
    ----------
    points
        The drawn datasets: ``dataset_id``, ``cluster`` (NULL =
        unclustered), ``x``, ``y`` (the 2-D layout) and optionally
        ``first_words`` (shown on hover, searched by word).
    clusters
        One row per cluster, every cluster of the run (drawn or not):
        ``cluster``, ``size``, and optionally ``top_terms`` (list),
        ``exemplar_ids`` and ``exemplar_texts`` (lists) and ``display_name``
        (the name a person gave the label). Listed largest first.
    n_datasets
        Datasets in the run (default: the rows of ``points``); the page says
        how many of them are drawn.
    unclustered
        ``dataset_id`` and optionally ``unclustered_reason`` of every
        unclustered dataset (default: those in ``points``); at most
        :data:`UNCLUSTERED_LISTED` are listed, the count is always given.
    title
        Page title.
    cap
        The largest number of points the caller draws, stated on the page.

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    ids = [str(i) for i in _column(points, "dataset_id")]
    labels = _column(points, "cluster")
    words = [w or "" for w in _column(points, "first_words")]
    xy = np.c_[np.asarray(_column(points, "x"), float), np.asarray(_column(points, "y"), float)]
    if not np.isfinite(xy).all():
        raise ValueError("the layout holds NaN or infinite coordinates")

    names = (_column(clusters, "display_name") if "display_name" in clusters.column_names
             else [None] * clusters.num_rows)
    rows = sorted(
        zip(_column(clusters, "cluster"), _column(clusters, "size"), _column(clusters, "top_terms"),
            _column(clusters, "exemplar_ids"), _column(clusters, "exemplar_texts"), names, strict=True),
        key=lambda r: (-int(r[1] or 0), str(r[0])),
    )
    colours = cluster_colours(len(rows))
    code = {row[0]: i for i, row in enumerate(rows)}
    missing = sorted({c for c in labels if c is not None and c not in code})
    if missing:
        raise ValueError(f"points name clusters missing from the cluster table: {', '.join(missing[:5])}")
    point_codes = [code[c] if c is not None else -1 for c in labels]
    drawn = np.bincount(np.asarray([c for c in point_codes if c >= 0], np.int64), minlength=len(rows)).tolist()
    cluster_list = [
        {
            "label": label,
            "name": name or "",
            "size": int(size or 0),
            "drawn": drawn[i],
            "terms": list(terms or []),
            "exemplars": [[e, t or ""] for e, t in zip(ex_ids or [], ex_texts or [None] * len(ex_ids or []),
                                                       strict=False)],
            "colour": colours[i],
        }
        for i, (label, size, terms, ex_ids, ex_texts, name) in enumerate(rows)
    ]
    if unclustered is None:
        un_ids = [i for i, c in zip(ids, labels, strict=True) if c is None]
        un_reasons = [None] * len(un_ids)
    else:
        un_ids = [str(i) for i in _column(unclustered, "dataset_id")]
        un_reasons = _column(unclustered, "unclustered_reason")
    listed = sorted(zip(un_ids, un_reasons, strict=True))[:UNCLUSTERED_LISTED]
    x, y = _quantise(xy)
    data = {
        "title": title,
        "n_datasets": int(n_datasets if n_datasets is not None else len(ids)),
        "cap": cap,
        "grid": _GRID,
        "unclustered_colour": UNCLUSTERED_COLOUR,
        "clusters": cluster_list,
        "unclustered": {"count": len(un_ids), "listed": [[i, r or ""] for i, r in listed]},
        "points": {"x": x, "y": y, "c": point_codes, "id": ids, "t": words},
    }
    # "<" escaped: no text of a dataset can close the script element
    payload = json.dumps(data, ensure_ascii=False, separators=(",", ":")).replace("<", "\\u003c")
    page = (Path(__file__).with_name(_PAGE)).read_text(encoding="utf-8")
    page = page.replace("__TITLE__", html.escape(title)).replace("__DATA__", payload)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    return out


def inspect_browser(
    path: str | Path,
    *,
    search: str | None = None,
    select: str | None = None,
    hover: str | None = None,
    screenshot: str | Path | None = None,
    viewport: tuple[int, int] = (1400, 860),
) -> dict:
    """Open the browser file in headless Chromium (offline) and report what a person would see.

    Blocks every request that is not the file itself, so a page that needed
    the network would show it. ``search``: typed into the search box and
    submitted; ``select``: a cluster label clicked in the list; ``hover``: a
    dataset id whose point the mouse is moved onto; then the screenshot
    (when asked) is taken.

    Returns
    -------
    dict
        ``painted`` (canvas pixels that are not the white background),
        ``canvas`` (its width, height in device pixels), ``clusters_listed``
        (cluster items in the list), ``unclustered_listed``, ``summary``
        (the header line), ``note`` (the drawn-points note), ``found`` (the
        search's result line, or None), ``found_id`` (the dataset the map
        marks, or None), ``selected`` (the highlighted cluster's label, or
        None), ``requests`` (URLs other than the file that the page asked
        for), ``errors`` (JavaScript errors), ``tooltip`` (the hover's
        tooltip text, or None).
    """
    from playwright.sync_api import sync_playwright

    from .lineage import _CHROMIUM_ARGS, find_chromium

    url = Path(path).resolve().as_uri()
    requests: list[str] = []
    errors: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=find_chromium(), args=_CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": viewport[0], "height": viewport[1]})
            page.on("pageerror", lambda exc: errors.append(str(exc)))

            def offline(route):
                if route.request.url == url:
                    route.continue_()
                else:
                    requests.append(route.request.url)
                    route.abort()

            page.route("**/*", offline)
            page.goto(url)
            page.wait_for_function("() => window.clusterBrowser !== undefined", timeout=30_000)
            if select is not None:
                page.click(f"#clusters li[data-cluster='{select}']")
            if search is not None:
                page.fill("#search", search)
                page.press("#search", "Enter")
            tooltip = None
            if hover is not None:
                spot = page.evaluate("(id) => window.clusterBrowser.screenOf(id)", hover)
                if spot is not None:
                    box = page.locator("#map").bounding_box()
                    page.mouse.move(box["x"] + spot[0], box["y"] + spot[1])
                    tip = page.locator("#tip")
                    tooltip = tip.inner_text() if tip.is_visible() else None
            state = page.evaluate(
                """() => {
                    const canvas = document.getElementById("map");
                    const px = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
                    let painted = 0;
                    for (let i = 0; i < px.length; i += 4) {
                        if (px[i] < 250 || px[i + 1] < 250 || px[i + 2] < 250) painted++;
                    }
                    const b = window.clusterBrowser, found = document.getElementById("found");
                    const sel = document.querySelector("#clusters li.selected");
                    return {
                        painted, canvas: [canvas.width, canvas.height],
                        clusters_listed: document.querySelectorAll("#clusters li.cluster").length,
                        unclustered_listed: document.querySelectorAll("#unclustered li").length,
                        summary: document.getElementById("summary").textContent,
                        note: document.getElementById("note").textContent,
                        found: found ? found.textContent : null,
                        found_id: b.state.found >= 0 ? b.foundId() : null,
                        selected: sel ? sel.dataset.cluster : null,
                    };
                }"""
            )
            if screenshot is not None:
                page.screenshot(path=str(screenshot))
        finally:
            browser.close()
    return {**state, "tooltip": tooltip, "requests": requests, "errors": errors}


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description="Open a cluster browser file in headless Chromium and check it.")
    parser.add_argument("html", type=Path, help="reports/clustering/<pipeline>/cluster_browser.html")
    parser.add_argument("--search", help="a dataset id or word to search for")
    parser.add_argument("--select", help="a cluster label to click in the list")
    parser.add_argument("--hover", help="a dataset id to move the mouse onto")
    parser.add_argument("--screenshot", type=Path)
    args = parser.parse_args(argv)
    state = inspect_browser(args.html, search=args.search, select=args.select, hover=args.hover,
                            screenshot=args.screenshot)
    for key, value in state.items():
        print(f"{key}: {value}")




if __name__ == "__main__":
    main()
