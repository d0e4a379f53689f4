"""Synthetic clustered embeddings with ground-truth labels, generated in float32 chunks.

Two kinds:

- ``lowdim``: cluster centres on the unit sphere; each point is its centre
  plus a spread that lives in a random ``intrinsic_dim``-dimensional subspace
  of its own cluster, plus a little isotropic noise, then L2-normalised (text
  embeddings look like this: a low intrinsic dimension inside 384 dims);
- ``subspace``: centres anywhere on the sphere, each cluster spread in a
  random ``intrinsic_dim``-dimensional subspace of its own (no global
  projection keeps every cluster: the hard case for an index built on one);
- ``isotropic``: centre plus isotropic Gaussian noise (the hard case for
  approximate k-NN: no low-dimensional structure to exploit).

Cluster sizes are uneven (log-normal weights). Each cluster also gets a small
vocabulary of made-up words, from which every dataset's ``text`` is drawn, so
that per-cluster terms have something to find.

The matrix is written straight into a ``.npy`` file (memory-mapped) chunk by
chunk: no float64 copy of the whole matrix is ever held.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["DEFAULT_NOISE", "SyntheticSpec", "default_clusters", "generate", "synthetic_texts"]

# Noise scales (norm of the perturbation relative to the unit-norm centre),
# chosen so that a good k-NN + Leiden pipeline recovers the clusters well but
# not perfectly (ARI roughly 0.7-0.95 at 10k points, 384 dims).
DEFAULT_NOISE = {
    # kind: (spread inside the shared subspace, in units of the distance to the nearest other
    # centre; isotropic noise, in units of the unit-norm centre)
    "lowdim": (1.0, 0.1),
    "subspace": (1.0, 2.5),
    "isotropic": (0.0, 4.5),
}

_CHUNK_ROWS = 65_536
_CENTRE_DIM = 24  # subspace kind: the dimension the cluster centres share


def default_clusters(n: int) -> int:
    """About one cluster per thousand points, at least 10 and at most 1000."""
    return int(min(1000, max(10, round(n / 1000))))


@dataclass(frozen=True)
class SyntheticSpec:
    n: int
    dim: int = 384
    clusters: int = 10
    seed: int = 0
    kind: str = "lowdim"
    intrinsic_dim: int = 24
    spread: float | None = None
    noise: float | None = None

    def scales(self) -> tuple[float, float]:
        spread, noise = DEFAULT_NOISE[self.kind]
        return (spread if self.spread is None else self.spread, noise if self.noise is None else self.noise)


def _cluster_sizes(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    """Uneven sizes summing to ``n``: log-normal weights, every cluster at least 5 points (when n allows)."""
    weights = rng.lognormal(0.0, 0.8, size=k)
    floor = min(5, n // k)
    sizes = np.full(k, floor, dtype=np.int64)
    sizes += rng.multinomial(n - floor * k, weights / weights.sum())
    return sizes


def generate(spec: SyntheticSpec, out: Path) -> np.ndarray:
    """Write the ``(n, dim)`` float32 embeddings to ``out`` (``.npy``); return the int32 truth labels."""
    if spec.kind not in DEFAULT_NOISE:
        raise ValueError(f"kind must be one of {sorted(DEFAULT_NOISE)}, not {spec.kind!r}")
    rng = np.random.default_rng(spec.seed)
    n, d, k = spec.n, spec.dim, spec.clusters
    spread, noise = spec.scales()
    r = min(spec.intrinsic_dim, d)

    if spec.kind == "lowdim":
        # One random r-dimensional subspace shared by all clusters (orthonormal basis rows);
        # the centres are unit vectors inside it, and so is each cluster's spread.
        q, _ = np.linalg.qr(rng.standard_normal((d, r)))
        basis = q.T.astype(np.float32)
        centres = rng.standard_normal((k, r), dtype=np.float32)
        centres /= np.linalg.norm(centres, axis=1, keepdims=True)
        centres = centres @ basis
        # A cluster's spread is a multiple of the distance to its nearest other centre (so the
        # difficulty barely depends on the cluster count), times a random tightness.
        gram = centres @ centres.T
        np.fill_diagonal(gram, -np.inf)
        nearest = np.sqrt(np.maximum(0.0, 2.0 - 2.0 * gram.max(axis=1))) if k > 1 else np.ones(1, np.float32)
        scale = (nearest * rng.lognormal(0.0, 0.25, size=k)).astype(np.float32)
    elif spec.kind == "subspace":
        # the centres as in lowdim (unit vectors of one shared subspace, so topics overlap), but each
        # cluster spreads in a random r-dimensional subspace of its own (k bases of r orthonormal rows)
        q, _ = np.linalg.qr(rng.standard_normal((d, _CENTRE_DIM)))
        centres = rng.standard_normal((k, _CENTRE_DIM), dtype=np.float32)
        centres /= np.linalg.norm(centres, axis=1, keepdims=True)
        centres = centres @ q.T.astype(np.float32)
        bases = np.linalg.qr(rng.standard_normal((k, d, r)).astype(np.float32))[0].transpose(0, 2, 1)
        gram = centres @ centres.T
        np.fill_diagonal(gram, -np.inf)
        nearest = np.sqrt(np.maximum(0.0, 2.0 - 2.0 * gram.max(axis=1))) if k > 1 else np.ones(1, np.float32)
        scale = (nearest * rng.lognormal(0.0, 0.25, size=k)).astype(np.float32)
    else:
        centres = rng.standard_normal((k, d), dtype=np.float32)
        centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    truth = np.repeat(np.arange(k, dtype=np.int32), _cluster_sizes(rng, n, k))
    rng.shuffle(truth)

    x = np.lib.format.open_memmap(out, mode="w+", dtype=np.float32, shape=(n, d))
    for start in range(0, n, _CHUNK_ROWS):
        stop = min(n, start + _CHUNK_ROWS)
        labels = truth[start:stop]
        chunk = centres[labels]
        if spec.kind == "lowdim" and spread > 0:
            z = rng.standard_normal((stop - start, r), dtype=np.float32)
            z *= (spread / np.sqrt(r)) * scale[labels][:, None]
            chunk += z @ basis
        if spec.kind == "subspace" and spread > 0:
            z = rng.standard_normal((stop - start, r), dtype=np.float32)
            z *= (spread / np.sqrt(r)) * scale[labels][:, None]
            chunk += np.einsum("nr,nrd->nd", z, bases[labels])
        if noise > 0:
            eps = rng.standard_normal(chunk.shape, dtype=np.float32)
            eps *= noise / np.sqrt(d)
            chunk += eps
        if spec.kind in ("lowdim", "subspace"):
            chunk /= np.linalg.norm(chunk, axis=1, keepdims=True)
        x[start:stop] = chunk
    x.flush()
    del x
    return truth


_ONSETS = list("bcdfghjklmnprstvz") + ["br", "ch", "cl", "dr", "gr", "pl", "sh", "st", "th", "tr"]
_VOWELS = ["a", "e", "i", "o", "u", "ai", "ou", "io"]


def _words(rng: np.random.Generator, count: int, taken: set[str]) -> list[str]:
    out: list[str] = []
    while len(out) < count:
        syllables = rng.integers(2, 4)
        word = "".join(
            _ONSETS[rng.integers(len(_ONSETS))] + _VOWELS[rng.integers(len(_VOWELS))] for _ in range(syllables)
        )
        word += "lmnrsx"[rng.integers(6)]
        if word not in taken:
            taken.add(word)
            out.append(word)
    return out


def synthetic_texts(truth: np.ndarray, seed: int, *, topic_words: int = 8, shared_words: int = 300) -> list[str]:
    """One short text per point: 4 words of its cluster's vocabulary and 3 words shared by all clusters."""
    rng = np.random.default_rng(seed + 1)
    k = int(truth.max()) + 1 if len(truth) else 0
    taken: set[str] = set()
    topic = np.array(_words(rng, k * topic_words, taken), dtype=object).reshape(k, topic_words)
    shared = np.array(_words(rng, shared_words, taken), dtype=object)
    n = len(truth)
    picks = topic[truth[:, None], rng.integers(0, topic_words, size=(n, 4))]
    common = shared[rng.integers(0, shared_words, size=(n, 3))]
    words = np.concatenate([picks, common], axis=1)
    return [" ".join(row) for row in words.tolist()]
