"""Read dataset embeddings out of a ChromaDB collection into Arrow, page by page."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pyarrow as pa

from .chroma_direct import DirectSegment, open_segment, verified
from .errors import ClusteringInputError
from .validation import check_dimensions, check_embeddings, check_id_overlap, positive_int, row_norms

__all__ = [
    "COLLECTION_NAME_RE",
    "chroma_session",
    "empty_embeddings_table",
    "get_client",
    "list_ids",
    "open_collection",
    "read_collection",
    "read_items",
    "same_collection",
]

# Chroma's own rule for collection names (3-512 chars, [a-zA-Z0-9._-],
# alphanumeric at both ends). Checked here so that a bad name fails with the
# var's name in the message, before Chroma is touched.
COLLECTION_NAME_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{1,510})[A-Za-z0-9]$")

_CLIENTS: dict[str, object] = {}
_CLIENTS_LOCK = threading.Lock()
_SESSIONS = [0]  # chroma_session blocks open in this process
_MADE_IN_SESSION: set[str] = set()  # stores whose client a session made: closed when the last session ends
_DIRECT: dict[tuple, tuple] = {}  # (store, collection, files' mtimes) -> (verified segment or None, why)

SAMPLE_HINT = (
    "The pipeline's store comes from MDC_CHROMA_PATH / MDC_CHROMA_COLLECTION (or --vars chroma_path / "
    "chroma_collection); the embedded sample's store is created only in the project's data/chroma, by "
    "`bash scripts/build.sh` or `.venv/bin/python -m mdc_clustering.sample`."
)


def get_client(path: str | Path, *, path_var: str = "chroma_path"):
    """Return this process's one ``chromadb.PersistentClient`` for ``path``.

    Chroma creates an empty store when pointed at a missing directory; this
    refuses to, so a typo in ``chroma_path`` fails loudly instead of
    clustering nothing. Creating several clients at once races inside Chroma,
    so clients are created behind a lock and shared.
    """
    store = Path(path).expanduser().resolve()
    if not store.is_dir():
        raise ClusteringInputError(
            f"Chroma store not found: var {path_var} = {str(path)!r} (resolved to {store}) "
            f"is not a directory. Point {path_var} at an existing Chroma persistent directory; nothing was created. "
            f"{SAMPLE_HINT}"
        )
    if not (store / "chroma.sqlite3").is_file():
        raise ClusteringInputError(
            f"Chroma store not found: {store} exists but holds no chroma.sqlite3, so it is not a "
            f"Chroma persistent directory. Check var {path_var}. {SAMPLE_HINT}"
        )
    key = str(store)
    with _CLIENTS_LOCK:
        if key not in _CLIENTS:
            import chromadb
            from chromadb.config import Settings

            _CLIENTS[key] = chromadb.PersistentClient(
                path=key, settings=Settings(anonymized_telemetry=False)
            )
            if _SESSIONS[0]:
                _MADE_IN_SESSION.add(key)
        return _CLIENTS[key]


@contextmanager
def chroma_session() -> Iterator[None]:
    """Close the clients made inside this block when the last such block in the process ends.

    An open local client keeps the vectors of every collection it touched in memory (Chroma
    loads a collection's index on its first read: about 2 GB for a million 384-d embeddings),
    and the dbt process lives on for the whole build. The readers here each run in a session,
    so that memory is returned once the pull is done, not at the end of the build. Sessions
    nest and may overlap across threads (dbt runs models side by side): clients are closed only
    when none is open. A client made by :func:`get_client` outside any session stays open.
    """
    with _CLIENTS_LOCK:
        _SESSIONS[0] += 1
    try:
        yield
    finally:
        closing = []
        with _CLIENTS_LOCK:
            _SESSIONS[0] -= 1
            if not _SESSIONS[0]:  # the last session: the clients sessions made go
                closing = [_CLIENTS.pop(key) for key in sorted(_MADE_IN_SESSION) if key in _CLIENTS]
                _MADE_IN_SESSION.clear()
                _DIRECT.clear()  # the index files' maps (ids, rows, metadata) go with the clients
        for client in closing:
            close = getattr(client, "close", None)  # chromadb >= 1.1
            if close is not None:
                close()


def open_collection(
    path: str | Path, name: str, *, path_var: str = "chroma_path", name_var: str = "chroma_collection"
):
    """Open an existing collection; never create one. Errors name the vars ``path_var`` / ``name_var``."""
    if not isinstance(name, str) or not COLLECTION_NAME_RE.match(name) or ".." in name:
        raise ClusteringInputError(
            f"var {name_var} = {name!r} is not a valid Chroma collection name: use 3-512 "
            "characters of letters, digits, '.', '_' or '-', starting and ending with a letter or digit."
        )
    client = get_client(path, path_var=path_var)
    from chromadb.errors import NotFoundError

    try:
        return client.get_collection(name)
    except NotFoundError:
        existing = sorted(c.name for c in client.list_collections())
        where = ("var chroma_collection or the environment variable MDC_CHROMA_COLLECTION, whichever you set"
                 if name_var == "chroma_collection" else f"var {name_var}")
        from .sample import PROJECT_DATA

        sample_store = Path(path).expanduser().resolve() == PROJECT_DATA / "chroma"
        raise ClusteringInputError(
            f"Chroma collection {name!r} not found in store {path!s}. "
            f"Collections there: {existing or 'none'}. Set {where} to one of them."
            + (f" {SAMPLE_HINT}" if sample_store else "")
        ) from None


def _as_matrix(embeddings, ids, source) -> np.ndarray:
    if isinstance(embeddings, np.ndarray) and embeddings.ndim == 2:
        return np.ascontiguousarray(embeddings, dtype=np.float32)
    rows = [np.asarray(e, dtype=np.float32).reshape(-1) for e in embeddings]
    check_dimensions(ids, [r.size for r in rows], source=source)
    return np.ascontiguousarray(np.stack(rows), dtype=np.float32)


def read_collection(
    path: str | Path,
    name: str,
    *,
    page_size: int = 2000,
    on_invalid: str = "error",
    progress: Callable[[str], None] | None = None,
    path_var: str = "chroma_path",
    name_var: str = "chroma_collection",
    processes: int | None = None,
    dataset_ids: Sequence[str] | None = None,
    min_id_overlap: float = 0.0,
    datasets_source: str = "datasets",
) -> pa.Table:
    """Pull every item of a Chroma collection into an Arrow table.

    Ids are fetched first, then embeddings and metadata page by page
    (``collection.get(ids=page)``), so that memory stays at the float32
    matrix plus one page, whatever the collection's size.

    Parameters
    ----------
    path
        Chroma persistent directory.
    name
        Collection name.
    page_size
        Items fetched per ``get`` call.
    on_invalid
        ``"error"`` or ``"exclude"``: what to do with NaN/inf or zero-norm
        embeddings (see :func:`mdc_clustering.validation.check_embeddings`).
    progress
        Called with a one-line message after each page, and with
        ``final=True`` for the closing summary (see
        :func:`mdc_clustering.progress.dbt_progress`).
    processes
        Reader processes. Chroma's ``get`` spends most of its time building
        Python lists, one core's work, so large collections are read by
        several processes. ``None``: one per core (at most 4) from
        :data:`PROCESSES_FROM_ROWS` items, else one. Each process opens the
        store itself (spawned, not forked) and sends back pages of
        :data:`_PROCESS_CHUNK_ROWS` items, so memory stays the matrix plus a
        few pages.
    dataset_ids, min_id_overlap, datasets_source
        When ``dataset_ids`` (the pipeline's ``datasets`` keys) is given, the
        collection's ids are checked against them before any embedding is
        read: below ``min_id_overlap`` on either side the pull stops (see
        :func:`mdc_clustering.validation.check_id_overlap`), naming
        ``datasets_source``.

    Returns
    -------
    pyarrow.Table
        One row per dataset, sorted by ``dataset_id``, with columns
        ``dataset_id`` (string), ``document_id`` (string, from metadata; null
        where absent), ``dataset_type`` (string or null, from metadata),
        ``embedding`` (fixed-size list of float32) and ``embedding_norm``
        (float64 L2 norm).
    """
    with chroma_session():
        ids = list_ids(
            path, name, path_var=path_var, name_var=name_var, dataset_ids=dataset_ids, min_id_overlap=min_id_overlap,
            datasets_source=datasets_source,
        )
        return read_items(
            path, name, ids, page_size=page_size, on_invalid=on_invalid, progress=progress, path_var=path_var,
            name_var=name_var, processes=processes,
        )


def list_ids(
    path: str | Path,
    name: str,
    *,
    path_var: str = "chroma_path",
    name_var: str = "chroma_collection",
    dataset_ids: Sequence[str] | None = None,
    min_id_overlap: float = 0.0,
    datasets_source: str = "datasets",
) -> list[str]:
    """The collection's ids, sorted (no embedding is read), after the checks of :func:`read_collection`.

    An empty collection or duplicate ids stop here; with ``dataset_ids``, so
    does an id overlap below ``min_id_overlap``.
    """
    source = f"Chroma collection {name!r} at {path!s}"
    with chroma_session():
        collection = open_collection(path, name, path_var=path_var, name_var=name_var)
        segment, _ = direct_segment(path, name, collection)
        ids: list[str] = segment.ids if segment is not None else list(collection.get(include=[])["ids"])
    check_embeddings(ids, np.zeros((len(ids), 1), np.float32) + 1, source=source)  # empty + duplicate ids
    if dataset_ids is not None:  # before the pull: a store of another pipeline stops here
        check_id_overlap(
            ids, dataset_ids, min_share=min_id_overlap, chroma_source=source, datasets_source=datasets_source
        )
    return sorted(ids)


def read_items(
    path: str | Path,
    name: str,
    ids: Sequence[str],
    *,
    page_size: int = 2000,
    on_invalid: str = "error",
    progress: Callable[[str], None] | None = None,
    path_var: str = "chroma_path",
    name_var: str = "chroma_collection",
    processes: int | None = None,
    whole: bool = True,
) -> pa.Table:
    """The items ``ids`` (sorted, present in the collection) as :func:`read_collection`'s table.

    ``whole`` False: the items are a part of what will be clustered (a re-run's new and changed datasets), so
    with ``on_invalid="exclude"`` none of them valid is no error (see
    :func:`mdc_clustering.validation.check_embeddings`).
    """
    with chroma_session():
        return _read_items(path, name, ids, page_size=page_size, on_invalid=on_invalid, progress=progress,
                           path_var=path_var, name_var=name_var, processes=processes, whole=whole)


def direct_segment(path, name, collection) -> tuple[DirectSegment | None, str]:
    """The collection's index files (:mod:`mdc_clustering.chroma_direct`) when they hold what ``collection``
    (``count()``, a sample of ``get``) holds, else None; and how the vectors are read, in words. Kept while a
    :func:`chroma_session` lasts and the files stay as they were."""
    store = Path(path).expanduser().resolve()
    files = [store / "chroma.sqlite3", *sorted(store.glob("*/header.bin"))]
    stamp = tuple(f.stat().st_mtime_ns if f.exists() else 0 for f in files)
    key = (str(store), name, stamp)
    if key not in _DIRECT:
        segment, why = open_segment(store, name)
        if segment is not None:
            differs = verified(segment, collection)
            if differs is not None:
                segment, why = None, f"the index files disagree with Chroma: {differs}"
        how = ("directly from the index files" + (f" ({len(segment.stale)} written since through get())"
                                                   if segment.stale else "")
               if segment is not None else f"through get() ({why})")
        _DIRECT.clear()
        _DIRECT[key] = (segment, how)
    return _DIRECT[key]


def _read_items(path, name, ids, *, page_size, on_invalid, progress, path_var, name_var, processes,
                whole=True) -> pa.Table:
    page_size = positive_int("chroma_page_size", page_size)
    started = time.perf_counter()
    collection = open_collection(path, name, path_var=path_var, name_var=name_var)
    source = f"Chroma collection {name!r} at {path!s}"
    ids = sorted(ids)  # pages are asked in id order and each page put back in it: no N x d re-sort later
    n = len(ids)
    if n == 0:
        return empty_embeddings_table()
    matrix: np.ndarray | None = None
    out_ids = np.asarray(ids, dtype=object)
    doc_ids = np.empty(n, dtype=object)
    types = np.empty(n, dtype=object)
    segment, how = direct_segment(path, name, collection)
    at_get = np.arange(n)  # rows read through get(), in id order
    if segment is not None:
        direct = np.fromiter((i in segment.row_of for i in ids), dtype=bool, count=n)
        at_direct, at_get = np.flatnonzero(direct), np.flatnonzero(~direct)
        if at_direct.size:
            direct_ids = [ids[i] for i in at_direct.tolist()]
            matrix = np.empty((n, segment.dim), dtype=np.float32)
            matrix[at_direct] = segment.vectors(direct_ids)
            meta = [segment.metadata[i] for i in direct_ids]
            doc_ids[at_direct] = [m[0] for m in meta]
            types[at_direct] = [m[1] for m in meta]
    asked = [ids[i] for i in at_get.tolist()]
    filled = 0
    processes = _reader_processes(len(asked)) if processes is None else positive_int("processes", processes)
    if processes > 1:
        chunks = [asked[start : start + _PROCESS_CHUNK_ROWS] for start in range(0, len(asked), _PROCESS_CHUNK_ROWS)]
        pages = _read_in_processes(str(path), name, path_var, name_var, chunks, page_size, processes)
    else:
        pages = (_read_chunk(collection, source, asked[start : start + page_size], page_size)
                 for start in range(0, len(asked), page_size))
    for vectors, page_doc_ids, page_types in pages:
        rows = at_get[filled : filled + len(page_doc_ids)]
        if matrix is None:
            matrix = np.empty((n, vectors.shape[1]), dtype=np.float32)
        elif vectors.shape[1] != matrix.shape[1]:
            check_dimensions(
                [ids[0], asked[filled]], [matrix.shape[1], vectors.shape[1]], source=source
            )
        matrix[rows] = vectors
        doc_ids[rows] = page_doc_ids
        types[rows] = page_types
        filled += len(rows)
        if progress is not None:
            progress(f"read {filled}/{len(asked)} embeddings through get()")
    assert matrix is not None and filled == len(asked)

    norms = row_norms(matrix)  # float64, a slice at a time
    keep = check_embeddings(out_ids, matrix, source=source, on_invalid=on_invalid, norms=norms, whole=whole)
    order = np.flatnonzero(keep)
    if order.size < n:  # only when invalid embeddings are excluded
        matrix, norms = matrix[order], norms[order]
    dim = matrix.shape[1]
    table = pa.table(
        {
            "dataset_id": pa.array(out_ids[order].tolist(), pa.string()),
            "document_id": pa.array([None if v is None else str(v) for v in doc_ids[order]], pa.string()),
            "dataset_type": pa.array([None if v is None else str(v) for v in types[order]], pa.string()),
            "embedding": pa.FixedSizeListArray.from_arrays(pa.array(matrix.reshape(-1), pa.float32()), dim),
            "embedding_norm": pa.array(norms, pa.float64()),
        }
    )
    table = table.replace_schema_metadata({"read_method": how})
    if progress is not None:
        progress(
            f"{table.num_rows} embeddings of dimension {dim} from {name!r}, {how}, "
            f"in {time.perf_counter() - started:.1f}s",
            final=True,
        )
    return table


def empty_embeddings_table(dim: int = 0) -> pa.Table:
    """A table of :func:`read_collection`'s columns without rows."""
    return pa.table({
        "dataset_id": pa.array([], pa.string()),
        "document_id": pa.array([], pa.string()),
        "dataset_type": pa.array([], pa.string()),
        "embedding": pa.FixedSizeListArray.from_arrays(pa.array([], pa.float32()), max(dim, 1)),
        "embedding_norm": pa.array([], pa.float64()),
    })


# From this many items the pull uses a process per core: below it, starting them costs more than it saves.
PROCESSES_FROM_ROWS = 200_000
_PROCESS_CHUNK_ROWS = 20_000  # items a reader process sends back at a time


def _reader_processes(n: int) -> int:
    import os

    return min(4, os.cpu_count() or 1) if n >= PROCESSES_FROM_ROWS else 1


def _read_chunk(collection, source: str, asked: list[str], page_size: int):
    """The embeddings (float32, in ``asked`` order), document ids and dataset types of ``asked``, page by page."""
    parts, doc_ids, types = [], [], []
    for start in range(0, len(asked), page_size):
        page_asked = asked[start : start + page_size]
        page = collection.get(ids=page_asked, include=["embeddings", "metadatas"])
        page_ids = page["ids"]
        if sorted(page_ids) != page_asked:
            raise ClusteringInputError(f"{source}: get() returned other ids than asked; is the store being written?")
        position = {dataset_id: i for i, dataset_id in enumerate(page_asked)}
        at = np.fromiter((position[i] for i in page_ids), dtype=np.int64, count=len(page_ids))
        vectors = _as_matrix(page["embeddings"], page_ids, source)
        if parts and vectors.shape[1] != parts[0].shape[1]:
            check_dimensions([page_asked[0], page_ids[0]], [parts[0].shape[1], vectors.shape[1]], source=source)
        ordered = np.empty_like(vectors)
        ordered[at] = vectors
        parts.append(ordered)
        metadatas = page["metadatas"] or [None] * len(page_ids)
        page_docs, page_types = [None] * len(page_ids), [None] * len(page_ids)
        for i, m in zip(at.tolist(), metadatas, strict=True):
            page_docs[i] = (m or {}).get("document_id")
            page_types[i] = (m or {}).get("dataset_type")
        doc_ids += page_docs
        types += page_types
    return np.concatenate(parts) if len(parts) > 1 else parts[0], doc_ids, types


_WORKER: dict = {}  # a reader process's open collection, by (path, name)


def _worker_read(path: str, name: str, path_var: str, name_var: str, asked: list[str], page_size: int):
    """:func:`_read_chunk` in a reader process; the collection is opened on the first call (errors reach the parent)."""
    key = (path, name)
    if key not in _WORKER:
        _WORKER[key] = open_collection(path, name, path_var=path_var, name_var=name_var)
    return _read_chunk(_WORKER[key], f"Chroma collection {name!r} at {path!s}", asked, page_size)


def _read_in_processes(path, name, path_var, name_var, chunks, page_size, processes):
    """Yield :func:`_read_chunk` results of ``chunks``, in order, read by ``processes`` spawned processes."""
    import multiprocessing
    import sys
    from concurrent.futures import ProcessPoolExecutor

    # A spawned process first re-runs the parent's main script (for dbt: its CLI and all its imports)
    # unless that script has no __file__; it needs nothing from it, so the name is hidden while they start.
    main = sys.modules.get("__main__")
    hidden = main is not None and getattr(main, "__spec__", None) is None and "__file__" in vars(main)
    main_file = vars(main).pop("__file__") if hidden else None
    try:
        with ProcessPoolExecutor(
            max_workers=processes,
            mp_context=multiprocessing.get_context("spawn"),  # a fork would copy dbt's threads and DuckDB's state
        ) as pool:
            # at most two chunks a process in flight: results wait in memory only that long
            pending = []
            for chunk in chunks:
                pending.append(pool.submit(_worker_read, path, name, path_var, name_var, chunk, page_size))
                if len(pending) > 2 * processes:
                    yield pending.pop(0).result()
            for future in pending:
                yield future.result()
    finally:
        if hidden:
            main.__file__ = main_file


def _unset(value) -> bool:
    return value is None or value == ""


def same_collection(path, name, reference_path, reference_name) -> bool:
    """Whether the reference vars (null = "the same") point at the clustered collection itself."""
    if _unset(reference_name):
        return _unset(reference_path) or Path(reference_path).resolve() == Path(path).resolve()
    if reference_name != name:
        return False
    return _unset(reference_path) or Path(reference_path).resolve() == Path(path).resolve()
