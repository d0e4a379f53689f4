"""Every setting of the clustering phase, defined once: type, default, bounds and one description each.

The settings are grouped by concern (:class:`Settings` holds one object per
group). Each is a dbt var of the same name: ``dbt build --vars '{resolution:
2.0}'``. The dbt project's defaults, the validation that runs before any
model writes, the values the Python models receive, the README's table and
the docs page's table all come from this module:

- ``macros/_settings_defaults.sql`` is written from it
  (``python -m mdc_clustering.settings --write-macro``; a test fails when it
  is stale);
- on-run-start calls :func:`check_settings` (a DuckDB function that the
  profile's ``mdc_clustering.pipeline_guard`` plugin registers), which stops
  the build with the var's name and the allowed values;
- the Python models receive the whole set as one JSON config value and read
  it with :meth:`Settings.from_json`;
- a test fails when the README or the docs page lists a setting that is not
  here, or misses one (``python -m mdc_clustering.settings --markdown``
  prints the table).

A setting marked *start here* is one a user tunes; the others are internals
with defaults measured in ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, ValidationError, field_validator

from .errors import ParameterError

__all__ = [
    "GROUPS",
    "Settings",
    "check_settings",
    "flat_defaults",
    "markdown_table",
    "run_settings",
    "setting_fields",
    "settings_problem",
]

_COLLECTION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{1,510}[A-Za-z0-9]$")
_FOLDER_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
_IDENTIFIER_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_IDENTIFIER_RULE = "a SQL name: 1-63 letters, digits or '_', not starting with a digit"
_COLLECTION_RULE = (
    "a Chroma collection name: 3-512 characters of letters, digits, '.', '_' or '-', starting and ending with a "
    "letter or digit"
)


def _setting(default: Any, rule: str, description: str, *, start_here: bool = False, **bounds: Any) -> Any:
    """A field: its default, the rule an error states ("must be <rule>"), one description, its bounds."""
    return Field(default, description=description, json_schema_extra={"rule": rule, "start_here": start_here}, **bounds)


Number = StrictInt | float  # a float field: an int is fine, a string or a bool is not


class _Group(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class ChromaSettings(_Group):
    """Where the embeddings come from."""

    chroma_path: str | None = _setting(
        None, "a path to a Chroma persistent directory (text without control characters)",
        "Chroma persistent directory. null = the environment variable MDC_CHROMA_PATH; for the project's own "
        "sample database data/chroma. Any other DuckDB file without one stops the build before anything is written.",
        start_here=True,
    )
    chroma_collection: str | None = _setting(
        None, _COLLECTION_RULE,
        "Collection with one item per dataset (id = dataset_id, metadata document_id). null = "
        "MDC_CHROMA_COLLECTION; for the sample database rdatasets_help_pages.",
        start_here=True,
    )
    min_id_overlap: Number = _setting(
        0.5, "a number in [0, 1]",
        "The build stops before any model writes when fewer than this share of `datasets` rows have an "
        "embedding, or of the collection's ids have a `datasets` row (not the same pipeline's). 0 = never stop.",
        ge=0, le=1,
    )
    chroma_page_size: StrictInt = _setting(
        2000, "a positive integer", "Items fetched per Chroma get() call; bounds the pull's memory.", ge=1
    )
    invalid_embeddings: Literal["error", "exclude"] = _setting(
        "error", "one of error, exclude",
        "NaN/inf or zero-norm embeddings: error stops the build naming them; exclude warns and leaves them out "
        "(a re-run drops the cached copy of an embedding that turned invalid; it does not stand in).",
    )

    @field_validator("chroma_path")
    @classmethod
    def _plain_path(cls, value):
        if value is not None and (not value or _CONTROL_RE.search(value)):
            raise ValueError("control characters")
        return value

    @field_validator("chroma_collection")
    @classmethod
    def _collection_name(cls, value):
        if value is not None and (not _COLLECTION_RE.match(value) or ".." in value):
            raise ValueError("not a collection name")
        return value


class TableSettings(_Group):
    """Where the pipeline's own tables are (read, and written back in place)."""

    pipeline_database: str | None = _setting(
        None, _IDENTIFIER_RULE + ", or null",
        "Database (DuckDB catalog) of the pipeline's tables; null = the profile's database. Set it when the "
        "pipeline's file is attached to a host project under another name.",
    )
    pipeline_schema: str = _setting("main", _IDENTIFIER_RULE, "Schema of the pipeline's tables.")
    documents_table: str = _setting("documents", _IDENTIFIER_RULE, "The documents table (read).")
    datasets_table: str = _setting(
        "datasets", _IDENTIFIER_RULE, "The datasets table (read; `cluster` and `updated_at` written back)."
    )
    features_table: str = _setting(
        "engineered_feature_values", _IDENTIFIER_RULE,
        "The shared long feature table (this phase's features merged in; created when missing).",
    )

    @field_validator("pipeline_database", "pipeline_schema", "documents_table", "datasets_table", "features_table")
    @classmethod
    def _identifier(cls, value):
        if value is not None and not _IDENTIFIER_RE.match(value):
            raise ValueError("not a SQL name")
        return value


class KnnSettings(_Group):
    """The k-nearest-neighbour search."""

    k_neighbors: StrictInt = _setting(
        30, "a positive integer",
        "Neighbours per dataset in the k-NN graph (cosine, itself excluded; k >= N = all others).",
        start_here=True, ge=1,
    )
    knn_method: Literal["auto", "exact", "ivf", "hnsw"] = _setting(
        "auto", "one of auto, exact, ivf, hnsw",
        "exact (all pairs), ivf (faiss inverted file on a PCA projection, approximate), hnsw (faiss HNSW, "
        "approximate), auto = exact up to knn_exact_max_n datasets, ivf beyond. Approximate recall is measured.",
    )
    knn_exact_max_n: StrictInt = _setting(20000, "a positive integer", "Largest N that auto searches exactly.", ge=1)
    ivf_pca_dims: StrictInt | None = _setting(
        32, "a positive integer or null",
        "Principal components the IVF index starts from (a pilot grows them until recall allows); null = full.",
        ge=1,
    )
    ivf_nlist: StrictInt | None = _setting(
        None, "a positive integer or null", "IVF k-means cells; null = about 4 x sqrt(N).", ge=1
    )
    ivf_nprobe: StrictInt = _setting(
        32, "a positive integer",
        "IVF cells each dataset scans first; the pilot raises it until recall@k reaches knn_min_recall + 0.005.",
        ge=1,
    )
    hnsw_m: StrictInt = _setting(32, "a positive integer", "HNSW links per node.", ge=1)
    hnsw_ef_construction: StrictInt = _setting(80, "a positive integer", "HNSW build-time candidate list.", ge=1)
    hnsw_ef_search: StrictInt = _setting(
        64, "a positive integer", "HNSW query-time candidate list (raised to k_neighbors + 1).", ge=1
    )
    hnsw_pca_dims: StrictInt | None = _setting(
        64, "a positive integer or null",
        "The HNSW index is built on this many principal components if a pilot keeps knn_min_recall; null = full.",
        ge=1,
    )
    knn_recall_sample: StrictInt = _setting(
        1000, "a positive integer", "Datasets whose neighbours are checked against exact search each build.", ge=1
    )
    knn_min_recall: Number = _setting(
        0.95, "a number in [0, 1]",
        "A dbt test warns below this measured recall@k; also the bar of the approximate methods' pilots.",
        ge=0, le=1,
    )


class GraphSettings(_Group):
    """Which k-NN pairs become the graph's edges, and their weights."""

    similarity_threshold: Number | None = _setting(
        None, "null or a number in [-1, 1]", "Fixed edge threshold; overrides threshold_method.", ge=-1, le=1
    )
    threshold_method: Literal["degree_target", "percentile_90", "elbow_method"] = _setting(
        "degree_target", "one of degree_target, percentile_90, elbow_method",
        "degree_target: keep the strongest pairs so the mean degree is target_degree (deterministic); "
        "percentile_90: the 90th percentile of the k-NN similarities; elbow_method: above their largest gap.",
    )
    target_degree: StrictInt = _setting(
        30, "a positive integer", "Mean edges per dataset that degree_target aims for.", ge=1
    )
    min_edges_per_dataset: StrictInt = _setting(
        20, "a non-negative integer",
        "Each dataset also keeps its pairs with its N nearest neighbours whatever the threshold, so no dataset "
        "is stranded and no sparse region shattered; 0 = the threshold alone.",
        ge=0,
    )
    min_edge_similarity: Number = _setting(
        0.0, "a number in [0, 1)",
        "Absolute floor: no edge at or below this similarity; a dataset with no neighbour above it stays "
        "unclustered (no_edge).",
        ge=0, lt=1,
    )
    edge_weight: Literal["cosine", "snn"] = _setting(
        "cosine", "one of snn, cosine",
        "Leiden's edge weight: cosine similarity, or snn = Jaccard overlap of the two datasets' snn_k "
        "nearest-neighbour sets (finer clusters).",
    )
    snn_k: StrictInt = _setting(15, "a positive integer", "Neighbours in each set for edge_weight snn.", ge=1)


class LeidenSettings(_Group):
    """Leiden community detection and the cluster rules."""

    resolution: Number | Literal["auto"] = _setting(
        1.0, "a positive number or auto",
        "Modularity resolution: higher = more, smaller clusters. auto = the most seed-stable of 0.25..8 "
        "(the scan is in the report).",
        start_here=True,
    )
    leiden_backend: Literal["igraph", "leidenalg"] = _setting(
        "igraph", "one of igraph, leidenalg", "igraph's built-in Leiden, or leidenalg (same objective)."
    )
    random_seed: StrictInt = _setting(
        42, "a non-negative integer", "Seeds the Leiden backend's own generator: same inputs + seed = same clusters.",
        ge=0,
    )
    min_cluster_size: StrictInt = _setting(
        2, "a positive integer", "Smallest cluster; smaller communities follow small_clusters.", start_here=True,
        ge=1,
    )
    small_clusters: Literal["attach", "dissolve"] = _setting(
        "attach", "one of attach, dissolve",
        "attach: a too-small community joins the cluster holding most of its edge weight; dissolve: cluster NULL.",
    )
    max_cluster_size: StrictInt | None = _setting(
        None, "null or at least min_cluster_size",
        "Larger clusters are split by Leiden inside them, recursively; null = no cap.", ge=1,
    )
    target_n_clusters: StrictInt | None = _setting(
        None, "a positive integer or null",
        "Search the resolution for this many clusters; an unreachable count stops the build naming the closest.",
        start_here=True, ge=1,
    )
    target_n_clusters_tolerance: Number = _setting(
        0.1, "a positive number", "Relative tolerance of target_n_clusters (at least one cluster).", gt=0
    )

    @field_validator("resolution")
    @classmethod
    def _positive(cls, value):
        if value != "auto" and value <= 0:
            raise ValueError("not positive")
        return value


class LabelSettings(_Group):
    """Labels that survive re-runs, and placing new datasets."""

    stable_labels: StrictBool = _setting(
        True, "true or false",
        "Re-run Leiden from the last clusters (only new and changed datasets free) and keep each matched "
        "cluster's label; false = a fresh Leiden and fresh "
        "labels by size every run (use false while sweeping parameters, so runs are comparable).",
        start_here=True,
    )
    label_min_overlap: Number = _setting(
        0.3, "a number in (0, 1]", "Smallest Jaccard overlap for a cluster to keep a previous label.", gt=0, le=1
    )
    clustering_mode: Literal["full", "place_new"] = _setting(
        "full", "one of full, place_new",
        "full clusters everything; place_new only places datasets new since the last full run.",
    )
    placement_k: StrictInt = _setting(15, "a positive integer", "Clustered neighbours that vote in place_new.", ge=1)
    placement_min_share: Number = _setting(
        0.5, "a number in (0, 1]", "Smallest similarity-weighted share of the winning cluster in place_new.",
        gt=0, le=1,
    )


class TermSettings(_Group):
    """The words that describe each cluster."""

    cluster_top_terms: StrictInt = _setting(
        10, "a positive integer", "Distinctive terms (class-based TF-IDF) per cluster in the clusters mart.", ge=1
    )
    cluster_term_stop_words: list[str] = _setting(
        [],
        "a list of words (strings without commas or control characters)",
        "More words left out of the terms, added to scikit-learn's English stop words and the built-in "
        "data, dataset, datasets, https, http, www, doi, org, com. Frequent words are reduced in any case "
        "(a term's count enters its score as its square root).",
    )

    @field_validator("cluster_term_stop_words")
    @classmethod
    def _words(cls, value):
        if any(not word or "," in word or _CONTROL_RE.search(word) for word in value):
            raise ValueError("bad word")
        return value


class FeatureSettings(_Group):
    """The neighbourhood features written to engineered_feature_values."""

    neighborhood_k: StrictInt = _setting(
        5, "a positive integer", "Neighbours the features are computed over (itself excluded).", ge=1
    )
    reference_collection: str | None = _setting(
        None, _COLLECTION_RULE, "Collection whose items are those neighbours; null = the clustered collection."
    )
    reference_chroma_path: str | None = _setting(
        None, "a path to a Chroma persistent directory (text without control characters) or null",
        "Chroma directory of reference_collection; null = chroma_path.",
    )

    _collection_name = field_validator("reference_collection")(ChromaSettings._collection_name.__func__)
    _plain_path = field_validator("reference_chroma_path")(ChromaSettings._plain_path.__func__)


class RerunSettings(_Group):
    """What a re-run reuses from the last run."""

    incremental: StrictBool = _setting(
        True, "true or false",
        "Re-runs read from Chroma only new datasets and those whose text changed (the rest from "
        "clustering_state.embedding_cache, spot-checked), update the stored k-NN lists and the recall "
        "sample's exact answers for what changed, and run Leiden on the aggregated graph; false = read, search "
        "and cluster everything afresh every run.",
    )
    incremental_max_change_share: Number = _setting(
        0.2, "a number in [0, 1]",
        "Above this share of new, changed and removed datasets a re-run takes the full path.", ge=0, le=1,
    )
    embedding_check_sample: StrictInt = _setting(
        200, "a non-negative integer",
        "Cached embeddings read back from Chroma on every re-run; any difference makes the run read everything.",
        ge=0,
    )
    leiden_full_every: StrictInt = _setting(
        10, "a positive integer",
        "A re-run clusters only what changed (Leiden on the aggregated graph); every this-many runs a full "
        "Leiden also runs and is taken when it beats the re-run by more than leiden_drift_bound. 1 = every run.",
        ge=1,
    )
    leiden_drift_bound: Number = _setting(
        0.01, "a number in (0, 1)",
        "Relative modularity gap that makes a re-run run a full Leiden (below the last full one's) and take it "
        "(when the full one is this much better).",
        gt=0, lt=1,
    )


class ReportSettings(_Group):
    """Where the report goes."""

    report_name: str | None = _setting(
        None, "null or a folder name: 1-100 letters, digits, '.', '_' or '-', starting with a letter or digit",
        "Report folder under reports_root; null = sample for the sample database, else the DuckDB file's "
        "name without its extension.",
    )
    reports_root: str | None = _setting(
        None, "null or a path (text without control characters)",
        "Folder that holds the report folders; null = reports/clustering in the dbt project dbt runs (the host "
        "project when installed as a package), whatever directory dbt is started from. The run's last log "
        "lines name the report's absolute path.",
    )

    figures: StrictBool = _setting(
        True, "true or false",
        "Draw the pictures and the cluster browser on every build (the slowest report step: a t-SNE layout of "
        "at most 50,000 datasets); false = the JSON report and the run history only.",
    )

    _plain_root = field_validator("reports_root")(ChromaSettings._plain_path.__func__)

    @field_validator("report_name")
    @classmethod
    def _folder(cls, value):
        if value is not None and (not _FOLDER_RE.match(value) or ".." in value):
            raise ValueError("not a folder name")
        return value


GROUPS: dict[str, type[_Group]] = {
    "tables": TableSettings,
    "chroma": ChromaSettings,
    "knn": KnnSettings,
    "graph": GraphSettings,
    "leiden": LeidenSettings,
    "labels": LabelSettings,
    "terms": TermSettings,
    "features": FeatureSettings,
    "reruns": RerunSettings,
    "reports": ReportSettings,
}


class Settings(BaseModel):
    """All settings, one object per group (``settings.knn.k_neighbors``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tables: TableSettings = TableSettings()
    chroma: ChromaSettings = ChromaSettings()
    knn: KnnSettings = KnnSettings()
    graph: GraphSettings = GraphSettings()
    leiden: LeidenSettings = LeidenSettings()
    labels: LabelSettings = LabelSettings()
    terms: TermSettings = TermSettings()
    features: FeatureSettings = FeatureSettings()
    reruns: RerunSettings = RerunSettings()
    reports: ReportSettings = ReportSettings()

    @classmethod
    def from_flat(cls, values: Mapping[str, Any]) -> Settings:
        """Settings from flat ``{var name: value}`` (missing ones take their default).

        Raises :class:`~mdc_clustering.errors.ParameterError` naming the first
        bad var and its rule, e.g. ``var 'k_neighbors' must be a positive
        integer; got 0``; an unknown name is refused too.
        """
        owner = {name: group for group, model in GROUPS.items() for name in model.model_fields}
        unknown = sorted(set(values) - set(owner))
        if unknown:
            raise ParameterError(
                f"unknown setting(s) {', '.join(unknown)}: the settings are {', '.join(sorted(owner))}"
            )
        grouped: dict[str, dict[str, Any]] = {group: {} for group in GROUPS}
        for name, value in values.items():
            grouped[owner[name]][name] = value
        groups = {}
        for group, model in GROUPS.items():
            try:
                groups[group] = model(**grouped[group])
            except ValidationError as error:
                name = str(error.errors()[0]["loc"][0])
                rule = model.model_fields[name].json_schema_extra["rule"]
                raise ParameterError(
                    f"var '{name}' must be {rule}; got {json.dumps(grouped[group].get(name))}. "
                    "Fix it in dbt_project.yml or in --vars."
                ) from None
        settings = cls(**groups)
        leiden = settings.leiden
        if leiden.max_cluster_size is not None and leiden.max_cluster_size < leiden.min_cluster_size:
            raise ParameterError(
                f"var 'max_cluster_size' must be null or at least min_cluster_size ({leiden.min_cluster_size}); "
                f"got {leiden.max_cluster_size}. Fix it in dbt_project.yml or in --vars."
            )
        return settings

    @classmethod
    def from_json(cls, text: str) -> Settings:
        """Settings from the flat JSON object the dbt macro ``mdc_settings_json()`` renders."""
        return cls.from_flat(json.loads(text))

    def flat(self) -> dict[str, Any]:
        """``{var name: value}`` of every setting."""
        return {name: value for group in GROUPS for name, value in getattr(self, group).model_dump().items()}


def run_settings(relation) -> Settings:
    """The run's settings from the one-row source ``clustering_state.run_settings`` (a DuckDB relation)."""
    rows = relation.select("settings").fetchall()
    if len(rows) != 1:
        raise ParameterError(
            f"clustering_state.run_settings holds {len(rows)} rows, not one: its on-run-start hook "
            "(register_run_settings) did not run; run the project with dbt build / dbt run"
        )
    return Settings.from_json(rows[0][0])


def setting_fields() -> list[tuple[str, str, Any]]:
    """``(group, name, field info)`` of every setting, in definition order."""
    return [(group, name, info) for group, model in GROUPS.items() for name, info in model.model_fields.items()]


def flat_defaults() -> dict[str, Any]:
    return Settings().flat()


def check_settings(text: str) -> str:
    """The on-run-start check: ``{"settings": {...}, "given": [names passed in --vars], "prefix": ""}``.

    Returns ``'ok'``, or raises :class:`~mdc_clustering.errors.ParameterError`
    naming the first bad setting, or a ``--vars`` name that is a near miss of
    a setting's (a typo would otherwise be ignored silently). Other unknown
    names pass: a host project's own vars share ``--vars``.
    """
    import difflib

    payload = json.loads(text)
    prefix = payload.get("prefix", "")  # "mdc_" when installed as a package in a host project
    names = sorted(prefix + name for name in flat_defaults())
    for given in payload.get("given", []):
        if given not in names:
            close = difflib.get_close_matches(given, names, n=1, cutoff=0.8)
            if close and not (prefix and given == close[0][len(prefix):]):  # a host's own var of that name
                raise ParameterError(
                    f"var '{given}' is not a setting; did you mean '{close[0]}'? Fix it in --vars "
                    "(the settings: README, 'Settings')."
                )
    Settings.from_flat(payload["settings"])
    return "ok"


def settings_problem(text: str) -> str:
    """:func:`check_settings` as the DuckDB function ``mdc_settings_problem``: ``''``, or the error's message.

    Returning the message (instead of raising inside DuckDB, which wraps it
    in "Python exception occurred while executing the UDF") lets the dbt
    macro raise it as it is.
    """
    try:
        check_settings(text)
    except ParameterError as error:
        return str(error)
    return ""


def _shown(value: Any) -> str:
    return "null" if value is None else json.dumps(value) if not isinstance(value, str) else value


def markdown_table() -> str:
    """The settings table of the README and the docs page (group, var, default, meaning)."""
    lines = ["| group | var | default | meaning |", "|---|---|---|---|"]
    for group, name, info in setting_fields():
        star = " **(start here)**" if info.json_schema_extra["start_here"] else ""
        default = _shown(info.default)
        lines.append(f"| {group} | `{name}` | `{default}` | {info.description}{star} |")
    return "\n".join(lines)


def defaults_macro() -> str:
    """``macros/_settings_defaults.sql``: the defaults as a Jinja macro (written by ``--write-macro``)."""
    body = json.dumps(flat_defaults(), separators=(", ", ": ")).replace("\\", "\\\\").replace("'", "\\'")
    return (
        "{#- Written by `python -m mdc_clustering.settings --write-macro` from src/mdc_clustering/settings.py,\n"
        "    the one definition of every setting; do not edit (a test fails when this is stale). -#}\n"
        "{% macro mdc_settings_defaults() -%}\n"
        f"    {{{{ return(fromjson('{body}')) }}}}\n"
        "{%- endmacro %}\n"
    )


TABLE_START, TABLE_END = "<!-- settings:start -->", "<!-- settings:end -->"
DOCUMENTED_IN = ("README.md", "models/_shared__docs.md")


def with_table(text: str) -> str:
    """``text`` with the part between the settings markers replaced by :func:`markdown_table`."""
    if TABLE_START not in text or TABLE_END not in text:
        raise ValueError(f"no {TABLE_START} ... {TABLE_END} block")
    head, rest = text.split(TABLE_START, 1)
    _, tail = rest.split(TABLE_END, 1)
    return f"{head}{TABLE_START}\n{markdown_table()}\n{TABLE_END}{tail}"


def main(argv: list[str] | None = None) -> None:
    import argparse
    from pathlib import Path

    parser = argparse.ArgumentParser(prog="python -m mdc_clustering.settings", description=__doc__.splitlines()[0])
    parser.add_argument("--markdown", action="store_true", help="print the settings table")
    parser.add_argument("--write-macro", type=Path, nargs="?", const=Path("macros/_settings_defaults.sql"))
    parser.add_argument(
        "--write-docs", action="store_true", help=f"rewrite the settings table in {' and '.join(DOCUMENTED_IN)}"
    )
    args = parser.parse_args(argv)
    if args.write_macro:
        args.write_macro.write_text(defaults_macro())
    if args.write_docs:
        for name in DOCUMENTED_IN:
            Path(name).write_text(with_table(Path(name).read_text()))
    if args.markdown or not (args.write_macro or args.write_docs):
        print(markdown_table())


if __name__ == "__main__":
    main()
