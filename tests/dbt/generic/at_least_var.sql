{#- Passes when every non-null value of the column is at least the setting named var_name. -#}
{% test at_least_var(model, column_name, var_name) %}

select {{ column_name }}
from {{ model }}
where {{ column_name }} < {{ mdc_setting(var_name) | float }}

{% endtest %}
