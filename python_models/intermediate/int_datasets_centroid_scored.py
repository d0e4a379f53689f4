"""Each clustered dataset's cosine similarity to its cluster's centroid."""

from mdc_clustering.embeddings import iter_embeddings
from mdc_clustering.tables import centroid_similarities


def model(dbt, session):
    dbt.config(materialized="table")
    embeddings = dbt.ref("stg_chroma__embeddings")
    memberships = dbt.ref("int_datasets_clustered")
    # DuckDB joins each clustered dataset to its embedding: no id lookups in Python
    clustered = memberships.filter("cluster is not null").select("dataset_id as member_id, cluster")
    members = embeddings.join(clustered.set_alias("members"), "dataset_id = member_id").select(
        "dataset_id, embedding, cluster"
    )
    # two streamed passes over the members (centroids, then similarities): the matrix is never held whole
    return centroid_similarities(
        lambda: iter_embeddings(members, normalize=True, columns=("cluster",))
    )
