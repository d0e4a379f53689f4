{#-
    The datasets the last full run saw, in clustering_state.full_run_datasets
    (read back by the next run as the source clustering_state.full_run_datasets):
    `clustering_mode: place_new` places only datasets that are not here, so a
    dataset that a full run left unclustered on purpose stays unclustered
    until the next full run. A full run writes the rows that are new or whose
    cluster or reason changed (`run_id`: the full run that last wrote the
    row) and the pre-hook deletes those of datasets it no longer sees, in the
    model's transaction; a place_new run writes nothing. `full_refresh: false`: never rebuilt.
-#}
{%- set full_run = mdc_setting('clustering_mode') == 'full' %}
{{
    config(
        materialized='incremental',
        schema='clustering_state',
        alias='full_run_datasets',
        incremental_strategy='merge',
        unique_key='dataset_id',
        full_refresh=false,
        tags=['clustering'],
        pre_hook=(
            "delete from {{ this }} where dataset_id not in (select dataset_id from "
            ~ "{{ ref('int_datasets_clustered') }})"
        ) if full_run else [],
    )
}}

with

memberships as (

    select * from {{ ref('int_datasets_clustered') }}

),

stored as (

    select * from {{ source('clustering_state', 'full_run_datasets') }}

),

seen as (

    {# only rows that are new or whose cluster or reason changed: a re-run writes what changed #}
    select
        memberships.dataset_id,
        '{{ invocation_id }}' as run_id,
        cast('{{ run_started_at.strftime("%Y-%m-%d %H:%M:%S") }}' as timestamp) as run_started_at,
        memberships.cluster,
        memberships.unclustered_reason,
    from memberships
    left join stored
        on memberships.dataset_id = stored.dataset_id
    where
        {{ 'true' if full_run else 'false' }}
        and (
            stored.dataset_id is null
            or stored.cluster is distinct from memberships.cluster
            or stored.unclustered_reason is distinct from memberships.unclustered_reason
        )

)

select * from seen
