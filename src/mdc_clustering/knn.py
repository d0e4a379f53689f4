"""Exact k-nearest neighbours by cosine similarity, in bounded memory."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import pyarrow as pa

from .validation import positive_int

__all__ = ["exact_knn", "knn_table", "normalize_rows"]

# Similarity block held at once: batch_rows x n_points float32 values.
_BLOCK_VALUES = 1 << 25  # 32M floats = 128 MiB


def normalize_rows(vectors: np.ndarray) -> np.ndarray:
    """Return a float32 C-contiguous copy of ``vectors`` with unit L2 rows."""
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / norms


def exact_knn(
    vectors: np.ndarray,
    k: int,
    *,
    batch_rows: int | None = None,
    progress: Callable[..., None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact cosine k-nearest neighbours of every row, itself excluded.

    The similarity matrix is never held whole: rows are processed in batches
    of ``batch_rows`` (by default sized so that one block is ~128 MiB), each
    a single float32 matrix product followed by a partial sort, so memory is
    O(n·k) plus one block.

    Parameters
    ----------
    vectors
        Array ``(n, d)``; rows must have non-zero norm.
    k
        Neighbours per row. ``k >= n`` gives every other row (``n - 1``).
    batch_rows
        Query rows per block.
    progress
        Optional callback, called with a message after each block.

    Returns
    -------
    indices : numpy.ndarray
        ``int64`` array ``(n, min(k, n - 1))``; row ``i`` lists the
        neighbours of ``i`` by decreasing similarity (ties by index).
    similarities : numpy.ndarray
        ``float32`` array of the same shape, cosine similarities clipped to
        ``[-1, 1]``.
    """
    k = positive_int("k_neighbors", k)
    x = normalize_rows(vectors)
    n = x.shape[0]
    k_eff = min(k, n - 1)
    indices = np.empty((n, k_eff), dtype=np.int64)
    sims = np.empty((n, k_eff), dtype=np.float32)
    if k_eff == 0:
        return indices, sims
    if batch_rows is None:
        batch_rows = max(1, min(n, _BLOCK_VALUES // n))
    started = time.perf_counter()
    for start in range(0, n, batch_rows):
        stop = min(n, start + batch_rows)
        block = x[start:stop] @ x.T  # (b, n)
        rows = np.arange(stop - start)
        block[rows, start + rows] = -np.inf  # never one's own neighbour
        # The k_eff largest of each row; its own -inf always stays below them.
        part = np.argpartition(block, n - k_eff, axis=1)[:, n - k_eff :]
        part_sims = np.take_along_axis(block, part, axis=1)
        order = np.lexsort((part, -part_sims), axis=1)
        indices[start:stop] = np.take_along_axis(part, order, axis=1)
        sims[start:stop] = np.take_along_axis(part_sims, order, axis=1)
        if progress is not None:
            progress(f"k-NN: {stop}/{n} rows ({time.perf_counter() - started:.1f}s)")
    np.clip(sims, -1.0, 1.0, out=sims)
    return indices, sims


def knn_table(
    ids: pa.Array | list[str],
    indices: np.ndarray,
    similarities: np.ndarray,
) -> pa.Table:
    """Long table of k-NN results: one row per (dataset, neighbour).

    Returns
    -------
    pyarrow.Table
        Columns ``dataset_id``, ``neighbor_id`` (strings), ``neighbor_rank``
        (int32, 1 = most similar) and ``similarity`` (float64).
    """
    ids = pa.array(ids, pa.string()) if not isinstance(ids, pa.Array) else ids
    n, k = indices.shape
    rows = np.repeat(np.arange(n, dtype=np.int64), k)
    return pa.table(
        {
            "dataset_id": ids.take(pa.array(rows)),
            "neighbor_id": ids.take(pa.array(indices.reshape(-1))),
            "neighbor_rank": pa.array(np.tile(np.arange(1, k + 1, dtype=np.int32), n)),
            "similarity": pa.array(similarities.reshape(-1).astype(np.float64)),
        }
    )
