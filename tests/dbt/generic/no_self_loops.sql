{#- Passes when no row joins a dataset to itself. -#}
{% test no_self_loops(model, from_column, to_column) %}

select {{ from_column }}, {{ to_column }}
from {{ model }}
where {{ from_column }} = {{ to_column }}

{% endtest %}
