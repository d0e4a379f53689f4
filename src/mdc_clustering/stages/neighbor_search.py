"""The k-NN stage: each dataset's nearest datasets, and its nearest items of a reference set."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..embeddings import Embeddings, as_embeddings
from ..errors import ClusteringInputError
from ..neighbors import HnswParams, IvfModel, IvfParams, KnnResult, exact_knn, hnsw_knn, ivf_knn, knn_table, query_knn
from ..neighbors._common import as_strings
from ._arrow import Progress, constant_column


def nearest_neighbors(
    embeddings: Embeddings | pa.Table,
    k: int,
    *,
    method: str = "exact",
    params: IvfParams | HnswParams | None = None,
    progress: Progress = None,
) -> pa.Table:
    """k-NN edges of every dataset: ``embeddings`` (dataset_id, embedding) -> long neighbour table.

    ``method`` is ``exact`` (:func:`mdc_clustering.neighbors.exact_knn`), ``ivf``
    (:func:`mdc_clustering.neighbors.ivf_knn`, ``params`` an
    :class:`~mdc_clustering.neighbors.IvfParams`) or ``hnsw``
    (:func:`mdc_clustering.neighbors.hnsw_knn`, ``params`` an
    :class:`~mdc_clustering.neighbors.HnswParams`); see
    :func:`mdc_clustering.neighbors.knn_table` for the columns, plus, the same on
    every row: ``search_dims`` (int16): the dimension the search compared rows
    in (the embedding's, or the principal components the index was built
    on); ``ivf_nlist`` and ``ivf_nprobe`` (int32, NULL unless ``ivf``): the
    index's cells and the cells each row scanned, after the pilot check.
    """
    emb = as_embeddings(embeddings)
    return _searched_table(emb.ids, _search(emb, k, method, params, progress))


def _search(emb: Embeddings, k: int, method: str, params, progress: Progress) -> KnnResult:
    started = time.perf_counter()
    unit = emb.normalized
    if method == "ivf":
        found = ivf_knn(emb.matrix, k, params or IvfParams(), normalized=unit, progress=progress)
    elif method == "hnsw":
        found = hnsw_knn(emb.matrix, k, params or HnswParams(), normalized=unit, progress=progress)
    elif method == "exact":
        indices, sims = exact_knn(emb.matrix, k, normalized=unit, progress=progress)
        found = KnnResult(indices, sims, search_dims=emb.matrix.shape[1])
    else:
        raise ClusteringInputError(f"k-NN method must be 'exact', 'ivf' or 'hnsw' here, got {method!r}")
    if progress is not None:
        progress(
            f"{found.indices.size} neighbour rows ({len(emb)} datasets x {found.indices.shape[1]}, {method}, "
            f"{found.search_dims} dims) in {time.perf_counter() - started:.1f}s",
            final=True,
        )
    return found


def _searched_table(ids: pa.Array, found: KnnResult, owners: np.ndarray | None = None,
                    neighbor_ids: pa.Array | None = None) -> pa.Table:
    """:func:`knn_table` of a search (of the lists of ``owners`` only, when given), with how it searched
    (the same on every row)."""
    if owners is None or owners.size == len(ids):
        table = knn_table(ids, found.indices, found.similarities, neighbor_ids)
    else:
        table = knn_table(ids, found.indices[owners], found.similarities[owners], neighbor_ids, owners=owners)
    rows = table.num_rows
    for name, value, arrow_type in (
        ("search_dims", found.search_dims, pa.int16()),
        ("ivf_nlist", found.nlist, pa.int32()),
        ("ivf_nprobe", found.nprobe, pa.int32()),
    ):
        table = table.append_column(name, constant_column(value, arrow_type, rows))
    return table


def reference_neighbors(
    embeddings: Embeddings | pa.Table, reference: Embeddings | pa.Table, k: int, *, progress: Progress = None
) -> pa.Table:
    """Each dataset's ``k`` nearest items of a reference set, the dataset itself never among them.

    A dataset whose id is also in ``reference`` is excluded from its own
    neighbourhood, so a dataset is never described by itself.

    Parameters
    ----------
    embeddings
        Queries: ``dataset_id``, ``embedding``.
    reference
        The reference set: ``dataset_id``, ``embedding`` (same dimension).

    Returns
    -------
    pyarrow.Table
        As :func:`nearest_neighbors`; ``neighbor_id`` is a reference id.
    """
    started = time.perf_counter()
    emb, ref = as_embeddings(embeddings), as_embeddings(reference)
    query_ids, ref_ids = emb.ids, ref.ids
    queries, index = emb.matrix, ref.matrix
    if queries.shape[1] != index.shape[1]:
        raise ClusteringInputError(
            f"reference collection embeddings have dimension {index.shape[1]}, the datasets' have "
            f"{queries.shape[1]}: var reference_collection must name a collection embedded with the same model"
        )
    exclude = pc.fill_null(pc.index_in(query_ids, value_set=ref_ids), -1).to_numpy().astype(np.int64)
    unit = emb.normalized and ref.normalized
    indices, sims = query_knn(queries, index, k, exclude=exclude, normalized=unit, progress=progress)
    table = knn_table(query_ids, indices, sims, neighbor_ids=ref_ids)
    if progress is not None:
        progress(
            f"{table.num_rows} reference-neighbour rows ({len(query_ids)} datasets x {indices.shape[1]} "
            f"of {len(ref_ids)}) in {time.perf_counter() - started:.1f}s",
            final=True,
        )
    return table


def knn_fingerprint(k: int, method: str, params, dim: int) -> str:
    """What a stored k-NN list depends on besides the embeddings: equal fingerprints = reusable lists."""
    import dataclasses
    import hashlib
    import json

    described = {"k": int(k), "method": method, "dim": int(dim),
                 "params": dataclasses.asdict(params) if params is not None else None}
    return hashlib.md5(json.dumps(described, sort_keys=True).encode()).hexdigest()


def row_keys(ids: pa.Array, keys: pa.Table) -> np.ndarray:
    """The integer key (``keys``: ``dataset_id``, ``dataset_key``) of each of ``ids``, as an int32 array."""
    at = pc.index_in(ids, value_set=keys.column("dataset_id").combine_chunks().cast(pa.string()))
    if at.null_count:
        missing = pc.filter(ids, pc.is_null(at)).to_pylist()[:5]
        raise ClusteringInputError(f"keys: datasets without a dataset_key: {missing}")
    key_of = keys.column("dataset_key").take(at).to_numpy(zero_copy_only=False)
    return key_of.astype(np.int32)


def _stored_keys_differ(state_hashes: pa.Table | None, keys: pa.Table | None) -> int:
    """Stored lists (``state_hashes``: one row per list, with its owner's ``dataset_key``) whose owner has
    another key in ``keys`` now (owners no longer among ``keys`` do not count); 0 without keys."""
    if keys is None or state_hashes is None or "dataset_key" not in state_hashes.column_names:
        return 0
    where = pc.index_in(as_strings(state_hashes.column("dataset_id")),
                        value_set=as_strings(keys.column("dataset_id")))
    now = keys.column("dataset_key").combine_chunks().cast(pa.int64()).take(where)
    differ = pc.not_equal(state_hashes.column("dataset_key").combine_chunks().cast(pa.int64()), now)
    return int(pc.sum(pc.fill_null(differ, False)).as_py() or 0)


def updated_neighbors(
    embeddings: pa.Table | Embeddings,
    k: int,
    *,
    hashes: pa.Table | None = None,
    method: str = "exact",
    params: IvfParams | HnswParams | None = None,
    state: pa.Table | Callable[[], pa.Table] | None = None,
    incremental: bool = True,
    max_change_share: float = 0.2,
    ivf_models: dict[str, bytes] | None = None,
    changed_only: bool = False,
    state_fingerprints: list[str] | None = None,
    state_hashes: pa.Table | None = None,
    keys: pa.Table | None = None,
    stale_state: str | None = None,
    progress: Progress = None,
) -> pa.Table:
    """:func:`nearest_neighbors`, updated from the last run's lists where it can be (issue #17's re-run path).

    Parameters
    ----------
    embeddings
        ``dataset_id``, ``embedding`` and ``embedding_hash`` (the pull's
        fingerprint of each embedding; see
        :func:`mdc_clustering.stages.pull.embedding_hashes`); or
        :class:`~mdc_clustering.embeddings.Embeddings`, with ``hashes``.
    hashes
        ``dataset_id``, ``embedding_hash`` in any order (default: the
        columns of ``embeddings``).
    state
        The last run's ``clustering_state.knn_state`` (None before any), or
        a function that reads it: then it is read only when the update needs
        it and let go once its lists are unpacked (at a million datasets, 30
        million rows the update no longer holds twice):
        :func:`nearest_neighbors`'s ``dataset_id``, ``neighbor_id``,
        ``neighbor_rank``, ``similarity``, plus the owner's
        ``embedding_hash`` and ``knn_fingerprint`` (:func:`knn_fingerprint`).
    ivf_models
        Trained IVF indexes of earlier runs by k-NN fingerprint
        (:meth:`mdc_clustering.neighbors.IvfModel.to_bytes`; the state
        ``clustering_state.knn_index``): an update searches through this
        fingerprint's when it fits the rows; a full search trains its own.
    state_fingerprints, state_hashes
        The distinct ``knn_fingerprint`` values of ``state``, and one row
        per stored list (``dataset_id``, ``embedding_hash``), when the caller
        has them (a SQL aggregate is cheaper); ``state`` then needs only the
        list columns. Default: computed from ``state``. When
        ``state_hashes`` also holds ``dataset_key``, ``state`` may name
        owners and neighbours by key only (``dataset_key``,
        ``neighbor_key``, ``neighbor_rank``, ``similarity``: see
        :meth:`mdc_clustering.neighbors.PreviousKnn.from_keyed_table`).
    changed_only
        Return only the lists that changed (every list on the full path),
        and the first dataset's list when none did, so that the run's facts
        (the columns that are the same on every row) always have a row. The
        dbt model returns these: the unchanged lists are already stored.
    keys
        ``dataset_id``, ``dataset_key`` (int) in any order: each dataset's
        integer key (the model embedding_cache gives them). When given, the
        result names the list's owner and neighbour by key as well
        (``dataset_key``, ``neighbor_key``, int32), from the search's row
        positions (no string look-up).
    stale_state
        Why the stored lists cannot be updated although they exist (for
        example, they were stored without keys): the full path, with this
        reason. Lists whose owners' stored keys (``state_hashes``'
        ``dataset_key``) differ from ``keys`` take the full path too.

    The update (:func:`mdc_clustering.neighbors.update_knn`) runs when the
    state's fingerprint equals this run's and the new, changed (embedding
    hash differs) and removed datasets are at most ``max_change_share`` of
    all (:func:`mdc_clustering.neighbors.decide_full_run`); otherwise every
    dataset is searched.

    Returns
    -------
    pyarrow.Table
        :func:`nearest_neighbors`'s columns, plus ``embedding_hash`` (the
        owner's), ``list_changed`` (bool: the dataset's list differs from the
        stored one, or every row on the full path) and, the same on every
        row, ``knn_path`` ('incremental' or 'full'), ``knn_reason`` and
        ``knn_fingerprint``; ``ivf_model`` (binary, on the first row only:
        the IVF index searched with, for the next run; NULL elsewhere and for
        other methods) and ``ivf_model_reused`` (bool, the same on every row;
        NULL unless IVF searched).
    """
    from ..neighbors import PreviousKnn, decide_full_run, update_knn

    emb = as_embeddings(embeddings)
    fingerprint = knn_fingerprint(k, method, params, emb.matrix.shape[1])
    if hashes is None:
        hashes = embeddings.select(["dataset_id", "embedding_hash"])
    at = pc.index_in(emb.ids, value_set=hashes.column("dataset_id").combine_chunks().cast(pa.string()))
    if at.null_count:
        raise ClusteringInputError("hashes: an embedded dataset has no embedding_hash row")
    own_hash = hashes.column("embedding_hash").take(at)
    path, reason, update = "full", "incremental is off", None
    if callable(state) and incremental and stale_state is None:
        state = state()
    if incremental:
        if stale_state is not None:
            reason = f"full search: {stale_state}"
        elif state is None or callable(state) or state.num_rows == 0:
            reason = "full search: no k-NN lists stored by an earlier run"
        elif (sorted(state_fingerprints) if state_fingerprints is not None
              else pc.unique(state.column("knn_fingerprint")).to_pylist()) != [fingerprint]:
            reason = "full search: the k-NN settings (k, method, parameters) or the dimension changed"
        elif differ := _stored_keys_differ(state_hashes, keys):
            # keys are stable by construction (embedding_cache): a guard, lists by other keys are not read
            reason = f"full search: {differ} stored lists name their dataset by another key than the embedding cache's"
        else:
            if state_hashes is None:
                owners = state.group_by("dataset_id").aggregate([("embedding_hash", "min")])
                state_hashes = owners.rename_columns(["dataset_id", "embedding_hash"])
            # new, changed and removed by one vectorised look-up of the current ids among the stored owners
            stored_ids = as_strings(state_hashes.column("dataset_id"))
            where = pc.index_in(emb.ids, value_set=stored_ids)
            new = where.null_count
            was = state_hashes.column("embedding_hash").combine_chunks().take(where)
            differs = pc.fill_null(pc.not_equal(was, own_hash.combine_chunks()), False)
            changed = emb.ids.filter(differs).to_pylist()
            removed = len(stored_ids) - (len(emb.ids) - new)
            if "neighbor_key" in state.column_names and "dataset_key" in state_hashes.column_names:
                # lists by key (no 2 x N x k string look-ups), named by the owners' rows
                previous = PreviousKnn.from_keyed_table(state, state_hashes.select(["dataset_id", "dataset_key"]))
            else:
                previous = PreviousKnn.from_table(state)
            state = None  # the caller's function passed the only reference: the rows go now
            decision = decide_full_run(len(stored_ids), new, len(changed), removed, max_change_share=max_change_share,
                                       k=k, previous_width=previous.indices.shape[1])
            reason = decision.reason
            if not decision.full:
                path = "incremental"
                update = update_knn(previous, emb, k, changed=changed, method=method, params=params,
                                    ivf_model=IvfModel.from_bytes((ivf_models or {}).get(fingerprint))
                                    if method == "ivf" else None,
                                    progress=progress)
    if update is None:
        found = _search(emb, k, method, params, progress)
        ids, changed_rows = emb.ids, None
    else:
        found = update.result
        ids, changed_rows = update.ids, update.changed_rows
    n = len(ids)
    flags = np.ones(n, bool) if changed_rows is None else np.isin(np.arange(n), changed_rows)
    owners = np.arange(n)
    if changed_only:
        owners = np.flatnonzero(flags)
        if owners.size == 0 and n:
            owners = np.zeros(1, np.int64)  # an unchanged list, so that the run's facts have a row
    table = _searched_table(ids, found, owners)
    width = table.num_rows // max(owners.size, 1)
    owner = np.repeat(owners, width)
    listed_keys = None
    if keys is not None:
        key_of = row_keys(ids, keys)
        listed_keys = (key_of[owner], key_of[found.indices[owners].reshape(-1)])
    return _with_run_facts(table, listed_keys, found, own_hash.take(pa.array(owner)), flags[owner],
                           path, reason, fingerprint)


def _with_run_facts(table, listed_keys, found: KnnResult, own_hash, changed: np.ndarray, path: str, reason: str,
                    fingerprint: str) -> pa.Table:
    """``table`` (:func:`_searched_table`'s rows) with the columns :func:`updated_neighbors` adds, in its order."""
    rows = table.num_rows
    if listed_keys is not None:
        table = (table.append_column("dataset_key", pa.array(listed_keys[0], pa.int32()))
                 .append_column("neighbor_key", pa.array(listed_keys[1], pa.int32())))
    model = found.model.to_bytes() if found.model is not None else None
    table = (table.append_column("ivf_model", pa.array([model] + [None] * (rows - 1) if rows else [], pa.binary()))
             .append_column("ivf_model_reused", constant_column(found.model_reused, pa.bool_(), rows)))
    return (table.append_column("embedding_hash", own_hash)
            .append_column("list_changed", pa.array(changed, pa.bool_()))
            .append_column("knn_path", constant_column(path, pa.string(), rows))
            .append_column("knn_reason", constant_column(reason, pa.string(), rows))
            .append_column("knn_fingerprint", constant_column(fingerprint, pa.string(), rows)))


def lists_unchanged(
    hashes: pa.Table, fingerprint: str, state_fingerprints: list[str] | None, state_hashes: pa.Table | None
) -> bool:
    """True when the stored lists are already this run's: stored under this run's k-NN settings
    (``fingerprint``, see :func:`knn_fingerprint`) for the same datasets, with the same embedding hashes
    and keys (``hashes`` and ``state_hashes``: ``dataset_id``, ``embedding_hash``, ``dataset_key``, one
    row per current dataset and per stored list). Needs no embedding: a re-run that finds nothing to
    update can skip reading the matrix and the lists (:func:`unchanged_neighbors`)."""
    if state_hashes is None or state_fingerprints is None or sorted(set(state_fingerprints)) != [fingerprint]:
        return False
    if state_hashes.num_rows != hashes.num_rows:
        return False
    where = pc.index_in(as_strings(hashes.column("dataset_id")),
                        value_set=as_strings(state_hashes.column("dataset_id")))
    if where.null_count:
        return False
    for name in ("embedding_hash", "dataset_key"):
        if name not in hashes.column_names or name not in state_hashes.column_names:
            return False
        now = hashes.column(name).combine_chunks()
        was = state_hashes.column(name).combine_chunks().cast(now.type).take(where)
        if not pc.all(pc.fill_null(pc.equal(now, was), False)).as_py():
            return False
    return True


def unchanged_neighbors(first_list: pa.Table, k: int, dim: int, n: int, fingerprint: str,
                        max_change_share: float = 0.2) -> pa.Table:
    """What :func:`updated_neighbors` returns (``changed_only``) when :func:`lists_unchanged`: the first
    dataset's stored list (by id), no list changed, the incremental path.

    ``first_list``: that dataset's rows of ``clustering_state.knn_state`` (``dataset_id``,
    ``neighbor_id``, ``dataset_key``, ``neighbor_key``, ``neighbor_rank``, ``similarity``,
    ``embedding_hash``), in any order; ``n`` the number of datasets, ``dim`` the embedding's dimension.
    """
    from ..neighbors import decide_full_run

    rows = first_list.sort_by("neighbor_rank")
    owners = pc.unique(rows.column("dataset_id")).to_pylist()
    if len(owners) != 1 or rows.column("neighbor_rank").to_pylist() != list(range(1, rows.num_rows + 1)):
        raise ClusteringInputError(
            f"first_list must be one dataset's stored list ranked 1..w, got owners {owners[:3]} and ranks "
            f"{rows.column('neighbor_rank').to_pylist()[:5]}"
        )
    width = min(rows.num_rows, k)
    rows = rows.slice(0, width)
    found = KnnResult(np.arange(width, dtype=np.int64)[None, :],
                      rows.column("similarity").to_numpy().astype(np.float32)[None, :], search_dims=dim)
    table = _searched_table(pa.array(owners, pa.string()), found, neighbor_ids=as_strings(rows.column("neighbor_id")))
    reason = decide_full_run(n, 0, 0, 0, max_change_share=max_change_share).reason
    listed_keys = (rows.column("dataset_key").to_numpy(), rows.column("neighbor_key").to_numpy())
    return _with_run_facts(table, listed_keys, found, rows.column("embedding_hash").combine_chunks(),
                           np.zeros(width, bool), "incremental", reason, fingerprint)
