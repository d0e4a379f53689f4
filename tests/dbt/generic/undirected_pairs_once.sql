{#-
    Passes when the table holds each unordered pair at most once, written as
    (smaller id, larger id): no (b, a) beside (a, b), no duplicate, no self loop.
-#}
{% test undirected_pairs_once(model, from_column, to_column) %}

with

edges as (

    select {{ from_column }} as a, {{ to_column }} as b from {{ model }}

),

problems as (

    select a, b, 'not ordered (a < b) or self loop' as problem
    from edges
    where not (a < b)

    union all

    select least(a, b), greatest(a, b), 'pair appears ' || count(*) || ' times' as problem
    from edges
    group by least(a, b), greatest(a, b)
    having count(*) > 1

)

select * from problems

{% endtest %}
