"""Numeric core of the dataset-embedding clustering phase.

dbt Python models in ``python_models/`` are thin wrappers around these
functions: they read Arrow, call one function, and return Arrow.
"""

from .chroma_reader import embedding_matrix, get_client, open_collection, read_collection
from .errors import ClusteringInputError, ParameterError
from .validation import check_embeddings

__all__ = [
    "ClusteringInputError",
    "ParameterError",
    "check_embeddings",
    "embedding_matrix",
    "get_client",
    "open_collection",
    "read_collection",
]
