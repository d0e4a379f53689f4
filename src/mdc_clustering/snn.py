"""Shared-nearest-neighbour (Jaccard) edge weights, as PhenoGraph weighs its k-NN graph.

A pair of datasets is weighted by how many near neighbours they share rather
than by their raw cosine similarity. Text embeddings put almost every pair of
one corpus at a similarity of 0.3-0.8, so cosine weights are nearly uniform
and modularity has little to go on; shared neighbours separate a dense topic
from the loose pairs between topics (measured in ``benchmarks/RESULTS.md``,
section "Quality").

The weight rule: with ``S(x)`` the set of ``x`` and its ``k`` nearest
neighbours, ``w(a, b) = |S(a) ∩ S(b)| / |S(a) ∪ S(b)|``. A pair where ``b`` is
among ``a``'s ``k`` nearest always has ``b`` in both sets, so its weight is at
least ``1 / (2k + 1)``: weighting never removes an edge that the k-NN lists
give, and no dataset loses its guaranteed nearest edges to it.
"""

from __future__ import annotations

import numpy as np

from .errors import ClusteringInputError

__all__ = ["EDGE_WEIGHTS", "neighbor_sets", "shared_neighbor_weights"]

EDGE_WEIGHTS = ("snn", "cosine")

_CHUNK_PAIRS = 131_072  # pairs compared at once: chunk x 2(k+1) members (chunk x (k+1)^2 booleans with repeats)


def neighbor_sets(n_nodes: int, rows: np.ndarray, neighbors: np.ndarray, ranks: np.ndarray, k: int) -> np.ndarray:
    """``(n_nodes, k + 1)`` int64 matrix: column 0 each node itself, then its neighbours of rank 1..k.

    ``rows``, ``neighbors`` and ``ranks`` are the long k-NN table as node
    indices (rank 1 = nearest). Ranks above ``k`` are ignored; a node with
    fewer than ``k`` neighbours is padded with ``-1``, which never matches.
    """
    sets = np.full((n_nodes, k + 1), -1, dtype=np.int64)
    sets[:, 0] = np.arange(n_nodes)
    rows = np.asarray(rows, dtype=np.int64)
    neighbors = np.asarray(neighbors, dtype=np.int64)
    ranks = np.asarray(ranks, dtype=np.int64)
    use = (ranks >= 1) & (ranks <= k)
    if np.any(use & ((rows < 0) | (rows >= n_nodes) | (neighbors < 0) | (neighbors >= n_nodes))):
        raise ClusteringInputError("k-NN rows name datasets outside the graph's nodes")
    sets[rows[use], ranks[use]] = neighbors[use]
    return sets


def shared_neighbor_weights(sources: np.ndarray, targets: np.ndarray, sets: np.ndarray) -> np.ndarray:
    """Jaccard overlap of the neighbour sets of each pair ``(sources[i], targets[i])``.

    Parameters
    ----------
    sources, targets
        Node indices of the pairs (one entry per undirected edge).
    sets
        :func:`neighbor_sets`: each node itself and its ``k`` nearest
        neighbours (``-1`` = padding).

    Returns
    -------
    numpy.ndarray
        ``float64`` weights in ``[0, 1]``, one per pair: shared members of
        the two sets over the members of their union (padding excluded).
    """
    sources = np.asarray(sources, dtype=np.int64)
    targets = np.asarray(targets, dtype=np.int64)
    sizes = (sets >= 0).sum(axis=1)
    # each set's members in increasing order (padding first); int32 halves the bytes sorted when it holds them
    members = np.sort(sets.astype(np.int32) if sets.shape[0] < 2**31 else sets, axis=1)
    repeats = bool(np.any((members[:, 1:] == members[:, :-1]) & (members[:, 1:] >= 0)))
    out = np.empty(sources.size, dtype=np.float64)
    for start in range(0, sources.size, _CHUNK_PAIRS):
        stop = min(sources.size, start + _CHUNK_PAIRS)
        if repeats:  # a member listed twice: count every equal (set-a, set-b) pair of entries, as always
            a, b = sets[sources[start:stop]], sets[targets[start:stop]]
            shared = ((a[:, :, None] == b[:, None, :]) & (a[:, :, None] >= 0)).sum(axis=(1, 2))
        else:  # the two sets side by side, sorted: a shared member is an adjacent equal pair (same count)
            both = np.concatenate([members[sources[start:stop]], members[targets[start:stop]]], axis=1)
            both.sort(axis=1)
            shared = ((both[:, 1:] == both[:, :-1]) & (both[:, 1:] >= 0)).sum(axis=1)
        union = sizes[sources[start:stop]] + sizes[targets[start:stop]] - shared
        out[start:stop] = shared / np.maximum(union, 1)
    return out
