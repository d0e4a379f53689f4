"""Reading the embedding matrix out of DuckDB in slices, against the whole-table read."""

from __future__ import annotations

import duckdb
import numpy as np
import pyarrow as pa
import pytest

from mdc_clustering import ClusteringInputError
from mdc_clustering.embeddings import as_embeddings, read_embeddings


def _relation(con, ids, vectors):
    d = vectors.shape[1]
    table = pa.table(
        {
            "dataset_id": pa.array(ids, pa.string()),
            "embedding": pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1), pa.float32()), d),
        }
    )
    con.register("src", table)
    con.execute(f"create or replace table emb as select dataset_id, embedding::float[{d}] as embedding from src")
    return con.table("emb")


@pytest.mark.parametrize("batch_rows", [7, 1000])
def test_slices_give_the_sorted_whole_matrix(rng, batch_rows):
    n, d = 523, 12
    ids = [f"ds-{i:04d}" for i in rng.permutation(n)]  # stored out of id order
    vectors = rng.normal(size=(n, d)).astype(np.float32)
    con = duckdb.connect()
    emb = read_embeddings(_relation(con, ids, vectors), batch_rows=batch_rows)
    order = np.argsort(ids)
    assert emb.ids.to_pylist() == sorted(ids)
    assert emb.matrix.dtype == np.float32 and emb.matrix.flags.c_contiguous
    np.testing.assert_array_equal(emb.matrix, vectors[order])  # bit-exact
    assert not emb.normalized and emb.norms is None


def test_normalize_in_place_keeps_the_norms(rng):
    n, d = 300, 8
    ids = [f"ds-{i:04d}" for i in range(n)]
    vectors = (rng.normal(size=(n, d)) * rng.uniform(0.1, 10, size=(n, 1))).astype(np.float32)
    vectors[5] = 0.0  # a zero row stays zero rather than NaN
    emb = read_embeddings(_relation(duckdb.connect(), ids, vectors), normalize=True, batch_rows=64)
    norms = np.linalg.norm(vectors.astype(np.float64), axis=1)
    np.testing.assert_allclose(emb.norms, norms, rtol=1e-6)
    expected = vectors / np.where(norms > 0, norms, 1.0)[:, None]
    np.testing.assert_allclose(emb.matrix, expected, atol=1e-6)
    assert emb.normalized and np.all(emb.matrix[5] == 0)


def test_the_same_as_an_arrow_table_read(rng):
    n, d = 200, 5
    ids = [f"x{i}" for i in rng.permutation(n)]
    vectors = rng.normal(size=(n, d)).astype(np.float32)
    rel = _relation(duckdb.connect(), ids, vectors)
    streamed = read_embeddings(rel)
    whole = as_embeddings(rel.order("dataset_id").to_arrow_table())
    assert streamed.ids.equals(whole.ids)
    np.testing.assert_array_equal(streamed.matrix, whole.matrix)


def test_empty_relation_keeps_the_dimension():
    emb = read_embeddings(_relation(duckdb.connect(), [], np.zeros((0, 4), np.float32)))
    assert emb.matrix.shape == (0, 4) and len(emb) == 0


def test_null_embedding_is_named():
    con = duckdb.connect()
    con.execute(
        "create table emb as select * from (values ('a', [1.0, 2.0]::float[2]), ('b', null)) t(dataset_id, embedding)"
    )
    with pytest.raises(ClusteringInputError, match="NULL"):
        read_embeddings(con.table("emb"))


def test_a_list_column_is_refused_with_its_type():
    con = duckdb.connect()
    con.execute("create table emb as select 'a' as dataset_id, [1.0, 2.0]::float[] as embedding")
    with pytest.raises(ClusteringInputError, match="fixed-size list"):
        read_embeddings(con.table("emb"))


def test_rows_out_of_id_order_are_placed_by_id_with_their_norms(rng):
    # a re-run's cache: sorted rows, then the new ones appended
    n, d = 400, 6
    ids = [f"ds-{i:04d}" for i in range(0, n, 2)] + [f"ds-{i:04d}" for i in range(1, n, 2)]
    vectors = rng.normal(size=(n, d)).astype(np.float32)
    emb = read_embeddings(_relation(duckdb.connect(), ids, vectors), normalize=True, batch_rows=50)
    order = np.argsort(ids)
    assert emb.ids.to_pylist() == sorted(ids)
    np.testing.assert_allclose(emb.norms, np.linalg.norm(vectors[order], axis=1), rtol=1e-6)
    np.testing.assert_allclose(emb.matrix, vectors[order] / emb.norms[:, None], rtol=1e-6)


def test_slices_that_come_in_another_order_than_the_ids_fall_back_to_a_sort(rng, monkeypatch):
    import mdc_clustering.embeddings as module

    n, d = 120, 4
    ids = [f"ds-{i:04d}" for i in rng.permutation(n)]
    vectors = rng.normal(size=(n, d)).astype(np.float32)
    real = module.iter_embeddings

    def reversed_slices(relation, **kwargs):
        return reversed(list(real(relation, **kwargs)))

    monkeypatch.setattr(module, "iter_embeddings", reversed_slices)
    emb = read_embeddings(_relation(duckdb.connect(), ids, vectors), batch_rows=30)
    assert emb.ids.to_pylist() == sorted(ids)
    np.testing.assert_array_equal(emb.matrix, vectors[np.argsort(ids)])


def test_array_dimension_reads_the_fixed_size_of_a_duckdb_float_array_type():
    import duckdb

    from mdc_clustering.embeddings import array_dimension

    con = duckdb.connect()
    rel = con.sql("select [1, 2, 3]::float[3] as fixed, [1, 2]::float[] as listed, 1 as number")
    assert [array_dimension(t) for t in rel.types] == [3, None, None]
    assert array_dimension("FLOAT[384]") == 384
