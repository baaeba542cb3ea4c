"""Conditions that nest too deeply: a clear error naming the spec file and the level, never a
RecursionError (conditions.MAX_DEPTH, checked before Python's parser sees the text)."""

from __future__ import annotations

import subprocess
import sys

import polars as pl
import pytest

from respop.spec.loaders import shipped_algorithms_dir, load_spec
from respop.errors import ConfigError
from respop.spec.conditions import MAX_DEPTH, ConditionError, ConditionTooDeep, nesting, parse
from respop.strata.conditions import to_polars
from tests.strata.test_strata_spec import DIABETES, assert_names, edited, folder, load_error

COMPLICATION_WHEN = 'when = "kidney or eye or cardiovascular"'  # diabetes, level 2 (third listed)


def deep_not(n: int) -> str:
    return "not " * n + "(age >= 75)"


@pytest.mark.parametrize(
    ("text", "depth"),
    [
        ("ckd", 0),
        ("not ckd", 1),
        ("not a and not b", 1),
        ("not not (a and not b)", 4),
        ("(a or (b and c)) and d", 2),
        ("65 <= age < 80", 0),
        ("age >= -1", 1),
        ("a - 1 > 2", 0),
        ("not x is not y", 1),
        ("((((a))))", 4),
        (deep_not(3000), 3001),
    ],
)
def test_nesting_counts_parentheses_and_not_in_force(text, depth):
    assert nesting(text) == depth


def test_the_shipped_conditions_are_far_below_the_limit():
    for disease in ("diabetes", "heart_failure"):
        spec = load_spec(shipped_algorithms_dir() / f"{disease}.toml")
        assert all(nesting(lv.when) <= 2 for lv in spec.strata.levels if lv.when)


@pytest.mark.parametrize(
    "text",
    [
        deep_not(3000),
        deep_not(100_000),
        "(" * 3000 + "ckd" + ")" * 3000,
        "-" * 3000 + "1 > age",
        " and ".join(["not (ckd"] * 3000) + ")" * 3000,
    ],
    ids=["not-3000", "not-100000", "parentheses", "signs", "not-and-parentheses"],
)
def test_deep_conditions_are_refused_by_the_nesting_count(text):
    with pytest.raises(ConditionTooDeep, match=rf"nests too deeply \(\d+ levels of parentheses and not; at most {MAX_DEPTH}\)") as err:
        parse(text)
    assert len(str(err.value)) < 400  # the text is cut short in the message


@pytest.mark.parametrize(
    "text",
    ["age" + " + age" * 3000 + " > 1", "a" + ".b" * 3000, "f" + "()" * 3000],
    ids=["sum", "attributes", "calls"],
)
def test_deep_chains_the_count_does_not_see_are_refused_without_a_recursion_error(text):
    with pytest.raises(ConditionError, match="nests too deeply"):
        parse(text)


def test_the_limit_itself_parses_and_compiles():
    frame = pl.DataFrame({"age": [70, 80, None], "ckd": [True, False, None]})
    text = deep_not(MAX_DEPTH - 1)  # the comparison's parentheses are one level
    assert nesting(text) == MAX_DEPTH
    # an odd number of not: not (age >= 75), nulls counting as false at each level
    assert frame.select(to_polars(parse(text)).alias("x"))["x"].to_list() == [True, False, True]
    with pytest.raises(ConditionTooDeep):
        parse(deep_not(MAX_DEPTH))


def test_the_deepest_tree_the_limit_allows_compiles_and_evaluates():
    """Every parenthesis holding an or, an and, a not and a comparison: the tree is deeper than
    the count; polars compiles and evaluates it as Python does."""
    allowed = "ckd"
    while nesting(f"(age >= 75 or (ckd and not {allowed}))") <= MAX_DEPTH:
        allowed = f"(age >= 75 or (ckd and not {allowed}))"
    assert allowed.count("(") > 30
    frame = pl.DataFrame({"age": [70, 80, 70, 80], "ckd": [True, False, False, True]})
    got = frame.select(to_polars(parse(allowed)).alias("x"))["x"].to_list()
    assert got == [bool(eval(allowed, {}, row)) for row in frame.iter_rows(named=True)]  # noqa: S307


def test_a_deep_condition_in_a_spec_names_the_file_and_the_level(tmp_path):
    path, message = load_error(tmp_path, edited(DIABETES, COMPLICATION_WHEN, f'when = "{deep_not(3000)}"'))
    assert_names(message, path, "strata.levels.2.when", "nests too deeply", "3001 levels", f"at most {MAX_DEPTH}")
    assert "level 'complication'" in message
    assert "12,011 characters" in message and len(message) < 600
    assert "Recursion" not in message


def test_a_condition_at_the_limit_loads(tmp_path):
    path = folder(tmp_path) / "diabetes.toml"
    path.write_text(edited(DIABETES, COMPLICATION_WHEN, f'when = "{"not " * (MAX_DEPTH - 2)}(kidney or eye)"'), encoding="utf-8")
    spec = load_spec(path)
    assert spec.strata.levels[2].condition is not None


def test_cli_prints_the_depth_error_not_a_traceback(tmp_path):
    (tmp_path / "algorithms").mkdir()
    algorithms = folder(tmp_path / "algorithms")
    (algorithms / "diabetes.toml").write_text(edited(DIABETES, COMPLICATION_WHEN, f'when = "{deep_not(3000)}"'), encoding="utf-8")
    config = tmp_path / "territory.toml"
    config.write_text('name = "t"\ndiseases = ["diabetes"]\n[cases]\nalgorithms_dir = "algorithms"\n', encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "respop", "strata", "run", str(config)],
        capture_output=True, text=True, env={"COLUMNS": "300"},
    )
    assert result.returncode == 2, result.stderr
    output = result.stdout + result.stderr
    assert "Traceback" not in output and "RecursionError" not in output
    assert "nests too deeply" in output and "strata.levels.2.when" in output


def test_config_error_is_raised_not_a_pydantic_error(tmp_path):
    path = folder(tmp_path) / "diabetes.toml"
    path.write_text(edited(DIABETES, COMPLICATION_WHEN, f'when = "{deep_not(3000)}"'), encoding="utf-8")
    with pytest.raises(ConfigError):
        load_spec(path)
