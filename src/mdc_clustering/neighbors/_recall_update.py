"""Update the exact answers of a recall sample for new, changed and removed datasets instead of searching again.

The recall measure (:func:`knn_recall`) needs each sampled dataset's exact
``k``-th similarity among all other datasets. A re-run keeps each sampled
dataset's exact top ``k`` (ids and similarities) from the last run and:

1. *Searches* a sampled dataset again against every current embedding when
   its own embedding is new or changed, when it was not in the stored
   sample, or when a removed or changed dataset was among its stored top
   ``k`` (the list lost a member: which dataset comes next is unknown).
2. *Merges* every other sampled dataset's stored top ``k`` with its
   similarities to the new and changed embeddings (a search of the sample's
   rows over the delta only).

Why this is exact: a merged list lost no member, and every current dataset
outside it that is not new or changed was already at most as similar as its
last member (the stored list held the exact top ``k``, or every other
dataset when there were fewer). So the top ``k`` of the stored list plus the
new and changed datasets is the exact top ``k``. Similarities computed in
another product may differ from a full search's by float rounding only.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..embeddings import Embeddings
from ..errors import ClusteringInputError
from ._common import as_strings
from ._incremental import INCREMENTAL_MAX_CHANGE_SHARE, decide_full_run
from ._recall import TopK, kth_of, streamed_top_k


def recall_fingerprint(k: int) -> str:
    """What a stored exact answer depends on besides the embeddings: equal fingerprints = reusable answers."""
    return hashlib.md5(json.dumps({"k": int(k)}, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True, eq=False)
class ExactAnswers:
    """The sample's exact answers after an update.

    Attributes
    ----------
    ids
        The sampled datasets (string), in the order asked.
    top
        Their exact top ``k`` (:class:`TopK`).
    kth
        float32 ``(s,)``: the exact ``k``-th similarity (the smallest of a
        short list; ``-inf`` for an empty one), what :func:`knn_recall` measures against.
    searched
        bool ``(s,)``: searched against every current embedding this run
        (the others were merged with the new and changed embeddings).
    path
        ``'incremental'`` or ``'full'``.
    reason
        Why that path, one sentence.
    read_all
        Whether every current embedding was read (a search ran).
    """

    ids: pa.Array
    top: TopK
    kth: np.ndarray
    searched: np.ndarray
    path: str
    reason: str
    read_all: bool


def update_exact_answers(
    sample_ids: pa.Array,
    current: pa.Table,
    k: int,
    *,
    rows_of: Callable[[pa.Array], Embeddings],
    search_space: Callable[[], Iterable[tuple[pa.Array, np.ndarray]]],
    stored: pa.Table | None = None,
    previous: pa.Table | None = None,
    incremental: bool = True,
    max_change_share: float = INCREMENTAL_MAX_CHANGE_SHARE,
) -> ExactAnswers:
    """Each sampled dataset's exact top ``k`` among all current datasets, updated from the stored answers.

    Parameters
    ----------
    sample_ids
        This run's sampled datasets (every one is in ``current``).
    current
        ``dataset_id``, ``embedding_hash``: every current dataset.
    rows_of
        Unit embeddings of the given current ids (any order; called only
        for the sample and the new and changed datasets).
    search_space
        A fresh iterator of ``(ids, unit rows)`` slices of every current
        embedding (called only when a sampled dataset is searched).
    stored
        The last run's answers: ``dataset_id``, ``exact_neighbor_ids``
        (list of ids), ``exact_similarities`` (list, same length, decreasing)
        and ``recall_fingerprint`` (:func:`recall_fingerprint`); None before any.
    previous
        ``dataset_id``, ``embedding_hash``: every dataset when ``stored``
        was computed.

    The update runs when ``incremental``, the stored fingerprint is this
    ``k``'s and the new, changed and removed datasets are at most
    ``max_change_share`` of all (:func:`decide_full_run`); otherwise every
    sampled dataset is searched.
    """
    sample_ids = as_strings(sample_ids)
    n = len(sample_ids)
    cur_ids = as_strings(current.column("dataset_id"))
    if pc.any(pc.is_null(pc.index_in(sample_ids, value_set=cur_ids))).as_py():
        raise ClusteringInputError("recall sample names datasets that are not among the current embeddings")
    fingerprint = recall_fingerprint(k)
    path, reason, plan = "full", "incremental is off", None
    if incremental:
        if stored is None or stored.num_rows == 0 or previous is None or previous.num_rows == 0:
            reason = "full search: no exact answers stored by an earlier run"
        elif pc.unique(stored.column("recall_fingerprint")).to_pylist() != [fingerprint]:
            reason = "full search: k changed since the stored exact answers"
        else:
            plan = _plan(sample_ids, current, stored, previous, max_change_share)
            reason = plan.reason
            if plan.full:
                plan = None
            else:
                path = "incremental"
    top = TopK(np.full((n, k), None, object), np.full((n, k), -np.inf, np.float32))
    searched = np.ones(n, bool) if plan is None else plan.search
    if plan is not None:
        _merge(top, sample_ids, plan, stored, rows_of, k)
    read_all = bool(searched.any())
    if read_all:
        rows = np.flatnonzero(searched)
        asked = sample_ids.take(pa.array(rows))
        queries = _in_order(rows_of(asked), asked)
        found = streamed_top_k(queries, asked, search_space(), k)
        top.neighbors[rows] = found.neighbors
        top.similarities[rows] = found.similarities
    return ExactAnswers(sample_ids, top, kth_of(top.similarities), searched, path, reason, read_all)


@dataclass(frozen=True)
class _Plan:
    full: bool
    reason: str
    search: np.ndarray  # bool per sampled dataset
    delta: pa.Array  # ids of the new and changed datasets


def _plan(sample_ids, current, stored, previous, max_change_share) -> _Plan:
    cur_ids = as_strings(current.column("dataset_id"))
    prev_ids = as_strings(previous.column("dataset_id"))
    at_prev = pc.index_in(cur_ids, value_set=prev_ids)
    new = pc.is_null(at_prev).to_numpy(zero_copy_only=False)
    prev_hash = previous.column("embedding_hash").combine_chunks().take(at_prev)
    same = pc.fill_null(pc.equal(prev_hash, current.column("embedding_hash").combine_chunks()), False)
    changed = ~new & ~same.to_numpy(zero_copy_only=False)
    removed = pc.is_null(pc.index_in(prev_ids, value_set=cur_ids)).to_numpy(zero_copy_only=False)
    decision = decide_full_run(len(prev_ids), int(new.sum()), int(changed.sum()), int(removed.sum()),
                               max_change_share=max_change_share)
    delta = cur_ids.filter(pa.array(new | changed))
    # departed versions: removed ids, and the old embedding of changed ones
    gone = pa.concat_arrays([prev_ids.filter(pa.array(removed)), cur_ids.filter(pa.array(changed))])
    stored_ids = as_strings(stored.column("dataset_id"))
    at_stored = pc.index_in(sample_ids, value_set=stored_ids)
    search = pc.is_null(at_stored).to_numpy(zero_copy_only=False).copy()  # newly in the sample
    search |= pc.is_in(sample_ids, value_set=delta).to_numpy(zero_copy_only=False)  # own embedding new or changed
    lists = stored.column("exact_neighbor_ids").combine_chunks()
    lost = pc.is_in(pc.list_flatten(lists).cast(pa.string()), value_set=gone).to_numpy(zero_copy_only=False)
    owner = pc.list_parent_indices(lists).to_numpy(zero_copy_only=False)
    lost_member = np.zeros(len(stored_ids), bool)
    lost_member[owner[lost]] = True
    known = ~search
    search[known] |= lost_member[at_stored.to_numpy(zero_copy_only=False)[known].astype(np.int64)]
    return _Plan(decision.full, decision.reason, search, delta)


def _merge(top: TopK, sample_ids: pa.Array, plan: _Plan, stored: pa.Table, rows_of, k: int) -> None:
    """Fill the rows not searched: their stored lists merged with the new and changed datasets."""
    rows = np.flatnonzero(~plan.search)
    if rows.size == 0:
        return
    stored_ids = as_strings(stored.column("dataset_id"))
    kept = sample_ids.take(pa.array(rows))
    at = pc.index_in(kept, value_set=stored_ids).to_numpy(zero_copy_only=False).astype(np.int64)
    lists = stored.column("exact_neighbor_ids").to_pylist()
    sims = stored.column("exact_similarities").to_pylist()
    width = k + len(plan.delta)
    names = np.full((rows.size, width), None, object)
    values = np.full((rows.size, width), -np.inf, np.float32)
    for row, i in enumerate(at):
        m = min(len(lists[i]), k)
        names[row, :m] = lists[i][:m]
        values[row, :m] = sims[i][:m]
    if len(plan.delta):
        queries = _in_order(rows_of(kept), kept)
        delta = _in_order(rows_of(plan.delta), plan.delta)
        names[:, k:] = np.asarray(plan.delta.to_pylist(), object)[None, :]
        values[:, k:] = queries @ delta.T
    keep = np.argsort(-values, axis=1, kind="stable")[:, :k]
    top.neighbors[rows] = np.take_along_axis(names, keep, axis=1)
    top.similarities[rows] = np.take_along_axis(values, keep, axis=1)
    top.neighbors[rows] = np.where(np.isfinite(top.similarities[rows]), top.neighbors[rows], None)


def _in_order(emb: Embeddings, ids: pa.Array) -> np.ndarray:
    """``emb``'s unit rows in the order of ``ids`` (each must be there)."""
    at = pc.index_in(ids, value_set=emb.ids.cast(pa.string()))
    if at.null_count:
        raise ClusteringInputError(f"{at.null_count} asked datasets have no embedding")
    return np.ascontiguousarray(emb.matrix[at.to_numpy(zero_copy_only=False).astype(np.int64)])
