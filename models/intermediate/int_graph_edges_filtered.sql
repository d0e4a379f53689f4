{#-
    The graph Leiden clusters: the undirected k-NN pairs whose similarity is
    at or above the selected threshold. One row per unordered pair
    (source_id < target_id), weight = cosine similarity, no self loops.
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
        pairs.source_id,
        pairs.target_id,
        pairs.similarity as weight,
        pairs.is_mutual,
    from pairs
    cross join threshold
    where pairs.similarity >= threshold.similarity_threshold

)

select * from kept
