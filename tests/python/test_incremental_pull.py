"""A re-run reads from Chroma only what changed, and gives what a full read gives (mdc_clustering.stages.pull)."""

from __future__ import annotations

import chromadb
import numpy as np
import pyarrow as pa
import pytest
from chromadb.config import Settings

from mdc_clustering.chroma_reader import read_collection
from mdc_clustering.sample import write_collection
from mdc_clustering.stages.pull import embedding_hashes, pull_embeddings

N, D = 300, 12


def _store(path, rng):
    ids = [f"ds{i:04d}" for i in range(N)]
    matrix = rng.normal(size=(N, D)).astype(np.float32)
    write_collection(path, "items", ids, matrix, [f"doc{i // 10}" for i in range(N)])
    return ids, matrix


def _fingerprints(ids, texts=None):
    texts = texts or {}
    return pa.table({"dataset_id": ids, "text_md5": [texts.get(i, "t") for i in ids]})


def _as_cache(table, path, name="items"):
    """What the model embedding_cache keeps of a pull (its columns, and the store it came from)."""
    keep = table.select(["dataset_id", "document_id", "dataset_type", "embedding", "embedding_norm", "text_md5",
                         "embedding_hash"])
    n = keep.num_rows
    return keep.append_column("chroma_path", pa.array([str(path)] * n)).append_column(
        "collection_name", pa.array([name] * n))


def _collection(path):
    return chromadb.PersistentClient(path=str(path), settings=Settings(anonymized_telemetry=False)).get_collection(
        "items")


def _same_as_a_full_read(got, path):
    full = read_collection(path, "items")
    assert got.column("dataset_id").to_pylist() == full.column("dataset_id").to_pylist()
    for name in ("document_id", "embedding", "embedding_norm"):
        assert got.column(name).combine_chunks().equals(full.column(name).combine_chunks()), name


def test_a_rerun_reads_only_new_and_changed_datasets_and_equals_a_full_read(tmp_path):
    rng = np.random.default_rng(1)
    path = tmp_path / "chroma"
    ids, matrix = _store(path, rng)
    first = pull_embeddings(str(path), "items", cached=None, fingerprints=_fingerprints(ids))
    assert first.column("pull_path")[0].as_py() == "full"
    assert first.column("pull_reason")[0].as_py() == "no embeddings cached by an earlier run"
    assert all(first.column("pulled").to_pylist())
    _same_as_a_full_read(first, path)

    # 6 new items, 4 removed, 3 re-embedded with a new text, 1 re-embedded although its text stayed
    coll = _collection(path)
    new_ids = [f"new{i}" for i in range(6)]
    coll.add(ids=new_ids, embeddings=rng.normal(size=(6, D)).astype(np.float32),
             metadatas=[{"document_id": "docx"}] * 6)
    coll.delete(ids=ids[:4])
    changed = ids[10:13]
    coll.update(ids=changed, embeddings=rng.normal(size=(3, D)).astype(np.float32))
    now = sorted(set(ids[4:]) | set(new_ids))
    texts = {i: "edited" for i in changed}

    second = pull_embeddings(str(path), "items", cached=_as_cache(first, path),
                             fingerprints=_fingerprints(now, texts), check_sample=0)
    assert second.column("pull_path")[0].as_py() == "incremental"
    assert second.column("pull_reason")[0].as_py() == (
        f"6 new, 3 changed (text), 4 removed; {N - 4 - 3} cached")
    pulled = {i for i, p in zip(second.column("dataset_id").to_pylist(), second.column("pulled").to_pylist(),
                                strict=True) if p}
    assert pulled == set(new_ids) | set(changed)
    _same_as_a_full_read(second, path)
    # the fingerprints follow the rows
    n = second.num_rows
    rows = second.column("embedding").combine_chunks().flatten().to_numpy().reshape(n, D)
    assert np.array_equal(second.column("embedding_hash").to_numpy(), embedding_hashes(rows))


def test_a_cached_embedding_that_differs_from_chroma_makes_the_run_read_everything(tmp_path):
    rng = np.random.default_rng(2)
    path = tmp_path / "chroma"
    ids, _ = _store(path, rng)
    first = pull_embeddings(str(path), "items", cached=None, fingerprints=_fingerprints(ids))
    _collection(path).update(ids=[ids[7]], embeddings=rng.normal(size=(1, D)).astype(np.float32))  # text unchanged
    again = pull_embeddings(str(path), "items", cached=_as_cache(first, path), fingerprints=_fingerprints(ids),
                            check_sample=N)
    assert again.column("pull_path")[0].as_py() == "full"
    assert again.column("pull_reason")[0].as_py() == f"1 of {N} cached embeddings checked differ from Chroma"
    _same_as_a_full_read(again, path)
    # a sample of 0 trusts the cache: the stale row stays (which is why the check is on by default)
    trusting = pull_embeddings(str(path), "items", cached=_as_cache(first, path), fingerprints=_fingerprints(ids),
                               check_sample=0)
    assert trusting.column("pull_path")[0].as_py() == "incremental"
    assert not any(trusting.column("pulled").to_pylist())


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("other_store", "the cache holds embeddings of another store or collection"),
        ("large_change", "above incremental_max_change_share 0.2"),
        ("off", "incremental is off"),
    ],
)
def test_the_full_path_runs_when_the_cache_cannot_be_trusted(tmp_path, case, reason):
    rng = np.random.default_rng(3)
    path = tmp_path / "chroma"
    ids, _ = _store(path, rng)
    first = pull_embeddings(str(path), "items", cached=None, fingerprints=_fingerprints(ids))
    cache = _as_cache(first, tmp_path / "elsewhere" if case == "other_store" else path)
    texts = {i: "edited" for i in ids[: N // 4]} if case == "large_change" else {}
    again = pull_embeddings(str(path), "items", cached=cache, fingerprints=_fingerprints(ids, texts),
                            incremental=case != "off")
    assert again.column("pull_path")[0].as_py() == "full"
    assert reason in again.column("pull_reason")[0].as_py()
    assert all(again.column("pulled").to_pylist())
    _same_as_a_full_read(again, path)


def test_embedding_hashes_are_exact_and_independent_of_the_chunking():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(40_000, 8)).astype(np.float32)
    h = embedding_hashes(x)
    assert np.array_equal(h[30_000:], embedding_hashes(x[30_000:]))  # rows hash alone as in a block
    y = x.copy()
    y[5, 3] = np.nextafter(y[5, 3], np.float32(10))  # one bit of one value
    assert (embedding_hashes(y) != h).tolist() == [i == 5 for i in range(len(x))]
    assert len(np.unique(h)) == len(x)


def test_a_read_of_another_dimension_than_the_cache_stops_with_the_fix(tmp_path):
    from mdc_clustering.errors import ClusteringInputError
    from mdc_clustering.stages.pull import PullPlan, planned_ids, read_planned

    rng = np.random.default_rng(5)
    path = tmp_path / "chroma"
    ids, matrix = _store(path, rng)
    plan = PullPlan("incremental", "1 new", new=[ids[0]])
    planned = planned_ids(plan, ids, {i: "t" for i in ids}, 0.1)
    assert planned.column("to_read").to_pylist() == [True] + [False] * (N - 1)
    # the cache holds vectors of dimension D + 4: this run's D-dimensional read cannot join them
    with pytest.raises(ClusteringInputError, match=f"dimension {D}, the cached ones {D + 4}.*drop table "
                       "clustering_state.embedding_cache"):
        read_planned(str(path), "items", planned, dim=D + 4)
    # the same dimension reads just the planned row, with its fingerprint
    read = read_planned(str(path), "items", planned, dim=D)
    assert read.column("dataset_id").to_pylist() == [ids[0]]
    assert np.array_equal(read.column("embedding_hash").to_numpy(), embedding_hashes(matrix[:1]))


def test_the_plan_finds_new_changed_and_removed_ids_as_a_set_comparison_does():
    """The vectorised plan against the rule written with Python sets and dicts, nulls (no text row) included."""
    from mdc_clustering.stages.pull import _plan

    rng = np.random.default_rng(11)
    everyone = [f"d{i:04d}" for i in range(400)]
    md5_choices = ["a", "b", None]
    cached_ids = sorted(rng.choice(everyone, 300, replace=False).tolist())
    stored = {i: md5_choices[rng.integers(3)] for i in cached_ids}
    ids = sorted(rng.choice(everyone, 320, replace=False).tolist())
    now = {i: (stored[i] if i in stored and rng.random() < 0.8 else md5_choices[rng.integers(3)]) for i in ids}
    cached = pa.table({"dataset_id": cached_ids, "text_md5": [stored[i] for i in cached_ids],
                       "chroma_path": ["p"] * 300, "collection_name": ["c"] * 300})
    plan = _plan(pa.array(ids, pa.string()), cached, pa.array([now[i] for i in ids], pa.string()),
                 store=("p", "c"), incremental=True, max_change_share=1.0)
    assert plan.path == "incremental"
    assert plan.new == sorted(set(ids) - set(cached_ids))
    assert plan.changed == sorted(i for i in set(ids) & set(cached_ids) if now[i] != stored[i])
    assert plan.removed == len(set(cached_ids) - set(ids))
    assert plan.kept == len(set(ids) & set(cached_ids)) - len(plan.changed)
    assert plan.changed  # the draw holds changes of every kind
    assert any(stored[i] is None or now[i] is None for i in plan.changed)
