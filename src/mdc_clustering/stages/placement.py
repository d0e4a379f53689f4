"""The placement stage: new datasets placed into the existing clusters, without re-clustering."""

from __future__ import annotations

import time

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..embeddings import Embeddings, as_embeddings
from ..errors import ClusteringInputError
from ..placement import place_by_vote
from ._arrow import Progress
from .memberships import labels_of, memberships_table


def place_new_datasets(
    embeddings: Embeddings | pa.Table,
    previous: pa.Table,
    *,
    seen: pa.Table | None = None,
    k: int = 15,
    min_share: float = 0.5,
    progress: Progress = None,
) -> pa.Table:
    """Keep every existing membership; place only the datasets that are new since the last full run.

    Each embedded dataset whose previous cluster is NULL and that the last
    full run did not see (not in ``seen``) is placed by
    :func:`mdc_clustering.placement.place_by_vote` among the embedded
    datasets that have a cluster; the rest keep their label untouched, and a
    dataset the last full run left unclustered stays unclustered (with the
    reason that run gave) until the next full run.

    Parameters
    ----------
    seen
        ``dataset_id``, ``unclustered_reason``: the datasets the last full
        run clustered (``clustering_state.full_run_datasets``); None = none.

    Returns
    -------
    pyarrow.Table
        :data:`~mdc_clustering.stages.memberships.MEMBERSHIPS_SCHEMA`, as
        :func:`~mdc_clustering.stages.clustering.cluster_memberships` (Leiden facts NULL), with
        ``label_status`` 'kept' for existing members and 'placed' for placed
        datasets, and the run's ``datasets_placed``, ``datasets_left_unplaced``
        and ``placement_seconds`` on every row.
    """
    from ..validation import positive_float, positive_int

    k = positive_int("placement_k", k)
    min_share = positive_float("placement_min_share", min_share)
    started = time.perf_counter()
    emb = as_embeddings(embeddings)
    ids = emb.ids
    n = len(ids)
    previous_arrow = labels_of(ids, previous)
    previous_labels: list[str | None] = previous_arrow.to_pylist()
    clustered = pc.is_valid(previous_arrow).to_numpy(zero_copy_only=False).astype(bool)
    seen_reason: list[str | None] = [None] * n
    was_seen = np.zeros(n, dtype=bool)
    if seen is not None and seen.num_rows:
        at = pc.index_in(ids, value_set=seen.column("dataset_id").combine_chunks())
        was_seen = pc.is_valid(at).to_numpy(zero_copy_only=False).astype(bool)
        seen_reason = seen.column("unclustered_reason").combine_chunks().take(at).to_pylist()
    if not clustered.any():
        raise ClusteringInputError(
            "clustering_mode 'place_new' needs a previous full run: no embedded dataset has a cluster yet. "
            "Run `dbt build` once with clustering_mode: full."
        )
    matrix = emb.matrix
    label_list = sorted({label for label in previous_labels if label is not None})
    code_of = {label: i for i, label in enumerate(label_list)}
    clustered_rows = np.flatnonzero(clustered)
    new_rows = np.flatnonzero(~clustered & ~was_seen)
    kept_unclustered = np.flatnonzero(~clustered & was_seen)
    codes, shares = place_by_vote(
        matrix[new_rows],
        matrix[clustered_rows],
        np.array([code_of[previous_labels[i]] for i in clustered_rows], dtype=np.int64),
        k,
        min_share=min_share,
    )
    labels = list(previous_labels)
    status: list[str | None] = ["kept" if c else None for c in clustered]
    for row, code in zip(new_rows.tolist(), codes.tolist(), strict=True):
        if code >= 0:
            labels[row] = label_list[code]
            status[row] = "placed"
    placed = int((codes >= 0).sum())
    reasons: list[str | None] = [None if label is not None else "not_placed" for label in labels]
    for row in kept_unclustered.tolist():  # left unclustered by the last full run: its reason stands
        reasons[row] = seen_reason[row] or "no_edge"
    seconds = time.perf_counter() - started
    table = memberships_table(
        {
            "dataset_id": ids,
            "cluster": labels,
            "label_status": status,
            "previous_cluster": previous_labels,
            "unclustered_reason": reasons,
        },
        {
            "labels_kept": len(label_list),
            "labels_born": 0,
            "labels_retired": 0,
            "clusters_split": 0,
            "clusters_merged": 0,
            "share_kept_label": 1.0,
            "datasets_placed": placed,
            "datasets_left_unplaced": len(new_rows) - placed,
            "placement_seconds": seconds,
        },
    )
    if progress is not None:
        progress(
            f"placed {placed} of {len(new_rows)} new datasets into {len(label_list)} existing clusters "
            f"({len(new_rows) - placed} left unclustered; {len(kept_unclustered)} that the last full run left "
            f"unclustered stay so) in {seconds:.2f}s; no re-clustering",
            final=True,
        )
    return table
