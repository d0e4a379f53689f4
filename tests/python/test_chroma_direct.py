"""The direct read of a persistent collection's index files equals Chroma's own get(), bit for bit, or is refused.

The oracle is ``collection.get(include=["embeddings", "metadatas"])`` over the whole collection.
"""

from __future__ import annotations

import hashlib
import shutil

import numpy as np
import pytest

from mdc_clustering.chroma_direct import open_segment
from mdc_clustering.chroma_reader import read_collection


def _store_digest(root, *, sqlite=True):
    """md5 of the store's files (without chroma.sqlite3, which Chroma's own client writes on opening)."""
    digest = hashlib.md5()
    for path in sorted(p for p in root.rglob("*") if p.is_file() and (sqlite or p.name != "chroma.sqlite3")):
        digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()


def _make_store(root, space="cosine"):
    import chromadb
    from chromadb.config import Settings

    rng = np.random.default_rng(3)
    client = chromadb.PersistentClient(path=str(root), settings=Settings(anonymized_telemetry=False))
    coll = client.create_collection("direct_read", metadata={"hnsw:space": space})
    x = (rng.normal(size=(3000, 24)) * rng.uniform(0.5, 4.0, size=(3000, 1))).astype(np.float32)  # norms != 1
    ids = [f"ds{i:05d}" for i in range(3000)]
    meta = [{"document_id": f"doc{i // 7}", **({"dataset_type": "PRIMARY"} if i % 3 == 0 else {})} for i in range(3000)]
    for start in range(0, 3000, 1000):
        coll.add(ids=ids[start:start + 1000], embeddings=x[start:start + 1000], metadatas=meta[start:start + 1000])
    # writes after the index files were persisted: they stay in the write-ahead log
    coll.add(ids=[f"new{i:03d}" for i in range(100)], embeddings=rng.normal(size=(100, 24)).astype(np.float32),
             metadatas=[{"document_id": "late"}] * 100)
    coll.upsert(ids=ids[:10], embeddings=rng.normal(size=(10, 24)).astype(np.float32),
                metadatas=[{"document_id": "changed"}] * 10)
    coll.delete(ids=[ids[20]])
    client.close()


def _oracle(root):
    import chromadb
    from chromadb.config import Settings

    client = chromadb.PersistentClient(path=str(root), settings=Settings(anonymized_telemetry=False))
    got = client.get_collection("direct_read").get(include=["embeddings", "metadatas"])
    client.close()
    order = np.argsort(got["ids"])
    return ([got["ids"][i] for i in order], np.asarray(got["embeddings"], dtype=np.float32)[order],
            [(got["metadatas"][i] or {}).get("document_id") for i in order])


def _read(root):
    table = read_collection(root, "direct_read", processes=1)
    x = np.asarray(table["embedding"].combine_chunks().flatten()).reshape(table.num_rows, -1)
    return table, x


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("direct") / "chroma"
    _make_store(root)
    return root


def test_the_direct_read_equals_get_bit_for_bit_and_reads_the_log_through_get(store):
    ids, vectors, documents = _oracle(store)
    before = _store_digest(store)
    segment, why = open_segment(store, "direct_read")
    assert segment is not None, why
    segment.vectors(segment.ids[100:200])
    assert _store_digest(store) == before  # the direct read writes nothing, not even the sqlite file
    before = _store_digest(store, sqlite=False)
    assert len(segment.stale) == 110 and "ds00020" not in segment.ids  # 100 added, 10 upserted; one deleted
    table, x = _read(store)
    assert table["dataset_id"].to_pylist() == ids
    assert np.array_equal(x.view(np.uint32), vectors.view(np.uint32))
    assert table["document_id"].to_pylist() == documents
    assert table.schema.metadata[b"read_method"].decode().startswith("directly from the index files (110 written")
    assert _store_digest(store, sqlite=False) == before  # the vectors and index files are as they were


@pytest.mark.parametrize("damage", ["version", "header", "misread"])
def test_files_that_disagree_with_chroma_fall_back_to_get_and_say_why(store, tmp_path, damage, monkeypatch):
    import mdc_clustering.chroma_direct as direct

    copy = tmp_path / "chroma"
    shutil.copytree(store, copy)
    [folder] = [p.parent for p in copy.glob("*/header.bin")]
    if damage == "version":  # a chromadb release whose format was not checked
        monkeypatch.setattr(direct, "CHECKED_VERSIONS", ("0.9.",))
        reason = "was not checked"
    elif damage == "header":  # a header version this module does not know (Chroma itself needs the file whole)
        monkeypatch.setattr(direct, "_HEADER_VERSION", 2)
        reason = "unknown index header"
    else:  # a layout read wrongly (one float off in every vector): the sample compared with get() catches it
        right = direct.DirectSegment.vectors

        def misread(self, ids):
            out = right(self, ids)
            out[:, 0] = np.nextafter(out[:, 0], np.float32(np.inf))
            return out

        monkeypatch.setattr(direct.DirectSegment, "vectors", misread)
        reason = "disagree with Chroma"
    ids, vectors, _ = _oracle(copy)
    table, x = _read(copy)
    method = table.schema.metadata[b"read_method"].decode()
    assert method.startswith("through get()") and reason in method
    assert table["dataset_id"].to_pylist() == ids and np.array_equal(x.view(np.uint32), vectors.view(np.uint32))


def test_an_l2_collection_is_read_as_get_reads_it(tmp_path):
    root = tmp_path / "chroma"
    _make_store(root, space="l2")
    ids, vectors, _ = _oracle(root)
    table, x = _read(root)
    assert table["dataset_id"].to_pylist() == ids
    assert np.array_equal(x.view(np.uint32), vectors.view(np.uint32))
