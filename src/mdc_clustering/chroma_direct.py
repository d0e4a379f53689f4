"""A persistent Chroma collection's vectors read straight from its files, when they can be trusted.

Chroma's ``get`` turns every vector into a Python list of floats (then
float64): most of a large pull. A local persistent collection keeps its
vectors in an hnswlib index on disk: ``header.bin`` (an int32 version, then
six uint64: level-0 offset, capacity, element count, bytes per element,
label offset, data offset), ``data_level0.bin`` (each element's links, its
float32 vector and its uint64 label), ``index_metadata.pickle`` (label -> id)
and ``length.bin`` (each element's original norm, for a cosine space, whose
stored vectors are unit length). This module maps those files.

The format is Chroma's own and undocumented, so everything is checked, and
anything unexpected means ``None`` (the caller then reads through ``get``):

- the chromadb version is one whose format was checked (:data:`CHECKED_VERSIONS`);
- the collection's segments, header version and layout are the known ones;
- the files may lag the write-ahead log (Chroma persists the index every
  so many writes): items written after the index's persisted position are
  read through ``get`` (:attr:`DirectSegment.stale`), deleted ones are gone
  from the id list, and the log must still hold every entry since that position;
- the ids (from the metadata segment) are as many as ``collection.count()``;
- a sample of vectors and metadata is compared with ``get(ids=...)``, bit
  for bit (:func:`verified`).
"""

from __future__ import annotations

import pickle
import sqlite3
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["CHECKED_VERSIONS", "DirectSegment", "open_segment", "verified"]

CHECKED_VERSIONS = ("1.5.",)  # chromadb releases whose on-disk layout this module was checked against
_HEADER_VERSION = 1
_VECTOR_SEGMENT = "urn:chroma:segment/vector/hnsw-local-persisted"
_METADATA_SEGMENT = "urn:chroma:segment/metadata/sqlite"
_SAMPLE = 16  # vectors compared with get() before the direct read is trusted


@dataclass(frozen=True)
class DirectSegment:
    """The collection as its files hold it.

    Attributes
    ----------
    ids
        Every id of the collection now (the metadata segment's), sorted.
    row_of
        Id -> element row in ``data_level0.bin``, for the ids whose vector
        there is current.
    stale
        Ids written after the index files were persisted: read them through ``get``.
    metadata
        Id -> (document_id, dataset_type) from the metadata segment.
    """

    folder: Path
    dim: int
    count: int
    element_bytes: int
    data_offset: int
    ids: list[str]
    row_of: dict[str, int]
    stale: frozenset[str]
    metadata: dict[str, tuple[str | None, str | None]]

    def vectors(self, ids: list[str]) -> np.ndarray:
        """The float32 vectors of ``ids`` (all in :attr:`row_of`), as ``get`` returns them (norms restored)."""
        rows = np.fromiter((self.row_of[i] for i in ids), dtype=np.int64, count=len(ids))
        data = np.memmap(self.folder / "data_level0.bin", dtype=np.uint8, mode="r",
                         shape=(self.count, self.element_bytes))
        out = np.empty((len(ids), self.dim), dtype=np.float32)
        for start in range(0, len(ids), 65_536):  # a slice of rows at a time: no copy of the whole file
            part = rows[start : start + 65_536]
            raw = np.ascontiguousarray(data[part, self.data_offset : self.data_offset + 4 * self.dim])
            out[start : start + part.size] = raw.view(np.float32)
        norms = np.fromfile(self.folder / "length.bin", dtype=np.float32, count=self.count)
        out *= norms[rows][:, None]  # float32, as Chroma restores them
        return out


def open_segment(store: str | Path, name: str) -> tuple[DirectSegment | None, str]:
    """The collection's files, checked, or None and why not (see the module's docstring)."""
    import chromadb

    if not chromadb.__version__.startswith(CHECKED_VERSIONS):
        return None, f"chromadb {chromadb.__version__}: its file format was not checked"
    store = Path(store)
    try:
        con = sqlite3.connect(f"file:{store / 'chroma.sqlite3'}?mode=ro", uri=True)
    except sqlite3.Error as error:
        return None, f"the store's sqlite file cannot be opened read-only ({error})"
    try:
        return _open(con, store, name)
    except (sqlite3.Error, OSError, pickle.UnpicklingError, KeyError, ValueError, struct.error) as error:
        return None, f"the files are not in the expected layout ({type(error).__name__}: {error})"
    finally:
        con.close()


def _open(con: sqlite3.Connection, store: Path, name: str) -> tuple[DirectSegment | None, str]:
    found = con.execute("select id, dimension from collections where name = ?", [name]).fetchall()
    if len(found) != 1:
        return None, "the collection is not found in the store's tables"
    collection_id, dim = found[0]
    segments = dict(con.execute("select type, id from segments where collection = ?", [collection_id]).fetchall())
    if set(segments) != {_VECTOR_SEGMENT, _METADATA_SEGMENT} or not dim:
        return None, f"unexpected segments {sorted(segments)}"
    vector, meta = segments[_VECTOR_SEGMENT], segments[_METADATA_SEGMENT]
    folder = store / vector
    header_path = folder / "header.bin"
    if not header_path.is_file():
        return None, "the vector segment has no files yet (nothing persisted)"
    header = header_path.read_bytes()
    version = struct.unpack_from("<i", header, 0)[0]
    level0, _capacity, count, element_bytes, label_offset, data_offset = struct.unpack_from("<6Q", header, 4)
    if version != _HEADER_VERSION or level0 != 0 or data_offset + 4 * dim != label_offset \
            or label_offset + 8 != element_bytes:
        return None, f"unknown index header (version {version})"
    if (folder / "data_level0.bin").stat().st_size < count * element_bytes \
            or (folder / "length.bin").stat().st_size < 4 * count:
        return None, "the index files are shorter than the header says"
    with open(folder / "index_metadata.pickle", "rb") as handle:
        label_to_id = pickle.load(handle)["label_to_id"]  # noqa: S301 - the store's own file, read as Chroma does
    data = np.memmap(folder / "data_level0.bin", dtype=np.uint8, mode="r", shape=(count, element_bytes))
    labels = np.ascontiguousarray(data[:, label_offset:element_bytes]).view(np.uint64).ravel()
    persisted = dict(con.execute("select segment_id, seq_id from max_seq_id").fetchall())
    if vector not in persisted or meta not in persisted:
        return None, "no persisted position for the segments"
    topic = f"persistent://default/default/{collection_id}"
    later = con.execute("select id from embeddings_queue where topic = ? and seq_id > ?",
                        [topic, persisted[vector]]).fetchall()
    [(oldest,)] = con.execute("select min(seq_id) from embeddings_queue").fetchall()
    if persisted[meta] > persisted[vector] and (oldest is None or oldest > persisted[vector] + 1):
        return None, "the write-ahead log no longer holds every write since the index was persisted"
    stale = frozenset(i for (i,) in later)
    row_of: dict[str, int] = {}
    for row, label in enumerate(labels.tolist()):
        found_id = label_to_id.get(label)
        if found_id is not None and found_id not in stale:
            if found_id in row_of:
                return None, f"id {found_id!r} appears twice in the index"
            row_of[found_id] = row
    rows = con.execute(
        "select e.embedding_id, m.key, coalesce(m.string_value, cast(m.int_value as text)) "
        "from embeddings e left join embedding_metadata m "
        "on m.id = e.id and m.key in ('document_id', 'dataset_type') where e.segment_id = ?", [meta]
    ).fetchall()
    metadata: dict[str, list] = {}
    for item, key, value in rows:
        entry = metadata.setdefault(item, [None, None])
        if key == "document_id":
            entry[0] = value
        elif key == "dataset_type":
            entry[1] = value
    ids = sorted(metadata)
    missing = [i for i in ids if i not in row_of and i not in stale]
    if missing:
        return None, f"{len(missing)} ids have no current vector in the index files (e.g. {missing[0]!r})"
    stale = frozenset(stale & metadata.keys())  # written since and still there (deleted ones are gone)
    return DirectSegment(folder, int(dim), int(count), int(element_bytes), int(data_offset), ids, row_of, stale,
                         {k: (v[0], v[1]) for k, v in metadata.items()}), "ok"


def verified(segment: DirectSegment, collection) -> str | None:
    """None when ``collection.count()`` and a sample of ``get(ids=...)`` agree with ``segment`` bit for bit,
    else what differed."""
    if collection.count() != len(segment.ids):
        return f"count() gives {collection.count()}, the files {len(segment.ids)}"
    direct = [i for i in segment.ids if i in segment.row_of]
    if not direct:
        return None
    sample = [direct[j] for j in np.linspace(0, len(direct) - 1, min(_SAMPLE, len(direct))).astype(int)]
    got = collection.get(ids=sample, include=["embeddings", "metadatas"])
    by_id = {i: (np.asarray(e, dtype=np.float32), m or {})
             for i, e, m in zip(got["ids"], got["embeddings"], got["metadatas"], strict=True)}
    mine = segment.vectors(sample)
    for row, item in enumerate(sample):
        vector, meta = by_id[item]
        if vector.shape != mine[row].shape or not np.array_equal(vector.view(np.uint32), mine[row].view(np.uint32)):
            return f"the vector of {item!r} differs from get()'s"
        theirs = (_text(meta.get("document_id")), _text(meta.get("dataset_type")))
        if theirs != segment.metadata[item]:
            return f"the metadata of {item!r} differs from get()'s"
    return None


def _text(value) -> str | None:
    return None if value is None else str(value)
