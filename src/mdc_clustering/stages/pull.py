"""The pull stage: the run's embeddings, read from Chroma only where they may have changed.

A re-run keeps the embeddings of the last run (the state table
``clustering_state.embedding_cache``) and asks Chroma only for

- **new ids**: in the collection, not in the cache;
- **changed datasets**: a `datasets` row whose text fingerprint (md5 of
  ``text``) differs from the one stored with its embedding, since the
  embedding is made from that text;

and drops the ids that left the collection. Every re-run also reads
``check_sample`` cached ids back from Chroma and compares them with the
cache: any difference (a re-embedding that left the text alone, another
model) makes the whole pull run again. The whole pull also runs on a first
run, when the store or collection changed, when the change is larger than
``max_change_share`` of the collection, or when ``incremental`` is off; the
result says which path ran and why.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..chroma_reader import chroma_session, empty_embeddings_table, list_ids, read_items
from ..errors import ClusteringInputError
from ..neighbors._common import as_strings
from ._arrow import Progress, constant_column

__all__ = ["PullPlan", "embedding_hashes", "plan_pull", "planned_ids", "pull_embeddings", "read_planned"]

_HASH_WEIGHTS = np.random.default_rng(20261202).integers(1, 2**63, size=8192, dtype=np.uint64) | np.uint64(1)
_HASH_ROWS = 16_384


def embedding_hashes(matrix: np.ndarray) -> np.ndarray:
    """One int64 fingerprint per row of a float32 matrix: exact integer arithmetic on its bits, so
    equal rows always hash equal (whatever the chunking) and a changed row almost never does."""
    bits = np.ascontiguousarray(matrix, dtype=np.float32).view(np.uint32)
    n, d = bits.shape
    if d > _HASH_WEIGHTS.size:
        raise ValueError(f"embeddings of more than {_HASH_WEIGHTS.size} dimensions")
    weights = _HASH_WEIGHTS[:d]
    out = np.empty(n, np.uint64)
    with np.errstate(over="ignore"):
        for start in range(0, n, _HASH_ROWS):
            block = bits[start : start + _HASH_ROWS].astype(np.uint64)
            out[start : start + _HASH_ROWS] = (block * weights).sum(axis=1, dtype=np.uint64)
    return out.view(np.int64)


@dataclass
class PullPlan:
    """Which embeddings a run reads from Chroma, and why."""

    path: str  # 'incremental' or 'full'
    reason: str
    new: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: int = 0
    kept: int = 0

    @property
    def to_read(self) -> list[str]:
        return sorted(self.new + self.changed)


def _plan(ids: pa.Array, cached: pa.Table | None, md5_now: pa.Array, *, store: tuple[str, str],
          incremental: bool, max_change_share: float, cache_keyed: bool = True) -> PullPlan:
    """The plan for ``ids`` (sorted, unique) whose texts' md5 are ``md5_now`` (aligned; null = no text row)."""
    if not incremental:
        return PullPlan("full", "incremental is off")
    if cached is None or cached.num_rows == 0:
        return PullPlan("full", "no embeddings cached by an earlier run")
    if not cache_keyed:
        return PullPlan("full", "the cache was written before datasets had integer keys (dataset_key)")
    if (pc.unique(cached.column("chroma_path")).to_pylist() != [store[0]]
            or pc.unique(cached.column("collection_name")).to_pylist() != [store[1]]):
        return PullPlan("full", "the cache holds embeddings of another store or collection")
    # one vectorised look-up of the ids in the cache (a million ids: no Python sets or dicts)
    cached_ids = as_strings(cached.column("dataset_id"))
    where = pc.index_in(ids, value_set=cached_ids)
    is_new = pc.is_null(where)
    new = ids.filter(is_new).to_pylist()
    removed = pc.count_distinct(cached_ids).as_py() - (len(ids) - len(new))
    stored_md5 = as_strings(cached.column("text_md5")).take(where)
    # "is distinct from": a null on one side only differs too
    differs = pc.or_(pc.fill_null(pc.not_equal(stored_md5, md5_now), False),
                     pc.xor(pc.is_null(stored_md5), pc.is_null(md5_now)))
    changed = ids.filter(pc.and_(differs, pc.invert(is_new))).to_pylist()
    share = (len(new) + len(changed) + removed) / max(len(ids), 1)
    if share > max_change_share:
        return PullPlan(
            "full", f"{len(new)} new, {len(changed)} changed and {removed} removed datasets are {share:.1%} of "
            f"{len(ids)}, above incremental_max_change_share {max_change_share:g}",
        )
    kept = len(ids) - len(new) - len(changed)
    return PullPlan(
        "incremental", f"{len(new)} new, {len(changed)} changed (text), {removed} removed; {kept} cached",
        new=new, changed=changed, removed=removed, kept=kept,
    )


def text_fingerprints(ids: pa.Array, fingerprints: pa.Table) -> pa.Table:
    """``dataset_id`` (``ids``), ``text_md5``: each id's text fingerprint (``fingerprints``: ``dataset_id``,
    ``text_md5``; null for an id without a row), aligned with ``ids``."""
    at = pc.index_in(ids, value_set=as_strings(fingerprints.column("dataset_id")))
    return pa.table({"dataset_id": ids, "text_md5": as_strings(fingerprints.column("text_md5")).take(at)})


def _md5_for(md5: pa.Table | dict, ids: pa.Array) -> pa.Array:
    """The text fingerprints of ``ids`` from :func:`text_fingerprints`'s table (or a dict, for callers that
    hold one)."""
    if isinstance(md5, dict):
        return pa.array([md5.get(i) for i in ids.to_pylist()], pa.string())
    known = md5.column("dataset_id").combine_chunks()
    if len(known) == len(ids) and known.equals(ids):
        return md5.column("text_md5").combine_chunks()
    return md5.column("text_md5").combine_chunks().take(pc.index_in(ids, value_set=known))


def plan_pull(
    path: str,
    name: str,
    *,
    cached: pa.Table | None,
    fingerprints: pa.Table,
    incremental: bool = True,
    max_change_share: float = 0.2,
    check_sample: int = 200,
    cached_sample: pa.Table | None = None,
    page_size: int = 2000,
    on_invalid: str = "error",
    dataset_ids=None,
    min_id_overlap: float = 0.0,
    datasets_source: str = "datasets",
    cache_keyed: bool = True,
    progress: Progress = None,
) -> tuple[PullPlan, list[str], pa.Table]:
    """Which embeddings this run reads from Chroma: the plan, the collection's ids and the text fingerprints
    (:func:`text_fingerprints` of the ids).

    Lists the collection's ids (the id-overlap check stops a store of
    another pipeline here, before any embedding is read), compares them with
    the cache, and reads up to ``check_sample`` cached rows back from Chroma
    to compare (any difference means the full path). ``cached`` needs only
    ``dataset_id``, ``text_md5``, ``chroma_path`` and ``collection_name``;
    the rows compared are ``cached_sample``'s (``dataset_id``,
    ``embedding``: a random sample of the cache; rows no longer kept are
    skipped), or a random sample of ``cached`` when it holds ``embedding``.
    ``cache_keyed`` false (the cache has no ``dataset_key`` column: an older
    version wrote it) means the full path, so that every row gets a key.
    """
    with chroma_session():  # one opening of the store for the listing and the sample read back
        return _plan_pull(path, name, cached, fingerprints, incremental, max_change_share, check_sample,
                          cached_sample, page_size, on_invalid, dataset_ids, min_id_overlap, datasets_source,
                          cache_keyed, progress)


def _plan_pull(path, name, cached, fingerprints, incremental, max_change_share, check_sample, cached_sample,
               page_size, on_invalid, dataset_ids, min_id_overlap, datasets_source, cache_keyed, progress):
    ids = list_ids(path, name, dataset_ids=dataset_ids, min_id_overlap=min_id_overlap,
                   datasets_source=datasets_source)
    md5 = text_fingerprints(pa.array(ids, pa.string()), fingerprints)
    id_array = md5.column("dataset_id").combine_chunks()
    plan = _plan(id_array, cached, md5.column("text_md5").combine_chunks(), store=(str(path), name),
                 incremental=incremental, max_change_share=max_change_share, cache_keyed=cache_keyed)
    if plan.path == "incremental" and check_sample > 0 and plan.kept:
        keep_ids = id_array.filter(pc.invert(pc.is_in(id_array, value_set=pa.array(plan.new + plan.changed,
                                                                                    pa.string()))))
        if cached_sample is None:
            rng = np.random.default_rng()
            sample = pc.take(keep_ids, np.sort(rng.choice(len(keep_ids), min(check_sample, len(keep_ids)),
                                                           replace=False)))
            stored = cached.filter(pc.is_in(cached.column("dataset_id"), value_set=sample)).sort_by("dataset_id")
        else:
            stored = cached_sample.filter(pc.is_in(cached_sample.column("dataset_id"), value_set=keep_ids))
            stored = stored.slice(0, check_sample).sort_by("dataset_id")
            sample = stored.column("dataset_id").combine_chunks()
        if len(sample):
            fresh = read_items(path, name, sample.to_pylist(), page_size=page_size, on_invalid=on_invalid,
                               progress=progress)
            differ = _differing_rows(fresh, stored)
            if differ:
                plan = PullPlan("full", f"{differ} of {len(sample)} cached embeddings checked differ from Chroma")
    return plan, ids, md5


def planned_ids(plan: PullPlan, ids: list[str], md5: pa.Table | dict[str, str | None], seconds: float) -> pa.Table:
    """The plan as a table: one row per id of the collection (``dataset_id``, ``text_md5``, ``to_read``), and,
    the same on every row, ``pull_path``, ``pull_reason`` and ``plan_seconds``."""
    n = len(ids)
    id_array = pa.array(ids, pa.string())
    to_read = np.ones(n, bool)
    if plan.path == "incremental":
        to_read = pc.is_in(id_array, value_set=pa.array(plan.to_read, pa.string())).to_numpy(zero_copy_only=False)
    return pa.table({
        "dataset_id": id_array,
        "text_md5": _md5_for(md5, id_array),
        "to_read": pa.array(to_read),
        "pull_path": constant_column(plan.path, pa.string(), n),
        "pull_reason": constant_column(plan.reason, pa.string(), n),
        "plan_seconds": constant_column(seconds, pa.float64(), n),
    })


def read_planned(path: str, name: str, planned: pa.Table, *, dim: int | None = None, page_size: int = 2000,
                 on_invalid: str = "error", progress: Progress = None) -> pa.Table:
    """The embeddings a plan (:func:`planned_ids`) reads from Chroma, with their state columns.

    Returns :func:`~mdc_clustering.chroma_reader.read_collection`'s columns
    (sorted by ``dataset_id``) plus ``text_md5``, ``embedding_hash``,
    ``pulled`` (true), ``read_seconds`` and ``read_method`` (how the
    vectors were read: from the index files or through ``get()``, and why;
    the same on every row); no
    rows when the plan reads nothing (``dim`` then gives the embedding
    type). On the incremental path, embeddings of another dimension than
    ``dim`` (the cache's) stop the run: the cache cannot hold both.
    """
    started = time.perf_counter()
    rows = planned.filter(planned.column("to_read"))
    which = rows.column("dataset_id").to_pylist()
    md5 = rows.select(["dataset_id", "text_md5"])
    incremental = planned.num_rows and planned.column("pull_path")[0].as_py() == "incremental"
    # a re-run reads a part: its new and changed datasets may all be left out as invalid, the cache holds the rest
    fresh = (read_items(path, name, which, page_size=page_size, on_invalid=on_invalid, progress=progress,
                        whole=not incremental)
             if which else empty_embeddings_table(dim or 1))
    read_dim = fresh.schema.field("embedding").type.list_size
    if incremental and dim is not None and fresh.num_rows and read_dim != dim:
        raise ClusteringInputError(
            f"Chroma's embeddings now have dimension {read_dim}, the cached ones {dim}: the collection was "
            "embedded again with another model, and the cache table cannot hold both. Drop the cache (it "
            "holds only copies of Chroma's embeddings): `drop table clustering_state.embedding_cache`, then "
            "build again to read every embedding."
        )
    how = (fresh.schema.metadata or {}).get(b"read_method", b"nothing read").decode()
    table = _with_state_columns(fresh, md5)
    seconds = time.perf_counter() - started
    return (table.append_column("read_seconds", constant_column(seconds, pa.float64(), table.num_rows))
            .append_column("read_method", constant_column(how, pa.string(), table.num_rows)))


def pull_embeddings(
    path: str,
    name: str,
    *,
    cached: pa.Table | None,
    fingerprints: pa.Table,
    incremental: bool = True,
    max_change_share: float = 0.2,
    check_sample: int = 200,
    page_size: int = 2000,
    on_invalid: str = "error",
    dataset_ids=None,
    min_id_overlap: float = 0.0,
    datasets_source: str = "datasets",
    progress: Progress = None,
) -> pa.Table:
    """The run's embeddings, whole: the cache where it still holds, Chroma for the rest.

    The dbt project splits this in two models (stg_chroma__ids plans with
    :func:`plan_pull`, stg_chroma__embeddings_pulled reads with
    :func:`read_planned`) and keeps the whole in the cache table; this
    function is the same pull for a caller that holds the cache itself.

    Parameters
    ----------
    cached
        The last run's ``clustering_state.embedding_cache`` (None on a first
        run): :func:`~mdc_clustering.chroma_reader.read_collection`'s columns
        plus ``text_md5``, ``embedding_hash``, ``chroma_path`` and
        ``collection_name``.
    fingerprints
        ``dataset_id``, ``text_md5`` of the pipeline's `datasets` now.
    check_sample
        Cached embeddings read back from Chroma and compared (0 = none).

    Returns
    -------
    pyarrow.Table
        ``read_collection``'s columns, sorted by ``dataset_id``, plus
        ``text_md5`` (string), ``embedding_hash`` (int64, see
        :func:`embedding_hashes`), ``pulled`` (bool: read from Chroma this
        run) and, the same on every row, ``pull_path``, ``pull_reason`` and
        ``pull_seconds``.
    """
    started = time.perf_counter()
    plan, ids, md5 = plan_pull(path, name, cached=cached, fingerprints=fingerprints, incremental=incremental,
                               max_change_share=max_change_share, check_sample=check_sample, page_size=page_size,
                               on_invalid=on_invalid, dataset_ids=dataset_ids, min_id_overlap=min_id_overlap,
                               datasets_source=datasets_source, progress=progress)

    def read(step: PullPlan, dim: int | None = None) -> pa.Table:
        """What ``step`` reads from Chroma, as the dbt model reads it (``dim``: the type of an empty read)."""
        planned = planned_ids(step, ids, md5, 0.0)
        return read_planned(path, name, planned, dim=dim, page_size=page_size, on_invalid=on_invalid,
                            progress=progress).drop_columns(["read_seconds", "read_method"])

    if plan.path == "full":
        table = read(plan)
    else:
        cached_type = cached.schema.field("embedding").type
        # the dimension only types an empty read: a read of another dimension goes to the full path below
        pulled = read(plan, None if plan.to_read else cached_type.list_size)
        if pulled.schema.field("embedding").type != cached_type:
            dim = pulled.schema.field("embedding").type.list_size
            plan = PullPlan("full", f"embeddings read have dimension {dim}, the cached ones {cached_type.list_size}")
            return _finish(read(plan), plan, started, progress)
        untouched = set(plan.changed) | set(plan.new)
        keep = cached.filter(pc.and_(pc.is_in(cached.column("dataset_id"), value_set=pa.array(ids, pa.string())),
                                     pc.invert(pc.is_in(cached.column("dataset_id"),
                                                        value_set=pa.array(sorted(untouched), pa.string())))))
        keep = keep.select(pulled.column_names[:-1]).append_column("pulled", pa.array(np.zeros(keep.num_rows, bool)))
        table = pa.concat_tables([keep.cast(pulled.schema), pulled]).sort_by("dataset_id")
    return _finish(table, plan, started, progress)


def _finish(table: pa.Table, plan: PullPlan, started: float, progress: Progress) -> pa.Table:
    n = table.num_rows
    seconds = time.perf_counter() - started
    table = (table.append_column("pull_path", constant_column(plan.path, pa.string(), n))
             .append_column("pull_reason", constant_column(plan.reason, pa.string(), n))
             .append_column("pull_seconds", constant_column(seconds, pa.float64(), n)))
    if progress is not None:
        read = pc.sum(table.column("pulled")).as_py() or 0
        progress(f"pull: {plan.path} ({plan.reason}); {read} read from Chroma, {n} in all, in {seconds:.1f}s",
                 final=True)
    return table


def _with_state_columns(table: pa.Table, md5: pa.Table | dict[str, str | None]) -> pa.Table:
    """A table read from Chroma, with its text fingerprints, embedding hashes and ``pulled`` (true)."""
    n = table.num_rows
    dim = table.schema.field("embedding").type.list_size
    matrix = table.column("embedding").combine_chunks().flatten().to_numpy().reshape(n, dim) if n else np.zeros((0, 1))
    return (table.append_column("text_md5", _md5_for(md5, as_strings(table.column("dataset_id"))))
            .append_column("embedding_hash", pa.array(embedding_hashes(matrix), pa.int64()))
            .append_column("pulled", pa.array(np.ones(n, bool))))


def _differing_rows(fresh: pa.Table, stored: pa.Table) -> int:
    """Rows of two id-sorted tables whose ids or embeddings differ (a missing row counts)."""
    if fresh.column("dataset_id").to_pylist() != stored.column("dataset_id").to_pylist():
        return max(fresh.num_rows, stored.num_rows)
    if fresh.schema.field("embedding").type != stored.schema.field("embedding").type:
        return fresh.num_rows
    n = fresh.num_rows
    dim = fresh.schema.field("embedding").type.list_size
    a = fresh.column("embedding").combine_chunks().flatten().to_numpy().reshape(n, dim)
    b = stored.column("embedding").combine_chunks().flatten().to_numpy().reshape(n, dim)
    return int((a != b).any(axis=1).sum())
