"""The attacker's solver on hand-made tables whose intervals are known: a bug in the attacker must
not make every store test pass."""

from __future__ import annotations

import math

import pytest

from tests.attack.solver import AttackerError, System, solve


def _interval(result, system, cell):
    k = system.cells.index(cell)
    iv = result.intervals[k]
    return (iv.lo, iv.hi)


def test_two_by_two_with_one_published_margin():
    """a b | 12     a, b, c, d masked (true 3, 9, 12, 8); the row totals 12 and 20 and the grand
    c d | 20     total 32 published, the column totals (15, 17) masked. a + b = 12 with a, b >= 1:
    ----+---     a, b in [1, 11]; c + d = 20: c, d in [1, 19]. Nothing is determined."""
    s = System()
    values = {"a": 3, "b": 9, "c": 12, "d": 8}
    atoms = {k: s.atom((k,), v) for k, v in values.items()}
    a, b, c, d = atoms.values()
    cells = {k: s.cell(1, "t", "n", [("cell", k)], [atoms[k]], v, "masked") for k, v in values.items()}
    s.cell(1, "t", "n", [("row", 1)], [s.add(a, b)], 12, "published", 12)
    s.cell(1, "t", "n", [("row", 2)], [s.add(c, d)], 20, "published", 20)
    s.cell(1, "t", "n", [("col", 1)], [s.add(a, c)], 15, "masked")
    s.cell(1, "t", "n", [("col", 2)], [s.add(b, d)], 17, "masked")
    s.cell(1, "t", "n", [("all",)], [s.add(a, b, c, d)], 32, "published", 32)
    result = solve(s, width=1, exact=True)
    assert result.findings == [] and result.sensitive == 3  # a, b, d
    assert _interval(result, s, cells["a"]) == (1, 11)
    assert _interval(result, s, cells["b"]) == (1, 11)
    assert _interval(result, s, cells["d"]) == (1, 19)
    # the column totals published too: one degree of freedom left, a in [1, 11] still
    s.cell(1, "t", "n", [("col", 1), ("published", True)], [s.add(a, c)], 15, "published", 15)
    s.cell(1, "t", "n", [("col", 2), ("published", True)], [s.add(b, d)], 17, "published", 17)
    result = solve(s, width=1, exact=True)
    assert result.findings == [] and _interval(result, s, cells["a"]) == (1, 11)
    # and c (12, not sensitive) published: a = 15 - 12, b = 12 - a, d = 20 - 12
    s.cell(1, "t", "n", [("cell", "c"), ("published", True)], [c], 12, "published", 12)
    result = solve(s, width=1)
    assert sorted((f.cell.key, f.interval.lo, f.interval.hi) for f in result.findings) == [
        ((("cell", "a"),), 3, 3), ((("cell", "b"),), 9, 9), ((("cell", "d"),), 8, 8)]


def test_masked_parts_that_add_up_to_their_own_number_are_determined():
    """all 36 and type 2 34 published: type 1 and unspecified are masked and add up to 2, each at
    least 1, so each is exactly 1 (integer bounds within one relation: finding 2)."""
    s = System()
    t1, t2, un = s.atom(("type_1",), 1), s.atom(("type_2",), 34), s.atom(("unspecified",), 1)
    m1 = s.cell(1, "indicators", "cases", [("subtype", "type_1")], [t1], 1, "masked")
    s.cell(1, "indicators", "cases", [("subtype", "type_2")], [t2], 34, "published", 34)
    m2 = s.cell(1, "indicators", "cases", [("subtype", "unspecified")], [un], 1, "masked")
    s.cell(1, "indicators", "cases", [("subtype", "all")], [s.add(t1, t2, un)], 36, "published", 36)
    result = solve(s, width=1)
    assert len(result.findings) == 2
    assert {(f.cell.key, f.interval.lo, f.interval.hi) for f in result.findings} == {
        (m1.key, 1, 1), (m2.key, 1, 1)}
    # with a third masked part of 5, the two cannot be told apart any more: 1 to 6 each
    s2 = System()
    parts = [s2.atom((k,), v) for k, v in (("a", 1), ("b", 34), ("c", 1), ("d", 5))]
    cells = [s2.cell(1, "t", "n", [("p", k)], [e], v, "masked" if k != "b" else "published", v if k == "b" else None)
             for (k, v), e in zip((("a", 1), ("b", 34), ("c", 1), ("d", 5)), parts)]
    s2.cell(1, "t", "n", [("p", "all")], [s2.add(*parts)], 41, "published", 41)
    result = solve(s2, width=1, exact=True)
    assert result.findings == []
    assert _interval(result, s2, cells[0]) == (1, 5)
    # the protection width: an interval of width 5 fails a width of 6
    assert len(solve(s2, width=6).findings) == 3


def test_a_moved_zone_is_the_difference_of_two_runs_territories():
    """Two runs on the same data: zones z1, z2, z3 (true 30, 16, 1) in territory T of run 1 (47),
    z3 moved to another territory in run 2 (T = 46). Every zone is masked or hidden; the shared
    atoms make z3 = 47 - 46 = 1 (differencing across runs: finding 1). One run alone does not."""
    def build(runs):
        s = System()
        zones = {z: v for z, v in (("z1", 30), ("z2", 16), ("z3", 1), ("z4", 40))}
        atoms = {z: s.atom(("cases", z), v) for z, v in zones.items()}
        for run, members in runs:
            for z, v in zones.items():
                s.cell(run, "indicators", "cases", [("zone", z)], [atoms[z]], v, "hidden")
            for t, zs in members.items():
                total = sum(zones[z] for z in zs)
                s.cell(run, "indicators", "cases", [("territory", t)], [s.add(*(atoms[z] for z in zs))], total,
                       "published", total)
        return s

    one = build([(1, {"T": ["z1", "z2", "z3"], "U": ["z4"]})])
    assert solve(one, width=1).findings == []
    two = build([(1, {"T": ["z1", "z2", "z3"], "U": ["z4"]}), (2, {"T": ["z1", "z2"], "U": ["z3", "z4"]})])
    result = solve(two, width=1)
    assert {(f.cell.run_id, f.cell.key) for f in result.findings} == {(1, (("zone", "z3"),)), (2, (("zone", "z3"),))}
    assert all((f.interval.lo, f.interval.hi) == (1, 1) for f in result.findings)


def test_atoms_are_shared_only_between_equal_true_values():
    """The same key with another true value (another year's data) is another unknown."""
    s = System()
    assert s.atom(("k",), 3) == s.atom(("k",), 3)
    assert s.atom(("k",), 3) != s.atom(("k",), 4)


def test_integrality_narrows_an_interval_the_real_relaxation_would_not():
    """A rate: events = 0.5 x n (published rate), n + m = 5 published, n and m masked. Real
    solutions: n anywhere in [1, 4]; integer ones: n even, so n in {2, 4}, events in {1, 2}."""
    s = System()
    n, m, e = s.atom(("n",), 2), s.atom(("m",), 3), s.atom(("events",), 1)
    cn = s.cell(1, "cal", "n", [("bin", 1)], [n], 2, "masked")
    s.cell(1, "cal", "n", [("bin", 2)], [m], 3, "masked")
    ce = s.cell(1, "cal", "events", [("bin", 1)], [e], 1, "masked")
    s.cell(1, "cal", "n", [("bin", "all")], [s.add(n, m)], 5, "published", 5)
    assert s.rate(e, n, 0.5, 1.0, "rate")
    result = solve(s, width=1, exact=True)
    assert _interval(result, s, cn) == (2, 4)
    assert _interval(result, s, ce) == (1, 2)
    assert solve(s, width=3).findings  # [2, 4] is 2 wide


def test_a_rate_published_with_its_count_gives_the_masked_denominator():
    """A transition of 133 published with its proportion 0.806061 (133 / 165) while the row total
    is masked: the total is 165, and the masked rest 165 - 133 - 18 = 14."""
    s = System()
    a, b, c = s.atom(("a",), 133), s.atom(("b",), 18), s.atom(("c",), 14)
    total = s.add(a, b, c)
    s.cell(1, "transitions", "count", [("to", "a")], [a], 133, "published", 133)
    s.cell(1, "transitions", "count", [("to", "b")], [b], 18, "published", 18)
    s.cell(1, "transitions", "count", [("to", "all")], [total], 165, "masked")
    assert s.rate(a, total, 133 / 165, 1.0, "proportion", numerator_value=133)
    s.cell(1, "transitions", "count", [("to", "c")], [c], 14, "masked")
    assert solve(s, width=1).findings == []  # nothing sensitive yet (14, 165)
    # deaths = people - followed: 171 - 165
    people, deaths = s.atom(("people",), 171), s.atom(("deaths",), 6)
    s.cell(1, "care_use", "people", [("s", "x")], [people], 171, "published", 171)
    dead = s.cell(1, "care_use", "deaths", [("s", "x")], [deaths], 6, "masked")
    assert s.equal(people, s.add(total, deaths), "people = followed + deaths")
    result = solve(s, width=1)
    assert [(f.cell.key, f.interval.lo, f.interval.hi) for f in result.findings] == [(dead.key, 6, 6)]


def test_relations_that_the_truth_violates_are_not_used():
    s = System()
    x, y = s.atom(("x",), 3), s.atom(("y",), 14)
    assert not s.equal(x, y, "x = y")
    assert s.dropped["x = y"] == 1
    s.cell(1, "t", "n", [("x",)], [x], 3, "masked")
    s.cell(1, "t", "n", [("y",)], [y], 14, "published", 14)
    assert solve(s).findings == []  # x = y would have given x = 14, wrongly
    # a structural expression that does not give the cell's value: the cell gets an atom of its own
    z = s.cell(1, "t", "n", [("z",)], [s.add(x, y)], 18, "masked")
    assert s.value(z.expr) == 18 and set(z.expr) - set(s.add(x, y))


def test_a_published_value_that_differs_from_the_truth_is_an_error_of_the_attacker():
    s = System()
    x = s.atom(("x",), 3)
    with pytest.raises(AttackerError):
        s.cell(1, "t", "n", [("x",)], [x], 3, "published", 4)


def test_a_cell_with_no_upper_bound_is_wide_open():
    s = System()
    x, y = s.atom(("x",), 2), s.atom(("y",), 50)
    cx = s.cell(1, "t", "n", [("x",)], [x], 2, "masked")
    s.cell(1, "t", "n", [("y",)], [y], 50, "masked")
    s.cell(1, "t", "n", [("x+y",)], [s.add(x, y)], 52, "masked")
    result = solve(s, width=1, exact=True)
    lo, hi = _interval(result, s, cx)
    assert lo == 1 and (math.isinf(hi) or hi >= 10**6)


def test_hidden_cells_have_no_lower_bound_of_one():
    """A count never published (deaths per zone) can be 0 for the attacker: zones a, b (true 1
    and 1) hidden, c published (11), their territory published (13): a and b are each in [0, 2].
    Masked instead of hidden, each is at least 1, so exactly 1."""
    for status, expected, findings in (("hidden", (0, 2), 0), ("masked", (1, 1), 2)):
        s = System()
        a, b, c = s.atom(("a",), 1), s.atom(("b",), 1), s.atom(("c",), 11)
        ca = s.cell(1, "care_use", "deaths", [("zone", "a")], [a], 1, status)
        s.cell(1, "care_use", "deaths", [("zone", "b")], [b], 1, status)
        s.cell(1, "care_use", "deaths", [("zone", "c")], [c], 11, "published", 11)
        s.cell(1, "care_use", "deaths", [("territory", "t")], [s.add(a, b, c)], 13, "published", 13)
        result = solve(s, width=1, exact=True)
        assert len(result.findings) == findings and _interval(result, s, ca) == expected


def test_a_component_too_large_is_reported_not_skipped(monkeypatch):
    """A component of unknowns beyond the solver's limit is reported as unsolved, with its size."""
    import tests.attack.solver as solver

    s = System()
    parts = [s.atom(("p", k), 2) for k in range(5)]
    for k, e in enumerate(parts):
        s.cell(1, "t", "n", [("p", k)], [e], 2, "masked")
    s.cell(1, "t", "n", [("all",)], [s.add(*parts)], 10, "masked")
    monkeypatch.setattr(solver, "MAX_COMPONENT_ATOMS", 3)
    result = solve(s)
    assert len(result.unsolved) == 6 and result.findings == []
    assert all("component of 5 unknowns" in f.reason for f in result.unsolved)
    assert "6 not solved" in result.summary()
