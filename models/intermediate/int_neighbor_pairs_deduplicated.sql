{#-
    The k-NN graph made undirected on purpose: one row per unordered pair
    {a, b} where b is among a's k nearest neighbours or a among b's.
    source_id < target_id; weight rule: the pair's cosine similarity (the two
    directions hold the same value up to float rounding; the larger is kept).
    best_rank: the best rank either dataset gives the other (1 = nearest).
-#}
with

neighbors as (

    select * from {{ ref('int_dataset_neighbors_searched') }}

),

oriented as (

    select
        least(dataset_id, neighbor_id) as source_id,
        greatest(dataset_id, neighbor_id) as target_id,
        similarity,
        neighbor_rank,
    from neighbors
    where dataset_id <> neighbor_id

),

pairs as (

    select
        source_id,
        target_id,
        max(similarity) as similarity,
        count(*) = 2 as is_mutual,
        min(neighbor_rank) as best_rank,
    from oriented
    group by source_id, target_id

)

select * from pairs
