{#-
    The graph Leiden clusters: the undirected k-NN pairs whose similarity is
    at or above the selected threshold, plus (when min_edges_per_dataset > 0)
    each dataset's pairs with its min_edges_per_dataset nearest neighbours
    whatever the threshold. Every edge is above the absolute floor
    min_edge_similarity (Leiden needs positive weights, so the floor is at
    least 0): a dataset with no neighbour above it has no edge. One row per
    unordered pair by dataset_key (source_key < target_key), weight = cosine similarity, no
    self loops.
-#}
with

pairs as (

    select * from {{ ref('int_neighbor_pairs_deduplicated') }}

),

threshold as (

    select * from {{ ref('int_similarity_threshold_selected') }}

),

kept as (

    select
        pairs.source_key,
        pairs.target_key,
        pairs.similarity as weight,
        pairs.is_mutual,
        pairs.similarity < threshold.similarity_threshold as is_below_threshold,
    from pairs
    cross join threshold
    where
        (
            pairs.similarity >= threshold.similarity_threshold
            or pairs.best_rank <= {{ mdc_setting('min_edges_per_dataset') | int }}
        )
        and pairs.similarity > {{ mdc_setting('min_edge_similarity') | float }}

)

select * from kept
