"""The embedding matrix of a DuckDB relation, read in slices into one float32 array.

``relation.order(...).to_arrow_table()`` followed by a numpy conversion held
the embeddings three times at once (DuckDB's sorted result, the Arrow table,
its combined copy), and the ORDER BY cost a sort of them all.
:func:`read_embeddings` streams Arrow record batches into
one preallocated matrix instead, normalising each slice in place if asked.
The rows come back in ``dataset_id`` order. ``stg_chroma__embeddings`` is a
view of the embedding cache, whose rows are in id order after a full pull
but not after a re-run appended new ones: :func:`read_embeddings` then
reads the ids first and writes each streamed slice straight to its rows'
places in id order (no second copy of the matrix), checking that the
slices come in the order the ids did.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .errors import ClusteringInputError

__all__ = ["Embeddings", "as_embeddings", "embedding_matrix", "iter_embeddings", "read_embeddings", "rows_reader"]


@dataclass
class Embeddings:
    """Dataset ids (ascending) and their embeddings, row ``i`` belonging to ``ids[i]``.

    ``matrix`` is a C-contiguous float32 ``(n, d)`` array; ``normalized``
    says its rows were scaled to unit length (then ``norms`` holds the
    original L2 norms).
    """

    ids: pa.Array
    matrix: np.ndarray
    normalized: bool = False
    norms: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.ids)


def embedding_matrix(table: pa.Table, column: str = "embedding") -> np.ndarray:
    """Return the fixed-size-list column of ``table`` as a C-contiguous float32 matrix (no copy when possible)."""
    col = table.column(column).combine_chunks()
    if isinstance(col, pa.ChunkedArray):
        col = col.chunk(0) if col.num_chunks else pa.array([], col.type)
    dim = _dimension(col.type, column)
    values = col.flatten().to_numpy(zero_copy_only=False)
    return np.ascontiguousarray(values.reshape(-1, dim), dtype=np.float32)


def array_dimension(duckdb_type) -> int | None:
    """``d`` of a DuckDB ``FLOAT[d]`` column type (``DuckDBPyType`` or its text), None for any other type."""
    import re

    found = re.fullmatch(r"FLOAT\[(\d+)\]", str(duckdb_type).strip().upper())
    return int(found.group(1)) if found else None


def _dimension(arrow_type: pa.DataType, column: str) -> int:
    if not pa.types.is_fixed_size_list(arrow_type):
        raise ClusteringInputError(
            f"column {column!r} must be a fixed-size list of floats (DuckDB FLOAT[d]), got {arrow_type}"
        )
    return arrow_type.list_size


def as_embeddings(data: Embeddings | pa.Table) -> Embeddings:
    """``data`` as :class:`Embeddings`: already one, or an Arrow table with ``dataset_id`` and ``embedding``."""
    if isinstance(data, Embeddings):
        return data
    ids = data.column("dataset_id").combine_chunks()
    return _in_id_order(Embeddings(ids, embedding_matrix(data)))


def iter_embeddings(relation, *, normalize: bool = False, batch_rows: int = 65_536, columns: tuple[str, ...] = ()):
    """Yield ``(ids, matrix)`` slices of a DuckDB relation's ``dataset_id`` and ``embedding``.

    ``ids`` is a string Arrow array, ``matrix`` a float32 ``(rows, d)`` array
    (unit rows with ``normalize``; a zero row stays zero). Each name in
    ``columns`` adds that column's Arrow array of the slice to the tuple.
    Slices come in the relation's order; memory is one slice.
    """
    reader = relation.select(", ".join(["dataset_id", "embedding", *columns])).to_arrow_reader(batch_rows)
    for batch in reader:
        rows = batch.num_rows
        if rows == 0:
            continue
        col = batch.column(1)
        dim = _dimension(col.type, "embedding")
        if col.null_count:
            raise ClusteringInputError("column 'embedding' holds NULL rows; every dataset_id needs an embedding")
        part = np.array(col.flatten().to_numpy(zero_copy_only=False).reshape(rows, dim), dtype=np.float32)
        if normalize:
            _normalize_in_place(part)
        yield (batch.column(0).cast(pa.string()), part, *(batch.column(2 + i) for i in range(len(columns))))


def read_embeddings(relation, *, normalize: bool = False, batch_rows: int = 65_536) -> Embeddings:
    """Read ``dataset_id`` and ``embedding`` of a DuckDB relation into :class:`Embeddings`.

    Memory: the float32 matrix plus one batch of ``batch_rows`` rows (and
    what DuckDB's buffer pool caches, bounded by its ``memory_limit``).
    With ``normalize`` every row is scaled to unit length as it arrives
    (``norms`` keeps the L2 norms); a zero row stays zero.
    """
    selected = relation.select("dataset_id, embedding")
    listed = selected.select("dataset_id").to_arrow_table().column(0).combine_chunks().cast(pa.string())
    n = len(listed)
    if n > 1 and pc.any(pc.greater(listed.slice(0, n - 1), listed.slice(1))).as_py():
        order = pc.sort_indices(listed).to_numpy()
        place = np.empty(n, dtype=np.int64)
        place[order] = np.arange(n)
        placed = _read_into(selected, n, normalize, batch_rows, listed=listed, place=place)
        if placed is not None:
            matrix, norms = placed
            return Embeddings(listed.take(pa.array(order)), matrix, normalize, norms)
        # the rows came in another order than the ids did: read in their order, then sort (a copy)
    ids = []
    matrix, norms = _read_into(selected, n, normalize, batch_rows, arrived=ids)
    ids = pa.chunked_array(ids, pa.string()).combine_chunks() if ids else pa.array([], pa.string())
    return _in_id_order(Embeddings(ids, matrix, normalize, norms))


def _read_into(selected, n: int, normalize: bool, batch_rows: int, *, arrived: list | None = None, listed=None,
               place=None):
    """Stream the relation into one matrix: in arrival order (each slice's ids appended to ``arrived``), or
    each row at ``place`` (then the slices must come in the order of ``listed``: None when they do not).
    Returns ``(matrix, norms)``."""
    matrix: np.ndarray | None = None
    norms = np.empty(n, dtype=np.float32) if normalize else None
    at = 0
    for ids, part in iter_embeddings(selected, batch_rows=batch_rows):
        rows = len(part)
        if at + rows > n:
            raise ClusteringInputError("the embeddings relation grew while it was read; run the build again")
        if matrix is None:
            matrix = np.empty((n, part.shape[1]), dtype=np.float32)
        if place is None:
            out = matrix[at : at + rows]
            out[:] = part
            if normalize:
                norms[at : at + rows] = _normalize_in_place(out)
            arrived.append(ids)
        else:
            if not ids.equals(listed.slice(at, rows)):
                return None
            where = place[at : at + rows]
            if normalize:
                norms[where] = _normalize_in_place(part)
            matrix[where] = part
        at += rows
    if matrix is None:
        dim = _dimension(_arrow_type_of(selected), "embedding") if n == 0 else 0
        matrix = np.empty((0, dim), dtype=np.float32)
    if at != n:
        raise ClusteringInputError("the embeddings relation changed while it was read; run the build again")
    return matrix, norms


def _normalize_in_place(rows: np.ndarray) -> np.ndarray:
    """Scale ``rows`` to unit length in place (a zero row stays zero); return their former norms."""
    norm = np.linalg.norm(rows, axis=1)
    rows /= np.where(norm > 0, norm, 1.0)[:, None]
    return norm


def _arrow_type_of(relation) -> pa.DataType:
    return relation.limit(0).to_arrow_table().schema.field("embedding").type


def _in_id_order(emb: Embeddings) -> Embeddings:
    """Sort by ``dataset_id`` unless already ascending (a copy of the matrix only then)."""
    n = len(emb.ids)
    if n < 2 or not pc.any(pc.greater(emb.ids.slice(0, n - 1), emb.ids.slice(1))).as_py():
        return emb
    order = pc.sort_indices(emb.ids).to_numpy()
    norms = None if emb.norms is None else emb.norms[order]
    return Embeddings(emb.ids.take(pa.array(order)), np.ascontiguousarray(emb.matrix[order]), emb.normalized, norms)


def rows_reader(relation, session, *, normalize: bool = True):
    """A function ``ids -> Embeddings`` reading only those ids' rows of ``relation`` (a DuckDB semi join).

    ``session`` is the connection ``relation`` belongs to (a dbt Python
    model's ``session``); ids without a row are left out.
    """

    def rows_of(ids: pa.Array) -> Embeddings:
        wanted = session.from_arrow(pa.table({"wanted_id": pa.array(ids, pa.string())})).set_alias("wanted")
        return read_embeddings(relation.join(wanted, "dataset_id = wanted_id", how="semi"), normalize=normalize)

    return rows_of
