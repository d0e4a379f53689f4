"""Pictures of the run next to the JSON report: similarity distribution, cluster sizes, 2-D map."""

from mdc_clustering.figures import write_figures


def model(dbt, session):
    dbt.config(materialized="table")
    neighbors = dbt.ref("int_dataset_neighbors_searched")
    threshold = dbt.ref("int_similarity_threshold_selected")
    memberships = dbt.ref("int_datasets_clustered")
    embeddings = dbt.ref("stg_chroma__embeddings")
    histogram = neighbors.aggregate(
        "floor(similarity * 100) / 100 as bin_start, floor(similarity * 100) / 100 + 0.01 as bin_end, count(*) as n",
        "floor(similarity * 100)",
    ).order("bin_start").to_arrow_table()
    clusters = memberships.select("dataset_id, cluster").order("dataset_id").to_arrow_table()
    vectors = embeddings.select("dataset_id, embedding").order("dataset_id").to_arrow_table()
    return write_figures(histogram, threshold.to_arrow_table(), clusters, vectors, "reports/clustering")
