"""The condition language of the strata (docs/strata.md, "Strata specs"): parsing, checking and the
polars compilation, on hand-made frames and on random condition trees (hypothesis)."""

from __future__ import annotations

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from respop.spec.conditions import ConditionError, check, parse

from respop.strata.conditions import to_polars
from tests.strata.reference import holds

FRAME = pl.DataFrame(
    {
        "age": [50, 65, 70, 79, 80, 95, None],
        "n": [0, 1, 2, 3, 0, 2, 1],
        "ckd": [True, False, True, False, None, True, False],
        "copd": [False, False, True, True, True, None, False],
    },
    schema={"age": pl.Int16, "n": pl.Int32, "ckd": pl.Boolean, "copd": pl.Boolean},
)
KNOWN = {"age", "n", "ckd", "copd"}


def run(text: str, frame: pl.DataFrame = FRAME) -> list[bool]:
    node = parse(text)
    check(node, set(frame.columns))
    return frame.with_columns(_r=to_polars(parse(text)))["_r"].to_list()


def rows(frame: pl.DataFrame = FRAME) -> list[dict]:
    return frame.to_dicts()


def py(fn) -> list[bool]:
    """A Python predicate on each row of FRAME; None (null) values are given as None."""
    return [bool(fn(r)) for r in rows()]


def cmp(a, op, b) -> bool:
    """A comparison where a null operand makes it false."""
    if a is None or b is None:
        return False
    return {">": a > b, ">=": a >= b, "<": a < b, "<=": a <= b, "==": a == b, "!=": a != b}[op]


# --- parse and compile ---------------------------------------------------------------------------


@pytest.mark.parametrize("op", [">", ">=", "<", "<=", "==", "!="])
def test_each_comparison(op):
    assert run(f"age {op} 79") == py(lambda r: cmp(r["age"], op, 79))
    assert run(f"79 {op} age") == py(lambda r: cmp(79, op, r["age"]))
    assert run(f"n {op} age") == py(lambda r: cmp(r["n"], op, r["age"]))


def test_chained_comparisons():
    assert run("65 <= age < 80") == [False, True, True, True, False, False, False]
    assert run("0 < n <= 2 < age") == py(lambda r: cmp(0, "<", r["n"]) and cmp(r["n"], "<=", 2) and cmp(2, "<", r["age"]))
    node = parse("65 <= age < 80")
    assert node.op == "and" and [a.op for a in node.args] == ["cmp", "cmp"]


def test_not_and_or_precedence():
    assert run("not ckd and copd") == py(lambda r: (not r["ckd"]) and bool(r["copd"]))
    assert run("not (ckd and copd)") == py(lambda r: not (r["ckd"] and r["copd"]))
    assert run("ckd or copd and age >= 80") == py(lambda r: bool(r["ckd"]) or (bool(r["copd"]) and cmp(r["age"], ">=", 80)))
    assert run("(ckd or copd) and age >= 80") == py(lambda r: (bool(r["ckd"]) or bool(r["copd"])) and cmp(r["age"], ">=", 80))
    assert run("not age >= 80") == py(lambda r: not cmp(r["age"], ">=", 80))  # not binds looser than >=
    assert run("not not ckd") == py(lambda r: bool(r["ckd"]))
    assert run("ckd and not copd or n == 2") == py(lambda r: (bool(r["ckd"]) and not r["copd"]) or cmp(r["n"], "==", 2))


def test_the_two_readings_of_precedence_differ_on_the_frame():
    """The precedence tests above would not notice a wrong grouping if both groupings agreed."""
    assert run("ckd or copd and age >= 80") != run("(ckd or copd) and age >= 80")
    assert run("not ckd and copd") != run("not (ckd and copd)")


def test_boolean_features_constants_and_numbers():
    assert run("ckd") == py(lambda r: bool(r["ckd"]))
    assert run("true") == [True] * FRAME.height
    assert run("false") == [False] * FRAME.height
    assert run("ckd and true") == run("ckd")
    assert run("ckd or false") == run("ckd")
    assert run("ckd == true") == py(lambda r: r["ckd"] is True)
    assert run("age > -1") == py(lambda r: r["age"] is not None)
    assert run("n >= 1.5") == py(lambda r: cmp(r["n"], ">=", 1.5))
    assert parse("true").value is True and parse("false").value is False


def test_nulls_count_as_false():
    """A comparison with a null, or a null boolean feature, is false; ``not`` of it is true."""
    null_age = FRAME.height - 1
    assert run("age >= 0")[null_age] is False
    assert run("not age >= 0")[null_age] is True
    assert run("age != 3")[null_age] is False
    null_ckd = FRAME["ckd"].to_list().index(None)
    assert run("ckd")[null_ckd] is False
    assert run("not ckd")[null_ckd] is True
    assert None not in run("ckd or copd or age > 3")


def test_white_space_and_line_breaks():
    """TOML multi-line strings: line breaks and indentation are allowed."""
    assert run("ckd\n   or age >= 80\n") == run("ckd or age >= 80")
    assert run("  ( ckd\n and\n copd )  ") == run("ckd and copd")


def test_features_of_a_condition():
    assert parse("ckd or (age >= 80 and not copd) or 1 < n < 3").features() == {"ckd", "age", "copd", "n"}
    assert parse("true").features() == set()


# --- errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "max(age) > 3",  # function call
        "age.real > 3",  # attribute
        "ckd.any",
        'age == "x"',  # string
        "ckd and 'x'",
        "age + 1 > 80",  # arithmetic
        "-age < 3",
        "age in (1, 2)",  # other operators
        "age is 80",
        "ckd if copd else age",
        "[age] == [1]",
        "lambda: 1",
        "age[0] > 1",
    ],
)
def test_outside_the_language(text):
    with pytest.raises(ConditionError) as err:
        parse(text)
    assert text in str(err.value), "the message quotes the condition"


@pytest.mark.parametrize("text", ["age >", "ckd and or copd", "(ckd", "age >= 80)", "ckd copd", "age => 3", "ckd && copd"])
def test_syntax_errors(text):
    with pytest.raises(ConditionError, match="not a valid condition"):
        parse(text)


@pytest.mark.parametrize("text", ["", "   ", "\n\t"])
def test_empty_text(text):
    with pytest.raises(ConditionError, match="empty"):
        parse(text)


def test_unknown_features_are_named():
    node = parse("ckd or retina or age_at_death > 3")
    with pytest.raises(ConditionError) as err:
        check(node, KNOWN)
    assert "retina" in str(err.value) and "age_at_death" in str(err.value)
    check(parse("ckd or age > 3"), KNOWN)  # known: no error


def test_error_message_quotes_the_text():
    with pytest.raises(ConditionError) as err:
        parse("max(age) > 3")
    assert "max(age)" in str(err.value)


# --- property: random trees ----------------------------------------------------------------------

INTS = ["a", "b"]
BOOLS = ["p", "q"]
OPS = [">", ">=", "<", "<=", "==", "!="]

operand = st.one_of(st.sampled_from(INTS).map(lambda f: ("feature", f)), st.integers(-3, 3).map(lambda v: ("const", v)))


@st.composite
def comparison(draw):
    operands = draw(st.lists(operand, min_size=2, max_size=3))
    ops = draw(st.lists(st.sampled_from(OPS), min_size=len(operands) - 1, max_size=len(operands) - 1))
    return ("cmp", operands, ops, draw(st.booleans()))


leaf = st.one_of(
    st.sampled_from(BOOLS).map(lambda f: ("bool", f, False)),
    st.booleans().map(lambda v: ("truth", v, False)),
    comparison(),
)


def _branches(children):
    return st.one_of(
        st.tuples(st.just("not"), children, st.booleans()),
        st.tuples(st.just("and"), st.lists(children, min_size=2, max_size=3), st.booleans()),
        st.tuples(st.just("or"), st.lists(children, min_size=2, max_size=3), st.booleans()),
    )


trees = st.recursive(leaf, _branches, max_leaves=8)
PRECEDENCE = {"or": 1, "and": 2, "not": 3, "cmp": 4, "bool": 5, "truth": 5}


def render(tree, parent: int = 0) -> str:
    """The tree as condition text, with the parentheses precedence needs (and some more when the
    node's flag says so)."""
    kind = tree[0]
    if kind == "bool":
        text = tree[1]
    elif kind == "truth":
        text = "true" if tree[1] else "false"
    elif kind == "cmp":
        _, operands, ops, _ = tree
        parts = [str(v) for _, v in operands]
        text = parts[0] + "".join(f" {op} {p}" for op, p in zip(ops, parts[1:], strict=True))
    elif kind == "not":
        text = "not " + render(tree[1], PRECEDENCE["not"])
    else:
        text = f" {kind} ".join(render(c, PRECEDENCE[kind] + 1) for c in tree[1])
    extra = tree[-1] if kind in ("cmp", "not", "and", "or") else False
    return f"({text})" if PRECEDENCE[kind] < parent or extra else text


def evaluate(tree, row: dict) -> bool:
    """Python evaluation of the tree (nulls: a comparison with null is false, a null feature false)."""
    kind = tree[0]
    if kind == "bool":
        return bool(row[tree[1]])
    if kind == "truth":
        return tree[1]
    if kind == "cmp":
        _, operands, ops, _ = tree
        values = [row[v] if k == "feature" else v for k, v in operands]
        return all(cmp(x, op, y) for x, op, y in zip(values, ops, values[1:], strict=False))
    if kind == "not":
        return not evaluate(tree[1], row)
    results = [evaluate(c, row) for c in tree[1]]
    return all(results) if kind == "and" else any(results)


def tree_features(tree) -> set[str]:
    kind = tree[0]
    if kind == "bool":
        return {tree[1]}
    if kind == "truth":
        return set()
    if kind == "cmp":
        return {v for k, v in tree[1] if k == "feature"}
    if kind == "not":
        return tree_features(tree[1])
    return set().union(*(tree_features(c) for c in tree[1]))


frames = st.lists(
    st.fixed_dictionaries(
        {
            "a": st.one_of(st.none(), st.integers(-4, 4)),
            "b": st.one_of(st.none(), st.integers(-4, 4)),
            "p": st.one_of(st.none(), st.booleans()),
            "q": st.one_of(st.none(), st.booleans()),
        }
    ),
    min_size=1,
    max_size=12,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tree=trees, data=frames)
def test_random_conditions_compile_like_python(tree, data):
    text = render(tree)
    frame = pl.DataFrame(data, schema={"a": pl.Int64, "b": pl.Int64, "p": pl.Boolean, "q": pl.Boolean})
    node = parse(text)
    assert node.features() == tree_features(tree), text
    check(node, set(frame.columns))
    got = frame.with_columns(_r=to_polars(node))["_r"].to_list()
    expected = [evaluate(tree, row) for row in data]
    assert got == expected, f"{text!r} on {data}"
    # the reference's own evaluator (tests/strata/reference.py) agrees too
    assert [holds(text, row) for row in data] == expected, text
