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

from ..chroma_reader import empty_embeddings_table, list_ids, read_items
from ._arrow import Progress, constant_column

__all__ = ["PullPlan", "embedding_hashes", "pull_embeddings"]

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


def _plan(ids: list[str], cached: pa.Table | None, fingerprints: dict[str, str | None], *, store: tuple[str, str],
          incremental: bool, max_change_share: float) -> PullPlan:
    if not incremental:
        return PullPlan("full", "incremental is off")
    if cached is None or cached.num_rows == 0:
        return PullPlan("full", "no embeddings cached by an earlier run")
    if (pc.unique(cached.column("chroma_path")).to_pylist() != [store[0]]
            or pc.unique(cached.column("collection_name")).to_pylist() != [store[1]]):
        return PullPlan("full", "the cache holds embeddings of another store or collection")
    cached_ids = cached.column("dataset_id").to_pylist()
    cached_set, now = set(cached_ids), set(ids)
    new = sorted(now - cached_set)
    removed = len(cached_set - now)
    stored_md5 = dict(zip(cached_ids, cached.column("text_md5").to_pylist(), strict=True))
    changed = sorted(i for i in now & cached_set if fingerprints.get(i) != stored_md5[i])
    share = (len(new) + len(changed) + removed) / max(len(ids), 1)
    if share > max_change_share:
        return PullPlan(
            "full", f"{len(new)} new, {len(changed)} changed and {removed} removed datasets are {share:.1%} of "
            f"{len(ids)}, above incremental_max_change_share {max_change_share:g}",
        )
    kept = len(now & cached_set) - len(changed)
    return PullPlan(
        "incremental", f"{len(new)} new, {len(changed)} changed (text), {removed} removed; {kept} cached",
        new=new, changed=changed, removed=removed, kept=kept,
    )


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
    """The run's embeddings: the cache where it still holds, Chroma for the rest.

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
    ids = list_ids(path, name, dataset_ids=dataset_ids, min_id_overlap=min_id_overlap,
                   datasets_source=datasets_source)
    md5 = dict(zip(fingerprints.column("dataset_id").to_pylist(), fingerprints.column("text_md5").to_pylist(),
                   strict=True))
    plan = _plan(ids, cached, md5, store=(str(path), name), incremental=incremental,
                 max_change_share=max_change_share)
    read = lambda which: read_items(path, name, which, page_size=page_size, on_invalid=on_invalid,  # noqa: E731
                                    progress=progress)
    if plan.path == "incremental" and check_sample > 0 and plan.kept:
        keep_ids = pa.array(sorted(set(ids) - set(plan.changed) - set(plan.new)), pa.string())
        rng = np.random.default_rng()
        sample = pc.take(keep_ids, np.sort(rng.choice(len(keep_ids), min(check_sample, len(keep_ids)),
                                                       replace=False)))
        fresh = read(sample.to_pylist())
        stored = cached.filter(pc.is_in(cached.column("dataset_id"), value_set=sample)).sort_by("dataset_id")
        differ = _differing_rows(fresh, stored)
        if differ:
            plan = PullPlan("full", f"{differ} of {len(sample)} cached embeddings checked differ from Chroma")
    if plan.path == "full":
        pulled = read(ids)
        table = _with_state_columns(pulled, md5)
    else:
        cached_type = cached.schema.field("embedding").type
        fresh = read(plan.to_read) if plan.to_read else empty_embeddings_table(cached_type.list_size)
        if fresh.schema.field("embedding").type != cached_type:
            dim = fresh.schema.field("embedding").type.list_size
            plan = PullPlan("full", f"embeddings read have dimension {dim}, the cached ones {cached_type.list_size}")
            return _finish(_with_state_columns(read(ids), md5), plan, started, progress)
        pulled = _with_state_columns(fresh, md5)
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


def _with_state_columns(table: pa.Table, md5: dict[str, str | None]) -> pa.Table:
    """A table read from Chroma, with its text fingerprints, embedding hashes and ``pulled`` (true)."""
    n = table.num_rows
    dim = table.schema.field("embedding").type.list_size
    matrix = table.column("embedding").combine_chunks().flatten().to_numpy().reshape(n, dim) if n else np.zeros((0, 1))
    return (table.append_column("text_md5", pa.array([md5.get(i) for i in table.column("dataset_id").to_pylist()],
                                                     pa.string()))
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
