{#- Passes when every non-null value of the column is at least the number in var(var_name). -#}
{% test at_least_var(model, column_name, var_name) %}

select {{ column_name }}
from {{ model }}
where {{ column_name }} < {{ var(var_name) | float }}

{% endtest %}
