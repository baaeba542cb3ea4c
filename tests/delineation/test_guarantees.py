"""Guarantees: every violation is found and names its zones; Delineation.fit checks them."""

from __future__ import annotations

import polars as pl
import pytest

from respop.delineation.base import Delineation, DelineationError
from respop.delineation.guarantees import check, violations
from tests.delineation.worlds import code, from_rows, grid, labels, problem

ALL = [code(r, c) for r in range(4) for c in range(4)]


@pytest.fixture(scope="module")
def p():
    return problem(grid(4, 4), {(z, "g1"): 10 for z in ALL}, {"g1": "z00", "g2": "z03"})


GOOD = from_rows(["1 1 2 2"] * 4)


def kinds(found):
    return {v.kind: list(v.zones) for v in found}


def test_good_assignment(p):
    assert violations(labels(GOOD), p, 8000) == []
    check(labels(GOOD), p, 8000)


def test_missing_zone(p):
    a = dict(GOOD)
    a.pop("z12")
    a["z13"] = None
    assert kinds(violations(labels(a), p))["missing"] == ["z12", "z13"]


def test_duplicate_and_outside(p):
    df = labels(GOOD).vstack(labels({"z00": 2, "elsewhere": 1}))
    found = kinds(violations(df, p))
    assert found["duplicated"] == ["z00"]
    assert found["outside"] == ["elsewhere"]


def test_non_contiguous_names_the_smaller_part(p):
    a = from_rows(["1 1 2 2", "1 1 2 2", "1 1 2 1", "1 1 2 2"])
    assert kinds(violations(labels(a), p)) == {"contiguity": ["z23"]}


def test_population(p):
    a = from_rows(["1 1 1 2", "1 1 1 1", "1 1 1 1", "1 1 1 1"])
    assert kinds(violations(labels(a), p, 2000)) == {"population": ["z03"]}


def test_hospital(p):
    a = from_rows(["1 1 2 2", "1 1 2 2", "3 3 3 3", "3 3 3 3"])
    assert kinds(violations(labels(a), p)) == {"hospital": [code(r, c) for r in (2, 3) for c in range(4)]}


def test_check_raises_with_every_zone(p):
    a = from_rows(["1 1 2 2", "1 1 2 2", "1 1 2 1", "3 3 3 3"])
    with pytest.raises(DelineationError) as err:
        check(labels(a), p, 4500)
    zones = set(err.value.zones)
    assert {"z23", "z30", "z31", "z32", "z33"} <= zones
    assert {v.kind for v in err.value.violations} == {"contiguity", "population", "hospital"}
    assert "not contiguous" in str(err.value) and "z23" in str(err.value)


class _Fixed(Delineation):
    name = "fixed"

    def __init__(self, rows, min_population=0):
        self.rows = rows
        self.min_population = min_population

    def _fit(self, problem):
        return labels(from_rows(self.rows))


def test_fit_checks_the_guarantees(p):
    fitted = _Fixed(["1 1 2 2"] * 4).fit(p)
    assert fitted.assignment_["territory_id"].dtype == pl.Int32
    with pytest.raises(DelineationError, match="not contiguous"):
        _Fixed(["1 1 2 2", "1 1 2 2", "1 1 2 1", "1 1 2 2"]).fit(p)
    with pytest.raises(DelineationError, match="minimum population"):
        _Fixed(["1 1 2 2"] * 4, min_population=9000).fit(p)
