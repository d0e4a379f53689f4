"""Place new datasets into existing clusters without re-clustering."""

from __future__ import annotations

import numpy as np

from .knn import normalize_rows, query_knn

__all__ = ["place_by_vote"]


def place_by_vote(
    new_vectors: np.ndarray,
    clustered_vectors: np.ndarray,
    clustered_labels: np.ndarray,
    k: int,
    *,
    min_share: float = 0.5,
) -> tuple[np.ndarray, np.ndarray]:
    """Similarity-weighted majority vote of each new row's ``k`` nearest clustered rows.

    Each new row's vote for a cluster is the sum of the (positive) cosine
    similarities of its nearest clustered neighbours in that cluster; the
    row joins the cluster with the largest vote when that vote is at least
    ``min_share`` of all its neighbours' total (ties go to the smaller
    cluster code).

    Parameters
    ----------
    new_vectors
        ``(q, d)`` rows to place.
    clustered_vectors
        ``(n, d)`` rows that already have a cluster.
    clustered_labels
        ``int`` array ``(n,)``: the cluster code of each clustered row.
    k
        Neighbours that vote.
    min_share
        Smallest winning share in (0, 1].

    Returns
    -------
    codes : numpy.ndarray
        ``int64`` ``(q,)``: the winning cluster code, or ``-1`` (not placed).
    shares : numpy.ndarray
        ``float64`` ``(q,)``: the winning share (0 when no neighbour voted).
    """
    q = new_vectors.shape[0]
    codes = np.full(q, -1, dtype=np.int64)
    shares = np.zeros(q, dtype=np.float64)
    if q == 0 or clustered_vectors.shape[0] == 0:
        return codes, shares
    indices, sims = query_knn(normalize_rows(new_vectors), normalize_rows(clustered_vectors), k, normalized=True)
    votes_for = np.asarray(clustered_labels, dtype=np.int64)[indices]  # (q, k)
    weight = np.maximum(sims.astype(np.float64), 0.0)
    n_codes = int(np.max(clustered_labels)) + 1
    tally = np.zeros((q, n_codes))
    np.add.at(tally, (np.repeat(np.arange(q), indices.shape[1]), votes_for.ravel()), weight.ravel())
    total = tally.sum(axis=1)
    winner = tally.argmax(axis=1)  # first maximum = smallest code on ties
    best = tally[np.arange(q), winner]
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(total > 0, best / total, 0.0)
    placed = (total > 0) & (share >= min_share)
    codes[placed] = winner[placed]
    shares[:] = share
    return codes, shares
