"""A re-run after a few percent of new data keeps apart the old clusters a fresh run keeps apart.

The case a user met on a news pipeline: after 5% new articles, the whole-graph warm start merged a film
cluster into music, where a fresh run on the same data kept the two apart. Here, on labelled text sets
(MiniLM embeddings of real text, benchmarks/data), on three draws of the new rows each: the re-run
(Leiden on the aggregated graph) against a fresh run of the same data (the oracle).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from dbt_runner import REPO

from mdc_clustering.neighbors import exact_knn
from mdc_clustering.tables import cluster_memberships

DATA = REPO / "benchmarks" / "data"


def default_graph_edges(ids: np.ndarray, x: np.ndarray, k=30, target_degree=30, min_edges=20) -> pa.Table:
    """The default graph's rules, written out again: k-NN pairs at or above the degree_target threshold,
    plus each dataset's min_edges nearest, similarity > 0 (what the SQL models build)."""
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    indices, sims = exact_knn(x, k)
    n = len(x)
    src = np.repeat(np.arange(n), indices.shape[1])
    dst, sim = indices.ravel(), sims.ravel().astype(np.float64)
    rank = np.tile(np.arange(1, indices.shape[1] + 1), n)
    pair = np.minimum(src, dst) * n + np.maximum(src, dst)
    order = np.lexsort((rank, -sim, pair))
    pair, sim, rank = pair[order], sim[order], rank[order]
    first = np.r_[True, pair[1:] != pair[:-1]]
    best_rank = np.minimum.reduceat(rank, np.flatnonzero(first))
    pair, sim = pair[first], sim[first]
    threshold = np.sort(sim)[::-1][min(round(target_degree * n / 2), sim.size) - 1]
    keep = ((sim >= threshold) | (best_rank <= min_edges)) & (sim > 0)
    return pa.table({"source_id": ids[pair[keep] // n], "target_id": ids[pair[keep] % n], "weight": sim[keep]})


def majority_of(members: np.ndarray, labels: np.ndarray):
    values, counts = np.unique(labels[members], return_counts=True)
    return values[np.argmax(counts)]


@pytest.mark.parametrize("name", ["fortunes", "wordnet_nouns", "debian_sections"])
def test_a_rerun_keeps_apart_the_old_clusters_a_fresh_run_keeps_apart(name):
    table = pq.read_table(DATA / f"{name}.parquet", columns=["id", "embedding"])
    ids = np.asarray(table["id"].to_pylist(), dtype=object)
    x = np.asarray(table["embedding"].to_pylist(), dtype=np.float32)
    order = np.argsort(ids)
    ids, x = ids[order], x[order]
    nodes = pa.table({"dataset_id": ids.tolist()})
    fresh = cluster_memberships(nodes, default_graph_edges(ids, x))
    fresh_clusters = np.asarray(fresh["cluster"].to_pylist(), dtype=object)
    for draw in range(3):
        new = np.random.default_rng(draw).random(len(ids)) < 0.05
        old_ids = ids[~new]
        old_nodes = pa.table({"dataset_id": old_ids.tolist()})
        first = cluster_memberships(old_nodes, default_graph_edges(old_ids, x[~new]))
        previous = first.select(["dataset_id", "cluster"])
        rerun = cluster_memberships(nodes, default_graph_edges(ids, x), previous=previous, last=first)
        assert rerun["leiden_path"][0].as_py() == "aggregated"
        assert rerun["share_kept_label"][0].as_py() >= 0.95
        old_clusters = np.asarray(first["cluster"].to_pylist(), dtype=object)
        rerun_clusters = np.asarray(rerun["cluster"].to_pylist(), dtype=object)[~new]
        fresh_old = fresh_clusters[~new]
        names = [c for c in np.unique(old_clusters[old_clusters != None]) if (old_clusters == c).sum() >= 10]  # noqa: E711
        where_fresh = {c: majority_of(np.flatnonzero(old_clusters == c), fresh_old) for c in names}
        where_rerun = {c: majority_of(np.flatnonzero(old_clusters == c), rerun_clusters) for c in names}
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                if where_fresh[a] != where_fresh[b]:
                    assert where_rerun[a] != where_rerun[b], (
                        f"{name}, draw {draw}: the re-run merged {a} and {b}, which a fresh run keeps apart")
