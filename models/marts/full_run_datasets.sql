{#-
    The datasets the last full run saw, in clustering_state.full_run_datasets
    (read back by the next run as the source clustering_state.full_run_datasets):
    `clustering_mode: place_new` places only datasets that are not here, so a
    dataset that a full run left unclustered on purpose stays unclustered
    until the next full run. A full run replaces the rows (the pre-hook deletes
    those of datasets it no longer sees, in the model's transaction); a
    place_new run writes nothing. `full_refresh: false`: never rebuilt.
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

seen as (

    select
        memberships.dataset_id,
        '{{ invocation_id }}' as run_id,
        cast('{{ run_started_at.strftime("%Y-%m-%d %H:%M:%S") }}' as timestamp) as run_started_at,
        memberships.cluster,
        memberships.unclustered_reason,
    from memberships
    {%- if not full_run %}
    where false
    {%- endif %}

)

select * from seen
