"""Checks on embeddings and parameters, run before any heavy work."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np

from .errors import ClusteringInputError, ParameterError

__all__ = [
    "INVALID_EMBEDDING_POLICIES",
    "check_dimensions",
    "check_id_overlap",
    "check_embeddings",
    "row_norms",
    "positive_int",
    "nonnegative_int",
    "optional_positive_int",
    "positive_float",
    "unit_interval",
    "choice",
]

INVALID_EMBEDDING_POLICIES = ("error", "exclude")

_SHOW = 5  # how many offending ids an error message lists


def _listing(ids: Sequence[str]) -> str:
    head = ", ".join(repr(str(i)) for i in ids[:_SHOW])
    more = f" and {len(ids) - _SHOW} more" if len(ids) > _SHOW else ""
    return head + more


def _number(name: str, value: object, rule: str) -> float:
    """``value`` as a float when it is a real number (int, float or a NumPy number; not a bool or a string)."""
    if isinstance(value, bool | np.bool_) or not isinstance(value, int | float | np.integer | np.floating):
        raise ParameterError(f"setting '{name}' must be {rule}, got {value!r}")
    return float(value)


# Argument checks of the numeric functions, for a caller that skips the typed settings
# (mdc_clustering.settings, which check every value first): numbers only, None only where "off" is allowed.
def positive_int(name: str, value: object) -> int:
    """``value`` as an int >= 1, or raise naming the setting ``name``."""
    as_float = _number(name, value, "a positive integer")
    if not as_float.is_integer() or as_float < 1:
        raise ParameterError(f"setting '{name}' must be a positive integer, got {value!r}")
    return int(as_float)


def nonnegative_int(name: str, value: object) -> int:
    """``value`` as an int >= 0 (e.g. a random seed), or raise naming the setting."""
    as_float = _number(name, value, "a non-negative integer")
    if not as_float.is_integer() or as_float < 0:
        raise ParameterError(f"setting '{name}' must be a non-negative integer, got {value!r}")
    return int(as_float)


def optional_positive_int(name: str, value: object) -> int | None:
    """Like :func:`positive_int`, but ``None`` means "off"."""
    return None if value is None else positive_int(name, value)


def positive_float(name: str, value: object) -> float:
    as_float = _number(name, value, "a positive number")
    if not math.isfinite(as_float) or as_float <= 0:
        raise ParameterError(f"setting '{name}' must be a positive number, got {value!r}")
    return as_float


def unit_interval(name: str, value: object) -> float:
    """A number in [0, 1] (e.g. a recall bound), or raise naming the setting."""
    as_float = _number(name, value, "a number in [0, 1]")
    if not (0.0 <= as_float <= 1.0):
        raise ParameterError(f"setting '{name}' must be a number in [0, 1], got {value!r}")
    return as_float


def choice(name: str, value: object, allowed: Sequence[str]) -> str:
    if value not in allowed:
        raise ParameterError(f"setting '{name}' must be one of {', '.join(allowed)}; got {value!r}")
    return str(value)


def check_embeddings(
    ids: Sequence[str],
    vectors: np.ndarray,
    *,
    source: str,
    on_invalid: str = "error",
    norms: np.ndarray | None = None,
    whole: bool = True,
) -> np.ndarray:
    """Check a matrix of embeddings and return a boolean mask of rows to keep.

    Parameters
    ----------
    ids
        One id per row of ``vectors``.
    vectors
        ``float32`` array of shape ``(n, d)``.
    source
        Where the rows came from (e.g. ``"Chroma collection 'x' at /path"``),
        used in messages.
    on_invalid
        ``"error"`` raises :class:`ClusteringInputError` on rows with NaN/inf
        values or a zero norm; ``"exclude"`` warns and drops them.
    norms
        The rows' float64 L2 norms (:func:`row_norms`), when the caller has
        them already; computed otherwise.
    whole
        The rows are every embedding there is (then, with ``"exclude"``,
        none valid is an error: nothing to cluster); False for a part, such
        as a re-run's read of its new and changed datasets.

    Returns
    -------
    numpy.ndarray
        Boolean mask of shape ``(n,)``; all ``True`` unless rows were excluded.

    Raises
    ------
    ClusteringInputError
        On an empty input, duplicate ids (always), or invalid rows when
        ``on_invalid == "error"``.
    """
    choice("invalid_embeddings", on_invalid, INVALID_EMBEDDING_POLICIES)
    n = len(ids)
    if n == 0:
        raise ClusteringInputError(
            f"{source} holds no embeddings. Add the datasets' embeddings to it "
            "(collection.add(ids=..., embeddings=..., metadatas=...)) or point the "
            "vars chroma_path / chroma_collection at a populated collection."
        )
    if vectors.ndim != 2 or vectors.shape[0] != n:
        raise ClusteringInputError(
            f"{source}: expected one embedding per id ({n}), got an array of shape {vectors.shape}"
        )
    if len(set(map(str, ids))) != n:  # a set: np.unique sorted a million object strings for seconds
        unique, counts = np.unique(np.asarray(ids, dtype=object).astype(str), return_counts=True)
        dupes = list(unique[counts > 1])
        raise ClusteringInputError(
            f"{source} has duplicate ids: {_listing(dupes)}. Each dataset_id must appear once; "
            "remove or rename the duplicates."
        )
    if norms is None:
        norms = row_norms(vectors)
    # a float64 norm is finite exactly when the float32 row is (squares of float32 cannot overflow it)
    finite = np.isfinite(norms)
    zero = finite & (norms == 0.0)
    bad_values = np.flatnonzero(~finite)
    bad_zero = np.flatnonzero(zero)
    problems = []
    if bad_values.size:
        problems.append(f"{bad_values.size} with NaN or infinite values ({_listing([ids[i] for i in bad_values])})")
    if bad_zero.size:
        problems.append(f"{bad_zero.size} with zero norm ({_listing([ids[i] for i in bad_zero])})")
    keep = finite & ~zero
    if problems:
        message = f"{source}: invalid embeddings: " + "; ".join(problems) + "."
        if on_invalid == "error":
            raise ClusteringInputError(
                message + " Re-embed those datasets, or set the var invalid_embeddings: exclude "
                "to leave them out of this phase (their cluster becomes NULL)."
            )
        warnings.warn(message + " They are excluded (invalid_embeddings: exclude).", stacklevel=2)
        if whole and not keep.any():
            raise ClusteringInputError(f"{source}: every embedding is invalid; nothing to cluster.")
    return keep


def row_norms(vectors: np.ndarray, *, batch_rows: int = 65_536) -> np.ndarray:
    """float64 L2 norm of every row of a float32 matrix, a slice at a time (no float64 copy of the matrix).

    NaN where a row holds NaN, inf where it holds inf (and no NaN).
    """
    norms = np.empty(vectors.shape[0], dtype=np.float64)
    for start in range(0, vectors.shape[0], batch_rows):
        part = vectors[start : start + batch_rows].astype(np.float64)
        norms[start : start + batch_rows] = np.linalg.norm(part, axis=1)
    return norms


def check_dimensions(ids: Sequence[str], dims: Sequence[int], *, source: str) -> int:
    """Return the single embedding dimension, or raise naming the odd rows."""
    dims_arr = np.asarray(dims)
    values, counts = np.unique(dims_arr, return_counts=True)
    if values.size > 1:
        common = int(values[np.argmax(counts)])
        odd = [ids[i] for i in np.flatnonzero(dims_arr != common)]
        raise ClusteringInputError(
            f"{source} mixes embedding dimensions {sorted(int(v) for v in values)}; "
            f"most rows have {common}, these do not: {_listing(odd)}. "
            "All embeddings must come from the same model; re-embed the odd ones."
        )
    return int(values[0])


def check_id_overlap(
    chroma_ids: Sequence[str],
    dataset_ids: Sequence[str],
    *,
    min_share: float,
    chroma_source: str,
    datasets_source: str,
) -> tuple[int, int]:
    """Stop when a Chroma collection and a ``datasets`` table are not the same pipeline's.

    Parameters
    ----------
    chroma_ids
        The collection's ids.
    dataset_ids
        The ``dataset_id`` of every ``datasets`` row.
    min_share
        The smallest allowed share, in [0, 1], of the ``datasets`` rows found
        in the collection and of the collection's ids found in ``datasets``
        (the dbt var ``min_id_overlap``). 0 never stops.
    chroma_source, datasets_source
        How messages name the two sides.

    Returns
    -------
    tuple of int
        ``(datasets rows without an embedding, Chroma ids without a datasets row)``
        when both shares reach ``min_share``.

    Raises
    ------
    ClusteringInputError
        Naming both sides, their counts, the shares and a few ids of each
        side that the other lacks, and the settings that fix it.
    """
    min_share = unit_interval("min_id_overlap", min_share)
    in_chroma = set(chroma_ids)
    in_datasets = set(dataset_ids)
    common = len(in_chroma & in_datasets)
    datasets_share = common / len(in_datasets) if in_datasets else 0.0
    chroma_share = common / len(in_chroma) if in_chroma else 0.0
    if min(datasets_share, chroma_share) >= min_share:
        return len(in_datasets) - common, len(in_chroma) - common
    only_chroma = sorted(in_chroma - in_datasets)
    only_datasets = sorted(in_datasets - in_chroma)
    raise ClusteringInputError(
        f"The Chroma collection and the datasets table do not belong to the same pipeline: "
        f"{common} ids in common; {datasets_source} has {len(in_datasets)} rows, "
        f"{datasets_share:.1%} of them in the collection; {chroma_source} has {len(in_chroma)} ids, "
        f"{chroma_share:.1%} of them in datasets (var min_id_overlap = {min_share:g} asks for both). "
        f"Only in Chroma, e.g.: {_listing(only_chroma) or 'none'}. "
        f"Only in datasets, e.g.: {_listing(only_datasets) or 'none'}. "
        "Nothing was written. Point MDC_CHROMA_PATH / MDC_CHROMA_COLLECTION (or --vars chroma_path / "
        "chroma_collection) at this pipeline's store, or MDC_DUCKDB_PATH at the store's pipeline file; "
        "lower min_id_overlap only if the two really are one pipeline."
    )
