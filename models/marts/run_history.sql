{#-
    One row per run, appended to clustering_state.run_history and never
    rewritten (`full_refresh: false`; the table is created by on-run-start):
    what the run saw and did, so the clustering can be followed over weeks
    of re-runs. `step_seconds` (seconds per model of the run) is filled by
    the on-run-end hook record_step_seconds, when dbt knows them.
    rpt_run_history_drawn draws the trends next to the report.
-#}
{{
    config(
        materialized='incremental',
        schema='clustering_state',
        alias='run_history',
        incremental_strategy='append',
        full_refresh=false,
        tags=['clustering', 'reports'],
    )
}}

with

run_facts as (

    select * from {{ ref('int_clustering_run_summarized') }}

),

knn as (

    select * from {{ ref('int_knn_recall_measured') }}

),

embeddings as (

    select * from {{ ref('stg_chroma__embeddings') }}

),

run_settings as (

    select * from {{ source('clustering_state', 'run_settings') }}

),

pull as (

    select any_value(embeddings.pull_path) as pull_path,
    from embeddings

),

this_run as (

    select
        '{{ invocation_id }}' as run_id,
        cast('{{ run_started_at.strftime("%Y-%m-%d %H:%M:%S") }}' as timestamp) as run_started_at,
        md5(run_settings.settings) as settings_fingerprint,
        '{{ mdc_setting("clustering_mode") }}' as clustering_mode,
        pull.pull_path,
        run_facts.n_datasets,
        run_facts.n_clusters,
        run_facts.n_unclustered,
        run_facts.modularity,
        knn.recall_at_k,
        run_facts.labels_kept,
        run_facts.labels_born,
        run_facts.labels_retired,
        run_facts.clusters_split,
        run_facts.clusters_merged,
        run_facts.share_kept_label,
        cast(null as json) as step_seconds,
    from run_facts
    cross join knn
    cross join run_settings
    cross join pull

)

select * from this_run
