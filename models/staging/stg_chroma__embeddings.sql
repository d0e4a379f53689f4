{#-
    Every embedding of the run, one row per dataset in the Chroma collection:
    the cache (clustering_state.embedding_cache), which the model
    embedding_cache has just brought up to date with what this run read from
    Chroma (stg_chroma__embeddings_pulled), with how this run pulled (the
    same on every row). A view: a re-run that read 1% of the embeddings
    writes those once, into the cache, instead of copying every embedding
    again.
-#}
{{ config(materialized='view') }}

with

cached as (

    select * from {{ ref('embedding_cache') }}

),

planned as (

    select * from {{ ref('stg_chroma__ids') }}

),

pulled as (

    select * from {{ ref('stg_chroma__embeddings_pulled') }}

),

pull as (

    select
        any_value(planned.pull_path) as pull_path,
        any_value(planned.pull_reason) as pull_reason,
        any_value(planned.plan_seconds)
        + coalesce((select max(pulled.read_seconds) from pulled), 0) as pull_seconds,
        (select any_value(pulled.read_method) from pulled) as pull_read_method,
    from planned

),

embeddings as (

    select
        cached.dataset_id,
        cached.dataset_key,
        cached.document_id,
        cached.dataset_type,
        cached.embedding,
        cached.embedding_norm,
        cached.text_md5,
        cached.embedding_hash,
        coalesce(cached.pulled_run_id = '{{ invocation_id }}', false) as pulled,
        pull.pull_path,
        pull.pull_reason,
        pull.pull_seconds,
        pull.pull_read_method,
    from cached
    cross join pull

)

select * from embeddings
