{#-
    One row per cluster of this run, readable by a person: its label, size,
    most distinctive terms, the three members nearest its centroid, its
    cohesion, the runs that created and last changed it, and the name a
    person gave it (`dbt run-operation mdc_rename_label`).
-#}
with

memberships as (

    select * from {{ ref('int_datasets_clustered') }}

),

centroid_scores as (

    select * from {{ ref('int_datasets_centroid_scored') }}

),

terms as (

    select * from {{ ref('int_cluster_terms_extracted') }}

),

registry as (

    select * from {{ ref('cluster_label_registry') }}

),

datasets as (

    select * from {{ ref('stg_pipeline__datasets') }}

),

label_names as (

    select * from {{ source('clustering_state', 'cluster_label_names') }}

),

latest_names as (

    select
        label_names.label,
        arg_max(label_names.display_name, label_names.named_at) as display_name,
    from label_names
    group by label_names.label

),

sizes as (

    select
        memberships.cluster,
        any_value(memberships.cluster_number) as cluster_number,
        any_value(memberships.label_status) as label_status,
        count(*) as size,
    from memberships
    where memberships.cluster is not null
    group by memberships.cluster

),

cohesion as (

    select
        centroid_scores.cluster,
        avg(centroid_scores.centroid_similarity) as mean_centroid_similarity,
    from centroid_scores
    group by centroid_scores.cluster

),

ranked_members as (

    select
        centroid_scores.cluster,
        centroid_scores.dataset_id,
        centroid_scores.centroid_similarity,
        array_to_string(list_slice(string_split(regexp_replace(trim(datasets.text), '\s+', ' ', 'g'), ' '), 1, 12), ' ')
            as first_words,
        row_number() over (
            partition by centroid_scores.cluster
            order by centroid_scores.centroid_similarity desc, centroid_scores.dataset_id asc
        ) as member_rank,
    from centroid_scores
    left join datasets
        on centroid_scores.dataset_id = datasets.dataset_id

),

exemplars as (

    select
        ranked_members.cluster,
        list(ranked_members.dataset_id order by ranked_members.member_rank asc) as exemplar_ids,
        list(ranked_members.first_words order by ranked_members.member_rank asc) as exemplar_texts,
    from ranked_members
    where ranked_members.member_rank <= 3
    group by ranked_members.cluster

),

term_lists as (

    select
        terms.cluster,
        list(terms.term order by terms.term_rank asc) as top_terms,
        list(terms.score order by terms.term_rank asc) as top_term_scores,
    from terms
    group by terms.cluster

),

described as (

    select
        sizes.cluster,
        latest_names.display_name,
        sizes.cluster_number,
        sizes.size,
        term_lists.top_terms,
        term_lists.top_term_scores,
        exemplars.exemplar_ids,
        exemplars.exemplar_texts,
        cohesion.mean_centroid_similarity,
        sizes.label_status,
        registry.created_run_id,
        registry.created_at,
        registry.last_changed_run_id,
        registry.last_changed_at,
    from sizes
    left join term_lists on sizes.cluster = term_lists.cluster
    left join exemplars on sizes.cluster = exemplars.cluster
    left join cohesion on sizes.cluster = cohesion.cluster
    left join registry on sizes.cluster = registry.label
    left join latest_names on sizes.cluster = latest_names.label

)

select * from described
