{#-
    The label registry: one row per cluster label ever handed out, in
    clustering_state.cluster_label_registry (read back by the next run as the
    source clustering_state.cluster_label_registry, so retired label numbers
    are never reused). Merged by label; created_* are written once;
    last_changed_* move when the label's member set changed; a label no
    longer in use is marked retired. `full_refresh: false`: never rebuilt.
    Writes nothing when `stable_labels` is false.
-#}
{{
    config(
        materialized='incremental',
        schema='clustering_state',
        alias='cluster_label_registry',
        incremental_strategy='merge',
        unique_key='label',
        merge_update_columns=[
            'last_changed_run_id', 'last_changed_at', 'last_seen_run_id', 'last_seen_at',
            'retired_run_id', 'retired_at', 'size', 'status',
        ],
        full_refresh=false,
        tags=['clustering'],
    )
}}

{%- set run_at = "cast('" ~ run_started_at.strftime("%Y-%m-%d %H:%M:%S.%f") ~ "' as timestamp)" %}

with

memberships as (

    select * from {{ ref('int_datasets_clustered') }}

),

datasets as (

    select * from {{ ref('stg_pipeline__datasets') }}

),

registry as (

    select * from {{ source('clustering_state', 'cluster_label_registry') }}

),

membership_changes as (

    select
        datasets.cluster as previous_label,
        memberships.cluster as new_label,
    from datasets
    full outer join memberships
        on datasets.dataset_id = memberships.dataset_id
    where datasets.cluster is distinct from memberships.cluster

),

changed_labels as (

    select membership_changes.previous_label as label
    from membership_changes
    where membership_changes.previous_label is not null
    union
    select membership_changes.new_label as label
    from membership_changes
    where membership_changes.new_label is not null

),

current_clusters as (

    select
        memberships.cluster as label,
        count(*) as size,
    from memberships
    where memberships.cluster is not null
    group by memberships.cluster

),

active as (

    select
        current_clusters.label,
        try_cast(nullif(regexp_extract(current_clusters.label, '^cluster_(\d+)$', 1), '') as bigint)
            as label_number,
        '{{ invocation_id }}' as created_run_id,
        {{ run_at }} as created_at,
        case
            when registry.label is null or changed_labels.label is not null or registry.status = 'retired'
                then '{{ invocation_id }}'
            else registry.last_changed_run_id
        end as last_changed_run_id,
        case
            when registry.label is null or changed_labels.label is not null or registry.status = 'retired'
                then {{ run_at }}
            else registry.last_changed_at
        end as last_changed_at,
        '{{ invocation_id }}' as last_seen_run_id,
        {{ run_at }} as last_seen_at,
        cast(null as varchar) as retired_run_id,
        cast(null as timestamp) as retired_at,
        current_clusters.size,
        'active' as status,
    from current_clusters
    left join registry
        on current_clusters.label = registry.label
    left join changed_labels
        on current_clusters.label = changed_labels.label

),

retired as (

    select
        registry.label,
        registry.label_number,
        registry.created_run_id,
        registry.created_at,
        '{{ invocation_id }}' as last_changed_run_id,
        {{ run_at }} as last_changed_at,
        registry.last_seen_run_id,
        registry.last_seen_at,
        '{{ invocation_id }}' as retired_run_id,
        {{ run_at }} as retired_at,
        registry.size,
        'retired' as status,
    from registry
    anti join current_clusters
        on registry.label = current_clusters.label
    where registry.status = 'active'

),

all_rows as (

    select * from active
    union all
    select * from retired

)

select * from all_rows
{%- if not mdc_setting('stable_labels') %}
where false
{%- endif %}
