"""Update a previous k-NN result for new, changed and removed datasets instead of searching every row again.

The previous run's lists are the state. A re-run searches only the datasets
whose list cannot be derived from that state, and inserts the new and changed
datasets into the other lists they now enter:

1. *Departures.* Removed datasets, and the old versions of changed ones,
   leave every list they were in (found by scanning the stored lists).
2. *Searched rows.* New and changed datasets, and every carried-over dataset
   whose list fell below ``k`` members in step 1 (unless its previous list
   already held every other dataset), are searched against all current rows.
3. *Insertions.* Each new or changed dataset ``q`` enters the list of a
   carried-over dataset ``j`` that was not searched when its similarity to
   ``j`` is at least that of ``j``'s last member (any similarity while a
   list that held every other dataset is not full), pushing out the last
   member of a full list.

Why this is exact (method ``exact``, previous lists exact): the members a
list kept in step 1 are the most similar carried-over datasets, and every
carried-over dataset outside the list is at most as similar as its last
stored member. So a list still holding ``k`` members after step 1 only
needs the new and changed datasets that beat its last member; a shorter
list does not know which carried-over dataset comes next and is searched
again. The exact path finds every insertion: the new and changed rows are
multiplied with all rows a block at a time (the same product gives their own
lists), and each column is compared with that row's last similarity.

Slack: a removal empties a place in every list it was in (about ``k`` lists
per departed dataset), and each such list costs a search. With ``slack``,
the stored state keeps up to ``k + slack`` neighbours a dataset; a list that
loses members keeps the rest (still its most similar datasets, so the same
argument holds with fewer members) and is searched only once fewer than
``k`` remain. Insertions refill it from the top. The result is always the
first ``k`` of each list.

Ties: lists are ordered by decreasing similarity, ties by row position in
the current embeddings, as :func:`exact_knn` orders them. Similarities that
differ only by float rounding (stored ones were computed in another block
product) may be ordered either way, so at the ``k``-th place of a list two
datasets equally similar up to rounding may be exchanged against a full
recomputation; neighbour sets and similarities are otherwise the same.

Approximate methods (``ivf``, ``hnsw``): one index is built over all current
rows and only the searched rows are queried through it. For the insertions
a new or changed dataset ``q`` is compared (exact cosine) with candidates,
not with every row: the carried-over datasets among its own ``k`` found
neighbours, and the carried-over datasets whose list holds one of those
neighbours (the stored graph read backwards: a list that ``q`` should enter
usually holds ``q``'s nearest datasets already). ``q`` is missed in a list
whose owner is neither. The forward neighbours alone are a poor candidate
set: ``q`` belongs in many lists of datasets that are not among its own
nearest (a dataset at the edge of a cluster lists datasets whose own nearest
lie inside it). ``benchmarks/incremental_knn.py`` measures the share of
insertions found and the updated graph's recall@k. The lists not searched
keep their previous members, so the updated graph's recall follows the
previous graph's.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..embeddings import Embeddings, as_embeddings
from ..errors import ClusteringInputError
from ..validation import nonnegative_int, positive_int
from ._common import (
    KnnResult,
    distinct_sorted,
    key_positions,
    normalize_rows,
    pair_similarities,
    position_type,
    rows_of_keys,
)
from ._common import as_strings as _strings
from ._exact import _BLOCK_VALUES, query_knn, top_k_of_block
from ._hnsw import HnswParams, hnsw_knn
from ._ivf import IvfModel, IvfParams, ivf_knn

# Default of the share of datasets new, changed or removed above which a full search runs instead.
INCREMENTAL_MAX_CHANGE_SHARE = 0.2
# New or changed rows whose insertion candidates are gathered at once (approximate methods).
_REVERSE_CHUNK = 1024


@dataclass(frozen=True, eq=False)
class PreviousKnn:
    """The neighbour lists a previous run stored: the state an update starts from.

    Attributes
    ----------
    ids
        String ids of the previous run's datasets (unique, any order).
    indices
        integer ``(n_prev, w)`` (int32 as read from a table, below 2**31
        rows; an update keeps that type): row ``i`` lists the positions in ``ids`` of
        the neighbours of ``ids[i]``, by decreasing similarity (ties by
        position), never ``i`` itself; ``w = min(k_prev, n_prev - 1)``. A
        list may be shorter (padded with ``-1`` at its end) when it is the
        state of an update with ``slack``: its members are then still the
        row's most similar datasets.
    similarities
        ``float32``, same shape: their cosine similarities.
    """

    ids: pa.Array
    indices: np.ndarray
    similarities: np.ndarray

    @classmethod
    def from_table(cls, table: pa.Table) -> PreviousKnn:
        """The lists of a long k-NN table, as :func:`knn_table` writes it.

        ``table`` needs ``dataset_id``, ``neighbor_id``, ``neighbor_rank``
        (1 = most similar) and ``similarity``; each dataset's ranks run
        ``1..m`` (``m`` may differ between datasets: a shorter list is padded
        with ``-1``), and every neighbour is among the datasets.
        """
        for column in ("dataset_id", "neighbor_id", "neighbor_rank", "similarity"):
            if column not in table.column_names:
                raise ClusteringInputError(f"previous k-NN table has no column {column!r}: pass knn_table's output")
        datasets = _strings(table.column("dataset_id"))
        ids = pc.unique(datasets)
        ids = ids.take(pc.sort_indices(ids))
        row = pc.index_in(datasets, value_set=ids).to_numpy(zero_copy_only=False).astype(np.int64)
        neighbor = pc.index_in(_strings(table.column("neighbor_id")), value_set=ids)
        if neighbor.null_count:
            raise ClusteringInputError(
                f"previous k-NN table: {neighbor.null_count} neighbour ids are not datasets of the table; "
                "it must hold every dataset's list"
            )
        neighbor = neighbor.to_numpy(zero_copy_only=False).astype(np.int64)
        return cls._from_positions(ids, row, neighbor, table)

    @classmethod
    def from_keyed_table(cls, table: pa.Table, owners: pa.Table) -> PreviousKnn:
        """:meth:`from_table` for lists that name datasets by integer key (``dataset_key``, ``neighbor_key``,
        ``neighbor_rank``, ``similarity``, as ``clustering_state.knn_state`` stores them), with ``owners``
        (``dataset_id``, ``dataset_key``: one row per stored list) naming the keys: the keys map to rows
        through a dense array, where :meth:`from_table` looks every neighbour's string id up."""
        for column in ("dataset_key", "neighbor_key", "neighbor_rank", "similarity"):
            if column not in table.column_names:
                raise ClusteringInputError(f"previous k-NN table has no column {column!r}")
        owners = owners.sort_by("dataset_id")
        ids = _strings(owners.column("dataset_id"))
        if len(pc.unique(ids)) != len(ids):
            raise ClusteringInputError("previous k-NN owners: ids must be unique")
        position = key_positions(owners.column("dataset_key").to_numpy(), "previous k-NN owners")

        def rows_of(column: str) -> np.ndarray:
            found = rows_of_keys(position, table.column(column).to_numpy())
            if np.any(found < 0):
                raise ClusteringInputError(
                    f"previous k-NN table: {int(np.count_nonzero(found < 0))} {column} values are not keys of the "
                    "owners; it must hold every dataset's list"
                )
            return found

        return cls._from_positions(ids, rows_of("dataset_key"), rows_of("neighbor_key"), table)

    @classmethod
    def _from_positions(cls, ids: pa.Array, row: np.ndarray, neighbor: np.ndarray, table: pa.Table) -> PreviousKnn:
        n = len(ids)
        counts = np.bincount(row, minlength=n)
        width = int(counts.max()) if n else 0
        rank = table.column("neighbor_rank").to_numpy().astype(np.int64) - 1
        if np.any((rank < 0) | (rank >= counts[row])):
            raise ClusteringInputError("previous k-NN table: each dataset's neighbor_rank must run from 1 to its count")
        indices = np.full((n, width), -1, position_type(n))
        sims = np.full((n, width), -np.inf, np.float32)
        indices[row, rank] = neighbor
        sims[row, rank] = table.column("similarity").to_numpy().astype(np.float32)
        if np.any((indices < 0).sum(axis=1) != width - counts):
            raise ClusteringInputError("previous k-NN table: a dataset has a neighbor_rank twice")
        return cls(ids, indices, sims)


@dataclass(frozen=True)
class KnnUpdateStats:
    """What an update did.

    ``previous_rows`` and ``current_rows``: datasets in each run; ``new``,
    ``changed`` (embedding differs), ``removed``: datasets of each kind;
    ``rows_searched``: rows whose list was searched afresh (new and changed
    ones, refilled lists, and lists an approximate insertion left short);
    ``lists_refilled``: carried-over datasets searched again because their
    list lost members; ``lists_entered``: carried-over datasets not searched
    whose list a new or changed dataset entered; ``lists_changed``: rows
    whose list differs from the previous one (see
    :attr:`KnnUpdate.changed_rows`); ``lists_partial``: rows whose state
    list holds fewer than ``k + slack`` members (members lost and not
    replaced; only with ``slack``).
    """

    previous_rows: int
    current_rows: int
    new: int
    changed: int
    removed: int
    rows_searched: int
    lists_refilled: int
    lists_entered: int
    lists_changed: int
    lists_partial: int


@dataclass(frozen=True, eq=False)
class KnnUpdate:
    """The updated k-NN lists of the current datasets.

    Attributes
    ----------
    ids
        The current datasets' ids, row ``i`` of ``result`` belonging to
        ``ids[i]`` (the order of :class:`~mdc_clustering.embeddings.Embeddings`).
    result
        :class:`KnnResult` over the current rows: ``indices`` ``(n, min(k, n -
        1))`` positions in ``ids``, ``similarities``, and the search's
        provenance (for approximate methods, the index the searched rows used).
    state
        The lists to store for the next update: ``result`` itself, or with
        ``slack`` up to ``k + slack`` members a row (fewer padded with -1).
    changed_rows
        ``int64`` ascending positions of the rows whose list (members, order or
        similarities) differs from the previous run's: new and changed
        datasets, and carried-over ones that lost or gained a member. Only
        their features need recomputing.
    stats
        :class:`KnnUpdateStats`.
    """

    ids: pa.Array
    result: KnnResult
    state: PreviousKnn
    changed_rows: np.ndarray
    stats: KnnUpdateStats


@dataclass(frozen=True)
class FullRunDecision:
    """Whether a re-run should search every dataset instead of updating, and why (a sentence for the report)."""

    full: bool
    reason: str
    change_share: float


def decide_full_run(
    previous_rows: int,
    new: int,
    changed: int,
    removed: int,
    *,
    max_change_share: float = INCREMENTAL_MAX_CHANGE_SHARE,
    k: int | None = None,
    previous_width: int | None = None,
) -> FullRunDecision:
    """Decide between an incremental update (:func:`update_knn`) and a full k-NN search.

    The change share is ``(new + changed + removed) / (previous_rows +
    new)``: the datasets touched among all datasets of either run. A full
    search runs when there is no previous run, when the share is above
    ``max_change_share``, or (given ``k`` and ``previous_width``, the
    previous lists' length) when the previous lists are shorter than this
    run needs and did not already hold every other dataset.

    The share undercounts an update's work: each removed or changed dataset
    also empties a place in about ``k`` lists, which are searched again
    unless the state keeps ``slack`` (see :func:`update_knn`).

    Returns
    -------
    FullRunDecision
        ``full``, a one-sentence ``reason`` and the ``change_share``.
    """
    counts = {"previous_rows": previous_rows, "new": new, "changed": changed, "removed": removed}
    for name, value in counts.items():
        if int(value) != value or value < 0:
            raise ClusteringInputError(f"{name} must be a non-negative integer, got {value!r}")
    if not 0 <= max_change_share <= 1:
        raise ClusteringInputError(f"incremental_max_change_share must be in [0, 1], got {max_change_share!r}")
    if changed + removed > previous_rows:
        raise ClusteringInputError(
            f"{changed} changed and {removed} removed datasets, but the previous run had {previous_rows}"
        )
    touched = new + changed + removed
    everyone = previous_rows + new
    share = touched / everyone if everyone else 0.0
    counted = f"{new} new, {changed} changed, {removed} removed of {previous_rows} previous datasets"
    if previous_rows == 0:
        return FullRunDecision(True, "full search: no previous k-NN lists", share)
    if k is not None and previous_width is not None:
        needed = min(k, previous_rows - removed + new - 1)
        if previous_width < needed and previous_width < previous_rows - 1:
            return FullRunDecision(
                True, f"full search: the previous lists hold {previous_width} neighbours, this run needs {needed}",
                share,
            )
    if share > max_change_share:
        return FullRunDecision(
            True, f"full search: {share:.1%} of datasets touched ({counted}), above "
            f"incremental_max_change_share {max_change_share:g}", share,
        )
    return FullRunDecision(
        False, f"incremental update: {share:.1%} of datasets touched ({counted}), at most "
        f"incremental_max_change_share {max_change_share:g}", share,
    )


def update_knn(
    previous: PreviousKnn,
    current: Embeddings | pa.Table,
    k: int,
    *,
    changed: pa.Array | Sequence[str] = (),
    method: str = "exact",
    params: IvfParams | HnswParams | None = None,
    slack: int = 0,
    batch_rows: int | None = None,
    ivf_model: IvfModel | None = None,
    progress: Callable[..., None] | None = None,
) -> KnnUpdate:
    """The k-NN lists of ``current``, updated from ``previous`` instead of searched whole.

    See the module's description for the steps, and why with ``exact`` the
    result equals a full :func:`exact_knn` of ``current``.

    Parameters
    ----------
    previous
        The previous run's lists (:class:`PreviousKnn`; exact ones for an
        exact result).
    current
        The current datasets: :class:`~mdc_clustering.embeddings.Embeddings`
        or an Arrow table with ``dataset_id`` and ``embedding``.
    k
        Neighbours per dataset (``k >= n`` gives every other one).
    changed
        Ids of current datasets whose embedding differs from the previous
        run's. Ids new since then may be listed too: new datasets (ids not
        in ``previous``) and removed ones (previous ids not in ``current``)
        are read off the ids.
    method
        ``exact``, ``ivf`` or ``hnsw`` (with ``params``, an
        :class:`IvfParams` or :class:`HnswParams`), as
        :func:`mdc_clustering.stages.neighbor_search.nearest_neighbors`.
    slack
        The state keeps up to ``k + slack`` neighbours a dataset (searched
        rows get that many), so that a list can lose up to ``slack`` members
        before it must be searched again. ``previous`` should come from a
        search (or update) with the same width: a full search of ``k +
        slack`` neighbours, its result kept as the state, its first ``k``
        columns as the graph.
    batch_rows
        Exact: query rows per block product (default: a block of ~128 MiB).
    ivf_model
        IVF: the trained index of an earlier run (:class:`IvfModel`), used
        when it fits the current rows (see :func:`ivf_knn`'s ``model``).
    progress
        Optional callback, called with messages.

    Returns
    -------
    KnnUpdate
        The lists (``result``, ``k`` a row), the state for the next update,
        the rows whose list changed and the stats.
    """
    started = time.perf_counter()
    k = positive_int("k_neighbors", k)
    slack = nonnegative_int("slack", slack)
    if method not in ("exact", "ivf", "hnsw"):
        raise ClusteringInputError(f"k-NN method must be 'exact', 'ivf' or 'hnsw' here, got {method!r}")
    emb = as_embeddings(current)
    x = emb.matrix if emb.normalized else normalize_rows(emb.matrix)
    n, d = x.shape
    kk = max(0, min(k, n - 1))  # the result's width
    ww = max(0, min(k + slack, n - 1))  # the state's width
    ids = _strings(emb.ids)
    prev_ids = _strings(previous.ids)
    n_prev = len(prev_ids)
    # positions as int32 below 2**31 rows: every (rows, width) index array below is half the size
    position = position_type(max(n, len(prev_ids)))
    prev_indices = np.asarray(previous.indices, dtype=position)
    prev_sims = np.asarray(previous.similarities, dtype=np.float32)
    width = prev_indices.shape[1] if prev_indices.ndim == 2 else -1
    if prev_indices.shape != (n_prev, width) or prev_sims.shape != prev_indices.shape or width > max(0, n_prev - 1):
        raise ClusteringInputError(
            f"previous k-NN lists must be ({n_prev}, w) arrays with w < {n_prev} (one row per previous id), "
            f"got indices {prev_indices.shape} and similarities {prev_sims.shape}"
        )

    prev_to_cur = _positions(prev_ids, ids)
    cur_to_prev = _positions(ids, prev_ids)
    changed_pos = _positions(_strings(changed), ids)
    if np.any(changed_pos < 0):
        missing = _strings(changed).filter(pc.invert(pc.is_in(_strings(changed), value_set=ids)))
        raise ClusteringInputError(
            f"{len(missing)} changed ids are not current datasets (e.g. {missing[0].as_py()!r}): "
            "pass ids of the current embeddings"
        )
    is_new = cur_to_prev < 0
    dirty = is_new.copy()
    dirty[changed_pos] = True
    n_new = int(is_new.sum())
    n_changed = int(dirty.sum()) - n_new
    n_removed = int((prev_to_cur < 0).sum())

    # Previous positions -> current positions of the datasets that stay in lists (-1: removed or changed).
    survives = prev_to_cur >= 0
    survives[survives] = ~dirty[prev_to_cur[survives]]
    mapped = np.append(np.where(survives, prev_to_cur, -1), -1).astype(position)  # [-1] (padding) maps to -1

    stay = np.flatnonzero(~dirty)  # carried-over rows, unchanged
    held_rows = cur_to_prev[stay]
    # a list that held every other previous dataset: all carried-over datasets are in it
    exhaustive = (prev_indices >= 0).sum(axis=1)[held_rows] >= n_prev - 1
    held = mapped[prev_indices[held_rows]]  # their previous lists in current positions
    held_sims = prev_sims[held_rows]
    del held_rows
    before, before_sims = _fit(held, kk, -1), _fit(held_sims, kk, -np.inf)  # for changed_rows
    gone = held < 0
    if gone.any():  # departed members (or padding) to the end, order kept
        order = np.argsort(gone, axis=1, kind="stable")
        held = np.take_along_axis(held, order, axis=1)
        held_sims = np.take_along_axis(held_sims, order, axis=1)
        del order
    del gone
    held, held_sims = _fit(held, ww, -1), _fit(held_sims, ww, -np.inf)
    held_sims[held < 0] = -np.inf
    refill = ((held[:, :kk] < 0).any(axis=1) if kk else np.zeros(len(stay), bool)) & ~exhaustive
    keep = stay[~refill]

    indices = np.full((n, ww), -1, position)
    sims = np.full((n, ww), -np.inf, np.float32)
    indices[keep], sims[keep] = held[~refill], held_sims[~refill]
    del held, held_sims
    is_open = np.zeros(n, bool)  # kept lists holding every carried-over dataset (take any insertion until full)
    is_open[keep] = exhaustive[~refill]
    queries = np.sort(np.concatenate([np.flatnonzero(dirty), stay[refill]]))
    provenance = {"search_dims": d}
    if kk and len(queries):
        # a kept row accepts an insertion at least as similar as its last member; +inf: not a kept row
        bound = np.full(n, np.inf, np.float32)
        bound[keep] = _last(indices[keep], sims[keep], is_open[keep])
        if method == "exact":
            _exact_pass(x, queries, dirty, ww, indices, sims, bound, is_open, batch_rows, progress)
        else:
            provenance = _approximate_pass(
                x, queries, dirty, kk, ww, indices, sims, bound, is_open, method, params, ivf_model, progress
            )
    np.clip(sims, -1.0, 1.0, out=sims)
    searched = len(queries)
    still_short = np.flatnonzero((indices[:, :kk] < 0).any(axis=1)) if kk else np.empty(0, np.int64)
    if still_short.size:  # an approximate insertion missed rows a list without k members needed
        indices[still_short], sims[still_short] = query_knn(
            x[still_short], x, ww, exclude=still_short, normalized=True
        )
        searched += still_short.size

    result = KnnResult(np.ascontiguousarray(indices[:, :kk]), np.ascontiguousarray(sims[:, :kk]), **provenance)
    changed_rows = np.flatnonzero(dirty)
    if len(stay):
        differs = np.any(result.indices[stay] != before, axis=1) | np.any(result.similarities[stay] != before_sims,
                                                                             axis=1)
        changed_rows = np.union1d(changed_rows, stay[differs])
    entered = int(np.any(dirty[np.maximum(result.indices[keep], 0)], axis=1).sum()) if kk and len(keep) else 0
    stats = KnnUpdateStats(
        previous_rows=n_prev, current_rows=n, new=n_new, changed=n_changed, removed=n_removed,
        rows_searched=searched, lists_refilled=int(refill.sum()), lists_entered=entered,
        lists_changed=len(changed_rows), lists_partial=int((indices < 0).any(axis=1).sum()) if ww else 0,
    )
    if progress is not None:
        progress(
            f"k-NN update ({method}): {n_new} new, {n_changed} changed, {n_removed} removed; {searched} of {n} "
            f"rows searched ({stats.lists_refilled} lists refilled), {entered} lists entered, "
            f"{len(changed_rows)} lists changed in {time.perf_counter() - started:.1f}s",
            final=True,
        )
    return KnnUpdate(ids, result, PreviousKnn(ids, indices, sims), changed_rows, stats)


def _exact_pass(x, queries, dirty, ww, indices, sims, bound, is_open, batch_rows, progress):
    """Search ``queries`` exactly, one block product at a time; insert the dirty ones into the kept lists."""
    n = x.shape[0]
    if batch_rows is None:
        batch_rows = max(1, min(len(queries), _BLOCK_VALUES // n))
    started = time.perf_counter()
    for start in range(0, len(queries), batch_rows):
        rows = queries[start : start + batch_rows]
        block = x[rows] @ x.T
        block[np.arange(len(rows)), rows] = -np.inf
        indices[rows], sims[rows] = top_k_of_block(block, ww)
        inserting = np.flatnonzero(dirty[rows])
        if inserting.size:
            candidates = block[inserting]
            which, owner = np.nonzero(candidates >= bound)
            _insert(indices, sims, bound, is_open, owner, rows[inserting[which]], candidates[which, owner])
        if progress is not None:
            progress(f"k-NN update: {start + len(rows)}/{len(queries)} rows searched "
                     f"({time.perf_counter() - started:.1f}s)")


def _approximate_pass(x, queries, dirty, kk, ww, indices, sims, bound, is_open, method, params, ivf_model, progress):
    """Search ``queries`` through an index over all rows; insert the dirty ones into their candidates' lists.

    A dirty row's candidates: the kept rows among its ``kk`` nearest found
    neighbours, and the kept rows whose list holds one of those neighbours.
    """
    from scipy import sparse

    n = x.shape[0]
    if method == "ivf":
        found = ivf_knn(x, ww, params or IvfParams(), normalized=True, rows=queries, model=ivf_model,
                        progress=progress)
    else:
        found = hnsw_knn(x, ww, params or HnswParams(), normalized=True, rows=queries, progress=progress)
    indices[queries], sims[queries] = found.indices, found.similarities
    inserting = queries[dirty[queries]]
    near = found.indices[dirty[queries], :kk]
    if inserting.size:
        # which kept rows list each row (the kept lists, inverted: CSR over the listed row)
        kept = np.flatnonzero(np.isfinite(bound))
        listed = indices[kept].ravel()
        owner = np.repeat(kept, ww)[listed >= 0]
        listed = listed[listed >= 0]
        # grouped by the listed row with a counting sort (scipy's COO to CSR), each group's owners in
        # increasing order: the order a stable argsort of ``listed`` gives, at a fifth of its cost
        # (30M entries at a million rows: 1 s against 6 s)
        inverted = sparse.csr_matrix((np.ones(len(listed), np.int8), (listed, owner)), shape=(n, n))
        inverted.sort_indices()
        listers, offsets = inverted.indices, inverted.indptr
        del listed, owner, inverted
        for start in range(0, inserting.size, _REVERSE_CHUNK):
            rows, hop = inserting[start : start + _REVERSE_CHUNK], near[start : start + _REVERSE_CHUNK]
            candidates = _candidates(hop, listers, offsets, n)
            cand_sims = pair_similarities(x, rows, candidates)
            accepted = (candidates >= 0) & (cand_sims >= bound[np.maximum(candidates, 0)])
            which, col = np.nonzero(accepted)
            _insert(indices, sims, bound, is_open, candidates[which, col], rows[which], cand_sims[which, col])
    return {"search_dims": found.search_dims, "nlist": found.nlist, "nprobe": found.nprobe,
            "pilot_recall": found.pilot_recall, "model": found.model, "model_reused": found.model_reused}


def _candidates(hop: np.ndarray, listers: np.ndarray, offsets: np.ndarray, n: int) -> np.ndarray:
    """Per row of ``hop`` ``(b, k)``: its entries and the rows listing one of them, distinct, padded with -1.

    ``listers[offsets[s]:offsets[s + 1]]`` are the rows whose list holds ``s``.
    """
    b, width = hop.shape
    valid = (hop >= 0).ravel()
    hop = hop.ravel()[valid]
    owner = np.repeat(np.arange(b), width)[valid]
    starts = offsets[hop]
    lengths = offsets[hop + 1] - starts
    within = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    rows = np.concatenate([owner, np.repeat(owner, lengths)])
    cols = np.concatenate([hop, listers[np.repeat(starts, lengths) + within]])
    pairs = distinct_sorted(rows.astype(np.int64) * n + cols)  # distinct, by row
    rows, cols = pairs // n, pairs % n
    rank = np.arange(rows.size) - np.searchsorted(rows, rows)
    out = np.full((b, int(rank.max()) + 1 if rank.size else 0), -1, np.int64)
    out[rows, rank] = cols
    return out


def _insert(indices, sims, bound, is_open, owner, member, similarity):
    """Merge candidate ``member``s into the lists of their ``owner`` rows: the best ``ww`` (the width) of each stay.

    Order: decreasing similarity, ties by position. ``bound`` is reset to
    each touched list's last similarity (see :func:`_last`).
    """
    if owner.size == 0:
        return
    ww = indices.shape[1]
    touched = distinct_sorted(owner)
    rows = np.concatenate([np.repeat(touched, ww), owner])
    cols = np.concatenate([indices[touched].ravel(), member])
    vals = np.concatenate([sims[touched].ravel(), similarity.astype(np.float32)])
    present = cols >= 0
    rows, cols, vals = rows[present], cols[present], vals[present]
    order = np.lexsort((cols, -vals, rows))
    rows, cols, vals = rows[order], cols[order], vals[order]
    rank = np.arange(len(rows)) - np.searchsorted(rows, rows, side="left")
    best = rank < ww
    indices[touched], sims[touched] = -1, -np.inf
    indices[rows[best], rank[best]] = cols[best]
    sims[rows[best], rank[best]] = vals[best]
    bound[touched] = _last(indices[touched], sims[touched], is_open[touched])


def _last(indices: np.ndarray, sims: np.ndarray, is_open: np.ndarray) -> np.ndarray:
    """The similarity a list's new member must reach: its last member's.

    A list that holds every carried-over dataset (``is_open``) takes any
    member (``-inf``) until it is full. The members of a list form an exact
    prefix of the row's ranking, so a dataset more similar than the last
    member belongs in it, and one less similar is not known to.
    """
    count = (indices >= 0).sum(axis=1)
    last = sims[np.arange(len(count)), np.maximum(count - 1, 0)]
    return np.where((count == 0) | (is_open & (count < indices.shape[1])), -np.inf, last).astype(np.float32)


def _fit(a: np.ndarray, width: int, fill) -> np.ndarray:
    """``a``'s first ``width`` columns, padded with ``fill`` when it has fewer."""
    if a.shape[1] >= width:
        return np.ascontiguousarray(a[:, :width])
    return np.concatenate([a, np.full((a.shape[0], width - a.shape[1]), fill, a.dtype)], axis=1)


def _positions(values: pa.Array, value_set: pa.Array) -> np.ndarray:
    """Position of each of ``values`` in ``value_set`` (``-1`` where absent), ``int64``."""
    found = pc.fill_null(pc.index_in(values, value_set=value_set), -1)
    return found.to_numpy(zero_copy_only=False).astype(np.int64)
