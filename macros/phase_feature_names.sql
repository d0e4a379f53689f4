{#- The feature names this phase owns in engineered_feature_values (and only these it ever changes). -#}
{% macro phase_feature_names() -%}
    {{ return([
        'neighbor_similarity_mean',
        'neighbor_similarity_max',
        'neighbor_similarity_var',
        'neighbor_norm_mean',
        'neighbor_norm_max',
        'neighbor_norm_var',
        'cluster_size',
        'cluster_centroid_similarity',
    ]) }}
{%- endmacro %}

{% macro phase_feature_names_sql() -%}
    ({% for name in phase_feature_names() %}'{{ name }}'{{ ", " if not loop.last }}{% endfor %})
{%- endmacro %}
