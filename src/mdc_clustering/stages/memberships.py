"""The memberships table, one row per dataset, that both the clustering and the placement stage return.

Its columns are written down once, here: :data:`MEMBERSHIPS_SCHEMA`, built by
:func:`memberships_table`.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from ._arrow import constant_column

# What the run says about each dataset.
PER_DATASET_COLUMNS = (
    ("dataset_id", pa.string()),
    ("cluster", pa.string()),  # label; null when the dataset has no cluster
    ("cluster_number", pa.int64()),  # 0 = largest this run
    ("label_status", pa.string()),  # 'kept', 'born' or 'placed'
    ("previous_cluster", pa.string()),
    ("unclustered_reason", pa.string()),
    ("community", pa.int64()),  # Leiden community before the small-cluster rule
    ("community_size", pa.int64()),
    ("embedding_hash", pa.int64()),  # the embedding it was clustered with: the next run frees it when it changed
)
# Facts of the whole run, the same on every row (null where the stage has none).
RUN_FACT_COLUMNS = (
    ("leiden_resolution", pa.float64()),
    ("modularity", pa.float64()),
    ("n_components", pa.int64()),
    ("target_reached", pa.bool_()),
    ("n_split", pa.int64()),
    ("n_attached", pa.int64()),
    ("edge_weight", pa.string()),
    ("resolution_scan", pa.string()),  # JSON list, resolution='auto' only
    ("labels_kept", pa.int64()),
    ("labels_born", pa.int64()),
    ("labels_retired", pa.int64()),
    ("clusters_split", pa.int64()),
    ("clusters_merged", pa.int64()),
    ("share_kept_label", pa.float64()),
    ("datasets_placed", pa.int64()),
    ("datasets_left_unplaced", pa.int64()),
    ("placement_seconds", pa.float64()),
    # the Leiden path (see stages.clustering.cluster_memberships): 'full' or 'aggregated', and why
    ("leiden_path", pa.string()),
    ("leiden_reason", pa.string()),
    ("leiden_nodes", pa.int64()),  # nodes Leiden ran on: the aggregated graph's, or every dataset
    ("leiden_free_datasets", pa.int64()),  # datasets that moved on their own on the aggregated path
    ("runs_since_full_leiden", pa.int64()),  # 0 when a full Leiden ran this run
    ("full_leiden_modularity", pa.float64()),  # the modularity the last full Leiden reached, on its graph
    ("aggregated_modularity", pa.float64()),  # the aggregated path's modularity on the whole graph
    ("leiden_settings", pa.string()),  # fingerprint of the settings the partition depends on
)
# A run fact is one value held as a dictionary of it (one zero byte a row); DuckDB reads the value type.
MEMBERSHIPS_SCHEMA = pa.schema(
    [pa.field(name, arrow_type) for name, arrow_type in PER_DATASET_COLUMNS]
    + [pa.field(name, pa.dictionary(pa.int8(), arrow_type)) for name, arrow_type in RUN_FACT_COLUMNS]
)


def memberships_table(per_dataset: dict[str, object], run_facts: dict[str, object]) -> pa.Table:
    """The memberships table, in :data:`MEMBERSHIPS_SCHEMA`.

    Parameters
    ----------
    per_dataset
        Column name (of :data:`PER_DATASET_COLUMNS`) -> one value per
        dataset (Arrow array, list or numpy array); ``dataset_id`` is
        required, a column left out is null.
    run_facts
        Column name (of :data:`RUN_FACT_COLUMNS`) -> the run's one value; a
        fact left out is null.
    """
    unknown = (set(per_dataset) - {name for name, _ in PER_DATASET_COLUMNS}) | (
        set(run_facts) - {name for name, _ in RUN_FACT_COLUMNS}
    )
    if unknown:
        raise ValueError(f"not columns of the memberships table: {sorted(unknown)}")
    n = len(per_dataset["dataset_id"])
    columns = []
    for name, arrow_type in PER_DATASET_COLUMNS:
        values = per_dataset.get(name)
        if values is None:
            columns.append(pa.nulls(n, arrow_type))
        elif isinstance(values, pa.Array | pa.ChunkedArray):
            columns.append(values.cast(arrow_type))
        else:
            columns.append(pa.array(values, arrow_type))
    columns += [constant_column(run_facts.get(name), arrow_type, n) for name, arrow_type in RUN_FACT_COLUMNS]
    return pa.Table.from_arrays(columns, schema=MEMBERSHIPS_SCHEMA)


def labels_of(node_ids: pa.Array, previous: pa.Table) -> pa.Array:
    """Each node's label in ``previous`` (``dataset_id``, ``cluster``); null where it has none."""
    rows = pc.index_in(node_ids, value_set=previous.column("dataset_id"))
    return previous.column("cluster").take(rows).combine_chunks() if len(node_ids) else pa.array([], pa.string())
