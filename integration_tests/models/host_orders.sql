-- A model of the host's own, unrelated to the package.
select 1 as order_id, 'open' as status
