"""Which k-NN method a run uses, and its parameters, from the dbt vars."""

from __future__ import annotations

from ..validation import choice, nonnegative_int
from ._hnsw import HnswParams
from ._ivf import IvfParams

KNN_METHODS = ("auto", "exact", "ivf", "hnsw")


def knn_settings(
    n: int,
    *,
    knn_method: object,
    knn_exact_max_n: object,
    ivf_pca_dims: object,
    ivf_nlist: object,
    ivf_nprobe: object,
    hnsw_m: object,
    hnsw_ef_construction: object,
    hnsw_ef_search: object,
    hnsw_pca_dims: object,
    knn_min_recall: object = None,
) -> tuple[str, IvfParams | HnswParams | None]:
    """The k-NN method (``exact``, ``ivf`` or ``hnsw``) the vars ask for, for ``n`` datasets, and its parameters.

    Takes the vars as the dbt models read them (``dbt.config.get``, which
    dbt only sees when called with a literal name) and checks them all,
    whichever method is used. ``knn_min_recall`` is the bar of the
    approximate methods' pilot check (see :class:`IvfParams` and
    :class:`HnswParams`). The parameters are ``None`` for ``exact``.
    """
    method = choose_knn_method(n, knn_method, knn_exact_max_n)
    ivf = IvfParams.from_vars(ivf_pca_dims, ivf_nlist, ivf_nprobe, knn_min_recall)
    hnsw = HnswParams.from_vars(hnsw_m, hnsw_ef_construction, hnsw_ef_search, hnsw_pca_dims, knn_min_recall)
    return method, {"ivf": ivf, "hnsw": hnsw}.get(method)


def choose_knn_method(n: int, method: str, exact_max_n: int) -> str:
    """The k-NN method a run uses: ``exact``, ``ivf`` or ``hnsw``.

    ``auto`` means exact up to ``exact_max_n`` datasets (where the exact
    search costs a few seconds) and IVF beyond (measured fastest at the
    same recall: benchmarks/RESULTS.md).
    """
    method = choice("knn_method", method, KNN_METHODS)
    exact_max_n = nonnegative_int("knn_exact_max_n", exact_max_n)
    if method == "auto":
        return "exact" if n <= exact_max_n else "ivf"
    return method
