{#-
    The settings, as the dbt side reads them. Every setting (its type,
    default, bounds, description) is defined once, in
    src/mdc_clustering/settings.py; its defaults reach Jinja through the
    generated macro mdc_settings_defaults() (macros/_settings_defaults.sql).
    A setting is a dbt var of the same name: --vars or the vars of
    dbt_project.yml override the default.

    - mdc_setting(name): one value (the var, else the default).
    - mdc_settings_json(): every value as one flat JSON object, the config
      value the Python models parse (mdc_clustering.settings.Settings).
    - validate_settings(): on-run-start, before anything is written: refuses
      Jinja in --vars (reading a var renders it), resolves the Chroma store
      (chroma_location), then has the settings module validate every value
      through the DuckDB function mdc_settings_problem (registered by the
      profile's mdc_clustering.pipeline_guard plugin). A bad value stops the
      build naming the var and the allowed values; so does a --vars name
      that is a near miss of a setting's.
-#}
{% macro mdc_var_name(name) -%}
    {#- standalone (this repo is the root project): the setting's own name; installed as a package in a
        host project: mdc_<name>, because dbt gives the host's own vars precedence over a package's
        (a host's `resolution` would otherwise leak in) -#}
    {{ return(name if project_name == 'mdc_clustering' else 'mdc_' ~ name) }}
{%- endmacro %}

{% macro mdc_setting(name) -%}
    {%- set defaults = mdc_settings_defaults() -%}
    {%- if name not in defaults -%}
        {{ exceptions.raise_compiler_error("mdc_setting: no setting named '" ~ name ~ "'") }}
    {%- endif -%}
    {{ return(var(mdc_var_name(name), defaults[name])) }}
{%- endmacro %}

{% macro mdc_settings() -%}
    {%- set values = {} -%}
    {%- for name, default in mdc_settings_defaults().items() -%}
        {%- do values.update({name: var(mdc_var_name(name), default)}) -%}
    {%- endfor -%}
    {{ return(values) }}
{%- endmacro %}

{% macro mdc_settings_json() -%}
    {{ return(tojson(mdc_settings())) }}
{%- endmacro %}

{% macro validate_settings() -%}
    {%- if execute and mdc_is_selected() -%}
        {%- do refuse_jinja_in_vars() -%}  {#- first: reading a var renders it -#}
        {%- do chroma_location() -%}  {#- stops here when no store is set for the user's file -#}
        {%- do validate_chroma_location() -%}
        {%- set given = invocation_args_dict.get('vars') or {} -%}
        {%- if given is string -%}
            {%- set given = fromyaml(given) or {} -%}
        {%- endif -%}
        {%- set payload = tojson({
            'settings': mdc_settings(), 'given': given.keys() | list,
            'prefix': '' if project_name == 'mdc_clustering' else 'mdc_',
        }) -%}
        {%- set registered = run_query(
            "select count(*) from duckdb_functions() where function_name = 'mdc_settings_problem'"
        ).columns[0].values()[0] -%}
        {%- if registered == 0 -%}
            {{ exceptions.raise_compiler_error(
                "The settings check mdc_settings_problem is not registered: the dbt profile must load the plugin "
                ~ "mdc_clustering.pipeline_guard (plugins: [{module: mdc_clustering.pipeline_guard}] under the "
                ~ "duckdb output, as this project's profiles.yml does)."
            ) }}
        {%- endif -%}
        {#- run while the hook is compiled: a failure then stops the whole invocation, as a compile error
            does, before any hook or model runs (a hook that fails when it runs does not stop the models) -#}
        {%- set problem = run_query(
            "select mdc_settings_problem('" ~ (payload | replace("'", "''")) ~ "')"
        ).columns[0].values()[0] -%}
        {%- if problem -%}
            {{ exceptions.raise_compiler_error(problem) }}
        {%- endif -%}
    {%- endif -%}
    select 1 as settings_checked
{%- endmacro %}

{#-
    on-run-start, after validate_settings: the run's settings as one JSON
    object in clustering_state.run_settings (one row, rewritten every run),
    the source the Python models read them from (YAML configs cannot call
    macros, and one object keeps every model on the same values).
-#}
{% macro register_run_settings() -%}
    {%- if not mdc_is_selected() -%}
        {{ return('select 1 as nothing_selected') }}
    {%- endif %}
    create schema if not exists clustering_state;
    create or replace table clustering_state.run_settings as
    select
        '{{ invocation_id }}' as invocation_id,
        cast('{{ run_started_at.strftime("%Y-%m-%d %H:%M:%S") }}' as timestamp) as run_started_at,
        '{{ mdc_settings_json() | replace("'", "''") }}' as settings
{%- endmacro %}

{#-
    Whether this invocation selected anything of this project (a model,
    test, seed or source of the package mdc_clustering). The on-run-start
    hooks do nothing otherwise, so a host project that installs this as a
    package runs its own models without this phase's checks or writes.
-#}
{% macro mdc_is_selected() -%}
    {%- for unique_id in selected_resources or [] -%}
        {%- if unique_id.split('.')[1] == 'mdc_clustering' -%}
            {{ return(true) }}
        {%- endif -%}
    {%- endfor -%}
    {{ return(false) }}
{%- endmacro %}
