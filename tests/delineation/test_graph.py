"""The repair operations shared by the methods, on small hand-made grids."""

from __future__ import annotations

import geopandas as gpd
import pytest
import shapely

from respop.delineation.base import DelineationError
from respop.delineation.graph import (
    assign_unflowed, components, enforce_contiguity, ensure_hospital, merge_small, repair,
)
from tests.delineation.worlds import as_dict, code, from_rows, grid, labels, problem

ALL = [code(r, c) for r in range(4) for c in range(4)]


def grid_problem(flows=None, hospitals=None, population=None, unflowed=()):
    """4 × 4 grid; by default every zone (but ``unflowed``) sends 10 stays to g1 at z00."""
    if flows is None:
        flows = {(z, "g1"): 10 for z in ALL if z not in unflowed}
    return problem(grid(4, 4), flows, hospitals or {"g1": "z00", "g2": "z03"}, population)


# --- components ---------------------------------------------------------------------------------


def test_components_largest_first():
    p = grid_problem()
    assert components(["z33", "z00", "z01", "z11", "z13"], p) == [["z00", "z01", "z11"], ["z13"], ["z33"]]


def test_components_by_population():
    p = grid_problem(population={"z33": 10_000})
    assert components(["z00", "z01", "z33"], p) == [["z33"], ["z00", "z01"]]


def test_components_outside_scope():
    with pytest.raises(DelineationError, match="not in the scope"):
        components(["z00", "nowhere"], grid_problem())


# --- (a) zones without stays --------------------------------------------------------------------


def test_unflowed_takes_most_common_neighbour():
    p = grid_problem(unflowed={"z11"})
    start = from_rows(["1 1 2 2", "1 . 2 2", "1 1 2 2", "1 1 2 2"])
    out = as_dict(assign_unflowed(labels(start), p))
    assert out["z11"] == 1  # neighbours z01, z10, z21 in 1; z12 in 2
    assert {z: v for z, v in out.items() if z != "z11"} == {z: v for z, v in start.items() if z != "z11"}


def test_unflowed_tie_goes_to_smallest_label():
    p = grid_problem(unflowed={"z11"})
    start = from_rows(["5 7 7 7", "3 . 7 7", "3 3 7 7", "3 3 7 7"])  # z11: 7, 3, 7, 3
    assert as_dict(assign_unflowed(labels(start), p))["z11"] == 3


def test_unflowed_fills_in_rounds():
    middle = {code(r, c) for r in range(4) for c in (1, 2)}
    p = grid_problem(unflowed=middle)
    start = from_rows(["1 . . 2"] * 4)
    assert as_dict(assign_unflowed(labels(start), p)) == from_rows(["1 1 2 2"] * 4)


def test_unflowed_label_is_ignored_and_missing_zones_filled():
    p = grid_problem(unflowed={"z11"})
    start = from_rows(["1 1 2 2", "1 2 2 2", "1 1 2 2", "1 1 2 2"])
    start.pop("z32")  # a zone with stays but absent from the labels: filled too
    out = as_dict(assign_unflowed(labels(start), p))
    assert out["z11"] == 1 and out["z32"] == 2 and len(out) == 16


def test_unflowed_cut_off_zones_are_named():
    zones = gpd.GeoDataFrame(
        {"zone_code": ["a", "b", "far"]},
        geometry=[shapely.box(0, 0, 1000, 1000), shapely.box(1000, 0, 2000, 1000), shapely.box(9000, 0, 9500, 500)],
        crs="EPSG:2154",
    )
    p = problem(zones, {("a", "g1"): 5, ("b", "g1"): 5}, {"g1": "a"})
    with pytest.raises(DelineationError, match="cut off from every territory") as err:
        assign_unflowed(labels({"a": 1, "b": 1, "far": 1}), p)
    assert err.value.zones == ["far"]


def test_unflowed_without_any_stays():
    p = grid_problem(flows={})
    with pytest.raises(DelineationError):
        assign_unflowed(labels(dict.fromkeys(ALL, 1)), p)


def test_labels_checked():
    p = grid_problem()
    with pytest.raises(DelineationError, match="not in the scope"):
        assign_unflowed(labels({"z00": 1, "elsewhere": 1}), p)
    bad = labels({"z00": 1}).vstack(labels({"z00": 2}))
    with pytest.raises(DelineationError, match="twice"):
        assign_unflowed(bad, p)


# --- (b) contiguity -----------------------------------------------------------------------------


def test_enclave_joins_the_surrounding_territory():
    p = grid_problem()
    start = from_rows(["1 1 2 2", "1 1 2 2", "1 1 2 1", "1 1 2 2"])
    assert as_dict(enforce_contiguity(labels(start), p)) == from_rows(["1 1 2 2"] * 4)


def _three_territories(stays_g2: int, stays_g3: int, rows=None):
    rows = rows or ["1 2 2 2", "1 2 2 1", "1 3 3 3", "1 3 3 3"]
    hospitals = {"g1": "z00", "g2": "z02", "g3": "z32", "g4": "z11"}
    flows = {(z, "g1"): 10 for z in ALL if z != "z13"}
    flows[("z13", "g2")] = stays_g2
    flows[("z13", "g3")] = stays_g3
    flows[("z13", "g4")] = stays_g2
    return grid_problem(flows=flows, hospitals=hospitals), from_rows(rows)


def test_stray_goes_to_strongest_flow():
    p, start = _three_territories(stays_g2=10, stays_g3=50)  # z13 borders 2 twice, 3 once
    assert as_dict(enforce_contiguity(labels(start), p))["z13"] == 3


def test_stray_flow_tie_goes_to_most_borders():
    p, start = _three_territories(stays_g2=10, stays_g3=10)
    assert as_dict(enforce_contiguity(labels(start), p))["z13"] == 2


def test_stray_full_tie_goes_to_smallest_label():
    # z13 borders z03 (2), z12 (4) and z23 (3) once each, same stays to each one's hospital
    p, start = _three_territories(10, 10, rows=["1 2 2 2", "1 4 4 1", "1 3 3 3", "1 3 3 3"])
    assert as_dict(enforce_contiguity(labels(start), p))["z13"] == 2


def test_most_populous_part_keeps_the_territory():
    p = grid_problem(population={"z23": 5000})
    start = from_rows(["1 1 2 2", "2 2 2 2", "2 2 2 1", "2 2 2 2"])  # 1: {z00, z01} 2,000 and {z23} 5,000
    out = as_dict(enforce_contiguity(labels(start), p))
    assert out["z23"] == 1 and out["z00"] == out["z01"] == 2


def test_strays_within_strays():
    # 3 surrounds a stray of 1 which surrounds... every territory ends contiguous
    p = grid_problem()
    start = from_rows(["1 1 1 1", "2 3 3 2", "2 3 1 2", "2 2 2 2"])
    out = enforce_contiguity(labels(start), p)
    for t in set(as_dict(out).values()):
        assert len(components(out.filter(out["territory_id"] == t)["zone_code"].to_list(), p)) == 1


def test_island_becomes_its_own_territory():
    zones = gpd.GeoDataFrame(
        {"zone_code": ["a", "b", "isle"]},
        geometry=[shapely.box(0, 0, 1000, 1000), shapely.box(1000, 0, 2000, 1000), shapely.box(9000, 0, 9500, 500)],
        crs="EPSG:2154",
    )
    p = problem(zones, {("a", "g1"): 5, ("b", "g1"): 5, ("isle", "g1"): 5}, {"g1": "a", "g2": "isle"},
                population={"a": 1000, "b": 1000, "isle": 100})
    out = as_dict(enforce_contiguity(labels({"a": 1, "b": 1, "isle": 1}), p))
    assert out["a"] == out["b"] == 1 and out["isle"] not in (None, 1)


# --- (c) minimum population ---------------------------------------------------------------------


def _strip(population, flows, hospitals):
    return problem(grid(1, 3), flows, hospitals, population)


def test_merge_small_smallest_first():
    # z00 (500) is merged before z01 (600): into z01, its only neighbour; z01 would have gone to z02
    p = _strip({"z00": 500, "z01": 600, "z02": 5000},
               {("z00", "g2"): 10, ("z01", "g3"): 100, ("z01", "g1"): 1, ("z02", "g3"): 100},
               {"g1": "z00", "g2": "z01", "g3": "z02"})
    out = as_dict(merge_small(labels({"z00": 1, "z01": 2, "z02": 3}), p, 1000))
    assert out == {"z00": 2, "z01": 2, "z02": 3}


def test_merge_small_strongest_flow():
    p = _strip({"z00": 5000, "z01": 500, "z02": 5000},
               {("z01", "g1"): 5, ("z01", "g3"): 50}, {"g1": "z00", "g3": "z02"})
    assert as_dict(merge_small(labels({"z00": 1, "z01": 2, "z02": 3}), p, 1000))["z01"] == 3


def test_merge_small_down_to_one_territory_and_stops():
    p = grid_problem()
    start = {z: i for i, z in enumerate(ALL)}
    out = merge_small(labels(start), p, 10**9)  # infeasible: ends with one territory
    assert out["territory_id"].n_unique() == 1


def test_merge_small_leaves_big_enough_alone():
    p = grid_problem()
    start = from_rows(["1 1 2 2"] * 4)
    assert as_dict(merge_small(labels(start), p, 8000)) == start
    assert as_dict(merge_small(labels(start), p, 0)) == start


# --- (d) hospital -------------------------------------------------------------------------------


def test_territory_without_hospital_is_merged():
    p = _strip(None, {("z01", "g1"): 30, ("z01", "g3"): 10, ("z00", "g1"): 5, ("z02", "g3"): 5},
               {"g1": "z00", "g3": "z02"})
    assert as_dict(ensure_hospital(labels({"z00": 1, "z01": 2, "z02": 3}), p)) == {"z00": 1, "z01": 1, "z02": 3}


def test_internal_flow_optional():
    flows = {("z01", "g1"): 30, ("z01", "g3"): 10, ("z00", "g1"): 5, ("z02", "g3"): 5}
    p = _strip(None, flows, {"g1": "z00", "g2": "z01", "g3": "z02"})  # nobody goes to g2
    start = {"z00": 1, "z01": 2, "z02": 3}
    assert as_dict(ensure_hospital(labels(start), p)) == start
    assert as_dict(ensure_hospital(labels(start), p, internal_flow=True)) == {"z00": 1, "z01": 1, "z02": 3}


def test_repair_all_steps():
    p = grid_problem(unflowed={"z11"}, population={"z33": 400})
    start = from_rows(["1 1 2 2", "1 . 2 1", "1 1 2 2", "1 1 2 3"])
    out = as_dict(repair(labels(start), p, min_population=500))
    # z11 by contiguity, z13 enclave to 2, 3 ({z33}: small, no hospital) merged
    assert out == from_rows(["1 1 2 2", "1 1 2 2", "1 1 2 2", "1 1 2 2"])


def test_unflowed_label_kept_on_request():
    p = grid_problem(unflowed={"z11"})
    start = from_rows(["1 1 2 2", "1 2 2 2", "1 1 2 2", "1 1 2 2"])
    assert as_dict(assign_unflowed(labels(start), p, relabel_unflowed=False))["z11"] == 2
