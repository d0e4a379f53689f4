"""Bad vars stop the build before any model runs, naming the var, and change nothing."""

from __future__ import annotations

import pytest

# Through dbt, one of each kind of rule (a choice, an integer with SQL in it, a rule across two settings,
# a number range): the hook's wiring is the same for every setting. Every rule of every setting is
# checked without dbt in test_settings.py (SETTINGS_LEVEL_BAD_VARS below too).
BAD_VARS = [
    ({"threshold_method": "median"}, "threshold_method' must be one of degree_target, percentile_90, elbow_method"),
    ({"k_neighbors": "30; drop table main.datasets"}, "k_neighbors' must be a positive integer"),
    ({"max_cluster_size": 1}, "max_cluster_size' must be null or at least min_cluster_size"),
    ({"similarity_threshold": 1.5}, "similarity_threshold' must be null or a number in [-1, 1]"),
]
SETTINGS_LEVEL_BAD_VARS = [
    ({"k_neighbors": 0}, "k_neighbors' must be a positive integer"),
    ({"k_neighbors": 2.5}, "k_neighbors' must be a positive integer"),
    ({"target_degree": -1}, "target_degree' must be a positive integer"),
    ({"min_cluster_size": "two"}, "min_cluster_size' must be a positive integer"),
    ({"resolution": 0}, "resolution' must be a positive number"),
    ({"similarity_threshold": "0.5) as x; drop table main.datasets; --"}, "similarity_threshold' must be null"),
    ({"random_seed": -3}, "random_seed' must be a non-negative integer"),
    ({"invalid_embeddings": "ignore"}, "invalid_embeddings' must be one of error, exclude"),
]


@pytest.mark.bad_input
@pytest.mark.parametrize(("bad", "message"), SETTINGS_LEVEL_BAD_VARS, ids=[str(b) for b, _ in SETTINGS_LEVEL_BAD_VARS])
def test_bad_var_is_refused_by_the_settings_check(bad, message):
    """What the on-run-start hook calls (mdc_settings_problem), with what dbt passes it."""
    import json

    from mdc_clustering.settings import flat_defaults, settings_problem

    problem = settings_problem(json.dumps({"settings": {**flat_defaults(), **bad}, "given": list(bad), "prefix": ""}))
    assert message in problem


@pytest.mark.bad_input
@pytest.mark.parametrize(("bad", "message"), BAD_VARS, ids=[str(b) for b, _ in BAD_VARS])
def test_bad_var_fails_before_any_model(sample, reliability, bad, message):
    before = sample.snapshot()
    result = sample.dbt("build", vars=bad, check=False)
    after = sample.snapshot()
    reliability.compare(before, after)
    assert result.returncode != 0
    assert message in result.stdout
    assert "START python table model" not in result.stdout  # nothing heavy ran
    assert after == before  # main.datasets and main.engineered_feature_values untouched
