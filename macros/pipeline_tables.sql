{#-
    The data contract: the tables of schema main that this phase reads, the
    columns it reads or writes, and their DuckDB types (any other column is
    allowed and left alone). Defined here once; ensure_pipeline_tables checks
    it, and README.md / the docs landing page list it (a test compares them).
    `engineered_feature_values` may be missing: it is created.
-#}
{% macro pipeline_contract() -%}
    {{ return({
        'documents': [('doi', 'VARCHAR')],
        'datasets': [
            ('dataset_id', 'VARCHAR'),
            ('document_id', 'VARCHAR'),
            ('cluster', 'VARCHAR'),
            ('dataset_type', 'VARCHAR'),
            ('text', 'VARCHAR'),
            ('updated_at', 'TIMESTAMP'),
        ],
        'engineered_feature_values': [
            ('dataset_id', 'VARCHAR'),
            ('document_id', 'VARCHAR'),
            ('feature_name', 'VARCHAR'),
            ('feature_value', 'DOUBLE'),
            ('created_at', 'TIMESTAMP'),
            ('updated_at', 'TIMESTAMP'),
        ],
    }) }}
{%- endmacro %}

{#-
    on-run-start: the pipeline's tables must be there before anything runs.
    `datasets` and `documents` belong to earlier phases: missing, or missing
    a column of the contract, or with a column of another type, the build
    stops naming the DuckDB file and the columns, before anything is written.
    `engineered_feature_values` is created (empty, with its primary key) when
    missing, so the first run of this phase keeps the key that later merges
    rely on.
-#}
{% macro ensure_pipeline_tables() -%}
    {%- if execute and mdc_is_selected() -%}
        {%- set contract = pipeline_contract() -%}
        {%- set found_columns = run_query(
            "select table_name, column_name, data_type from information_schema.columns "
            ~ "where table_schema = 'main' and table_catalog = current_database() "
            ~ "and table_name in ('datasets', 'documents', 'engineered_feature_values')"
        ) -%}
        {%- set have = {} -%}
        {%- for row in found_columns.rows -%}
            {%- do have.setdefault(row[0], {}).update({row[1] | lower: row[2] | upper}) -%}
        {%- endfor -%}
        {%- for name in ['datasets', 'documents'] -%}
            {%- if name not in have -%}
                {{ exceptions.raise_compiler_error(
                    "The pipeline database " ~ target.path ~ " has no table main." ~ name
                    ~ ". Point the environment variable MDC_DUCKDB_PATH at the pipeline's DuckDB file, "
                    ~ "or, for the project's own sample, run bash scripts/build.sh (it loads the sample into data/ only)."
                ) }}
            {%- endif -%}
        {%- endfor -%}
        {%- for name, columns in contract.items() if name in have -%}
            {%- set wrong = [] -%}
            {%- for column, type in columns -%}
                {%- set got = have[name].get(column) -%}
                {%- if got != type -%}
                    {%- do wrong.append(column ~ " " ~ type ~ " (" ~ ("missing" if got is none else "is " ~ got) ~ ")") -%}
                {%- endif -%}
            {%- endfor -%}
            {%- if wrong -%}
                {{ exceptions.raise_compiler_error(
                    "The table main." ~ name ~ " of the pipeline database " ~ target.path
                    ~ " does not follow the data contract: it needs " ~ wrong | join(', ')
                    ~ ". Nothing was written. The contract (README, 'Run it on your own pipeline') lists every table "
                    ~ "and column this phase reads, with its type."
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
