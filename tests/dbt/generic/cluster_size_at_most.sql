{#- Passes when every (non-null) cluster has at most max_size rows: a number, or a setting's name; null = no cap. -#}
{% test cluster_size_at_most(model, column_name, max_size) %}
{%- set bound = mdc_setting(max_size) if max_size is string else max_size %}

{% if bound is none %}
select null as cluster, null as cluster_size
where false
{% else %}
select
    {{ column_name }} as cluster,
    count(*) as cluster_size,
from {{ model }}
where {{ column_name }} is not null
group by {{ column_name }}
having count(*) > {{ bound | int }}
{% endif %}

{% endtest %}
