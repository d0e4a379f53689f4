"""Errors raised by the clustering phase.

Every error names the input at fault and says how to fix it, so that a dbt
user reading the failed model's message knows what to change.
"""

from __future__ import annotations

__all__ = ["ClusteringInputError", "ParameterError"]


class ClusteringInputError(ValueError):
    """The input data (Chroma store, collection, embeddings, tables) is unusable."""


class ParameterError(ValueError):
    """A dbt var / model parameter has a value outside its allowed range."""
