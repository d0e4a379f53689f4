{#-
    Checks every clustering var before any model runs (called from
    on-run-start in dbt_project.yml), so that a bad value stops the build
    with the var's name and the allowed values, before the Chroma pull or the
    k-NN. Vars also reach SQL text only through these checks (numbers are
    rendered with | int / | float), so a hostile value cannot inject SQL.
-#}
{% macro _is_plain_number(value) -%}
    {{ return(value is number and value is not sameas true and value is not sameas false) }}
{%- endmacro %}

{% macro _fail_var(name, value, allowed) -%}
    {{ exceptions.raise_compiler_error(
        "var '" ~ name ~ "' must be " ~ allowed ~ "; got " ~ (value | string | tojson)
        ~ ". Fix it in dbt_project.yml or in --vars."
    ) }}
{%- endmacro %}

{% macro check_positive_int_var(name, allow_null=false) -%}
    {%- set value = var(name) -%}
    {%- if value is none and allow_null -%}
        {{ return(none) }}
    {%- endif -%}
    {%- if not _is_plain_number(value) or value != (value | int) or value < 1 -%}
        {{ _fail_var(name, value, "a positive integer" ~ (" or null" if allow_null else "")) }}
    {%- endif -%}
    {{ return(value | int) }}
{%- endmacro %}

{% macro validate_clustering_vars() -%}
    {%- if execute -%}
        {%- do refuse_jinja_in_vars() -%}  {#- first: reading a var renders it -#}
        {%- set methods = ['degree_target', 'percentile_90', 'elbow_method'] -%}
        {%- if var('threshold_method') not in methods -%}
            {{ _fail_var('threshold_method', var('threshold_method'), "one of " ~ methods | join(', ')) }}
        {%- endif -%}
        {%- set given = var('similarity_threshold') -%}
        {%- if given is not none and (not _is_plain_number(given) or given < -1 or given > 1) -%}
            {{ _fail_var('similarity_threshold', given, "null or a number in [-1, 1]") }}
        {%- endif -%}
        {%- for name in ['k_neighbors', 'target_degree', 'min_cluster_size', 'snn_k', 'chroma_page_size', 'neighborhood_k', 'cluster_top_terms', 'placement_k', 'knn_exact_max_n', 'ivf_nprobe', 'hnsw_m', 'hnsw_ef_construction', 'hnsw_ef_search', 'knn_recall_sample'] -%}
            {%- do check_positive_int_var(name) -%}
        {%- endfor -%}
        {%- set floor = var('min_edges_per_dataset') -%}
        {%- if not _is_plain_number(floor) or floor != (floor | int) or floor < 0 -%}
            {{ _fail_var('min_edges_per_dataset', floor, "a non-negative integer") }}
        {%- endif -%}
        {%- for name in ['max_cluster_size', 'target_n_clusters', 'ivf_pca_dims', 'ivf_nlist', 'hnsw_pca_dims'] -%}
            {%- do check_positive_int_var(name, allow_null=true) -%}
        {%- endfor -%}
        {%- set max_size = var('max_cluster_size') -%}
        {%- if max_size is not none and max_size < var('min_cluster_size') -%}
            {{ _fail_var('max_cluster_size', max_size, "null or at least min_cluster_size (" ~ var('min_cluster_size') ~ ")") }}
        {%- endif -%}
        {%- if var('resolution') != 'auto' and (not _is_plain_number(var('resolution')) or var('resolution') <= 0) -%}
            {{ _fail_var('resolution', var('resolution'), "a positive number or auto") }}
        {%- endif -%}
        {%- if not _is_plain_number(var('target_n_clusters_tolerance')) or var('target_n_clusters_tolerance') <= 0 -%}
            {{ _fail_var('target_n_clusters_tolerance', var('target_n_clusters_tolerance'), "a positive number") }}
        {%- endif -%}
        {%- set floor_similarity = var('min_edge_similarity') -%}
        {%- if not _is_plain_number(floor_similarity) or floor_similarity < 0 or floor_similarity >= 1 -%}
            {{ _fail_var('min_edge_similarity', floor_similarity, "a number in [0, 1)") }}
        {%- endif -%}
        {%- if var('small_clusters') not in ['attach', 'dissolve'] -%}
            {{ _fail_var('small_clusters', var('small_clusters'), "one of attach, dissolve") }}
        {%- endif -%}
        {%- if var('edge_weight') not in ['snn', 'cosine'] -%}
            {{ _fail_var('edge_weight', var('edge_weight'), "one of snn, cosine") }}
        {%- endif -%}
        {%- if var('stable_labels') is not sameas true and var('stable_labels') is not sameas false -%}
            {{ _fail_var('stable_labels', var('stable_labels'), "true or false") }}
        {%- endif -%}
        {%- set overlap = var('label_min_overlap') -%}
        {%- if not _is_plain_number(overlap) or overlap <= 0 or overlap > 1 -%}
            {{ _fail_var('label_min_overlap', overlap, "a number in (0, 1]") }}
        {%- endif -%}
        {%- if var('knn_method') not in ['auto', 'exact', 'ivf', 'hnsw'] -%}
            {{ _fail_var('knn_method', var('knn_method'), "one of auto, exact, ivf, hnsw") }}
        {%- endif -%}
        {%- set min_recall = var('knn_min_recall') -%}
        {%- if not _is_plain_number(min_recall) or min_recall < 0 or min_recall > 1 -%}
            {{ _fail_var('knn_min_recall', min_recall, "a number in [0, 1]") }}
        {%- endif -%}
        {%- if var('leiden_backend') not in ['igraph', 'leidenalg'] -%}
            {{ _fail_var('leiden_backend', var('leiden_backend'), "one of igraph, leidenalg") }}
        {%- endif -%}
        {%- if var('clustering_mode') not in ['full', 'place_new'] -%}
            {{ _fail_var('clustering_mode', var('clustering_mode'), "one of full, place_new") }}
        {%- endif -%}
        {%- set share = var('placement_min_share') -%}
        {%- if not _is_plain_number(share) or share <= 0 or share > 1 -%}
            {{ _fail_var('placement_min_share', share, "a number in (0, 1]") }}
        {%- endif -%}
        {%- set seed = var('random_seed') -%}
        {%- if not _is_plain_number(seed) or seed != (seed | int) or seed < 0 -%}
            {{ _fail_var('random_seed', seed, "a non-negative integer") }}
        {%- endif -%}
        {%- set name_rule = "3-512 characters of letters, digits, '.', '_' or '-', starting and ending with a letter or digit" -%}
        {%- set name_re = '^[A-Za-z0-9][A-Za-z0-9._-]{1,510}[A-Za-z0-9]$' -%}
        {%- set location = chroma_location() -%}  {#- stops here when no store is set for the user's file -#}
        {%- for name, value, origin in [
            ('chroma_collection', location.collection, location.collection_from),
            ('reference_collection', var('reference_collection'), "var 'reference_collection'"),
        ] -%}
            {%- if not (name == 'reference_collection' and value is none) -%}
                {%- if value is not string or not modules.re.match(name_re, value) or '..' in value -%}
                    {%- if origin.startswith('var ') -%}
                        {{ _fail_var(name, value, "a Chroma collection name: " ~ name_rule) }}
                    {%- else -%}
                        {{ exceptions.raise_compiler_error(
                            "The Chroma collection from " ~ origin ~ " must be a Chroma collection name: "
                            ~ name_rule ~ "; got " ~ (value | tojson) ~ "."
                        ) }}
                    {%- endif -%}
                {%- endif -%}
            {%- endif -%}
        {%- endfor -%}
        {%- set min_overlap = var('min_id_overlap') -%}
        {%- if not _is_plain_number(min_overlap) or min_overlap < 0 or min_overlap > 1 -%}
            {{ _fail_var('min_id_overlap', min_overlap, "a number in [0, 1]") }}
        {%- endif -%}
        {%- set report_name = var('report_name') -%}
        {%- if report_name is not none and (report_name is not string
            or not modules.re.match('^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$', report_name) or '..' in report_name) -%}
            {{ _fail_var('report_name', report_name,
                "null or a folder name: 1-100 letters, digits, '.', '_' or '-', starting with a letter or digit") }}
        {%- endif -%}
        {%- if var('invalid_embeddings') not in ['error', 'exclude'] -%}
            {{ _fail_var('invalid_embeddings', var('invalid_embeddings'), "one of error, exclude") }}
        {%- endif -%}
        {%- do validate_path_and_word_vars() -%}
    {%- endif -%}
    select 1 as vars_checked
{%- endmacro %}
