"""The run history's trends as one picture, written next to the report (``run_history.png``)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import pyarrow as pa

__all__ = ["HISTORY_FILE", "step_times_note", "write_history_figure"]

HISTORY_FILE = "run_history.png"


def write_history_figure(history: pa.Table, out_dir: str | Path, *, current_run_id: str | None = None) -> pa.Table:
    """Draw the runs of ``clustering_state.run_history`` (oldest first) as four small trend panels.

    Panels: datasets and unclustered; clusters and labels born / retired;
    modularity, recall@k and the share of datasets keeping their label; the
    slowest steps' seconds, for the runs whose times are recorded. The
    on-run-end hook ``record_step_seconds`` writes a run's times after its
    models, this picture's among them, have run: so ``current_run_id`` (the
    run drawing the picture) never has them yet, and the picture says so
    under that panel, as it names any other run without them (one that
    stopped before its end).

    Returns one row: ``figure``, ``path``, ``n_runs``, ``n_runs_timed`` (runs
    whose step times are drawn) and ``note`` (the text under the steps panel).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = sorted(history.to_pylist(), key=lambda r: (r["run_started_at"], r["run_id"]))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / HISTORY_FILE
    runs = np.arange(1, len(rows) + 1)

    def series(name):
        return np.array([np.nan if r[name] is None else float(r[name]) for r in rows])

    fig, axes = plt.subplots(2, 2, figsize=(11, 6.5), dpi=110, sharex=True)
    (a, b), (c, d) = axes
    a.plot(runs, series("n_datasets"), "o-", color="#4c78a8", label="datasets")
    a.plot(runs, series("n_unclustered"), "s--", color="#9d9d9d", label="unclustered")
    a.set_title("datasets")
    b.plot(runs, series("n_clusters"), "o-", color="#f58518", label="clusters")
    b.plot(runs, series("labels_born"), "^:", color="#54a24b", label="labels born")
    b.plot(runs, series("labels_retired"), "v:", color="#e45756", label="labels retired")
    b.set_title("clusters and labels")
    c.plot(runs, series("modularity"), "o-", color="#72b7b2", label="modularity")
    c.plot(runs, series("recall_at_k"), "s-", color="#b279a2", label="k-NN recall@k")
    c.plot(runs, series("share_kept_label"), "^-", color="#eeca3b", label="share keeping its label")
    c.set_ylim(0, 1.05)
    c.set_title("quality and stability")
    steps = [json.loads(r["step_seconds"]) if r["step_seconds"] else {} for r in rows]
    totals: dict[str, float] = {}
    for seconds in steps:
        for name, value in seconds.items():
            totals[name] = totals.get(name, 0.0) + float(value)
    for name in sorted(totals, key=totals.get, reverse=True)[:5]:
        d.plot(runs, [s.get(name, np.nan) for s in steps], "o-", label=name, linewidth=1)
    untimed = [i + 1 for i, seconds in enumerate(steps) if not seconds]
    current = next((i + 1 for i, r in enumerate(rows) if current_run_id is not None and r["run_id"] == current_run_id),
                   None)
    note = step_times_note(untimed, current=current)
    for run in untimed:  # shaded: drawn without step times
        d.axvspan(run - 0.3, run + 0.3, color="#d9d9d9", alpha=0.6, linewidth=0)
        d.text(run, 0.5, "written when\nthis run ends" if run == current else "no step times",
               transform=d.get_xaxis_transform(), rotation=90, ha="center", va="center", fontsize=8, color="#555555")
    d.set_title("slowest steps (seconds)")
    for ax in (a, b, c, d):
        if ax.get_legend_handles_labels()[0]:  # a panel with nothing drawn yet (no step times) has no legend
            ax.legend(frameon=False, fontsize=8)
        ax.grid(alpha=0.3)
    for ax in (c, d):
        ax.set_xlabel("run")
        ax.set_xticks(runs)
    modes = ", ".join(sorted({f"{r['clustering_mode']}/{r['pull_path']}" for r in rows}))
    fig.suptitle(f"{len(rows)} runs ({modes}); from clustering_state.run_history", fontsize=11)
    caption = textwrap.fill(f"steps panel: {note}", 150)
    fig.text(0.01, 0.01, caption, ha="left", va="bottom", fontsize=8.5, color="#444444")
    fig.tight_layout(rect=(0, 0.01 + 0.025 * (caption.count("\n") + 1), 1, 1))
    fig.savefig(path)
    plt.close(fig)
    return pa.table({
        "figure": ["run_history"], "path": [str(path)], "n_runs": [len(rows)],
        "n_runs_timed": [len(rows) - len(untimed)], "note": [note],
    })


def step_times_note(untimed: list[int], *, current: int | None = None) -> str:
    """What the steps panel says about the runs (numbered from 1) that it draws without step times."""
    parts = []
    if current is not None and current in untimed:
        parts.append(f"run {current} (this one): its step times are recorded when it ends, after this picture; "
                     "the next run's picture shows them")
    others = [run for run in untimed if run != current]
    if others:
        runs = ", ".join(map(str, others))
        parts.append(f"run {runs} has no step times (it stopped before its on-run-end hook)" if len(others) == 1
                     else f"runs {runs} have no step times (they stopped before their on-run-end hook)")
    return "; ".join(parts) if parts else "every run's step times are drawn"
