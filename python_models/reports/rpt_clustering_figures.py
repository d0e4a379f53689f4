"""Pictures of the run next to the JSON report: similarity distribution, cluster sizes, 2-D map, cluster browser.

They go to this pipeline's report folder (rpt_clustering_report_folder), created here when missing.
"""

from pathlib import Path

import pyarrow as pa

from mdc_clustering.embeddings import read_embeddings
from mdc_clustering.figures import MAP_POINTS, MIN_DRAWN_PER_CLUSTER, write_figures
from mdc_clustering.settings import run_settings


def model(dbt, session):
    dbt.config(materialized="table")
    neighbors = dbt.ref("int_dataset_neighbors_searched")
    threshold = dbt.ref("int_similarity_threshold_selected")
    memberships = dbt.ref("int_datasets_clustered")
    clusters = dbt.ref("clusters")
    datasets = dbt.ref("stg_pipeline__datasets")
    embeddings = dbt.ref("stg_chroma__embeddings")
    folder = dbt.ref("rpt_clustering_report_folder")
    run = dbt.source("clustering_state", "run_settings")
    [(report_dir,)] = folder.select("report_dir").fetchall()
    if not run_settings(run).reports.figures:  # the folder still, for the JSON report
        Path(report_dir).mkdir(parents=True, exist_ok=True)
        return pa.table({"figure": pa.array([], pa.string()), "path": pa.array([], pa.string()),
                         "n_points": pa.array([], pa.int64())})
    histogram = neighbors.aggregate(
        "floor(similarity * 100) / 100 as bin_start, floor(similarity * 100) / 100 + 0.01 as bin_end, count(*) as n",
        "floor(similarity * 100)",
    ).order("bin_start").to_arrow_table()
    members = memberships.select("dataset_id, cluster, unclustered_reason").order("dataset_id").to_arrow_table()
    # The map and the browser draw about MAP_POINTS datasets: each cluster (and the unclustered) its share,
    # at least MIN_DRAWN_PER_CLUSTER, a fixed pseudo-random choice (by hash) inside each.
    n = members.num_rows
    drawn = memberships.select(
        "dataset_id, count(*) over (partition by cluster) as group_size, "
        "row_number() over (partition by cluster order by hash(dataset_id), dataset_id) as pick"
    ).filter(f"pick <= greatest({MIN_DRAWN_PER_CLUSTER}, ceil(group_size * {MAP_POINTS} / {max(n, 1)}))")
    drawn_ids = drawn.select("dataset_id")
    drawn_embeddings = embeddings.join(drawn_ids, "dataset_id")
    texts = datasets.join(drawn_ids, "dataset_id").select(
        "dataset_id, array_to_string(list_slice(string_split("
        "regexp_replace(trim(coalesce(text, '')), '\\s+', ' ', 'g'), ' '), 1, 14), ' ') as first_words"
    ).to_arrow_table()
    cluster_table = clusters.select(
        "cluster, size, top_terms, exemplar_ids, exemplar_texts, display_name"
    ).to_arrow_table()
    return write_figures(
        histogram, threshold.to_arrow_table(), members, read_embeddings(drawn_embeddings), report_dir,
        clusters=cluster_table, texts=texts, title=f"Clusters of {report_dir.rstrip('/').split('/')[-1]}",
    )
