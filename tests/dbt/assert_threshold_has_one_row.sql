-- The threshold table holds exactly one row, with a threshold whenever the
-- k-NN graph has any pair.
select count(*) as n_rows
from {{ ref('int_similarity_threshold_selected') }}
having
    count(*) <> 1
    or count(*) filter (where similarity_threshold is null and n_candidate_pairs > 0) > 0
