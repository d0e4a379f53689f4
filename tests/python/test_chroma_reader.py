"""The Chroma reader: round trip against what was written, and each bad input."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from conftest import make_store

from mdc_clustering import ClusteringInputError, ParameterError, embedding_matrix, read_collection
from mdc_clustering.chroma_reader import _as_matrix
from mdc_clustering.validation import check_embeddings


def test_round_trip_ids_documents_and_float32_embeddings(tmp_path, rng):
    n, d = 257, 16
    ids = [f"ds-{i:04d}" for i in rng.permutation(n)]
    vectors = rng.normal(size=(n, d)).astype(np.float32)
    metas = [{"document_id": f"doi:{i % 7}"} for i in range(n)]
    make_store(tmp_path / "store", "coll_a", ids, vectors, metas)

    lines = []
    table = read_collection(tmp_path / "store", "coll_a", page_size=50, progress=lambda m, **k: lines.append(m))

    assert table.num_rows == n
    assert table.column("embedding").type == pa.list_(pa.float32(), d)
    got_ids = table.column("dataset_id").to_pylist()
    assert got_ids == sorted(ids)  # sorted by id, whatever Chroma's order
    expected = {i: (v, m["document_id"]) for i, v, m in zip(ids, vectors, metas, strict=True)}
    matrix = embedding_matrix(table)
    assert matrix.dtype == np.float32 and matrix.flags.c_contiguous
    for row, dataset_id in enumerate(got_ids):
        np.testing.assert_array_equal(matrix[row], expected[dataset_id][0])  # bit-exact float32
        assert table.column("document_id")[row].as_py() == expected[dataset_id][1]
    np.testing.assert_allclose(
        table.column("embedding_norm").to_numpy(), np.linalg.norm(matrix.astype(np.float64), axis=1)
    )
    assert len(lines) == 7  # six pages of at most 50, then the summary


def test_reader_processes_give_the_same_table_as_one_process(tmp_path, rng, monkeypatch):
    import mdc_clustering.chroma_reader as reader

    n, d = 900, 8
    ids = [f"ds-{i:04d}" for i in rng.permutation(n)]
    vectors = rng.normal(size=(n, d)).astype(np.float32)
    metas = [{"document_id": f"doi:{i % 5}", "dataset_type": "PRIMARY"} if i % 3 else {"other": 1} for i in range(n)]
    make_store(tmp_path / "store", "coll_p", ids, vectors, metas)
    one = read_collection(tmp_path / "store", "coll_p", page_size=64, processes=1)
    monkeypatch.setattr(reader, "_PROCESS_CHUNK_ROWS", 100)  # nine chunks over two processes, back in order
    lines = []
    two = read_collection(
        tmp_path / "store", "coll_p", page_size=64, processes=2, progress=lambda m, **k: lines.append(m)
    )
    assert two.equals(one)
    assert len(lines) == 10  # one line a chunk, then the summary
    by_id = dict(zip(ids, range(n), strict=True))
    rows = [by_id[i] for i in two.column("dataset_id").to_pylist()]
    np.testing.assert_array_equal(embedding_matrix(two), vectors[rows])
    assert two.column("dataset_type").to_pylist() == [metas[r].get("dataset_type") for r in rows]


@pytest.mark.bad_input
def test_a_reader_process_error_names_the_var(tmp_path, rng):
    from mdc_clustering.chroma_reader import _read_in_processes

    make_store(tmp_path / "store", "coll_q", ["a1", "b2"], rng.normal(size=(2, 4)), None)
    with pytest.raises(ClusteringInputError, match="chroma_collection"):
        list(_read_in_processes(str(tmp_path / "store"), "coll_missing", "chroma_path", "chroma_collection",
                                [["a1"]], 10, 2))


def test_missing_metadata_gives_null_document_id(tmp_path, rng):
    make_store(tmp_path / "s", "coll_b", ["a1", "b2"], rng.normal(size=(2, 4)), [{"document_id": "x"}, {"k": 1}])
    table = read_collection(tmp_path / "s", "coll_b")
    assert table.column("document_id").to_pylist() == ["x", None]


@pytest.mark.bad_input
def test_missing_store_is_not_created(tmp_path):
    missing = tmp_path / "no_such_store"
    with pytest.raises(ClusteringInputError, match="Chroma store not found.*chroma_path.*mdc_clustering.sample"):
        read_collection(missing, "whatever")
    assert not missing.exists()  # Chroma would have created an empty store


@pytest.mark.bad_input
def test_directory_that_is_not_a_store(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ClusteringInputError, match="no chroma.sqlite3"):
        read_collection(tmp_path / "empty", "whatever")
    assert list((tmp_path / "empty").iterdir()) == []


@pytest.mark.bad_input
def test_missing_collection_lists_the_existing_ones(tmp_path, rng):
    make_store(tmp_path / "s", "present_one", ["a1"], rng.normal(size=(1, 3)))
    with pytest.raises(ClusteringInputError, match=r"'absent' not found.*\['present_one'\]") as raised:
        read_collection(tmp_path / "s", "absent")
    # the name may have come from the environment; the embedded sample is not this user's store
    assert "MDC_CHROMA_COLLECTION" in str(raised.value) and "sample" not in str(raised.value)


@pytest.mark.bad_input
@pytest.mark.parametrize("name", ["ab", "../etc", "a b c", "x;drop table t", "-abc", "abc.", "a..b"])
def test_invalid_collection_name(tmp_path, rng, name):
    make_store(tmp_path / "s", "fine_name", ["a1"], rng.normal(size=(1, 3)))
    with pytest.raises(ClusteringInputError, match="chroma_collection.*not a valid"):
        read_collection(tmp_path / "s", name)


@pytest.mark.bad_input
def test_empty_collection(tmp_path):
    make_store(tmp_path / "s", "empty_coll", [], [])
    with pytest.raises(ClusteringInputError, match="holds no embeddings"):
        read_collection(tmp_path / "s", "empty_coll")


@pytest.mark.bad_input
def test_zero_vector_is_an_error_by_default_and_can_be_excluded(tmp_path, rng):
    vectors = rng.normal(size=(4, 5))
    vectors[2] = 0.0
    make_store(tmp_path / "s", "with_zero", ["a", "b", "c", "d"], vectors)
    with pytest.raises(ClusteringInputError, match=r"1 with zero norm \('c'\).*invalid_embeddings: exclude"):
        read_collection(tmp_path / "s", "with_zero")
    with pytest.warns(UserWarning, match="zero norm"):
        table = read_collection(tmp_path / "s", "with_zero", on_invalid="exclude")
    assert table.column("dataset_id").to_pylist() == ["a", "b", "d"]


@pytest.mark.bad_input
def test_bad_invalid_embeddings_value(tmp_path, rng):
    make_store(tmp_path / "s", "coll_c", ["a"], rng.normal(size=(1, 3)))
    with pytest.raises(ParameterError, match="invalid_embeddings.*error, exclude"):
        read_collection(tmp_path / "s", "coll_c", on_invalid="ignore")


@pytest.mark.bad_input
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_and_inf_rows(bad):
    # Chroma 1.5 itself refuses NaN/inf on write, so the check is exercised on
    # the matrix as another store (or an older Chroma) could hand it over.
    vectors = np.ones((3, 4), np.float32)
    vectors[1, 2] = bad
    with pytest.raises(ClusteringInputError, match=r"1 with NaN or infinite values \('y'\)"):
        check_embeddings(["x", "y", "z"], vectors, source="test")
    with pytest.warns(UserWarning):
        keep = check_embeddings(["x", "y", "z"], vectors, source="test", on_invalid="exclude")
    assert keep.tolist() == [True, False, True]


@pytest.mark.bad_input
def test_every_row_invalid_is_an_error_even_when_excluding():
    with pytest.raises(ClusteringInputError, match="every embedding is invalid"), pytest.warns(UserWarning):
        check_embeddings(["x", "y"], np.zeros((2, 3), np.float32), source="t", on_invalid="exclude")


@pytest.mark.bad_input
def test_duplicate_ids():
    with pytest.raises(ClusteringInputError, match=r"duplicate ids: 'b'"):
        check_embeddings(["a", "b", "b"], np.ones((3, 2), np.float32), source="test")


@pytest.mark.bad_input
def test_mixed_dimensions():
    rows = [np.ones(4), np.ones(4), np.ones(3)]
    with pytest.raises(ClusteringInputError, match=r"mixes embedding dimensions \[3, 4\].*'c'"):
        _as_matrix(rows, ["a", "b", "c"], "test")


@pytest.mark.bad_input
def test_errors_name_the_reference_vars_when_reading_the_reference_collection(tmp_path):
    with pytest.raises(ClusteringInputError, match="var reference_chroma_path = ") as missing:
        read_collection(tmp_path / "nowhere", "refs", path_var="reference_chroma_path", name_var="reference_collection")
    assert "chroma_path =" not in str(missing.value).replace("reference_chroma_path", "")
    with pytest.raises(ClusteringInputError, match="var reference_collection = 'x'"):
        read_collection(tmp_path, "x", path_var="reference_chroma_path", name_var="reference_collection")


def test_a_read_closes_the_client_it_opened_but_not_one_the_caller_holds(tmp_path, rng):
    """Chroma keeps a touched collection's vectors in memory while its client is open (2 GB a million)."""
    import mdc_clustering.chroma_reader as reader

    n, d = 60, 4
    ids = [f"ds-{i:03d}" for i in range(n)]
    vectors = rng.normal(size=(n, d)).astype(np.float32)
    make_store(tmp_path / "store", "coll_s", ids, vectors, [{"document_id": "x"}] * n)
    key = str((tmp_path / "store").resolve())
    reader._CLIENTS.pop(key, None)
    first = read_collection(tmp_path / "store", "coll_s")
    assert key not in reader._CLIENTS  # closed once the read is done
    assert read_collection(tmp_path / "store", "coll_s").equals(first)  # and opened afresh by the next
    with reader.chroma_session():  # sessions nest: the inner read leaves the client to the outer block
        read_collection(tmp_path / "store", "coll_s")
        inner = reader._CLIENTS[key]
        with reader.chroma_session():
            pass
        assert reader._CLIENTS.get(key) is inner
    assert key not in reader._CLIENTS
    held = reader.get_client(tmp_path / "store")  # outside any session: the caller's to keep
    assert read_collection(tmp_path / "store", "coll_s").equals(first)
    assert reader._CLIENTS[key] is held
    assert held.get_collection("coll_s").count() == n  # still open
    reader._CLIENTS.pop(key, None)
