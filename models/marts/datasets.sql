{#-
    Writes this run's cluster membership into the pipeline's own `datasets`
    table, in place (settings pipeline_schema, datasets_table; default main.datasets). Only `cluster` and `updated_at` change, and
    only on rows whose cluster changed: the model's rows are exactly those
    changes (key, document and the two changed columns), merged by
    dataset_id; every other column of the table is left as it is. Rows of datasets without an embedding in
    the collection get cluster NULL. `full_refresh: false` keeps a
    `--full-refresh` from rebuilding (and so emptying) the shared table.
    The merge is one transaction: a run killed before its commit leaves the
    table as it was. The pause points (macros/pause_point.sql) render nothing
    unless the crash-safety tests ask for them.
-#}
{{
    config(
        materialized='incremental',
        database=mdc_setting('pipeline_database'),
        schema=mdc_setting('pipeline_schema'),
        alias=mdc_setting('datasets_table'),
        incremental_strategy='merge',
        unique_key='dataset_id',
        merge_update_columns=['cluster', 'updated_at'],
        full_refresh=false,
        tags=['clustering'],
        incremental_predicates=pause_point_merge_predicates('datasets_merge'),
        post_hook=[
            "{{ pause_point_sql('datasets_before_commit') }}",
            {"sql": "{{ pause_point_sql('datasets_after_commit') }}", "transaction": false},
        ],
    )
}}

with

datasets as (

    select * from {{ ref('stg_pipeline__datasets') }}

),

memberships as (

    select * from {{ ref('int_datasets_clustered') }}

),

assigned as (

    select
        datasets.dataset_id,
        datasets.document_id,
        memberships.cluster,
        datasets.cluster as previous_cluster,
        datasets.updated_at as previous_updated_at,
    from datasets
    left join memberships
        on datasets.dataset_id = memberships.dataset_id

),

changed as (

    select
        * exclude (previous_cluster, previous_updated_at),
        cast('{{ run_started_at.strftime("%Y-%m-%d %H:%M:%S.%f") }}' as timestamp) as updated_at,
    from assigned
    where cluster is distinct from previous_cluster

)

select
    dataset_id,
    document_id,
    cluster,
    updated_at,
from changed
