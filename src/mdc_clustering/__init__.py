"""Numeric core of the dataset-embedding clustering phase.

dbt Python models in ``python_models/`` are thin wrappers around these
functions: they read Arrow, call one function, and return Arrow. From a
notebook, :func:`cluster` runs the same build on a matrix; every setting is
in :class:`Settings`.
"""

from .api import ClusteringOutput, cluster, place_new
from .chroma_reader import get_client, open_collection, read_collection
from .embeddings import Embeddings, as_embeddings, embedding_matrix, read_embeddings
from .errors import ClusteringInputError, ParameterError
from .settings import Settings
from .validation import check_embeddings

__all__ = [
    "ClusteringInputError",
    "ClusteringOutput",
    "Settings",
    "cluster",
    "place_new",
    "Embeddings",
    "ParameterError",
    "check_embeddings",
    "as_embeddings",
    "embedding_matrix",
    "get_client",
    "open_collection",
    "read_collection",
    "read_embeddings",
]
