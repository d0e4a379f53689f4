{#-
    Neighbourhood statistics of each dataset over its neighborhood_k nearest
    items of the reference set (itself excluded): mean, max and population
    variance of the cosine similarities to them, and of their embeddings'
    L2 norms.
-#}
with

neighbors as (

    select * from {{ ref('int_reference_neighbors_searched') }}

),

reference as (

    select * from {{ ref('stg_chroma__reference_embeddings') }}

),

joined as (

    select
        neighbors.dataset_id,
        neighbors.similarity,
        reference.embedding_norm as neighbor_norm,
    from neighbors
    inner join reference
        on neighbors.neighbor_id = reference.dataset_id

),

stats as (

    select
        dataset_id,
        count(*) as n_neighbors,
        avg(similarity) as neighbor_similarity_mean,
        max(similarity) as neighbor_similarity_max,
        var_pop(similarity) as neighbor_similarity_var,
        avg(neighbor_norm) as neighbor_norm_mean,
        max(neighbor_norm) as neighbor_norm_max,
        var_pop(neighbor_norm) as neighbor_norm_var,
    from joined
    group by dataset_id

)

select * from stats
