"""Loading the algorithm specs: the shipped ones load; a wrong one is an error naming the file, the
key and the value (docs/case_finding.md, "The algorithm specs")."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from respop.spec.algorithm import AlgorithmSpec

from respop.spec.loaders import shipped_algorithms_dir, load_spec, load_specs, spec_path
from respop.errors import ConfigError

DIABETES = (shipped_algorithms_dir() / "diabetes.toml").read_text(encoding="utf-8")
HEART_FAILURE = (shipped_algorithms_dir() / "heart_failure.toml").read_text(encoding="utf-8")


def edited(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, f"{old!r} is not once in the spec"
    return text.replace(old, new)


def load_error(tmp_path: Path, text: str, name: str = "spec.toml") -> tuple[Path, str]:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_spec(path)
    return path, str(err.value)


def assert_names(message: str, path: Path, key: str, value: str) -> None:
    """The message names the file, the key (a dotted path starting with ``key``, quoted) and the value."""
    assert str(path) in message, message
    keys = re.findall(r"key '([^']*)'", message)
    assert any(k == key or k.startswith(key + ".") for k in keys), f"key {key!r} not named (keys named: {keys}):\n{message}"
    assert value in message, f"value {value!r} not in:\n{message}"


def test_shipped_specs_load():
    diabetes, heart_failure = load_specs(["diabetes", "heart_failure"])
    assert (diabetes.disease, heart_failure.disease) == ("diabetes", "heart_failure")
    assert diabetes.window.lookback_years == 1 and heart_failure.window.lookback_years == 5
    assert heart_failure.population.min_age == 18
    assert [t.name for t in diabetes.subtypes.types] == ["type_1", "type_2", "unspecified"]
    assert [b.name for b in heart_failure.branches] == ["dp_i50", "dp_associe_i50"]
    assert load_spec(spec_path("diabetes")) == diabetes


def test_unknown_key(tmp_path):
    path, message = load_error(tmp_path, edited(DIABETES, "min_stays = 1", "min_stays = 1\nmax_stays = 3"))
    assert_names(message, path, "window.max_stays", "3")
    assert "unknown key" in message


def test_unknown_key_in_a_criterion(tmp_path):
    path, message = load_error(tmp_path, edited(HEART_FAILURE, 'codes = ["I50"]\npositions = ["DP"]', 'code = ["I50"]\npositions = ["DP"]'))
    assert_names(message, path, "branches.0.all.0.code", "I50")


def test_code_not_in_the_cim10(tmp_path):
    path, message = load_error(tmp_path, edited(HEART_FAILURE, 'codes = ["I50"]\npositions = ["DP"]', 'codes = ["I5O"]\npositions = ["DP"]'))
    assert_names(message, path, "branches.0.all.0.codes", "I5O")
    assert "CIM-10" in message


def test_dotted_and_lower_case_codes_are_normalised(tmp_path):
    path = tmp_path / "spec.toml"
    path.write_text(edited(HEART_FAILURE, 'codes = ["I50"]\npositions = ["DP"]', 'codes = ["i50.0"]\npositions = ["DP"]'), encoding="utf-8")
    assert load_spec(path).branches[0].all[0].codes == ["I500"]


@pytest.mark.parametrize("lookback", ["-1", "99"])
def test_impossible_window(tmp_path, lookback):
    path, message = load_error(tmp_path, edited(DIABETES, "lookback_years = 1", f"lookback_years = {lookback}"))
    assert_names(message, path, "window.lookback_years", lookback)


def test_min_stays_zero(tmp_path):
    path, message = load_error(tmp_path, edited(DIABETES, "min_stays = 1", "min_stays = 0"))
    assert_names(message, path, "window.min_stays", "0")


def test_max_age_below_min_age(tmp_path):
    path, message = load_error(tmp_path, edited(HEART_FAILURE, "min_age = 18", "min_age = 18\nmax_age = 10"))
    assert_names(message, path, "population", "10")
    assert "18" in message


def test_timing_subtypes_missing_one_when(tmp_path):
    path, message = load_error(tmp_path, edited(HEART_FAILURE, 'when = "before_index_year"', ""))
    assert_names(message, path, "subtypes", "chronic")
    assert "before_index_year" in message


def test_duplicated_branch_names(tmp_path):
    path, message = load_error(tmp_path, edited(HEART_FAILURE, 'name = "dp_associe_i50"', 'name = "dp_i50"'))
    assert_names(message, path, "branches", "dp_i50")
    assert "unique" in message


def test_exclusion_outside_the_codes(tmp_path):
    text = edited(
        DIABETES,
        'codes = ["E10", "E11", "E12", "E13", "E14"]\npositions',
        'codes = ["E10", "E11", "E12", "E13", "E14"]\nexclude = ["I500"]\npositions',
    )
    path, message = load_error(tmp_path, text)
    assert_names(message, path, "branches.0.all.0", "I500")
    assert "not inside" in message


def test_subtype_default_not_a_type(tmp_path):
    path, message = load_error(tmp_path, edited(DIABETES, 'default = "unspecified"', 'default = "type_3"'))
    assert_names(message, path, "subtypes", "type_3")


def test_unknown_position(tmp_path):
    path, message = load_error(tmp_path, edited(DIABETES, 'codes = ["O"]\npositions = ["DP"]', 'codes = ["O"]\npositions = ["PD"]'))
    assert_names(message, path, "exclude_stays.1.positions", "PD")


def test_not_toml(tmp_path):
    path, message = load_error(tmp_path, DIABETES + "\n[window\n")
    assert str(path) in message and "TOML" in message


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_spec(tmp_path / "nope.toml")
    with pytest.raises(ConfigError, match="nope.toml"):
        load_specs(["nope"], tmp_path)


def test_load_specs_checks_the_id_against_the_file_name(tmp_path):
    (tmp_path / "diabetes.toml").write_text(HEART_FAILURE, encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_specs(["diabetes"], tmp_path)
    message = str(err.value)
    assert str(tmp_path / "diabetes.toml") in message
    assert "algorithm.id" in message and "heart_failure" in message


def test_load_specs_reads_the_folder_given(tmp_path):
    (tmp_path / "diabetes.toml").write_text(edited(DIABETES, 'version = "1.1"', 'version = "2.1"'), encoding="utf-8")
    (spec,) = load_specs(["diabetes"], tmp_path)
    assert spec.algorithm.version == "2.1"


def test_model_validate_gives_the_same_spec_as_the_file():
    import tomllib

    raw = tomllib.loads(HEART_FAILURE)
    assert AlgorithmSpec.model_validate(raw) == load_spec(spec_path("heart_failure"))
