"""k-nearest neighbours by cosine similarity, one module per backend.

- exact (:mod:`._exact`): :func:`exact_knn`, :func:`query_knn`, in bounded memory;
- IVF (:mod:`._ivf`): :func:`ivf_knn` with :class:`IvfParams`;
- HNSW (:mod:`._hnsw`): :func:`hnsw_knn` with :class:`HnswParams`;
- recall (:mod:`._recall`): :func:`knn_recall` and its parts, against exact search;
  :func:`update_exact_answers` (:mod:`._recall_update`) updates a recall
  sample's stored exact answers for new, changed and removed datasets;
- incremental (:mod:`._incremental`): :func:`update_knn` updates a previous
  run's lists (:class:`PreviousKnn`) for new, changed and removed datasets;
  :func:`decide_full_run` says when a full search should run instead.

The approximate backends return a :class:`KnnResult`: the neighbours and how
they were searched. :func:`knn_settings` picks the backend from the dbt vars;
:func:`knn_table` turns neighbours into the long Arrow table the models write.
"""

from ._common import KnnResult, knn_table, normalize_rows, pair_similarities
from ._exact import exact_knn, query_knn
from ._hnsw import HnswParams, hnsw_knn
from ._incremental import (
    INCREMENTAL_MAX_CHANGE_SHARE,
    FullRunDecision,
    KnnUpdate,
    KnnUpdateStats,
    PreviousKnn,
    decide_full_run,
    update_knn,
)
from ._ivf import IvfModel, IvfParams, ivf_knn
from ._recall import TopK, distinct_others, knn_recall, kth_of, recall_from_kth, streamed_kth_similarity, streamed_top_k
from ._recall_update import ExactAnswers, recall_fingerprint, update_exact_answers
from ._settings import KNN_METHODS, choose_knn_method, knn_settings

__all__ = [
    "INCREMENTAL_MAX_CHANGE_SHARE",
    "KNN_METHODS",
    "ExactAnswers",
    "FullRunDecision",
    "HnswParams",
    "IvfModel",
    "IvfParams",
    "KnnResult",
    "KnnUpdate",
    "KnnUpdateStats",
    "PreviousKnn",
    "TopK",
    "choose_knn_method",
    "decide_full_run",
    "distinct_others",
    "exact_knn",
    "hnsw_knn",
    "ivf_knn",
    "knn_recall",
    "kth_of",
    "knn_settings",
    "knn_table",
    "normalize_rows",
    "pair_similarities",
    "query_knn",
    "recall_fingerprint",
    "recall_from_kth",
    "streamed_kth_similarity",
    "streamed_top_k",
    "update_exact_answers",
    "update_knn",
]
