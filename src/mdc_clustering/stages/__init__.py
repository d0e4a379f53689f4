"""Arrow-in, Arrow-out entry points of the dbt Python models, one module per stage.

- k-NN (:mod:`.neighbor_search`): :func:`nearest_neighbors`, :func:`reference_neighbors`;
- recall (:mod:`.recall`): :func:`scored_recall_sample`, :func:`recall_summary`;
- clustering (:mod:`.clustering`): :func:`cluster_memberships`, :func:`edge_weights`;
- placement (:mod:`.placement`): :func:`place_new_datasets`;
- centroids (:mod:`.centroids`): :func:`centroid_similarities`.

Clustering and placement both return the memberships table of
:data:`MEMBERSHIPS_SCHEMA` (:mod:`.memberships`).
"""

from .centroids import centroid_similarities
from .clustering import cluster_memberships, edge_weights
from .memberships import MEMBERSHIPS_SCHEMA
from .neighbor_search import nearest_neighbors, reference_neighbors
from .placement import place_new_datasets
from .recall import recall_summary, scored_recall_sample

__all__ = [
    "MEMBERSHIPS_SCHEMA",
    "centroid_similarities",
    "cluster_memberships",
    "edge_weights",
    "nearest_neighbors",
    "place_new_datasets",
    "recall_summary",
    "reference_neighbors",
    "scored_recall_sample",
]
