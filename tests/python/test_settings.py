"""One definition of every setting: the docs, the dbt defaults and the validation all follow it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from mdc_clustering import ParameterError
from mdc_clustering.settings import (
    DOCUMENTED_IN,
    GROUPS,
    Settings,
    check_settings,
    defaults_macro,
    flat_defaults,
    settings_problem,
    with_table,
)

REPO = Path(__file__).resolve().parents[2]


def test_every_setting_has_one_group_a_description_and_a_rule():
    names = [name for model in GROUPS.values() for name in model.model_fields]
    assert len(names) == len(set(names)), "a setting name is in two groups"
    for model in GROUPS.values():
        for name, info in model.model_fields.items():
            assert info.description and info.json_schema_extra["rule"], name
            assert "|" not in info.description, f"{name}: a '|' breaks the markdown table"
    assert set(flat_defaults()) == set(names)


@pytest.mark.parametrize("doc", DOCUMENTED_IN)
def test_readme_and_docs_page_list_exactly_the_settings(doc):
    text = (REPO / doc).read_text()
    assert with_table(text) == text, f"{doc} is stale: run python -m mdc_clustering.settings --write-docs"
    block = text.split("<!-- settings:start -->", 1)[1].split("<!-- settings:end -->", 1)[0]
    listed = re.findall(r"^\| [a-z]+ \| `([a-z_0-9]+)` \|", block, flags=re.MULTILINE)
    assert sorted(listed) == sorted(flat_defaults())
    # the table's defaults are the definition's
    for name, shown in re.findall(r"^\| [a-z]+ \| `([a-z_0-9]+)` \| `([^`]*)` \|", block, flags=re.MULTILINE):
        default = flat_defaults()[name]
        assert shown == ("null" if default is None else default if isinstance(default, str) else json.dumps(default))


def test_dbt_defaults_macro_is_generated_from_the_definition():
    assert (REPO / "macros" / "_settings_defaults.sql").read_text() == defaults_macro(), (
        "stale: run python -m mdc_clustering.settings --write-macro"
    )


def _check_source_vars(text: str) -> None:
    """YAML cannot call mdc_setting: the sources read var('mdc_<name>', var('<name>', <the default>))."""
    found = re.findall(r"""var\('mdc_([a-z_]+)', var\('([a-z_]+)', ([^)]*)\)\)""", text)
    assert len(found) == len(re.findall(r"\bvar\(", text)) // 2 == 5
    for prefixed, plain, default in found:
        assert prefixed == plain
        assert default == ("none" if flat_defaults()[plain] is None else repr(flat_defaults()[plain]))


def test_dbt_code_reads_settings_only_through_mdc_setting():
    names = set(flat_defaults())
    offenders = []
    for path in [*REPO.glob("models/**/*"), *REPO.glob("macros/**/*.sql"), *REPO.glob("python_models/**/*"),
                 *REPO.glob("tests/dbt/**/*.sql"), REPO / "dbt_project.yml"]:
        if not path.is_file() or path.name in ("settings.sql", "chroma_location.sql"):
            continue
        if path.name == "_staging__sources.yml":
            _check_source_vars(path.read_text())
            continue
        for name in re.findall(r"""\bvar\(\s*['"]([a-z_0-9]+)['"]""", path.read_text()):
            if name in names:
                offenders.append(f"{path.relative_to(REPO)}: var('{name}')")
    assert not offenders, offenders
    # dbt_project.yml holds no second copy of the defaults
    import yaml

    assert not (yaml.safe_load((REPO / "dbt_project.yml").read_text()).get("vars") or {})


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"k_neighbors": 0}, "var 'k_neighbors' must be a positive integer; got 0"),
        ({"k_neighbors": 2.5}, "var 'k_neighbors' must be a positive integer; got 2.5"),
        ({"k_neighbors": True}, "var 'k_neighbors' must be a positive integer; got true"),
        ({"resolution": "fine"}, "var 'resolution' must be a positive number or auto"),
        ({"min_edge_similarity": 1}, "var 'min_edge_similarity' must be a number in [0, 1)"),
        ({"stable_labels": "True"}, "var 'stable_labels' must be true or false"),
        ({"max_cluster_size": 3, "min_cluster_size": 5}, "var 'max_cluster_size' must be null or at least"),
        ({"cluster_term_stop_words": ["a,b"]}, "var 'cluster_term_stop_words' must be a list of words"),
        ({"report_name": "../x"}, "var 'report_name' must be null or a folder name"),
        ({"datasets_table": "ds; drop table x"}, "var 'datasets_table' must be a SQL name"),
        ({"pipeline_schema": "1raw"}, "var 'pipeline_schema' must be a SQL name"),
        ({"nonsense": 1}, "unknown setting(s) nonsense"),
    ],
)
def test_a_bad_value_names_the_var_and_the_rule(values, message):
    with pytest.raises(ParameterError) as caught:
        Settings.from_flat(values)
    assert message in str(caught.value)


def test_values_arrive_typed_and_none_is_none():
    settings = Settings.from_json(json.dumps({**flat_defaults(), "resolution": "auto", "k_neighbors": 12}))
    assert settings.leiden.resolution == "auto" and settings.knn.k_neighbors == 12
    assert settings.leiden.target_n_clusters is None and settings.labels.stable_labels is True
    assert Settings.from_flat({"resolution": 2}).leiden.resolution == 2


def test_the_run_start_check_catches_near_misses_but_lets_a_hosts_own_vars_pass():
    payload = {"settings": flat_defaults(), "given": ["k_neighbor"]}
    with pytest.raises(ParameterError, match="'k_neighbor' is not a setting; did you mean 'k_neighbors'"):
        check_settings(json.dumps(payload))
    assert check_settings(json.dumps({"settings": flat_defaults(), "given": ["start_date", "resolution"]})) == "ok"
    # the DuckDB function on-run-start calls returns the message instead of raising inside DuckDB
    assert settings_problem(json.dumps(payload)).startswith("var 'k_neighbor' is not a setting")
    assert settings_problem(json.dumps({"settings": flat_defaults(), "given": []})) == ""
