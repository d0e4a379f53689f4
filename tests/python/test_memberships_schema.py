"""The memberships table: one schema, returned by both the clustering and the placement stage."""

from __future__ import annotations

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from mdc_clustering.stages.memberships import (
    MEMBERSHIPS_SCHEMA,
    PER_DATASET_COLUMNS,
    RUN_FACT_COLUMNS,
    memberships_table,
)
from mdc_clustering.tables import cluster_memberships, nearest_neighbors, place_new_datasets


@pytest.fixture
def clustered(rng):
    """Four separated groups of 50 datasets: their embeddings and the k-NN graph's edges."""
    centres = rng.normal(size=(4, 16))
    x = (centres[rng.integers(0, 4, 200)] + 0.2 * rng.normal(size=(200, 16))).astype(np.float32)
    ids = pa.array([f"d{i:03d}" for i in range(200)])
    embeddings = pa.table({"dataset_id": ids, "embedding": pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), 16)})
    knn = nearest_neighbors(embeddings, 10)
    kept = knn.filter(pc.greater(knn.column("similarity"), 0.5))
    edges = pa.table(
        {
            "source_id": kept.column("dataset_id").cast(pa.string()),
            "target_id": kept.column("neighbor_id").cast(pa.string()),
            "weight": kept.column("similarity"),
        }
    )
    return ids, embeddings, edges


def test_clustering_and_placement_return_exactly_the_memberships_schema(clustered):
    ids, embeddings, edges = clustered
    clustered_table = cluster_memberships(pa.table({"dataset_id": ids}), edges, edge_weight="cosine")
    previous = pa.table({"dataset_id": ids.slice(0, 150), "cluster": clustered_table.column("cluster").slice(0, 150)})
    placed = place_new_datasets(embeddings, previous)
    assert clustered_table.schema == MEMBERSHIPS_SCHEMA
    assert placed.schema == MEMBERSHIPS_SCHEMA
    # DuckDB reads a run fact as its value type, one value on every row
    relation = duckdb.sql("select * from clustered_table")
    types = dict(zip(relation.columns, relation.types, strict=True))
    assert str(types["modularity"]) == "DOUBLE" and str(types["edge_weight"]) == "VARCHAR"
    assert duckdb.sql("select count(distinct labels_kept) from placed").fetchall() == [(1,)]
    # the 50 datasets without a previous cluster are new: each is placed or left unplaced
    assert duckdb.sql("select distinct datasets_placed + datasets_left_unplaced from placed").fetchall() == [(50,)]


def test_the_builder_fills_what_a_stage_leaves_out_with_nulls_and_rejects_unknown_columns():
    table = memberships_table({"dataset_id": ["a", "b"]}, {"labels_born": 2})
    assert table.schema == MEMBERSHIPS_SCHEMA
    assert table.column("labels_born").to_pylist() == [2, 2]
    assert table.column("cluster").null_count == 2 and table.column("modularity").to_pylist() == [None, None]
    assert len(MEMBERSHIPS_SCHEMA) == len(PER_DATASET_COLUMNS) + len(RUN_FACT_COLUMNS)
    with pytest.raises(ValueError, match="not columns"):
        memberships_table({"dataset_id": ["a"]}, {"n_clusters": 3})
