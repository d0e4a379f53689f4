"""Pictures of the run next to the JSON report: similarity distribution, cluster sizes, 2-D map.

They go to this pipeline's report folder (rpt_clustering_report_folder), created here when missing.
"""

from mdc_clustering.embeddings import read_embeddings
from mdc_clustering.figures import MAP_POINTS, write_figures


def model(dbt, session):
    dbt.config(materialized="table")
    neighbors = dbt.ref("int_dataset_neighbors_searched")
    threshold = dbt.ref("int_similarity_threshold_selected")
    memberships = dbt.ref("int_datasets_clustered")
    embeddings = dbt.ref("stg_chroma__embeddings")
    folder = dbt.ref("rpt_clustering_report_folder")
    [(report_dir,)] = folder.select("report_dir").fetchall()
    histogram = neighbors.aggregate(
        "floor(similarity * 100) / 100 as bin_start, floor(similarity * 100) / 100 + 0.01 as bin_end, count(*) as n",
        "floor(similarity * 100)",
    ).order("bin_start").to_arrow_table()
    clusters = memberships.select("dataset_id, cluster").order("dataset_id").to_arrow_table()
    # The map draws at most MAP_POINTS datasets: read only a fixed pseudo-random share of that size.
    n = clusters.num_rows
    drawn = embeddings if n <= MAP_POINTS else embeddings.filter(f"hash(dataset_id) % {n} < {MAP_POINTS}")
    return write_figures(histogram, threshold.to_arrow_table(), clusters, read_embeddings(drawn), report_dir)
