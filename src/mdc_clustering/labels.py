"""Cluster labels that survive re-runs: one-to-one matching of new clusters to the previous run's."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from scipy import sparse
from scipy.optimize import linear_sum_assignment
from scipy.sparse.csgraph import connected_components

__all__ = ["LABEL_PREFIX", "LabelMatch", "label_number", "match_labels"]

LABEL_PREFIX = "cluster_"
_LABEL_RE = re.compile(r"^cluster_(\d+)$")


def label_number(label: str | None) -> int | None:
    """``"cluster_12"`` -> 12; None for anything else."""
    if label is None:
        return None
    match = _LABEL_RE.match(label)
    return int(match.group(1)) if match else None


@dataclass
class LabelMatch:
    """Outcome of :func:`match_labels`.

    Attributes
    ----------
    labels
        One label per node (None where the node has no cluster).
    status
        Per new cluster label: ``"kept"`` (matched to the previous cluster
        with that label) or ``"born"`` (a fresh label).
    kept, born, retired, split, merged
        Counts of clusters: kept their label; got a fresh label; previous
        labels no longer used; previous clusters whose members now form the
        majority of two or more new clusters; new clusters that hold the
        majority of two or more previous clusters.
    share_kept
        Of the nodes that had a label before, the share that has the same
        label now (None when none had one).
    """

    labels: list[str | None]
    status: dict[str, str] = field(default_factory=dict)
    kept: int = 0
    born: int = 0
    retired: int = 0
    split: int = 0
    merged: int = 0
    share_kept: float | None = None


def match_labels(
    clusters: np.ndarray,
    previous: Sequence[str | None] | pa.Array | pa.ChunkedArray,
    *,
    used_numbers: set[int] | frozenset[int] = frozenset(),
    min_overlap: float = 0.3,
) -> LabelMatch:
    """Give each new cluster the label of the previous cluster it matches, or a fresh one.

    New and previous clusters are matched one-to-one by maximum total Jaccard
    overlap (Hungarian method on each connected group of overlapping
    clusters); a pair is kept only if its Jaccard overlap is at least
    ``min_overlap``. A new cluster without a match gets ``cluster_<n>`` with
    ``n`` above every number ever used (``used_numbers``, plus the previous
    labels), numbered largest cluster first, so a retired label is never
    reused.

    Parameters
    ----------
    clusters
        ``int`` array, one entry per node: new cluster number (0 = largest)
        or ``-1`` for no cluster.
    previous
        The previous label of each node (None where it had none or is new):
        a list, or an Arrow string array (null for None).
    used_numbers
        Label numbers ever handed out (the label registry).
    min_overlap
        Smallest Jaccard overlap for a new cluster to inherit a label.
    """
    clusters = np.asarray(clusters, dtype=np.int64)
    if isinstance(previous, pa.Array | pa.ChunkedArray):
        previous = previous.cast(pa.string())
    else:
        previous = pa.array(previous, pa.string())
    # the previous labels sorted (UTF-8 byte order is code point order, as Python sorts str), and each node's
    # number in that list (-1 for no label)
    distinct = pc.unique(previous.drop_null()).sort()
    prev_labels: list[str] = distinct.to_pylist()
    prev_codes = pc.fill_null(pc.index_in(previous, value_set=distinct), -1)
    prev_codes = prev_codes.to_numpy(zero_copy_only=False).astype(np.int64)
    m_new = int(clusters.max(initial=-1)) + 1
    m_old = len(prev_labels)

    new_sizes = np.bincount(clusters[clusters >= 0], minlength=m_new)
    old_sizes = np.bincount(prev_codes[prev_codes >= 0], minlength=m_old)
    both = (clusters >= 0) & (prev_codes >= 0)
    overlap = sparse.coo_matrix(
        (np.ones(int(both.sum())), (clusters[both], prev_codes[both])), shape=(m_new, m_old)
    ).tocsr()
    overlap.sum_duplicates()
    rows, cols = overlap.nonzero()
    inter = np.asarray(overlap[rows, cols]).ravel()
    jaccard = inter / (new_sizes[rows] + old_sizes[cols] - inter)

    matched: dict[int, int] = {}
    if rows.size:
        # Solve the assignment separately on each connected group of overlapping clusters.
        graph = sparse.coo_matrix((np.ones(rows.size), (rows, cols + m_new)), shape=(m_new + m_old,) * 2)
        _, component = connected_components(graph, directed=False)
        edge_component = component[rows]
        for comp in np.unique(edge_component):
            sel = edge_component == comp
            r_ids, r_local = np.unique(rows[sel], return_inverse=True)
            c_ids, c_local = np.unique(cols[sel], return_inverse=True)
            weights = np.zeros((r_ids.size, c_ids.size))
            weights[r_local, c_local] = jaccard[sel]
            best_r, best_c = linear_sum_assignment(weights, maximize=True)
            for r, c in zip(best_r, best_c, strict=True):
                if weights[r, c] >= min_overlap and weights[r, c] > 0:
                    matched[int(r_ids[r])] = int(c_ids[c])

    numbers = set(used_numbers) | {x for x in (label_number(p) for p in prev_labels) if x is not None}
    next_number = max(numbers, default=-1) + 1
    new_label: list[str | None] = []
    status: dict[str, str] = {}
    for c in range(m_new):  # clusters are numbered largest first already
        if c in matched:
            label = prev_labels[matched[c]]
            status[label] = "kept"
        else:
            label = f"{LABEL_PREFIX}{next_number}"
            next_number += 1
            status[label] = "born"
        new_label.append(label)
    labels = np.array([*new_label, None], dtype=object)[clusters].tolist()  # -1 (no cluster) picks the None

    # majority flows: new cluster r is "from" old c when most of r came from c, and
    # old c went "into" r when most of c went to r
    from_old = inter / new_sizes[rows] > 0.5
    into_new = inter / old_sizes[cols] > 0.5 if m_old else np.zeros(0, bool)
    split = int(np.sum(np.bincount(cols[from_old], minlength=m_old) >= 2)) if m_old else 0
    merged = int(np.sum(np.bincount(rows[into_new], minlength=m_new) >= 2)) if m_new else 0
    had = prev_codes >= 0
    # a node keeps its label when its cluster kept the label of its previous cluster (a fresh label
    # is never an old one: its number is above every old label's)
    old_of_new = np.full(m_new + 1, -1, dtype=np.int64)  # the extra -1 at the end is for clusters == -1
    old_of_new[list(matched)] = list(matched.values())
    same = int(np.sum(had & (old_of_new[clusters] == prev_codes)))
    return LabelMatch(
        labels=labels,
        status=status,
        kept=len(matched),
        born=m_new - len(matched),
        retired=m_old - len(matched),
        split=split,
        merged=merged,
        share_kept=(same / int(had.sum())) if had.any() else None,
    )
