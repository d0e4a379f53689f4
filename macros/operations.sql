{#-
    What users ask for between runs, as `dbt run-operation` (each writes
    only what its name says; none runs a model):

      dbt run-operation mdc_show_settings [--vars '{resolution: 2}']
      dbt run-operation mdc_show_cluster --args '{label: cluster_3, limit: 10}'
      dbt run-operation mdc_retire_label --args '{label: cluster_3}'
      dbt run-operation mdc_rename_label --args '{label: cluster_3, name: "time series"}'

    (installed as a package: prefix the macro with `mdc_clustering.`.)
-#}

{#- The effective value of every setting (vars over defaults), marking the ones that differ from the default. -#}
{% macro mdc_show_settings() -%}
    {%- set defaults = mdc_settings_defaults() -%}
    {%- set values = mdc_settings() -%}
    {%- set lines = ["settings (" ~ ("vars named mdc_<setting>" if project_name != 'mdc_clustering' else "vars")
                     ~ " over the defaults of src/mdc_clustering/settings.py; * = not the default):"] -%}
    {%- for name, value in values.items() -%}
        {%- do lines.append(("* " if value != defaults[name] else "  ") ~ name ~ " = " ~ tojson(value)
                            ~ ("" if value == defaults[name] else "   (default " ~ tojson(defaults[name]) ~ ")")) -%}
    {%- endfor -%}
    {%- do print(lines | join("\n")) -%}
{%- endmacro %}

{#- A label must be a handed-out label of the registry; returns its registry row. -#}
{% macro _mdc_registry_row(label) -%}
    {%- if label is not string or not modules.re.match('^cluster_[0-9]+$', label) -%}
        {{ exceptions.raise_compiler_error(
            "label must be a cluster label such as cluster_3 (see clustering.clusters), got " ~ tojson(label)
            ~ ". Nothing was changed.") }}
    {%- endif -%}
    {%- set found = run_query(
        "select label, status, size from clustering_state.cluster_label_registry where label = '" ~ label ~ "'") -%}
    {%- if found.rows | length == 0 -%}
        {{ exceptions.raise_compiler_error(
            "no label " ~ label ~ " in clustering_state.cluster_label_registry of " ~ target.path
            ~ ". Nothing was changed. The labels in use are in clustering.clusters.") }}
    {%- endif -%}
    {{ return(found.rows[0]) }}
{%- endmacro %}

{#- A cluster's size, name, terms, exemplars and first members (this run's clustering.clusters and datasets). -#}
{% macro mdc_show_cluster(label, limit=10) -%}
    {%- set row = _mdc_registry_row(label) -%}
    {%- set datasets = pipeline_relation('datasets') -%}
    {%- set about = run_query(
        "select size, array_to_string(top_terms[1:8], ', '), array_to_string(exemplar_ids, ', '), display_name from " ~ ref('clusters') ~ " where cluster = '" ~ label ~ "'") -%}
    {%- set members = run_query(
        "select dataset_id, left(regexp_replace(trim(coalesce(text, '')), '\\s+', ' ', 'g'), 80) from " ~ datasets
        ~ " where cluster = '" ~ label ~ "' order by dataset_id limit " ~ (limit | int)) -%}
    {%- set lines = [label ~ " (registry: " ~ row[1] ~ ", last size " ~ row[2] ~ ")"] -%}
    {%- if about.rows -%}
        {%- set r = about.rows[0] -%}
        {%- do lines.append("  name: " ~ (r[3] or "(none; mdc_rename_label gives one)")) -%}
        {%- do lines.append("  size this run: " ~ r[0]) -%}
        {%- do lines.append("  terms: " ~ (r[1] or "(no texts)")) -%}
        {%- do lines.append("  exemplars: " ~ r[2]) -%}
    {%- endif -%}
    {%- do lines.append("  members (first " ~ (limit | int) ~ " by id):") -%}
    {%- for m in members.rows -%}
        {%- do lines.append("    " ~ m[0] ~ "  " ~ m[1]) -%}
    {%- endfor -%}
    {%- do print(lines | join("\n")) -%}
{%- endmacro %}

{#-
    Withdraw a label: the registry marks it `withdrawn` (with this
    operation's time), so no later run hands it out again, not even to the
    cluster that matches it; the next build gives that cluster another label.
    Its datasets keep it until that build. Only the registry row changes.
-#}
{% macro mdc_retire_label(label) -%}
    {%- set row = _mdc_registry_row(label) -%}
    {%- if row[1] == 'withdrawn' -%}
        {%- do print(label ~ " is already withdrawn; nothing was changed.") -%}
        {{ return('') }}
    {%- endif -%}
    {%- do run_query(
        "update clustering_state.cluster_label_registry set status = 'withdrawn', "
        ~ "retired_run_id = coalesce(retired_run_id, '" ~ invocation_id ~ "'), "
        ~ "retired_at = coalesce(retired_at, cast(current_timestamp as timestamp)) "
        ~ "where label = '" ~ label ~ "'") -%}
    {%- do print(label ~ " withdrawn: the next build gives its cluster another label.") -%}
{%- endmacro %}

{#-
    Give a label a name people read (clusters.display_name); the label
    itself, the key in `datasets.cluster`, stays. Every rename is a new row
    of clustering_state.cluster_label_names: the latest is the name, the
    earlier ones its history.
-#}
{% macro mdc_rename_label(label, name) -%}
    {%- set row = _mdc_registry_row(label) -%}
    {%- if name is not string or not name.strip() or name | length > 100
          or modules.re.search('[\\x00-\\x1f\\x7f]', name) -%}
        {{ exceptions.raise_compiler_error(
            "name must be text of 1-100 characters without control characters, got " ~ tojson(name)
            ~ ". Nothing was changed.") }}
    {%- endif -%}
    {%- do run_query(mdc_label_names_ddl() ~ "; insert into clustering_state.cluster_label_names values ('"
        ~ label ~ "', '" ~ (name.strip() | replace("'", "''")) ~ "', cast(current_timestamp as timestamp), '"
        ~ invocation_id ~ "')") -%}
    {%- do print(label ~ " is now named " ~ tojson(name.strip()) ~ " (clusters.display_name from the next build).") -%}
{%- endmacro %}

{% macro mdc_label_names_ddl() -%}
    create schema if not exists clustering_state;
    create table if not exists clustering_state.cluster_label_names (
        label varchar not null,
        display_name varchar not null,
        named_at timestamp not null,
        named_by_run_id varchar
    )
{%- endmacro %}
