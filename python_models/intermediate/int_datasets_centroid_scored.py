"""Each clustered dataset's cosine similarity to its cluster's centroid."""

from mdc_clustering.embeddings import read_embeddings
from mdc_clustering.tables import centroid_similarities


def model(dbt, session):
    dbt.config(materialized="table")
    embeddings = dbt.ref("stg_chroma__embeddings")
    memberships = dbt.ref("int_datasets_clustered")
    unit_rows = read_embeddings(embeddings, normalize=True)
    clusters = memberships.select("dataset_id, cluster").to_arrow_table()
    return centroid_similarities(unit_rows, clusters)
