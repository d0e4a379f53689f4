"""Load the embedded sample into a Chroma store and a pipeline DuckDB file.

The sample (``data/sample/*.parquet``, made by
``scripts/make_sample_embeddings.py``) stands in for the earlier phases of
the citation-mining pipeline, so that a fresh clone builds without them:

* a Chroma persistent store with one collection, ids = ``dataset_id``,
  metadata ``document_id``, 384-d embeddings;
* a DuckDB file with ``main.documents`` (one row per R package),
  ``main.datasets`` (one row per R dataset, ``cluster`` and
  ``dataset_type`` NULL) and ``main.engineered_feature_values`` holding
  three text features of an "earlier phase", so that this phase can prove it
  loses none of them.

Both steps are idempotent: an existing store or table is left alone. The
Chroma store is written to a temporary directory and renamed into place, so
an interrupted load never leaves a half-filled store behind.

The sample goes only into the project's own ``data/`` folder
(:data:`PROJECT_DATA`): every function here that writes refuses a path
outside it unless called with ``allow_outside_data=True`` (the command line:
``--allow-outside-data``), so that no slip (a typo'd path, an exported
``MDC_DUCKDB_PATH``) ever fills a user's file with the R sample. The
defaults are ``data/pipeline.duckdb`` and ``data/chroma`` of the project,
whatever the environment says.

Usage::

    python -m mdc_clustering.sample [--db PATH] [--chroma PATH] [--collection NAME] [--allow-outside-data]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .errors import ClusteringInputError

__all__ = [
    "DEFAULT_COLLECTION",
    "PROJECT_DATA",
    "SampleTargetError",
    "add_from_sample",
    "check_sample_target",
    "load_chroma",
    "load_database",
    "main",
    "sample_matrix",
]

DEFAULT_COLLECTION = "rdatasets_help_pages"
# The project's own data folder: the only place the sample is written to unless asked otherwise.
PROJECT_DATA = Path(__file__).resolve().parents[2] / "data"
SAMPLE_TIMESTAMP = "2026-01-01 00:00:00"

PIPELINE_DDL = """
create table if not exists main.documents (
    doi varchar primary key,
    title varchar,
    n_datasets integer,
    created_at timestamp,
    updated_at timestamp
);
create table if not exists main.datasets (
    dataset_id varchar primary key,
    document_id varchar not null,
    total_tokens bigint,
    avg_tokens_per_chunk double,
    total_char_length bigint,
    clean_text_length bigint,
    cluster varchar,
    dataset_type varchar,
    text varchar,
    created_at timestamp,
    updated_at timestamp
);
create table if not exists main.engineered_feature_values (
    dataset_id varchar not null,
    document_id varchar not null,
    feature_name varchar not null,
    feature_value double,
    created_at timestamp,
    updated_at timestamp,
    primary key (dataset_id, document_id, feature_name)
);
"""


def sample_matrix(sample_dir: Path = PROJECT_DATA / "sample") -> tuple[list[str], np.ndarray, list[str | None]]:
    """The embedded sample as a notebook would hold it: ids, the ``(n, d)`` float32 matrix and each text
    (read only; nothing is written)."""
    embeddings = pq.read_table(sample_dir / "embeddings.parquet", columns=["dataset_id", "embedding"])
    datasets = pq.read_table(sample_dir / "datasets.parquet", columns=["dataset_id", "text"])
    text = dict(zip(datasets["dataset_id"].to_pylist(), datasets["text"].to_pylist(), strict=True))
    ids = embeddings["dataset_id"].to_pylist()
    flat = embeddings["embedding"].combine_chunks().flatten().to_numpy()
    return ids, np.asarray(flat, dtype=np.float32).reshape(len(ids), -1), [text.get(i) for i in ids]


def _insert_datasets_sql(relation: str) -> str:
    """Insert the sample rows of ``relation`` into main.datasets: cluster and dataset_type NULL."""
    ts = f"timestamp '{SAMPLE_TIMESTAMP}'"
    return f"""
        insert into main.datasets
        select dataset_id, document_id, total_tokens, avg_tokens_per_chunk, total_char_length,
               clean_text_length, null, null, text, {ts}, {ts}
        from {relation}
        order by dataset_id
    """


class SampleTargetError(ClusteringInputError):
    """A path outside the project's data/ folder was given to a sample loader without the explicit flag."""


def check_sample_target(path: Path, *, allow_outside_data: bool) -> None:
    """Refuse to write the sample to ``path`` unless it lies in :data:`PROJECT_DATA` or it is allowed."""
    if allow_outside_data:
        return
    resolved = Path(path).expanduser().resolve()
    if resolved == PROJECT_DATA or PROJECT_DATA in resolved.parents:
        return
    raise SampleTargetError(
        f"Refusing to write the embedded sample to {path} (resolved to {resolved}): it is outside the "
        f"project's data folder {PROJECT_DATA}, and it may be a pipeline's own file. Nothing was written. "
        "Leave --db / --chroma out to load the sample into data/, or pass --allow-outside-data "
        "(allow_outside_data=True) if you really want the sample there."
    )


def _log(message: str) -> None:
    print(f"[sample] {message}", file=sys.stderr, flush=True)


def load_chroma(
    sample_dir: Path,
    chroma_path: Path,
    collection: str,
    *,
    exclude: set[str] = frozenset(),
    allow_outside_data: bool = False,
) -> bool:
    """Create the Chroma store unless it exists. Returns True when it was created.

    Raises :class:`SampleTargetError` when ``chroma_path`` is outside the
    project's ``data/`` and ``allow_outside_data`` is not set.
    """
    check_sample_target(chroma_path, allow_outside_data=allow_outside_data)
    if chroma_path.exists():
        _log(f"Chroma store {chroma_path} exists; left as it is")
        return False
    embeddings = pq.read_table(sample_dir / "embeddings.parquet")
    datasets = pq.read_table(sample_dir / "datasets.parquet", columns=["dataset_id", "document_id"])
    doc_of = dict(zip(datasets["dataset_id"].to_pylist(), datasets["document_id"].to_pylist(), strict=True))
    ids = embeddings["dataset_id"].to_pylist()
    col = embeddings["embedding"].combine_chunks()
    matrix = col.flatten().to_numpy().reshape(-1, col.type.list_size)
    keep = [i for i, dataset_id in enumerate(ids) if dataset_id not in exclude]

    staging = chroma_path.with_name(chroma_path.name + f".loading-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.parent.mkdir(parents=True, exist_ok=True)
    write_collection(
        staging,
        collection,
        [ids[i] for i in keep],
        matrix[keep],
        [doc_of[ids[i]] for i in keep],
        metadata={"hnsw:space": "cosine"},
    )
    os.replace(staging, chroma_path)
    _log(f"Chroma store {chroma_path}: collection {collection!r} with {len(keep)} embeddings")
    return True


def write_collection(
    path: Path, name: str, ids: list[str], matrix: np.ndarray, document_ids: list[str], **create: object
) -> None:
    """Create the Chroma store ``path`` with collection ``name`` holding these embeddings.

    Items are added in Chroma's largest batches; metadata ``document_id``.
    ``create`` goes to ``create_collection`` (``metadata=`` or
    ``configuration=``); no embedding function is attached.
    """
    import chromadb
    from chromadb.config import Settings

    client = chromadb.PersistentClient(path=str(path), settings=Settings(anonymized_telemetry=False))
    coll = client.create_collection(name, embedding_function=None, **create)
    batch = client.get_max_batch_size()
    for start in range(0, len(ids), batch):
        stop = start + batch
        coll.add(
            ids=ids[start:stop],
            embeddings=np.ascontiguousarray(matrix[start:stop], dtype=np.float32),
            metadatas=[{"document_id": d} for d in document_ids[start:stop]],
        )
    del coll, client


def load_database(
    sample_dir: Path, db_path: Path, *, exclude: set[str] = frozenset(), allow_outside_data: bool = False
) -> bool:
    """Create the pipeline tables and fill them from the sample unless ``datasets`` has rows.

    Raises :class:`SampleTargetError` when ``db_path`` is outside the
    project's ``data/`` and ``allow_outside_data`` is not set.
    """
    import duckdb

    check_sample_target(db_path, allow_outside_data=allow_outside_data)
    db_path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(db_path))
    try:
        con.execute(PIPELINE_DDL)
        if con.execute("select count(*) from main.datasets").fetchall()[0][0] > 0:
            _log(f"pipeline database {db_path} already holds datasets; left as it is")
            return False
        datasets = pq.read_table(sample_dir / "datasets.parquet")
        if exclude:
            mask = pa.array([d not in exclude for d in datasets["dataset_id"].to_pylist()])
            datasets = datasets.filter(mask)
        con.register("sample_datasets", datasets)
        ts = f"timestamp '{SAMPLE_TIMESTAMP}'"
        con.execute("begin transaction")
        con.execute(
            f"""
            insert into main.documents
            select document_id, replace(document_id, 'rdatasets:', 'R package '), count(*), {ts}, {ts}
            from sample_datasets
            where document_id not in (select doi from main.documents)
            group by document_id
            order by document_id
            """
        )
        con.execute(_insert_datasets_sql("sample_datasets"))
        # Three features of an "earlier phase" of the pipeline: this phase
        # must never change or lose them.
        con.execute(
            f"""
            insert into main.engineered_feature_values
            select dataset_id, document_id, feature_name, feature_value, {ts}, {ts}
            from (
                unpivot (
                    select dataset_id, document_id,
                           cast(total_tokens as double) as context_token_count,
                           cast(clean_text_length as double) as context_char_length,
                           cast(length(regexp_replace(text, '[^0-9]', '', 'g')) as double)
                               / greatest(length(text), 1) as context_digit_share
                    from sample_datasets
                )
                on context_token_count, context_char_length, context_digit_share
                into name feature_name value feature_value
            )
            order by dataset_id, feature_name
            """
        )
        con.execute("commit")
        counts = {
            t: con.execute(f"select count(*) from main.{t}").fetchall()[0][0]
            for t in ("documents", "datasets", "engineered_feature_values")
        }
        _log(f"pipeline database {db_path}: {counts}")
        return True
    finally:
        con.close()


def add_from_sample(
    sample_dir: Path,
    db_path: Path,
    chroma_path: Path,
    collection: str,
    ids: set[str],
    *,
    allow_outside_data: bool = False,
) -> int:
    """Add the sample datasets ``ids`` (held back at load time) to the store and the database.

    Mimics new datasets arriving from the pipeline's earlier phases: their
    embeddings go into the Chroma collection and their rows (cluster NULL)
    into ``datasets``. Returns how many were added. Paths outside the
    project's ``data/`` need ``allow_outside_data=True``.
    """
    import duckdb

    check_sample_target(db_path, allow_outside_data=allow_outside_data)
    check_sample_target(chroma_path, allow_outside_data=allow_outside_data)
    from .chroma_reader import get_client

    embeddings = pq.read_table(sample_dir / "embeddings.parquet")
    datasets = pq.read_table(sample_dir / "datasets.parquet")
    pick = pa.array([d in ids for d in embeddings["dataset_id"].to_pylist()])
    embeddings = embeddings.filter(pick)
    datasets = datasets.filter(pa.array([d in ids for d in datasets["dataset_id"].to_pylist()]))
    col = embeddings["embedding"].combine_chunks()
    matrix = col.flatten().to_numpy().reshape(-1, col.type.list_size)
    doc_of = dict(zip(datasets["dataset_id"].to_pylist(), datasets["document_id"].to_pylist(), strict=True))
    new_ids = embeddings["dataset_id"].to_pylist()
    coll = get_client(chroma_path).get_collection(collection)
    coll.add(
        ids=new_ids,
        embeddings=np.ascontiguousarray(matrix, dtype=np.float32),
        metadatas=[{"document_id": doc_of[i]} for i in new_ids],
    )
    con = duckdb.connect(str(db_path))
    try:
        con.register("new_datasets", datasets)
        ts = f"timestamp '{SAMPLE_TIMESTAMP}'"
        con.execute(
            f"""
            insert into main.documents
            select distinct document_id, replace(document_id, 'rdatasets:', 'R package '), 0, {ts}, {ts}
            from new_datasets
            where document_id not in (select doi from main.documents)
            """
        )
        con.execute(_insert_datasets_sql("new_datasets"))
    finally:
        con.close()
    return len(new_ids)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m mdc_clustering.sample",
        description="Load the embedded sample (idempotent) into the project's data/ folder.",
    )
    parser.add_argument("--sample-dir", type=Path, default=PROJECT_DATA / "sample")
    parser.add_argument("--db", type=Path, default=PROJECT_DATA / "pipeline.duckdb",
                        help="DuckDB file to create (default: the project's data/pipeline.duckdb)")
    parser.add_argument("--chroma", type=Path, default=PROJECT_DATA / "chroma",
                        help="Chroma store to create (default: the project's data/chroma)")
    parser.add_argument("--collection", default=DEFAULT_COLLECTION)
    parser.add_argument(
        "--allow-outside-data", action="store_true",
        help="allow --db / --chroma outside the project's data/ folder (never needed for the sample build)",
    )
    parser.add_argument(
        "--exclude-file", type=Path, default=None,
        help="a text file of dataset_ids (one a line) to leave out, e.g. to add them later",
    )
    args = parser.parse_args(argv)
    if not (args.sample_dir / "embeddings.parquet").is_file():
        parser.error(f"no sample at {args.sample_dir}: expected embeddings.parquet and datasets.parquet there")
    for path in (args.db, args.chroma):  # both checked before either is written
        try:
            check_sample_target(path, allow_outside_data=args.allow_outside_data)
        except SampleTargetError as error:
            parser.exit(2, f"{parser.prog}: error: {error}\n")
    exclude: set[str] = set()
    if args.exclude_file is not None:
        exclude = {line.strip() for line in args.exclude_file.read_text().splitlines() if line.strip()}
    allow = args.allow_outside_data
    load_chroma(args.sample_dir, args.chroma, args.collection, exclude=exclude, allow_outside_data=allow)
    load_database(args.sample_dir, args.db, exclude=exclude, allow_outside_data=allow)


if __name__ == "__main__":
    main()
