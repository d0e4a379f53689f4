"""The notebook call on a matrix gives what `dbt build` gives on the same data."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
from dbt_runner import REPO, Warehouse

from mdc_clustering import ClusteringInputError, ParameterError
from mdc_clustering.api import cluster, place_new

SAMPLE = REPO / "data" / "sample"


def test_one_call_on_the_sample_matrix_gives_the_labels_of_dbt_build(tmp_path):
    embeddings = pq.read_table(SAMPLE / "embeddings.parquet")
    datasets = pq.read_table(SAMPLE / "datasets.parquet")
    text = dict(zip(datasets["dataset_id"].to_pylist(), datasets["text"].to_pylist(), strict=True))
    document = dict(zip(datasets["dataset_id"].to_pylist(), datasets["document_id"].to_pylist(), strict=True))
    ids = embeddings["dataset_id"].to_pylist()
    matrix = np.asarray(embeddings["embedding"].combine_chunks().flatten().to_numpy(), np.float32).reshape(len(ids), -1)

    out = cluster(matrix, ids, [text[i] for i in ids], document_ids=[document[i] for i in ids],
                  workdir=tmp_path / "notebook", figures=True)

    wh = Warehouse(tmp_path / "dbt")
    wh.dbt("build")
    built = dict(wh.query("select dataset_id, cluster from main.datasets"))
    assert out.labels == {i: built[i] for i in ids}
    assert len(set(out.labels.values())) == wh.report["clusters"]["n_clusters"] == out.report["clusters"]["n_clusters"]
    # the clusters table, the features and the pictures come with it
    assert out.clusters.num_rows == out.report["clusters"]["n_clusters"]
    assert set(out.clusters.column_names) >= {"cluster", "size", "top_terms", "exemplar_ids"}
    assert out.features.num_rows == len(ids) * 8  # six neighbourhood + two cluster features, every dataset clustered
    assert {"cluster_map", "cluster_sizes", "knn_similarity_distribution", "cluster_browser"} <= set(out.figures)
    assert all(path.is_file() for path in out.figures.values())


def test_bad_settings_and_inputs_stop_before_anything_runs(tmp_path):
    x = np.random.default_rng(0).normal(size=(20, 8)).astype(np.float32)
    with pytest.raises(ParameterError, match="var 'resolution' must be a positive number or auto"):
        cluster(x, settings={"resolution": -1})
    with pytest.raises(ClusteringInputError, match="3 ids for 20 embeddings"):
        cluster(x, ["a", "b", "c"])
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "file").write_text("x")
    with pytest.raises(ClusteringInputError, match="is not empty"):
        cluster(x, workdir=tmp_path / "used")


def test_without_texts_and_placing_new_datasets_through_the_same_call():
    embeddings = pq.read_table(SAMPLE / "embeddings.parquet").slice(0, 600)
    ids = embeddings["dataset_id"].to_pylist()
    matrix = np.asarray(embeddings["embedding"].combine_chunks().flatten().to_numpy(), np.float32).reshape(len(ids), -1)
    new = set(ids[::20])
    old = [n for n, i in enumerate(ids) if i not in new]
    first = cluster(matrix[old], [ids[n] for n in old])  # no texts: clusters without terms, not an error
    assert first.clusters.num_rows >= 2 and set(first.clusters.column("top_terms").to_pylist()) == {None}
    second = place_new(matrix, ids, first.labels)
    assert all(second.labels[i] == label for i, label in first.labels.items())  # existing memberships kept
    placed = [i for i in new if second.labels[i] is not None]
    assert len(placed) > len(new) / 2 and {second.labels[i] for i in placed} <= set(first.labels.values())


def test_a_wheel_carries_the_dbt_project_and_the_call_runs_from_it(tmp_path):
    """A plain `pip install` (no checkout): the wheel holds the dbt project and cluster() builds from that copy."""
    import subprocess
    import sys
    import zipfile

    from dbt_runner import REPO

    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path / "wheel"), str(REPO)],
        capture_output=True, text=True,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    [wheel] = (tmp_path / "wheel").glob("mdc_clustering-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(tmp_path / "site")
    packaged = tmp_path / "site" / "mdc_clustering" / "dbt_project"
    for name in ("dbt_project.yml", "profiles.yml", "macros/settings.sql", "models/marts/datasets.sql",
                 "python_models/intermediate/int_datasets_clustered.py", "tests/dbt/assert_threshold_has_one_row.sql"):
        assert (packaged / name).is_file(), name
    script = (
        "import json, numpy as np, mdc_clustering.api as api\n"
        "rng = np.random.default_rng(0)\n"
        "x = np.vstack([rng.normal(c, 0.05, (40, 8)) for c in np.eye(8)[:3]]).astype('float32')\n"
        "out = api.cluster(x, quiet=True)\n"
        "print(json.dumps([str(api.project_dir()), [out.labels[i] for i in sorted(out.labels)]]))\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True,
        env={**__import__("os").environ, "PYTHONPATH": str(tmp_path / "site")},
    )
    assert run.returncode == 0, run.stderr[-3000:]
    project, labels = json.loads(run.stdout.strip().splitlines()[-1])
    assert project == str(packaged)
    # three well separated blobs of 40: three clusters, each blob one label
    assert [len(set(labels[i : i + 40])) for i in (0, 40, 80)] == [1, 1, 1] and len(set(labels)) == 3
