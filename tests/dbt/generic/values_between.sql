{#- Passes when every non-null value of the column lies in [min_value, max_value] and is finite. -#}
{% test values_between(model, column_name, min_value, max_value) %}

select {{ column_name }}
from {{ model }}
where {{ column_name }} is not null
    and (
        not isfinite({{ column_name }})
        or {{ column_name }} < {{ min_value }}
        or {{ column_name }} > {{ max_value }}
    )

{% endtest %}
