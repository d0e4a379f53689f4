{#-
    One row: the similarity threshold for the graph, and what it gives.

    - similarity_threshold var set: that value ('given').
    - degree_target: keep the strongest round(target_degree * n_nodes / 2)
      undirected pairs, so that the mean degree 2E/N is about target_degree;
      the threshold is the similarity of the last pair kept (ties at it are
      kept too). All pairs when there are fewer.
    - percentile_90: the 90th percentile (linear interpolation) of the
      directed k-NN similarities.
    - elbow_method: the largest gap between consecutive values of the sorted
      k-NN similarities; the threshold is the value just above the gap (on
      equal gaps, the one at the higher similarity).
-#}
{%- set method = mdc_setting('threshold_method') -%}
{%- set given = mdc_setting('similarity_threshold') -%}
{%- if method not in ['degree_target', 'percentile_90', 'elbow_method'] -%}
    {{ exceptions.raise_compiler_error("var 'threshold_method' must be one of degree_target, percentile_90, elbow_method; got " ~ method) }}
{%- endif -%}

with

neighbors as (

    select * from {{ ref('int_dataset_neighbors_searched') }}

),

pairs as (

    select * from {{ ref('int_neighbor_pairs_deduplicated') }}

),

embeddings as (

    select * from {{ ref('stg_chroma__embeddings') }}

),

graph_size as (

    select
        count(*) as n_nodes,
        (select count(*) from pairs) as n_candidate_pairs,
        cast(round({{ mdc_setting('target_degree') | int }} * count(*) / 2.0) as bigint) as wanted_edges,
    from embeddings

),

strongest_pairs as materialized (

    {#- a top-N sort: the same value as ranking every pair with row_number(), and cheaper (RESULTS.md);
        materialized, as candidates below: computed once, not once per reference -#}
    select pairs.similarity
    from pairs
    order by pairs.similarity desc
    limit (select graph_size.wanted_edges from graph_size)

),

gaps as (

    select
        similarity,
        similarity - lead(similarity) over (order by similarity desc) as gap_below,
    from neighbors

),

largest_gap as (

    select similarity as threshold
    from gaps
    where gap_below is not null
    order by gap_below desc, similarity desc
    limit 1

),

candidates as materialized (

    select
        (select min(strongest_pairs.similarity) from strongest_pairs) as degree_target,
        (select quantile_cont(neighbors.similarity, 0.9) from neighbors) as percentile_90,
        (select largest_gap.threshold from largest_gap) as elbow_method,
    from graph_size

),

chosen as (

    select
        {% if given is not none -%}
        'given' as threshold_method,
        cast({{ given | float }} as double) as similarity_threshold,
        {%- else -%}
            '{{ method }}' as threshold_method,
            cast({{ method }} as double) as similarity_threshold,
        {%- endif %}
    from candidates

),

kept_edges as (

    select count(*) as n_edges
    from pairs
    cross join chosen
    where pairs.similarity >= chosen.similarity_threshold

),

result as (

    select
        chosen.threshold_method,
        chosen.similarity_threshold,
        graph_size.n_nodes,
        graph_size.n_candidate_pairs,
        kept_edges.n_edges,
        2.0 * kept_edges.n_edges / nullif(graph_size.n_nodes, 0) as mean_degree,
        candidates.degree_target as degree_target_threshold,
        candidates.percentile_90 as percentile_90_threshold,
        candidates.elbow_method as elbow_method_threshold,
        {{ mdc_setting('target_degree') | int }} as target_degree,
        {{ mdc_setting('k_neighbors') | int }} as k_neighbors,
    from chosen
    cross join graph_size
    cross join kept_edges
    cross join candidates

)

select * from result
