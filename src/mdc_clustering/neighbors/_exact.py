"""Exact cosine k-NN in bounded memory: one float32 block product and a partial sort at a time."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from ..validation import positive_int
from ._common import normalize_rows

# Similarity block held at once: batch_rows x n_points float32 values.
_BLOCK_VALUES = 1 << 25  # 32M floats = 128 MiB


def exact_knn(
    vectors: np.ndarray,
    k: int,
    *,
    normalized: bool = False,
    batch_rows: int | None = None,
    progress: Callable[..., None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact cosine k-nearest neighbours of every row among the rows, itself excluded.

    Parameters
    ----------
    vectors
        Array ``(n, d)``; rows must have non-zero norm.
    k
        Neighbours per row. ``k >= n`` gives every other row (``n - 1``).
    normalized
        The rows are already unit-length float32 (no copy is made).
    batch_rows
        Query rows per block (by default a block is ~128 MiB).
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
    x = vectors if normalized else normalize_rows(vectors)
    return query_knn(
        x, x, k, exclude=np.arange(x.shape[0]), normalized=True, batch_rows=batch_rows, progress=progress
    )


def query_knn(
    queries: np.ndarray,
    index: np.ndarray,
    k: int,
    *,
    exclude: np.ndarray | None = None,
    normalized: bool = False,
    batch_rows: int | None = None,
    progress: Callable[..., None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact cosine k-nearest neighbours of each query row among the ``index`` rows.

    The similarity matrix is never held whole: queries are processed in
    blocks, each one float32 matrix product followed by a partial sort, so
    memory is O(n·k) plus one block.

    Parameters
    ----------
    queries, index
        Arrays ``(q, d)`` and ``(n, d)``; rows must have non-zero norm.
    k
        Neighbours per query (at most the candidates available).
    exclude
        Optional ``int64`` array ``(q,)``: for query ``i``, the index row
        ``exclude[i]`` is never a neighbour (``-1`` = none). Used to leave a
        dataset out of its own neighbourhood.
    normalized
        Rows are already unit-length float32 (skips a copy).

    Returns
    -------
    indices, similarities
        ``(q, k_eff)`` arrays as in :func:`exact_knn`, with ``k_eff = min(k,
        n - 1)`` when anything is excluded, else ``min(k, n)``.
    """
    k = positive_int("k_neighbors", k)
    q_x = queries if normalized else normalize_rows(queries)
    i_x = index if normalized else normalize_rows(index)
    n_q, n = q_x.shape[0], i_x.shape[0]
    has_exclusions = exclude is not None and bool(np.any(exclude >= 0))
    k_eff = max(0, min(k, n - 1 if has_exclusions else n))
    indices = np.empty((n_q, k_eff), dtype=np.int64)
    sims = np.empty((n_q, k_eff), dtype=np.float32)
    if k_eff == 0 or n_q == 0:
        return indices, sims
    if batch_rows is None:
        batch_rows = max(1, min(n_q, _BLOCK_VALUES // n))
    started = time.perf_counter()
    for start in range(0, n_q, batch_rows):
        stop = min(n_q, start + batch_rows)
        block = q_x[start:stop] @ i_x.T  # (b, n)
        if has_exclusions:
            rows = np.flatnonzero(exclude[start:stop] >= 0)
            block[rows, exclude[start:stop][rows]] = -np.inf
        # an excluded -inf always stays below the k_eff largest
        indices[start:stop], sims[start:stop] = top_k_of_block(block, k_eff)
        if progress is not None:
            progress(f"{stop}/{n_q} rows searched ({time.perf_counter() - started:.1f}s)")
    np.clip(sims, -1.0, 1.0, out=sims)
    return indices, sims


def top_k_of_block(block: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` largest entries of each row of ``block`` ``(b, n)``: their columns and values, largest first.

    Equal values are ordered by column; at the ``k``-th place itself, which of
    several equal values is kept is not specified (``argpartition``).
    """
    n = block.shape[1]
    part = np.argpartition(block, n - k, axis=1)[:, n - k :]
    part_sims = np.take_along_axis(block, part, axis=1)
    order = np.lexsort((part, -part_sims), axis=1)
    return np.take_along_axis(part, order, axis=1), np.take_along_axis(part_sims, order, axis=1)


def fill_short_rows(x, indices, sims, k_eff, progress, rows=None):
    """Search exactly the rows an index returned fewer than ``k_eff`` neighbours for; clip similarities.

    Row ``i`` of ``indices`` belongs to ``rows[i]`` (default: row ``i`` of ``x``).
    """
    indices[~np.isfinite(sims)] = -1
    short = np.flatnonzero((indices < 0).any(axis=1))
    if short.size:  # the index could not reach k neighbours for these rows: search them exactly
        own = short if rows is None else rows[short]
        indices[short], sims[short] = query_knn(x[own], x, k_eff, exclude=own, normalized=True)
        if progress is not None:
            progress(f"{short.size} rows with fewer than {k_eff} neighbours from the index searched exactly",
                     final=True)
    np.clip(sims, -1.0, 1.0, out=sims)
    return indices, sims
