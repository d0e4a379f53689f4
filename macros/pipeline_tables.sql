{#-
    on-run-start: the pipeline's tables must be there before anything runs.
    `datasets` and `documents` belong to earlier phases: missing, the build
    stops naming the DuckDB file. `engineered_feature_values` is created
    (empty, with its primary key) when missing, so the first run of this
    phase keeps the key that later merges rely on.
-#}
{% macro ensure_pipeline_tables() -%}
    {%- if execute -%}
        {%- set found = run_query(
            "select table_name from information_schema.tables "
            ~ "where table_schema = 'main' and table_catalog = current_database() "
            ~ "and table_name in ('datasets', 'documents')"
        ).columns[0].values() -%}
        {%- for name in ['datasets', 'documents'] -%}
            {%- if name not in found -%}
                {{ exceptions.raise_compiler_error(
                    "The pipeline database " ~ target.path ~ " has no table main." ~ name
                    ~ ". Point the environment variable MDC_DUCKDB_PATH at the pipeline's DuckDB file, "
                    ~ "or create the embedded sample with: .venv/bin/python -m mdc_clustering.sample"
                ) }}
            {%- endif -%}
        {%- endfor -%}
        {%- do run_query("
            create table if not exists main.engineered_feature_values (
                dataset_id varchar not null,
                document_id varchar not null,
                feature_name varchar not null,
                feature_value double,
                created_at timestamp,
                updated_at timestamp,
                primary key (dataset_id, document_id, feature_name)
            )
        ") -%}
        {%- do run_query("
            create schema if not exists clustering_state;
            create table if not exists clustering_state.cluster_label_registry (
                label varchar primary key,
                label_number bigint,
                created_run_id varchar,
                created_at timestamp,
                last_changed_run_id varchar,
                last_changed_at timestamp,
                last_seen_run_id varchar,
                last_seen_at timestamp,
                retired_run_id varchar,
                retired_at timestamp,
                size bigint,
                status varchar
            );
            create table if not exists clustering_state.full_run_datasets (
                dataset_id varchar primary key,
                run_id varchar,
                run_started_at timestamp,
                cluster varchar,
                unclustered_reason varchar
            )
        ") -%}
        {%- do adapter.cache_added(api.Relation.create(
            database=target.database, schema='clustering_state', identifier='full_run_datasets', type='table'
        )) -%}
        {%- do adapter.cache_added(api.Relation.create(
            database=target.database, schema='clustering_state', identifier='cluster_label_registry', type='table'
        )) -%}
        {#- dbt listed the relations before this hook ran: tell its cache the table exists now,
            so the incremental model merges into it instead of re-creating it (without a key). -#}
        {%- do adapter.cache_added(api.Relation.create(
            database=target.database, schema='main', identifier='engineered_feature_values', type='table'
        )) -%}
    {%- endif -%}
    select 1 as pipeline_tables_checked
{%- endmacro %}
