{#-
    Upserts this phase's features into the pipeline's shared long table
    (settings pipeline_schema, features_table; default main.engineered_feature_values), in place: the model's rows are the
    features that are new or whose value changed; they are merged on
    (dataset_id, document_id, feature_name), so `created_at` is kept and
    `updated_at` set on update. Rows of other phases' features are never
    touched. The post-hook, in the same transaction, deletes this phase's
    rows that were not computed this run (a dataset that left the
    collection, or a cluster feature of a dataset that is no longer
    clustered). `full_refresh: false`: `--full-refresh` never rebuilds it.
-#}
{{
    config(
        materialized='incremental',
        database=mdc_setting('pipeline_database'),
        schema=mdc_setting('pipeline_schema'),
        alias=mdc_setting('features_table'),
        incremental_strategy='merge',
        unique_key=['dataset_id', 'document_id', 'feature_name'],
        merge_update_columns=['feature_value', 'updated_at'],
        full_refresh=false,
        tags=['features'],
        incremental_predicates=pause_point_merge_predicates('features_merge'),
        post_hook=[
            "{{ pause_point_sql('features_before_delete') }}",
            "
            delete from {{ this }} as stored
            where stored.feature_name in {{ phase_feature_names_sql() }}
                and not exists (
                    select 1 from {{ ref('int_dataset_features_unpivoted') }} as computed
                    where computed.dataset_id = stored.dataset_id
                        and computed.document_id = stored.document_id
                        and computed.feature_name = stored.feature_name
                )
            ",
            "{{ pause_point_sql('features_before_commit') }}",
            {"sql": "{{ pause_point_sql('features_after_commit') }}", "transaction": false},
        ],
    )
}}

with

computed as (

    select * from {{ ref('int_dataset_features_unpivoted') }}

),

stored as (

    select * from {{ ref('stg_pipeline__engineered_feature_values') }}

),

compared as (

    select
        computed.dataset_id,
        computed.document_id,
        computed.feature_name,
        computed.feature_value,
        stored.feature_value as stored_value,
        stored.feature_name is not null as is_stored,
    from computed
    left join stored
        on
            computed.dataset_id = stored.dataset_id
            and computed.document_id = stored.document_id
            and computed.feature_name = stored.feature_name

),

changed as (

    select
        dataset_id,
        document_id,
        feature_name,
        feature_value,
        cast('{{ run_started_at.strftime("%Y-%m-%d %H:%M:%S.%f") }}' as timestamp) as created_at,
        cast('{{ run_started_at.strftime("%Y-%m-%d %H:%M:%S.%f") }}' as timestamp) as updated_at,
    from compared
    where
        not is_stored
        or feature_value is distinct from stored_value

)

select * from changed
