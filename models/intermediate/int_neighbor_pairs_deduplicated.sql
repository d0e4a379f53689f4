{#-
    The k-NN graph made undirected on purpose: one row per unordered pair
    {a, b} where b is among a's k nearest neighbours or a among b's.
    Pairs name datasets by dataset_key (integers group several times faster
    than the string ids): source_key < target_key; weight rule: the pair's cosine similarity (the two
    directions hold the same value up to float rounding; the larger is kept).
    best_rank: the best rank either dataset gives the other (1 = nearest).
-#}
with

neighbors as (

    select * from {{ ref('int_dataset_neighbors_searched') }}

),

oriented as (

    select
        least(dataset_key, neighbor_key) as source_key,
        greatest(dataset_key, neighbor_key) as target_key,
        similarity,
        neighbor_rank,
    from neighbors
    where dataset_key <> neighbor_key

),

pairs as (

    select
        source_key,
        target_key,
        max(similarity) as similarity,
        count(*) = 2 as is_mutual,
        min(neighbor_rank) as best_rank,
    from oriented
    group by source_key, target_key

)

select * from pairs
