"""One call on a matrix, for notebooks: the same dbt build, on a throw-away pipeline.

:func:`cluster` writes the embeddings to a Chroma collection and a pipeline
DuckDB file in a work folder of its own, runs this project's ``dbt build`` on
them in-process (dbt's ``dbtRunner``), and reads the results back. So the
k-NN, the pair deduplication and threshold (SQL), Leiden, the labels, the
terms, the features and the report are exactly those of the dbt project,
with the same settings (:mod:`mdc_clustering.settings`), and the labels are
identical to a ``dbt build`` of the same data (a test checks it on the
sample). Nothing outside the work folder is read or written.

Needs the dbt project's files (``dbt_project.yml``, ``models/``, ...): they
are found next to the package in a checkout (``pip install -e .``).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from .embeddings import embedding_matrix
from .errors import ClusteringInputError
from .settings import Settings

__all__ = ["ClusteringOutput", "cluster", "place_new", "project_dir"]

_COLLECTION = "notebook_datasets"
_DOCUMENT = "notebook"


@dataclass
class ClusteringOutput:
    """What :func:`cluster` returns.

    Attributes
    ----------
    memberships
        One row per dataset (``int_datasets_clustered``): ``dataset_id``,
        ``cluster`` (label, null when unclustered), ``unclustered_reason``,
        ``label_status``, ``community`` (the run's facts are in ``report``).
    labels
        ``{dataset_id: cluster}``, in the order the ids were given.
    clusters
        One row per cluster (the ``clusters`` mart): size, top terms,
        exemplars, cohesion.
    features
        This phase's neighbourhood features, long (``dataset_id``,
        ``feature_name``, ``feature_value``).
    report
        The run's JSON report (``clustering_report.json``) as a dict.
    figures
        ``{name: path}`` of the PNG pictures and of the cluster browser
        (``cluster_browser``, one HTML file).
    workdir
        The folder holding the pipeline file, the store, the report and
        dbt's logs.
    """

    memberships: pa.Table
    labels: dict[str, str | None]
    clusters: pa.Table
    features: pa.Table
    report: dict
    figures: dict[str, Path] = field(default_factory=dict)
    workdir: Path | None = None


def project_dir() -> Path:
    """The dbt project's folder: the checkout of an editable install, else the copy inside the wheel."""
    here = Path(__file__).resolve().parent
    for root in (here.parents[1], here / "dbt_project"):
        if (root / "dbt_project.yml").is_file() and (root / "models").is_dir():
            return root
    raise ClusteringInputError(
        f"the dbt project files are neither in the checkout ({here.parents[1]}) nor in the package "
        f"({here / 'dbt_project'}): reinstall mdc-clustering (pip install mdc-clustering, or pip install -e . "
        "from a checkout)"
    )


def _matrix_and_ids(embeddings, ids) -> tuple[np.ndarray, list[str]]:
    if isinstance(embeddings, pa.Table):
        if ids is None:
            ids = embeddings.column("dataset_id").to_pylist()
        matrix = embedding_matrix(embeddings)
    else:
        matrix = np.asarray(embeddings, dtype=np.float32)
    if matrix.ndim != 2 or not len(matrix):
        raise ClusteringInputError(f"embeddings must be a non-empty (n, d) matrix, got shape {matrix.shape}")
    if ids is None:
        width = len(str(len(matrix)))
        ids = [f"d{i:0{width}d}" for i in range(len(matrix))]
    ids = [str(i) for i in ids]
    if len(ids) != len(matrix):
        raise ClusteringInputError(f"{len(ids)} ids for {len(matrix)} embeddings: give one id per row")
    if len(set(ids)) != len(ids):
        raise ClusteringInputError("ids must be unique")
    return matrix, ids


def _load(workdir: Path, matrix, ids, texts, document_ids, previous) -> None:
    import duckdb

    from .sample import PIPELINE_DDL, write_collection

    documents = [str(d) for d in document_ids] if document_ids is not None else [_DOCUMENT] * len(ids)
    write_collection(
        workdir / "chroma",
        _COLLECTION,
        ids,
        matrix,
        documents,
        configuration={"hnsw": {"space": "cosine", "ef_construction": 8, "max_neighbors": 4}},  # never queried
    )
    previous = dict(previous or {})
    con = duckdb.connect(str(workdir / "pipeline.duckdb"))
    try:
        con.execute(PIPELINE_DDL)
        # Arrow tables inserted in one statement each (executemany costs about 1 ms a row)
        papers = pa.table({"doi": sorted(set(documents))})
        con.register("papers", papers)
        con.execute("insert into main.documents select doi, doi, null, current_timestamp, current_timestamp "
                    "from papers")
        rows = pa.table({
            "dataset_id": pa.array(ids, pa.string()),
            "document_id": pa.array(documents, pa.string()),
            "cluster": pa.array([previous.get(i) for i in ids], pa.string()),
            "text": pa.array([None] * len(ids) if texts is None else [None if t is None else str(t) for t in texts],
                             pa.string()),
        })
        con.register("rows", rows)
        con.execute("insert into main.datasets (dataset_id, document_id, cluster, text, created_at, updated_at) "
                    "select dataset_id, document_id, cluster, text, current_timestamp, current_timestamp from rows")
    finally:
        con.close()


@contextlib.contextmanager
def _environment(workdir: Path) -> Iterator[None]:
    """The process environment and working folder a dbt invocation on ``workdir`` needs, restored after.

    The pipeline file and the store are named relative to ``workdir`` (dbt runs there), so the profile and
    the vars read the same for every work folder and one cached parse serves every call (:func:`_parse_cache`).
    """
    names = ("MDC_DUCKDB_PATH", "MDC_CHROMA_PATH", "MDC_CHROMA_COLLECTION", "PWD")
    saved = {k: os.environ.get(k) for k in names}
    cwd = Path.cwd()
    os.environ["MDC_DUCKDB_PATH"] = "pipeline.duckdb"
    os.environ["MDC_CHROMA_PATH"] = "chroma"
    os.environ["MDC_CHROMA_COLLECTION"] = _COLLECTION
    os.environ["PWD"] = str(workdir)  # what the report folder is made absolute against (macros/report_dir.sql)
    os.environ.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "False")
    os.chdir(workdir)
    try:
        yield
    finally:
        os.chdir(cwd)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


_PARSE_FILE = "partial_parse.msgpack"


def _parse_cache(project: Path, args: list[str]) -> Path:
    """Where this process keeps dbt's partial parse for ``args`` (valid for any work folder: see
    :func:`_environment`): dbt's parse is most of a small call's time."""
    import hashlib

    key = hashlib.sha1(json.dumps([str(project), args]).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"mdc_notebook_parse_{os.getuid()}" / key / _PARSE_FILE


def cluster(
    embeddings: np.ndarray | pa.Table,
    ids: Sequence[str] | None = None,
    texts: Sequence[str] | None = None,
    *,
    settings: Settings | Mapping[str, Any] | None = None,
    previous: Mapping[str, str | None] | None = None,
    document_ids: Sequence[str] | None = None,
    workdir: str | Path | None = None,
    quiet: bool = True,
    figures: bool = False,
    checks: bool = False,
) -> ClusteringOutput:
    """Cluster a matrix of embeddings with this project's models (the SQL and Python of ``dbt build``).

    Parameters
    ----------
    embeddings
        ``(n, d)`` float matrix, or an Arrow table with ``dataset_id`` and
        ``embedding`` (fixed-size list) columns.
    ids
        One id per row (default: the table's ``dataset_id``, else ``d0..``).
    texts
        One text per row, for the clusters' terms and exemplars (optional).
    settings
        A :class:`~mdc_clustering.settings.Settings`, or ``{setting: value}``
        (e.g. ``{"resolution": 2.0}``); checked before anything runs.
    previous
        ``{dataset_id: label}`` of an earlier run: with ``stable_labels``
        (default) each cluster that matches one of its clusters keeps that
        label (the registry of used label numbers is the work folder's).
        Leiden itself runs afresh: a call keeps no last run to re-cluster
        from (a pipeline's ``dbt build`` does).
    document_ids
        The document each row is cited from (default: one for all).
    workdir
        Folder for the pipeline file, store, report and logs (created; must
        be empty or missing). Default: a temporary folder, removed after.
    quiet
        Hide dbt's log lines.
    figures
        Draw the pictures and the cluster browser too (the slowest step;
        this argument decides, whatever ``settings`` says).
    checks
        Run the dbt data and unit tests as well (``dbt build``); by default
        only the models run (``dbt run``): the same SQL, so the same labels.

    Returns
    -------
    ClusteringOutput
    """
    import duckdb
    from dbt.cli.main import dbtRunner

    if settings is None:
        flat = {}
    elif isinstance(settings, Settings):
        flat = settings.flat()
    else:
        flat = Settings.from_flat(dict(settings)).flat()
    for name in ("chroma_path", "chroma_collection"):
        flat.pop(name, None)  # the work folder's store
    matrix, ids = _matrix_and_ids(embeddings, ids)
    if texts is not None and len(texts) != len(ids):
        raise ClusteringInputError(f"{len(texts)} texts for {len(ids)} embeddings: give one text per row")
    project = project_dir()
    temporary = workdir is None
    root = Path(tempfile.mkdtemp(prefix="mdc-cluster-")) if temporary else Path(workdir).resolve()
    root.mkdir(parents=True, exist_ok=True)
    if any(root.iterdir()):
        raise ClusteringInputError(f"workdir {root} is not empty: give a new or empty folder")
    try:
        _load(root, matrix, ids, texts, document_ids, previous)
        options = [
            "--project-dir", str(project),
            "--profiles-dir", str(project),
            "--vars", json.dumps({**flat, "figures": figures, "report_name": "notebook",
                                  "reports_root": "reports/clustering"}),
        ]
        cached = _parse_cache(project, options)
        if cached.is_file():  # the parse of an earlier call, valid here (the same project, vars and profile)
            (root / "target").mkdir()
            shutil.copyfile(cached, root / "target" / _PARSE_FILE)
        args = ["build" if checks else "run", *options, "--target-path", str(root / "target"),
                "--log-path", str(root / "logs")]
        if quiet:
            args.insert(0, "--quiet")
        with _environment(root):
            try:
                result = dbtRunner().invoke(args)
                made = root / "target" / _PARSE_FILE
                if made.is_file():
                    cached.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(made, cached.with_suffix(".part"))
                    cached.with_suffix(".part").replace(cached)
            finally:
                # dbt-duckdb keeps its connection to the file open in this process: close it, so the
                # results can be read (and the next call connect afresh)
                from dbt.adapters.duckdb.connections import DuckDBConnectionManager

                with DuckDBConnectionManager._LOCK:
                    if DuckDBConnectionManager._ENV is not None:
                        DuckDBConnectionManager._ENV.close()
                        DuckDBConnectionManager._ENV = None
        if not result.success:
            failures = [
                f"{r.node.name}: {r.message}" for r in (result.result or []) if str(r.status) in ("error", "fail")
            ]
            raise ClusteringInputError(
                "the dbt build failed: " + ("; ".join(failures) if failures else str(result.exception))
                + f" (logs: {root / 'logs'})"
            )
        con = duckdb.connect(str(root / "pipeline.duckdb"), read_only=True)
        try:
            from .stages.memberships import PER_DATASET_COLUMNS

            columns = ", ".join(name for name, _ in PER_DATASET_COLUMNS)  # the run's facts are in the report
            memberships = con.sql(f"select {columns} from clustering.int_datasets_clustered order by dataset_id")
            memberships = memberships.to_arrow_table()
            clusters = con.sql("select * from clustering.clusters order by size desc, cluster").to_arrow_table()
            features = con.sql(
                "select dataset_id, feature_name, feature_value from clustering.int_dataset_features_unpivoted "
                "order by dataset_id, feature_name"
            ).to_arrow_table()
        finally:
            con.close()
        report_dir = root / "reports" / "clustering" / "notebook"
        report = json.loads((report_dir / "clustering_report.json").read_text())
        by_id = dict(zip(memberships.column("dataset_id").to_pylist(), memberships.column("cluster").to_pylist(),
                         strict=True))
        pictures = {path.stem: path for pattern in ("*.png", "*.html") for path in sorted(report_dir.glob(pattern))}
        output = ClusteringOutput(
            memberships=memberships,
            labels={i: by_id.get(i) for i in ids},
            clusters=clusters,
            features=features,
            report=report,
            figures={} if temporary else pictures,
            workdir=None if temporary else root,
        )
        if temporary:  # the pictures would go with the folder: keep their bytes
            output.report["figures_png"] = {
                name: path.read_bytes() for name, path in pictures.items() if path.suffix == ".png"
            }
        return output
    finally:
        if temporary:
            shutil.rmtree(root, ignore_errors=True)


def place_new(
    embeddings: np.ndarray | pa.Table,
    ids: Sequence[str] | None,
    previous: Mapping[str, str | None],
    texts: Sequence[str] | None = None,
    *,
    settings: Settings | Mapping[str, Any] | None = None,
    **options: Any,
) -> ClusteringOutput:
    """Place the datasets that ``previous`` does not know into its clusters, leaving the others as they are.

    :func:`cluster` with ``clustering_mode: place_new``: no clustering runs;
    each dataset of ``ids`` missing from ``previous`` joins the cluster
    holding the similarity-weighted majority (at least
    ``placement_min_share``) of its ``placement_k`` nearest clustered
    datasets, or stays unclustered (reason ``not_placed``). ``options`` are
    :func:`cluster`'s (``document_ids``, ``workdir``, ``quiet``).
    """
    if not previous:
        raise ClusteringInputError("place_new needs the labels of an earlier run (previous={dataset_id: label})")
    if isinstance(settings, Settings):
        settings = settings.flat()
    return cluster(
        embeddings, ids, texts, settings={**(settings or {}), "clustering_mode": "place_new"}, previous=previous,
        **options,
    )
