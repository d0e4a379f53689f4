{#-
    Passes when every dataset that has a cluster exists in the embeddings
    (a cluster label can only come from this run's graph).
-#}
{% test clustered_datasets_are_embedded(model, embeddings) %}

select model_rows.dataset_id, model_rows.cluster
from {{ model }} as model_rows
left join {{ embeddings }} as embedded
    on model_rows.dataset_id = embedded.dataset_id
where model_rows.cluster is not null
    and embedded.dataset_id is null

{% endtest %}
