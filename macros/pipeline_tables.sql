{#-
    The data contract: the pipeline's tables that this phase reads, the
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
    Where a pipeline table is (settings group tables): pipeline_relation('datasets')
    is the Relation of the datasets table, pipeline_table_sql('datasets') its
    quoted name for SQL. The logical names are those of pipeline_contract().
-#}
{% macro pipeline_relation(name) -%}
    {%- set setting = {'documents': 'documents_table', 'datasets': 'datasets_table',
                       'engineered_feature_values': 'features_table'}[name] -%}
    {{ return(api.Relation.create(
        database=mdc_setting('pipeline_database') or target.database,
        schema=mdc_setting('pipeline_schema'),
        identifier=mdc_setting(setting),
        type='table',
    )) }}
{%- endmacro %}

{#- how a message names a table: schema.table, with the database in front when it is not the profile's -#}
{% macro pipeline_table_label(relation) -%}
    {{ return(('' if relation.database == target.database else relation.database ~ '.')
              ~ relation.schema ~ '.' ~ relation.identifier) }}
{%- endmacro %}

{#-
    on-run-start: the pipeline's tables must be there before anything runs.
    `datasets` and `documents` belong to earlier phases: missing, or missing
    a column of the contract, or with a column of another type, the build
    stops naming the DuckDB file and the columns, before anything is written.
    `engineered_feature_values` is created (empty, with its primary key) when
    missing, so the first run of this phase keeps the key that later merges
    rely on. First of all, the sources this project reads and the models
    that write back must name the tables the settings name
    (pipeline_locations_agree).
-#}
{% macro ensure_pipeline_tables() -%}
    {%- if execute and mdc_is_selected() -%}
        {%- do pipeline_locations_agree() -%}
        {%- set contract = pipeline_contract() -%}
        {%- set relations = {} -%}
        {%- for name in contract -%}
            {%- do relations.update({name: pipeline_relation(name)}) -%}
        {%- endfor -%}
        {%- set database = relations['datasets'].database -%}
        {%- set schema = relations['datasets'].schema -%}
        {%- set found_columns = run_query(
            "select table_name, column_name, data_type from information_schema.columns "
            ~ "where table_catalog = '" ~ database ~ "' and table_schema = '" ~ schema ~ "'"
        ) -%}
        {%- set have = {} -%}
        {%- for row in found_columns.rows -%}
            {%- do have.setdefault(row[0], {}).update({row[1] | lower: row[2] | upper}) -%}
        {%- endfor -%}
        {%- for name in ['datasets', 'documents'] -%}
            {%- if relations[name].identifier not in have -%}
                {{ exceptions.raise_compiler_error(
                    "The pipeline database " ~ target.path ~ " has no table " ~ pipeline_table_label(relations[name])
                    ~ ". Point the environment variable MDC_DUCKDB_PATH at the pipeline's DuckDB file "
                    ~ "(or set the settings pipeline_schema / " ~ name ~ "_table to where the table is), "
                    ~ "or, for the project's own sample, run bash scripts/build.sh (it loads the sample into data/ only)."
                ) }}
            {%- endif -%}
        {%- endfor -%}
        {%- for name, columns in contract.items() if relations[name].identifier in have -%}
            {%- set wrong = [] -%}
            {%- for column, type in columns -%}
                {%- set got = have[relations[name].identifier].get(column) -%}
                {%- if got != type -%}
                    {%- do wrong.append(column ~ " " ~ type ~ " (" ~ ("missing" if got is none else "is " ~ got) ~ ")") -%}
                {%- endif -%}
            {%- endfor -%}
            {%- if wrong -%}
                {{ exceptions.raise_compiler_error(
                    "The table " ~ pipeline_table_label(relations[name]) ~ " of the pipeline database " ~ target.path
                    ~ " does not follow the data contract: it needs " ~ wrong | join(', ')
                    ~ ". Nothing was written. The contract (README, 'Run it on your own pipeline') lists every table "
                    ~ "and column this phase reads, with its type."
                ) }}
            {%- endif -%}
        {%- endfor -%}
        {%- do run_query("
            create table if not exists " ~ relations['engineered_feature_values'] ~ " (
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
            " ~ mdc_label_names_ddl() ~ ";
            create table if not exists clustering_state.run_history (
                run_id varchar primary key,
                run_started_at timestamp,
                settings_fingerprint varchar,
                clustering_mode varchar,
                pull_path varchar,
                n_datasets bigint,
                n_clusters bigint,
                n_unclustered bigint,
                modularity double,
                recall_at_k double,
                labels_kept bigint,
                labels_born bigint,
                labels_retired bigint,
                clusters_split bigint,
                clusters_merged bigint,
                share_kept_label double,
                step_seconds json
            );
            create table if not exists clustering_state.full_run_datasets (
                dataset_id varchar primary key,
                run_id varchar,
                run_started_at timestamp,
                cluster varchar,
                unclustered_reason varchar
            )
        ") -%}
        {%- for state_table in ['full_run_datasets', 'run_history', 'cluster_label_names'] -%}
            {%- do adapter.cache_added(api.Relation.create(
                database=target.database, schema='clustering_state', identifier=state_table, type='table'
            )) -%}
        {%- endfor -%}
        {%- do adapter.cache_added(api.Relation.create(
            database=target.database, schema='clustering_state', identifier='cluster_label_registry', type='table'
        )) -%}
        {#- dbt listed the relations before this hook ran: tell its cache the table exists now,
            so the incremental model merges into it instead of re-creating it (without a key). -#}
        {%- do adapter.cache_added(relations['engineered_feature_values']) -%}
    {%- endif -%}
    select 1 as pipeline_tables_checked
{%- endmacro %}

{#-
    The sources (models/staging/_staging__sources.yml, which can only read
    vars) must name the tables the settings name, where the write-back
    models `datasets` and `engineered_feature_values` write (their config
    calls mdc_setting; dbt applies this package's own generate_schema_name
    to its models even when installed in a host, so a host's cannot move
    them). The two can disagree when a host project's own var shares a
    setting's plain name: the build then stops before anything is written,
    instead of reading one table and writing another.
-#}
{% macro pipeline_locations_agree() -%}
    {%- set problems = [] -%}
    {%- for node in graph.sources.values() if node.package_name == 'mdc_clustering' and node.source_name == 'pipeline' -%}
        {%- set wanted = pipeline_relation(node.name) -%}
        {%- set got = api.Relation.create(database=node.database, schema=node.schema, identifier=node.identifier) -%}
        {%- if got | string != wanted | string -%}
            {%- do problems.append("source('pipeline', '" ~ node.name ~ "') reads " ~ pipeline_table_label(got) ~ " but the settings name "
                ~ pipeline_table_label(wanted)
                ~ " (a var of the host project with a setting's plain name? set mdc_<setting> instead)") -%}
        {%- endif -%}
    {%- endfor -%}
    {%- if problems -%}
        {{ exceptions.raise_compiler_error(
            "The pipeline's tables are not where the settings say; nothing was written: " ~ problems | join('; ') ~ "."
        ) }}
    {%- endif -%}
{%- endmacro %}
