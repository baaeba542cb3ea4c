"""Loading the `[strata]` part of the algorithm specs and `algorithms/features.toml`: the shipped files
load; a wrong one is an error naming the file, the key and the value (docs/strata.md)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from respop.spec.loaders import shipped_algorithms_dir, load_spec, spec_path
from respop.errors import ConfigError
from respop.spec.conditions import check
from respop.spec.features import known_features, load_features
from tests.strata.reference import COMPUTED, read_code_features

DIABETES = (shipped_algorithms_dir() / "diabetes.toml").read_text(encoding="utf-8")
HEART_FAILURE = (shipped_algorithms_dir() / "heart_failure.toml").read_text(encoding="utf-8")
FEATURES = (shipped_algorithms_dir() / "features.toml").read_text(encoding="utf-8")
OTHERS = ("diabetes", "heart_failure")  # the shipped specs whose case-of features a condition may use
COMPLICATION_WHEN = 'when = "kidney or eye or cardiovascular"'  # diabetes, level 2 (third listed)


def edited(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, f"{old!r} is not once in the text"
    return text.replace(old, new)


def folder(tmp_path: Path, features: str = FEATURES) -> Path:
    """A folder of specs with its own features.toml."""
    (tmp_path / "features.toml").write_text(features, encoding="utf-8")
    return tmp_path


def load_error(tmp_path: Path, text: str, name: str = "spec.toml") -> tuple[Path, str]:
    path = folder(tmp_path) / name
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_spec(path)
    return path, str(err.value)


def keys_named(message: str) -> list[str]:
    return re.findall(r"key '([^']*)'", message)


def assert_names(message: str, path: Path, key: str, *values: str) -> None:
    """The message names the file, the key (quoted, exactly) and each of ``values``."""
    assert str(path) in message, message
    assert key in keys_named(message), f"key {key!r} not named (keys named: {keys_named(message)}):\n{message}"
    for value in values:
        assert value in message, f"{value!r} not in:\n{message}"


# --- the shipped specs ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("disease", "names"),
    [
        ("diabetes", ["instable", "complication_grave", "complication", "sans_complication"]),
        ("heart_failure", ["instable", "hospitalise_annee", "chronique"]),
        ("copd", ["insuffisance_respiratoire", "instable", "exacerbation_annee", "connue_stable"]),
    ],
)
def test_shipped_specs_load_with_their_levels(disease, names):
    strata = load_spec(spec_path(disease)).strata
    assert strata is not None
    assert [lv.name for lv in strata.levels] == names
    assert [strata.level_of(n) for n in names] == list(range(len(names), 0, -1))
    assert all(lv.when and lv.condition is not None for lv in strata.levels[:-1])
    assert strata.levels[-1].when is None and strata.levels[-1].condition is None
    for lv in strata.levels:
        assert lv.label and lv.description and lv.protocol and lv.rationale
        if lv.condition is not None:
            check(lv.condition, known_features(load_features(), [d for d in OTHERS if d != disease]))


def test_shipped_features():
    features = load_features()
    assert set(features.codes) == {"kidney", "dialysis", "eye", "foot", "cardiovascular", "ckd", "copd", "respiratory_failure"}
    assert [n for n, f in features.codes.items() if f.comorbidity] == ["ckd", "copd"]
    assert known_features(features, []) == set(COMPUTED) | set(features.codes)
    assert known_features(features, ['x']) == set(COMPUTED) | set(features.codes) | {'case_of_x'}
    ours = read_code_features(shipped_algorithms_dir() / "features.toml")
    for name, f in features.codes.items():
        assert (f.codes, list(f.positions), f.lookback_years) == (ours[name]["codes"], ours[name]["positions"], ours[name]["lookback_years"])


# --- spec errors ---------------------------------------------------------------------------------


def test_when_on_the_last_level(tmp_path):
    text = edited(DIABETES, 'name = "sans_complication"', 'name = "sans_complication"\nwhen = "age >= 0"')
    path, message = load_error(tmp_path, text)
    assert_names(message, path, "strata.levels.3.when", "sans_complication", "age >= 0")
    assert "when" in message


def test_missing_when_on_a_middle_level(tmp_path):
    path, message = load_error(tmp_path, edited(DIABETES, COMPLICATION_WHEN + "\n", ""))
    assert_names(message, path, "strata.levels.2.when", "complication")
    assert "when" in message


def test_unknown_feature(tmp_path):
    path, message = load_error(tmp_path, edited(DIABETES, COMPLICATION_WHEN, 'when = "kidney or retina"'))
    assert_names(message, path, "strata.levels.2.when", "kidney or retina", "retina")


def test_unknown_feature_on_the_first_level(tmp_path):
    text = edited(HEART_FAILURE, 'when = "disease_stays_window >= 2 and', 'when = "hf_stays_window >= 2 and')
    path, message = load_error(tmp_path, text)
    assert_names(message, path, "strata.levels.0.when", "hf_stays_window")


@pytest.mark.parametrize(
    "condition",
    [
        "kidney or or eye",  # syntax
        "(kidney or eye",
        "max(age) > 3",  # call
        "age.real > 3",  # attribute
        "age + 1 > 3",
    ],
)
def test_condition_outside_the_language(tmp_path, condition):
    path, message = load_error(tmp_path, edited(DIABETES, COMPLICATION_WHEN, f'when = "{condition}"'))
    assert_names(message, path, "strata.levels.2.when", condition)


def test_string_in_a_condition(tmp_path):
    path, message = load_error(tmp_path, edited(DIABETES, COMPLICATION_WHEN, """when = 'kidney == "yes"'"""))
    assert_names(message, path, "strata.levels.2.when", 'kidney == "yes"')


def test_empty_condition(tmp_path):
    path, message = load_error(tmp_path, edited(DIABETES, COMPLICATION_WHEN, 'when = "  "'))
    assert_names(message, path, "strata.levels.2.when")
    assert "empty" in message


def test_duplicated_level_names(tmp_path):
    path, message = load_error(tmp_path, edited(DIABETES, 'name = "complication"\n', 'name = "instable"\n'))
    assert_names(message, path, "strata.levels", "instable")
    assert "unique" in message or "more than once" in message


def test_one_level_is_not_enough(tmp_path):
    start = DIABETES.index("[[strata.levels]]")
    last = DIABETES.rindex("[[strata.levels]]")
    path, message = load_error(tmp_path, DIABETES[:start] + DIABETES[last:])
    assert_names(message, path, "strata.levels")


def test_a_code_feature_of_the_folder_is_usable(tmp_path):
    """One place: a code feature added to the folder's features.toml may be used by its specs."""
    extra = '\n[codes.asthma]\nlabel = "Asthme"\ncodes = ["J45"]\npositions = ["DP", "DR", "DAS"]\nlookback_years = 2\n'
    text = edited(DIABETES, COMPLICATION_WHEN, 'when = "kidney or eye or cardiovascular or asthma"')
    path = folder(tmp_path, FEATURES + extra) / "diabetes.toml"
    path.write_text(text, encoding="utf-8")
    assert "asthma" in load_spec(path).strata.levels[2].condition.features()
    assert "asthma" in known_features(load_features(tmp_path), [])
    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(shipped_algorithms_dir() / "features.toml", other / "features.toml")
    (other / "diabetes.toml").write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=r"strata\.levels\.2\.when"):
        load_spec(other / "diabetes.toml")


# --- features.toml errors ------------------------------------------------------------------------


def features_error(tmp_path: Path, text: str) -> tuple[Path, str]:
    path = folder(tmp_path, text) / "features.toml"
    with pytest.raises(ConfigError) as err:
        load_features(tmp_path)
    return path, str(err.value)


def code_feature(name: str, codes: str = '["N18"]', lookback: int = 1) -> str:
    return f'\n[codes.{name}]\nlabel = "x"\ncodes = {codes}\npositions = ["DP", "DR", "DAS"]\nlookback_years = {lookback}\n'


def test_features_code_not_in_the_cim10(tmp_path):
    path, message = features_error(tmp_path, FEATURES + code_feature("asthma", '["J4S"]'))
    assert_names(message, path, "codes.asthma.codes", "J4S")


def test_features_impossible_lookback(tmp_path):
    path, message = features_error(tmp_path, FEATURES + code_feature("asthma", lookback=-1))
    assert_names(message, path, "codes.asthma.lookback_years", "-1")


def test_features_unknown_key(tmp_path):
    path, message = features_error(tmp_path, edited(FEATURES, "[codes.copd]\n", "[codes.copd]\nwindow = 3\n"))
    assert_names(message, path, "codes.copd.window", "3")


@pytest.mark.parametrize("name", ["age", "disease_stays_12m", "case_of_diabetes", "bed_days_12m"])
def test_features_name_of_a_computed_feature(tmp_path, name):
    path, message = features_error(tmp_path, FEATURES + code_feature(name))
    assert str(path) in message and name in message


@pytest.mark.parametrize("name", ["readmissions_30d", "died_in_year"])
def test_features_name_of_an_outcome(tmp_path, name):
    path, message = features_error(tmp_path, FEATURES + code_feature(name))
    assert str(path) in message and name in message


@pytest.mark.parametrize("name", ["true", "false", "and", "not"])
def test_features_name_that_a_condition_cannot_use(tmp_path, name):
    """``true`` would be read as the constant, ``and`` / ``not`` as operators: an error, not a
    feature that conditions silently cannot reach."""
    path, message = features_error(tmp_path, FEATURES + code_feature(name))
    assert str(path) in message and name in message


@pytest.mark.parametrize("name", ["patient_key", "year", "sex", "stratum", "residence_zone"])
def test_features_name_of_a_person_strata_column(tmp_path, name):
    """A code feature named like a column of person_strata.parquet would collide with it."""
    path, message = features_error(tmp_path, FEATURES + code_feature(name))
    assert str(path) in message and name in message
