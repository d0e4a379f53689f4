{#- Passes when every (non-null) cluster of the column has at least min_size rows: a number, or a setting's name. -#}
{% test cluster_size_at_least(model, column_name, min_size) %}
{%- set bound = mdc_setting(min_size) if min_size is string else min_size %}

select
    {{ column_name }} as cluster,
    count(*) as cluster_size,
from {{ model }}
where {{ column_name }} is not null
group by {{ column_name }}
having count(*) < {{ bound | int }}

{% endtest %}
