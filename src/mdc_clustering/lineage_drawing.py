"""The project's DAG as a picture, drawn from dbt's ``manifest.json`` (no browser, no tests).

``dbt docs`` draws every node, data and unit tests included, in a force
layout; at README width its labels cannot be read. This draws only the
sources, models and exposures, top to bottom in horizontal bands, one band
per layer (sources; each model folder, such as ``staging``,
``intermediate``, ``marts``, ``reports``; exposures), each model in its
folder's ``node_color`` from ``dbt_project.yml``. It is a layered
(Sugiyama) drawing: every edge goes down; an edge that skips rows runs
through points of its own in those rows, shared by the edges from the same
node (a trunk); the order within each row is chosen to reduce crossings
(barycentre and median sweeps, then swaps of neighbours), and each row is
placed as near its neighbours as its boxes allow (isotonic regression).

Usage::

    python -m mdc_clustering.lineage --manifest target/manifest.json --draw docs/lineage.png
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, replace
from pathlib import Path

# Shares of the picture's width at which rows wrap, tried in turn (see draw_lineage).
_ROW_SHARES = (0.85, 0.675, 0.45, 0.375)

__all__ = ["LineageGraph", "LineageLayout", "LineageNode", "draw_lineage", "layout_lineage", "lineage_graph"]

SOURCES, EXPOSURES = "sources", "exposures"
SOURCE_COLOUR = "#b7b7b7"  # dbt docs' own colours have no config for these two kinds
EXPOSURE_COLOUR = "#ff694b"
_DEFAULT_MODEL_COLOUR = "#a6a6a6"  # a model without docs.node_color
_LEGEND = (
    "thick outline: a Python model;  dashed outline: a model and a source that name the same table\n"
    "(this run writes it, the next one reads it);  arrows: ref(), source(), an exposure's depends_on"
)


@dataclass(frozen=True)
class LineageNode:
    """One drawn node: a source, model or exposure of the project."""

    uid: str  # the manifest's unique_id
    label: str  # model / exposure name, ``source_name.table`` for a source
    kind: str  # "source", "model" or "exposure"
    layer: str  # "sources", the model's folder (its fqn's second part), or "exposures"
    colour: str  # the model's docs.node_color (dbt_project.yml), or the kind's colour
    python: bool = False  # a dbt Python model
    written_and_read: bool = False  # a model and a source name the same table (kept for the next run)


@dataclass(frozen=True)
class LineageGraph:
    """The drawn nodes and edges (parent, child), and the layers from top to bottom."""

    nodes: dict[str, LineageNode]
    edges: frozenset[tuple[str, str]]
    layers: tuple[str, ...]


@dataclass(frozen=True)
class LineageLayout:
    """Where each node is drawn.

    ``rank`` is the row (0 at the top; it grows along every edge), ``band``
    the layer each node is drawn in, ``rows`` the items of each row from left
    to right (nodes, and the trunk points ``(parent, rank)`` of edges that
    skip rows), ``x`` the centre and ``width`` the width of every item in
    pixels, ``crossings`` the number of edge crossings between adjacent rows
    in the chosen order.
    """

    graph: LineageGraph
    rank: dict[str, int]
    band: dict[str, str]
    rows: list[list]
    x: dict
    width: dict
    crossings: int


def lineage_graph(manifest: dict, *, package: str | None = None) -> LineageGraph:
    """Read the sources, models and exposures of ``package`` (default: the manifest's project) and their edges.

    Data and unit tests, seeds, snapshots, operations and other packages'
    nodes are left out. A model's layer is its folder under the model paths
    (``models/staging/x.sql`` and ``python_models/staging/y.py`` are both
    ``staging``); layers are ordered by the median depth of their models in
    the DAG, sources first and exposures last.
    """
    package = _package(manifest, package)
    nodes: dict[str, LineageNode] = {}
    parents: dict[str, list[str]] = {}
    source_relations = {
        s["relation_name"] for s in manifest["sources"].values() if s["package_name"] == package and s["relation_name"]
    }
    model_relations = set()
    for uid, source in manifest["sources"].items():
        if source["package_name"] == package:
            nodes[uid] = LineageNode(uid, f"{source['source_name']}.{source['name']}", "source", SOURCES, SOURCE_COLOUR)
    for uid, node in manifest["nodes"].items():
        if node["resource_type"] != "model" or node["package_name"] != package:
            continue
        fqn = node["fqn"]
        layer = fqn[1] if len(fqn) > 2 else "models"
        colour = (node["config"].get("docs") or {}).get("node_color") or _DEFAULT_MODEL_COLOUR
        relation = node.get("relation_name")  # None for an ephemeral model
        if relation:
            model_relations.add(relation)
        nodes[uid] = LineageNode(
            uid, node["name"], "model", layer, colour,
            python=node.get("language") == "python",
            written_and_read=bool(relation) and relation in source_relations,
        )
        parents[uid] = list(node["depends_on"]["nodes"])
    for uid, source in manifest["sources"].items():
        if uid in nodes and source["relation_name"] in model_relations:
            nodes[uid] = replace(nodes[uid], written_and_read=True)
    for uid, exposure in manifest["exposures"].items():
        if exposure["package_name"] == package:
            nodes[uid] = LineageNode(uid, exposure["name"], "exposure", EXPOSURES, EXPOSURE_COLOUR)
            parents[uid] = list(exposure["depends_on"]["nodes"])
    if not nodes:
        raise ValueError(f"nothing to draw: the manifest holds no source, model or exposure of package {package!r}")
    edges = frozenset((p, c) for c, ps in parents.items() for p in ps if p in nodes)
    depth = _longest_path_depth(nodes, edges)
    by_layer: dict[str, list[int]] = defaultdict(list)
    for uid, node in nodes.items():
        if node.kind == "model":
            by_layer[node.layer].append(depth[uid])
    median = {layer: sorted(ds)[len(ds) // 2] for layer, ds in by_layer.items()}
    layers = [SOURCES] if any(n.kind == "source" for n in nodes.values()) else []
    layers += sorted(median, key=lambda layer: (median[layer], layer))
    layers += [EXPOSURES] if any(n.kind == "exposure" for n in nodes.values()) else []
    return LineageGraph(nodes, edges, tuple(layers))


def _package(manifest: dict, package: str | None) -> str:
    return package or manifest["metadata"]["project_name"]


def _topological(nodes, edges) -> list[str]:
    children, indegree = defaultdict(list), dict.fromkeys(nodes, 0)
    for a, b in edges:
        children[a].append(b)
        indegree[b] += 1
    ready = sorted(n for n, d in indegree.items() if d == 0)
    order = []
    while ready:
        n = ready.pop(0)
        order.append(n)
        for c in sorted(children[n]):
            indegree[c] -= 1
            if indegree[c] == 0:
                ready.append(c)
    if len(order) != len(indegree):
        raise ValueError("the lineage has a cycle: " + ", ".join(sorted(set(indegree) - set(order))))
    return order


def _longest_path_depth(nodes, edges) -> dict[str, int]:
    parents = defaultdict(list)
    for a, b in edges:
        parents[b].append(a)
    depth: dict[str, int] = {}
    for n in _topological(nodes, edges):
        depth[n] = max((depth[p] + 1 for p in parents[n]), default=0)
    return depth


def layout_lineage(
    graph: LineageGraph,
    widths: dict[str, float],
    *,
    max_row_width: float,
    gap: float = 36.0,
    trunk_width: float = 6.0,
    trunk_gap: float = 8.0,
    sweeps: int = 24,
) -> LineageLayout:
    """Place ``graph`` in rows (``widths``: each node's box width in pixels).

    Each layer is a band of one or more rows. A node goes to the first row of
    its band below all its parents whose boxes, with ``gap`` between them,
    still fit ``max_row_width`` (so a band of many unconnected nodes wraps
    onto more rows); nodes on longer paths are placed first. A node whose
    parent sits in a later layer is drawn in that parent's band, so every
    edge still goes down.
    """
    nodes, edges = graph.nodes, graph.edges
    parents, children = defaultdict(list), defaultdict(list)
    for a, b in edges:
        parents[b].append(a)
        children[a].append(b)
    layer_index = {layer: i for i, layer in enumerate(graph.layers)}
    band_of: dict[str, int] = {}
    for n in _topological(nodes, edges):
        band_of[n] = max([layer_index[nodes[n].layer]] + [band_of[p] for p in parents[n]])
    height: dict[str, int] = {}  # longest path below a node: the scheduling priority
    for n in reversed(_topological(nodes, edges)):
        height[n] = max((height[c] + 1 for c in children[n]), default=0)

    rank: dict[str, int] = {}
    row_width: dict[int, float] = defaultdict(float)
    start = 0
    for b in range(len(graph.layers)):
        members = {n for n in nodes if band_of[n] == b}
        while members:
            ready = [n for n in members if all(p in rank for p in parents[n])]
            n = min(ready, key=lambda n: (-height[n], nodes[n].label))
            members.discard(n)
            r = max([start] + [rank[p] + 1 for p in parents[n]])
            while row_width[r] and row_width[r] + gap + widths[n] > max_row_width:
                r += 1
            rank[n] = r
            row_width[r] += (gap if row_width[r] else 0.0) + widths[n]
        start = max((rank[n] for n in nodes if band_of[n] <= b), default=start - 1) + 1

    # the layered graph: an edge that skips rows runs through one trunk point per row, shared by its parent's edges
    up, down = defaultdict(set), defaultdict(set)
    item_rank = dict(rank)
    for a, b in edges:
        chain = [a] + [(a, r) for r in range(rank[a] + 1, rank[b])] + [b]
        for r in range(rank[a] + 1, rank[b]):
            item_rank[(a, r)] = r
        for u, v in zip(chain, chain[1:], strict=False):
            down[u].add(v)
            up[v].add(u)
    n_rows = max(item_rank.values()) + 1
    rows: list[list] = [[] for _ in range(n_rows)]
    for item, r in item_rank.items():
        rows[r].append(item)

    def key(item):
        return (item[0], item[1]) if isinstance(item, tuple) else (item, -1)

    rows = [sorted(row, key=key) for row in rows]
    # first order: each row by the mean position of its items' parents (a DFS-like start)
    for r in range(1, n_rows):
        pos = {item: i for i, item in enumerate(rows[r - 1])}
        rows[r].sort(key=lambda item: _mean([pos[p] for p in up[item] if p in pos], default=len(pos)))
    first = [list(row) for row in rows]
    best, best_crossings = first, _crossings(rows, down)
    for centre in (_mean, _median):
        rows = [list(row) for row in first]
        for sweep in range(sweeps):
            downwards = sweep % 2 == 0
            for r in range(1, n_rows) if downwards else range(n_rows - 2, -1, -1):
                ref = rows[r - 1] if downwards else rows[r + 1]
                links = up if downwards else down
                pos = {item: i for i, item in enumerate(ref)}
                current = {item: i for i, item in enumerate(rows[r])}
                rows[r].sort(key=lambda item: centre([pos[p] for p in links[item] if p in pos], default=current[item]))
            _transpose(rows, down)
            crossings = _crossings(rows, down)
            if crossings < best_crossings:
                best, best_crossings = [list(row) for row in rows], crossings
    rows = best

    def width(item):
        return trunk_width if isinstance(item, tuple) else widths[item]

    def space(a, b):  # between neighbours in a row: boxes keep ``gap`` apart, trunk points less
        return trunk_gap if isinstance(a, tuple) or isinstance(b, tuple) else gap

    x = _coordinates(rows, up, down, width, space)
    band = {n: graph.layers[band_of[n]] for n in nodes}
    return LineageLayout(graph, rank, band, rows, x, {item: width(item) for item in x}, best_crossings)


def _mean(values, *, default):
    return sum(values) / len(values) if values else default


def _median(values, *, default):
    if not values:
        return default
    values = sorted(values)
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2


def _crossings(rows, down) -> int:
    total = 0
    for r in range(len(rows) - 1):
        total += _pair_crossings(rows[r], rows[r + 1], down)
    return total


def _pair_crossings(top, bottom, down) -> int:
    pos = {item: i for i, item in enumerate(bottom)}
    segments = [(i, pos[c]) for i, item in enumerate(top) for c in down[item] if c in pos]
    return sum(
        1
        for k, (a1, b1) in enumerate(segments)
        for a2, b2 in segments[k + 1:]
        if (a1 - a2) * (b1 - b2) < 0
    )


def _transpose(rows, down) -> None:
    """Swap neighbours in a row while that lowers the crossings with the rows above and below."""

    def local(r):
        above = _pair_crossings(rows[r - 1], rows[r], down) if r > 0 else 0
        below = _pair_crossings(rows[r], rows[r + 1], down) if r + 1 < len(rows) else 0
        return above + below

    improved = True
    while improved:
        improved = False
        for r, row in enumerate(rows):
            for i in range(len(row) - 1):
                before = local(r)
                row[i], row[i + 1] = row[i + 1], row[i]
                if local(r) < before:
                    improved = True
                else:
                    row[i], row[i + 1] = row[i + 1], row[i]


def _coordinates(rows, up, down, width, space, *, rounds: int = 40) -> dict:
    """x of every item: each row packed left to right, then pulled towards its neighbours' mean, order kept."""
    x = {}
    for row in rows:
        left = 0.0
        for i, item in enumerate(row):
            left += space(row[i - 1], item) if i else 0.0
            x[item] = left + width(item) / 2
            left += width(item)
    for sweep in range(rounds):
        order = range(len(rows)) if sweep % 2 == 0 else range(len(rows) - 1, -1, -1)
        for r in order:
            row = rows[r]
            targets = []
            for item in row:
                linked = [x[o] for o in up[item] | down[item]]
                # a trunk point follows its line, so long edges run straight
                weight = 6.0 if isinstance(item, tuple) else 1.0
                targets.append((_mean(linked, default=x[item]), weight))
            for item, value in zip(row, _ordered_fit(row, targets, width, space), strict=True):
                x[item] = value
    _straighten(rows, x, width, space)
    left = min(x[item] - width(item) / 2 for row in rows for item in row)
    return {item: value - left for item, value in x.items()}


def _straighten(rows, x, width, space) -> None:
    """Give each trunk (the points of one parent's long edges) one x where its rows leave room: a straight line."""
    where = {item: (r, i) for r, row in enumerate(rows) for i, item in enumerate(row)}
    chains = defaultdict(list)
    for item in where:
        if isinstance(item, tuple):
            chains[item[0]].append(item)
    for _, chain in sorted(chains.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        lo, hi = float("-inf"), float("inf")
        for item in chain:
            r, i = where[item]
            row = rows[r]
            if i > 0:
                lo = max(lo, x[row[i - 1]] + (width(row[i - 1]) + width(item)) / 2 + space(row[i - 1], item))
            if i + 1 < len(row):
                hi = min(hi, x[row[i + 1]] - (width(row[i + 1]) + width(item)) / 2 - space(item, row[i + 1]))
        if lo <= hi:
            xs = sorted(x[item] for item in chain)
            value = min(max(xs[len(xs) // 2], lo), hi)
            for item in chain:
                x[item] = value


def _ordered_fit(row, targets, width, space) -> list[float]:
    """Closest x to ``targets`` (weighted least squares) keeping the row's order and its items ``space`` apart.

    With offsets c_i (the packed distance from the first item), y_i = x_i - c_i must not decrease: an
    isotonic regression, solved by pooling adjacent violators.
    """
    offsets, c = [], 0.0
    for i, item in enumerate(row):
        if i:
            c += (width(row[i - 1]) + width(item)) / 2 + space(row[i - 1], item)
        offsets.append(c)
    blocks: list[list[float]] = []  # [weighted sum, weight, count]
    for (target, weight), offset in zip(targets, offsets, strict=True):
        blocks.append([weight * (target - offset), weight, 1])
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] > blocks[-1][0] / blocks[-1][1]:
            s, w, n = blocks.pop()
            blocks[-1][0] += s
            blocks[-1][1] += w
            blocks[-1][2] += n
    y = [s / w for s, w, n in blocks for _ in range(n)]
    return [yi + offset for yi, offset in zip(y, offsets, strict=True)]


def _wrap(label: str, fits) -> str:
    """``label`` on one line, or on two when too wide: split after its first ``.``, else after a ``__``, else after
    the ``_`` that best balances the two lines."""
    if fits(label):
        return label
    for separator in (".", "__"):
        at = label.find(separator)
        if at > 0:
            cut = at + len(separator)
            if fits(label[:cut]) and fits(label[cut:]):
                return label[:cut] + "\n" + label[cut:]
    cuts = [i + 1 for i, ch in enumerate(label) if ch == "_" and 0 < i + 1 < len(label) and label[i + 1] != "_"]
    if not cuts:
        return label
    cut = min(cuts, key=lambda i: max(i, len(label) - i))
    return label[:cut] + "\n" + label[cut:]


def draw_lineage(
    manifest: dict | str | Path,
    path: str | Path,
    *,
    package: str | None = None,
    width_px: int = 1800,
    font_px: float = 20.0,
    title: str | None = None,
) -> LineageLayout:
    """Draw the lineage of ``manifest`` (a dict or the path of ``target/manifest.json``) to the PNG ``path``.

    The picture is ``width_px`` wide (wider only if a row cannot fit) with
    labels of ``font_px`` pixels, so it stays legible at half size. Returns
    the layout that was drawn.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.font_manager import FontProperties
    from matplotlib.patches import FancyBboxPatch, PathPatch, Polygon, Rectangle
    from matplotlib.path import Path as MplPath
    from matplotlib.textpath import TextToPath

    if not isinstance(manifest, dict):
        manifest = json.loads(Path(manifest).read_text())
    graph = lineage_graph(manifest, package=package)
    dpi = 100
    points = font_px * 72 / dpi
    font = FontProperties(family="DejaVu Sans", size=points)
    bold = FontProperties(family="DejaVu Sans", size=points, weight="bold")
    measure = TextToPath()

    def text_px(text, prop=font):
        return max(measure.get_text_width_height_descent(line, prop, ismath=False)[0] for line in text.split("\n")) \
            * dpi / 72

    gutter = max(text_px(layer, bold) for layer in graph.layers) + 1.2 * font_px
    margin = 0.8 * font_px
    pad_x, line_h = 0.6 * font_px, 1.25 * font_px
    usable = width_px - gutter - 2 * margin
    max_label = 14.5 * font_px  # longer names go on two lines, so that more boxes fit a row
    labels = {uid: _wrap(n.label, lambda s: text_px(s) <= max_label) for uid, n in graph.nodes.items()}
    widths = {uid: text_px(label) + 2 * pad_x for uid, label in labels.items()}
    box_h = {uid: line_h * (label.count("\n") + 1) + 0.7 * font_px for uid, label in labels.items()}
    # rows are wrapped at a share of the width; the placement that straightens edges may still spread a
    # row wider, and not monotonically in the share (each layout costs ~5 s): a few shares are tried in
    # turn until one fits, else the narrowest is kept
    tried = []
    for share in _ROW_SHARES:
        layout = layout_lineage(graph, widths, max_row_width=share * usable, gap=1.4 * font_px,
                                trunk_width=0.25 * font_px, trunk_gap=0.3 * font_px)
        tried.append((max(layout.x[i] + widths.get(i, 0) / 2 for row in layout.rows for i in row), len(tried), layout))
        if tried[-1][0] <= usable:
            break
    layout = min(tried)[2]

    row_h = [max((box_h[i] for i in row if not isinstance(i, tuple)), default=0.0) + 2.4 * font_px
             for row in layout.rows]
    row_top = [0.0]
    for h in row_h:
        row_top.append(row_top[-1] + h)
    title_h = 2.6 * font_px
    legend_h = (_LEGEND.count("\n") + 1) * 1.3 * font_px + font_px
    span = max(layout.x[item] + (widths.get(item, 0) / 2) for row in layout.rows for item in row)
    width = max(width_px, gutter + span + 2 * margin)
    shift = gutter + margin + max(0.0, (width - gutter - 2 * margin - span) / 2)
    height = title_h + row_top[-1] + legend_h + margin

    def cx(item):
        return shift + layout.x[item]

    def cy(r):  # centre of row r, in pixels from the top
        return title_h + row_top[r] + row_h[r] / 2

    fig = plt.figure(figsize=(width / dpi, height / dpi), dpi=dpi)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, width)
    ax.set_ylim(height, 0)
    ax.axis("off")

    # bands: one per layer, tinted with its colour, named in the gutter
    layer_colour = {}
    for n in graph.nodes.values():
        layer_colour.setdefault(n.layer, n.colour)
    for layer in graph.layers:
        ranks = [layout.rank[u] for u, b in layout.band.items() if b == layer]
        if not ranks:
            continue
        top, bottom = title_h + row_top[min(ranks)], title_h + row_top[max(ranks) + 1]
        ax.add_patch(Rectangle((margin / 2, top + 2), width - margin, bottom - top - 4, facecolor=layer_colour[layer],
                               alpha=0.13, edgecolor="none", zorder=0))
        ax.text(margin, (top + bottom) / 2, layer, fontproperties=bold, color=_darker(layer_colour[layer], 0.55),
                ha="left", va="center", zorder=1)

    # edges: bottom of the parent, through its trunk points, into the top of the child
    paths = []
    for a, b in sorted(graph.edges):
        points_ = [(cx(a), cy(layout.rank[a]) + box_h[a] / 2)]
        points_ += [(cx((a, r)), cy(r)) for r in range(layout.rank[a] + 1, layout.rank[b])]
        points_ += [(cx(b), cy(layout.rank[b]) - box_h[b] / 2)]
        paths.append((a, b, points_))
    # spread the ends over the child's top edge, in the order their lines arrive
    arrivals = defaultdict(list)
    for i, (_, b, pts) in enumerate(paths):
        arrivals[b].append((pts[-2][0], i))
    for b, ends in arrivals.items():
        ends.sort()
        spread = min(widths[b] * 0.7, 0.9 * font_px * (len(ends) - 1))
        for k, (_, i) in enumerate(ends):
            offset = 0.0 if len(ends) == 1 else -spread / 2 + spread * k / (len(ends) - 1)
            a, b_, pts = paths[i]
            pts[-1] = (pts[-1][0] + offset, pts[-1][1])
    for a, _, pts in paths:
        colour = _darker(graph.nodes[a].colour, 0.7)
        near = len(pts) == 2  # the next row: the step-by-step flow stands out, long edges stay in the back
        lw, alpha = (2.4, 0.85) if near else (1.5, 0.55)
        verts, codes = [pts[0]], [MplPath.MOVETO]
        for (x0, y0), (x1, y1) in zip(pts, pts[1:], strict=False):
            dy = (y1 - y0) / 2
            verts += [(x0, y0 + dy), (x1, y1 - dy), (x1, y1)]
            codes += [MplPath.CURVE4] * 3
        ax.add_patch(PathPatch(MplPath(verts, codes), facecolor="none", edgecolor=colour, linewidth=lw, alpha=alpha,
                               zorder=2, capstyle="round"))
        tip_x, tip_y = pts[-1]
        s = 0.42 * font_px
        ax.add_patch(Polygon([(tip_x, tip_y), (tip_x - s / 1.6, tip_y - s), (tip_x + s / 1.6, tip_y - s)],
                             closed=True, facecolor=colour, edgecolor="none", alpha=0.9, zorder=3))

    # nodes
    for uid, n in graph.nodes.items():
        w, h = widths[uid], box_h[uid]
        x0, y0 = cx(uid) - w / 2, cy(layout.rank[uid]) - h / 2
        ax.add_patch(FancyBboxPatch(
            (x0, y0), w, h, boxstyle=f"round,pad=0,rounding_size={0.3 * font_px}",
            facecolor=n.colour, edgecolor=_darker(n.colour, 0.45),
            linewidth=3.2 if n.python else 1.3, linestyle=(0, (4, 2.5)) if n.written_and_read else "solid", zorder=4,
        ))
        ax.text(cx(uid), cy(layout.rank[uid]), labels[uid], fontproperties=font, color=_ink(n.colour),
                ha="center", va="center", linespacing=1.15, zorder=5)

    kinds = defaultdict(int)
    for n in graph.nodes.values():
        kinds[n.kind] += 1
    counted = ", ".join(f"{kinds[k]} {k}{'' if kinds[k] == 1 else 's'}" for k in ("model", "source", "exposure"))
    heading = title or f"{_package(manifest, package)}: {counted} (tests not drawn), from dbt's manifest"
    ax.text(margin, title_h * 0.5, heading, fontproperties=bold, ha="left", va="center", color="#222222")
    ax.text(margin, height - margin - legend_h / 2, _LEGEND, fontproperties=font, ha="left", va="center",
            color="#333333", linespacing=1.3)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return layout


def _rgb(colour: str) -> tuple[float, float, float]:
    from matplotlib.colors import to_rgb

    return to_rgb(colour)


def _darker(colour: str, factor: float) -> tuple[float, float, float]:
    r, g, b = _rgb(colour)
    return (r * factor, g * factor, b * factor)


def _ink(colour: str) -> str:
    r, g, b = _rgb(colour)
    return "#111111" if 0.299 * r + 0.587 * g + 0.114 * b > 0.45 else "#ffffff"
