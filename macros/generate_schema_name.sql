{#-
    A model with `+schema: main` is written to schema `main` itself (where the
    pipeline's shared tables live), not to `<target schema>_main` as dbt's
    default would do. Models without a custom schema go to the profile's
    schema (`clustering`).
-#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
