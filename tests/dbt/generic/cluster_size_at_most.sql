{#- Passes when every (non-null) cluster has at most max_size rows; max_size null/None = no cap. -#}
{% test cluster_size_at_most(model, column_name, max_size) %}

{% if max_size is none or (max_size | string | lower) in ['none', 'null', ''] %}
select null as cluster, null as cluster_size
where false
{% else %}
select
    {{ column_name }} as cluster,
    count(*) as cluster_size,
from {{ model }}
where {{ column_name }} is not null
group by {{ column_name }}
having count(*) > {{ max_size | int }}
{% endif %}

{% endtest %}
