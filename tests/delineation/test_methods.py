"""Plurality and Leiden on small hand-made problems."""

from __future__ import annotations

import pytest

from respop.delineation.leiden import Leiden
from respop.delineation.plurality import Plurality
from tests.delineation.worlds import as_dict, code, grid, problem

ALL = [code(r, c) for r in range(4) for c in range(4)]


def partition(assignment) -> set[frozenset[str]]:
    out: dict[int, set[str]] = {}
    for z, t in as_dict(assignment).items():
        out.setdefault(t, set()).add(z)
    return {frozenset(v) for v in out.values()}


# --- plurality ----------------------------------------------------------------------------------


def test_plurality_group_losing_its_own_zone_disappears():
    flows = {
        ("z00", "H1"): 100,
        ("z01", "H1"): 60, ("z01", "H3"): 40,  # H3's own zone prefers H1: H3 disappears
        ("z02", "H3"): 50, ("z02", "H2"): 40, ("z02", "H1"): 5,  # next best: H2
        ("z03", "H2"): 100,
    }
    p = problem(grid(1, 4), flows, {"H1": "z00", "H2": "z03", "H3": "z01"})
    m = Plurality().fit(p)
    assert m.surviving_groups_ == ["H1", "H2"]
    assert partition(m.assignment_) == {frozenset({"z00", "z01"}), frozenset({"z02", "z03"})}
    assert m.main_group_["group"].to_list() == ["H1", "H2"]
    assert as_dict(m.assignment_) == {"z00": 1, "z01": 1, "z02": 2, "z03": 2}


def test_plurality_circular_preferences_keep_one_group():
    flows = {("z00", "A"): 40, ("z00", "B"): 60, ("z01", "A"): 60, ("z01", "B"): 30}
    p = problem(grid(1, 2), flows, {"A": "z00", "B": "z01"})
    m = Plurality().fit(p)
    assert m.surviving_groups_ == ["A"]
    assert partition(m.assignment_) == {frozenset({"z00", "z01"})}


def test_plurality_island_merged_into_surroundings():
    # z10 sends its plurality to H2 (far right) but is surrounded by H1 zones
    flows = {(z, "H1" if z[2] in "01" else "H2"): 50 for z in ALL}
    flows[("z10", "H2")] = 80
    p = problem(grid(4, 4), flows, {"H1": "z00", "H2": "z03"})
    m = Plurality().fit(p)
    assert partition(m.assignment_) == {
        frozenset(code(r, c) for r in range(4) for c in (0, 1)),
        frozenset(code(r, c) for r in range(4) for c in (2, 3)),
    }


def test_plurality_zones_without_stays_and_min_population():
    flows = {(z, "H1"): 50 for z in ALL if z[2] == "0"}
    flows.update({(z, "H2"): 50 for z in ALL if z[2] == "3"})
    flows.update({(z, "H3"): 50 for z in ALL if z[2] == "2"})
    p = problem(grid(4, 4), flows, {"H1": "z00", "H2": "z03", "H3": "z02"})  # column 1: no stays
    assert Plurality().fit(p).assignment_["territory_id"].n_unique() == 3
    m = Plurality(min_population=5000).fit(p)
    assert m.assignment_["territory_id"].n_unique() == 2


# --- leiden -------------------------------------------------------------------------------------


def _two_blocks(cross: int = 5):
    """Left half uses H1 (at z00), right half H2 (at z03), a few stays across."""
    flows = {}
    for z in ALL:
        left = z[2] in "01"
        flows[(z, "H1")] = 100 if left else cross
        flows[(z, "H2")] = cross if left else 100
    return problem(grid(4, 4), flows, {"H1": "z00", "H2": "z03"})


def test_leiden_finds_the_two_blocks():
    m = Leiden(seed=3).fit(_two_blocks())
    assert partition(m.assignment_) == {
        frozenset(code(r, c) for r in range(4) for c in (0, 1)),
        frozenset(code(r, c) for r in range(4) for c in (2, 3)),
    }
    assert m.resolution_ == 1.0
    assert m.main_group_["group"].to_list() == ["H1", "H2"]


def test_leiden_target_count():
    p = _two_blocks()
    one = Leiden(target_count=1).fit(p)
    assert one.assignment_["territory_id"].n_unique() == 1
    assert one.resolution_ < 1.0
    assert Leiden(target_count=2, resolution=0.01).fit(p).assignment_["territory_id"].n_unique() == 2
    # more than possible (two hospitals): the closest below
    assert Leiden(target_count=5).fit(p).assignment_["territory_id"].n_unique() == 2


def test_leiden_is_deterministic():
    p = _two_blocks(cross=40)
    a = Leiden(seed=7, resolution=1.3).fit(p).assignment_
    b = Leiden(seed=7, resolution=1.3).fit(p).assignment_
    assert a.equals(b)


def test_leiden_zone_without_stays():
    p = _two_blocks()
    flows = p.flows.filter(p.flows["zone_code"] != "z11")
    p2 = type(p)(flows=flows, zones=p.zones, adjacency=p.adjacency, groups=p.groups)
    assert as_dict(Leiden().fit(p2).assignment_)["z11"] == as_dict(Leiden().fit(p2).assignment_)["z00"]


def test_leiden_parameters():
    with pytest.raises(ValueError):
        Leiden(resolution=0).fit(_two_blocks())
    with pytest.raises(ValueError):
        Leiden(target_count=0).fit(_two_blocks())


def test_resolution_search_steps():
    step = Leiden._next_resolution
    assert step({1.0: 5}, 5) is None
    assert step({1.0: 10}, 40) == pytest.approx(4.0)  # ratio of target to count
    assert step({1.0: 10}, 11) == pytest.approx(2.0)  # at least doubles
    assert step({1.0: 10}, 10_000) == pytest.approx(64.0)  # at most 64 times
    assert step({1.0: 40}, 10) == pytest.approx(0.25)
    mid = step({1.0: 10, 4.0: 40}, 20)  # power law through the ends: k = 10 r
    assert mid == pytest.approx(2.0)
    assert 1.0 < step({1.0: 10, 4.0: 400}, 11) < 4.0
    assert step({1.0: 10, 1.0005: 40}, 20) is None


def test_plurality_zone_without_stays_keeps_its_hospital():
    # z01 hosts H2 but has no stays; z00's stays all go outside the scope
    p = problem(grid(1, 2), {("z00", "elsewhere"): 30}, {"H2": "z01"})
    m = Plurality().fit(p)
    assert partition(m.assignment_) == {frozenset({"z00", "z01"})}
