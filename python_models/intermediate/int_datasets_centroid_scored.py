"""Each clustered dataset's cosine similarity to its cluster's centroid."""

from mdc_clustering.embeddings import iter_embeddings
from mdc_clustering.tables import centroid_similarities


def model(dbt, session):
    dbt.config(materialized="table")
    embeddings = dbt.ref("stg_chroma__embeddings")
    memberships = dbt.ref("int_datasets_clustered")
    clusters = memberships.select("dataset_id, cluster").to_arrow_table()
    # two streamed passes over the embeddings (centroids, then similarities): the matrix is never held whole
    return centroid_similarities(lambda: iter_embeddings(embeddings, normalize=True), clusters)
