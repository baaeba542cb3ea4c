"""Quality metrics on a hand-made problem where every figure can be computed by hand, and on the
planted territories of the demo world."""

from __future__ import annotations

import math

import geopandas as gpd
import polars as pl
import pytest
import shapely
from sklearn.metrics import adjusted_rand_score

from respop.delineation.base import FlowProblem
from respop.delineation.flows import rook_adjacency
from respop.delineation.metrics import (
    adjusted_rand,
    dissolve_territories,
    fragile_zones,
    modularity,
    overall_metrics,
    territory_metrics,
)

def build_demo(out):
    """The flow problem of the demo world (2023) generated in ``out`` (the ``demo_2023`` fixture,
    tests/delineation/conftest.py), its zones, the planted territories, and for each planted
    territory its main group (the group located in it that receives the most stays)."""
    from respop.delineation.flows import build_problem
    from respop.pmsi import read_pmsi

    zones = gpd.read_parquet(out / "reference" / "zones.parquet")
    problem = build_problem(
        read_pmsi(out / "pmsi").stays, zones, pl.read_parquet(out / "reference" / "population.parquet"),
        pl.read_parquet(out / "reference" / "hospitals.parquet"), years=[2023],
    )
    truth = pl.read_parquet(out / "truth" / "zone_territory.parquet")
    received = problem.flows.group_by("group").agg(pl.col("stays").sum())
    main_group = (
        problem.groups.join(truth.select("zone_code", pl.col("territory_id").cast(pl.Int32)), on="zone_code")
        .join(received, on="group")
        .sort(["territory_id", "stays", "group"], descending=[False, True, False])
        .group_by("territory_id", maintain_order=True)
        .first()
        .select("territory_id", "group")
    )
    return problem, zones, truth, main_group


@pytest.fixture(scope="module")
def demo(demo_2023):
    return build_demo(demo_2023)


# 2 rows × 4 columns of 1 km squares (Lambert-93 metres):
#   29001 29002 | 56001 56002
#   29003 29004 | 56003 56004
# territory 1 = the left 2×2 block, territory 2 = the right one.
GRID = [["29001", "29002", "56001", "56002"], ["29003", "29004", "56003", "56004"]]
KM = 1000.0


def grid_zones() -> gpd.GeoDataFrame:
    codes, geoms = [], []
    for row, line in enumerate(GRID):
        for col, code in enumerate(line):
            codes.append(code)
            geoms.append(shapely.box(col * KM, -(row + 1) * KM, (col + 1) * KM, -row * KM))
    return gpd.GeoDataFrame({"zone_code": codes}, geometry=geoms, crs="EPSG:2154").sort_values("zone_code").reset_index(drop=True)


FLOWS = [
    ("29001", "G1", 80), ("29001", "G2", 20),
    ("29002", "G1", 60), ("29002", "G2", 40),
    ("29003", "G1", 50),
    ("29004", "G1", 10), ("29004", "G2", 30),  # drawn to territory 2: ratio 3
    ("56001", "G1", 45), ("56001", "G2", 55),  # ratio 45/55 ≈ 0.82
    ("56002", "G2", 100),
    ("56003", "G2", 40), ("56003", "G3", 10),  # G3 is out of scope: not a territory
    # 56004: no stay
]


def grid_problem() -> FlowProblem:
    zones = grid_zones()
    return FlowProblem(
        flows=pl.DataFrame(FLOWS, schema={"zone_code": pl.String, "group": pl.String, "stays": pl.Int64}, orient="row"),
        zones=pl.DataFrame({"zone_code": zones["zone_code"].tolist(),
                            "population": [1000, 1000, 1000, 1000, 1000, 1000, 1000, 0]},
                           schema={"zone_code": pl.String, "population": pl.Int64}),
        adjacency=rook_adjacency(zones),
        groups=pl.DataFrame({"group": ["G1", "G2", "G3"], "zone_code": ["29001", "56002", "35001"],
                             "name": ["Aubens", "Verac", "Rennes"]}),
    )


def grid_assignment() -> pl.DataFrame:
    codes = [c for line in GRID for c in line]
    return pl.DataFrame(
        {"zone_code": codes, "territory_id": [1 if c.startswith("29") else 2 for c in codes]},
        schema={"zone_code": pl.String, "territory_id": pl.Int32},
    ).sort("zone_code")


# by hand: residents' stays, stays kept inside, stays received by the territory's groups
LI_1, LI_2 = 200 / 290, 195 / 250
MSI_1, MSI_2 = 200 / 245, 195 / 285
SQUARE_2KM = 8 * KM / (3.54 * 2 * KM)


def test_territory_metrics_by_hand():
    m = territory_metrics(grid_assignment(), grid_problem(), grid_zones())
    assert m.columns == ["territory_id", "population", "zones", "hospitals", "stays_residents",
                         "localization_index", "market_share_index", "compactness", "area_km2"]
    rows = {r["territory_id"]: r for r in m.iter_rows(named=True)}
    assert rows[1]["population"] == 4000 and rows[2]["population"] == 3000
    assert rows[1]["zones"] == rows[2]["zones"] == 4
    assert rows[1]["hospitals"] == rows[2]["hospitals"] == 1
    assert rows[1]["stays_residents"] == 290 and rows[2]["stays_residents"] == 250
    assert rows[1]["localization_index"] == pytest.approx(LI_1)
    assert rows[2]["localization_index"] == pytest.approx(LI_2)
    assert rows[1]["market_share_index"] == pytest.approx(MSI_1)
    assert rows[2]["market_share_index"] == pytest.approx(MSI_2)
    for r in rows.values():
        assert r["compactness"] == pytest.approx(SQUARE_2KM)
        assert r["area_km2"] == pytest.approx(4.0)


def test_compactness_of_an_elongated_territory_is_larger():
    # territory 1 = the top row (4 km × 1 km), territory 2 = the bottom row
    a = pl.DataFrame({"zone_code": [c for line in GRID for c in line],
                      "territory_id": [1] * 4 + [2] * 4}, schema={"zone_code": pl.String, "territory_id": pl.Int32})
    m = territory_metrics(a, grid_problem(), grid_zones())
    assert m["compactness"].to_list() == pytest.approx([10 / (3.54 * 2)] * 2)
    assert (m["compactness"] > SQUARE_2KM).all()


def test_territory_without_stays_or_hospital_has_null_indices():
    a = grid_assignment().with_columns(
        pl.when(pl.col("zone_code") == "56004").then(3).otherwise(pl.col("territory_id")).cast(pl.Int32).alias("territory_id")
    )
    m = territory_metrics(a, grid_problem(), grid_zones()).filter(pl.col("territory_id") == 3).row(0, named=True)
    assert m["hospitals"] == 0 and m["stays_residents"] == 0 and m["population"] == 0
    assert m["localization_index"] is None and m["market_share_index"] is None
    assert m["compactness"] == pytest.approx(4 / 3.54)


def test_dissolve_keeps_crs_and_one_row_per_territory():
    d = dissolve_territories(grid_assignment(), grid_zones())
    assert d.crs.to_epsg() == 2154
    assert d["territory_id"].tolist() == [1, 2]
    assert all(g.geom_type == "Polygon" for g in d.geometry)
    assert d.geometry.area.tolist() == pytest.approx([4e6, 4e6])


def test_modularity_by_hand():
    # communities: {zones of 1, G1}, {zones of 2, G2}, {G3} (out of scope: on its own)
    m = 540.0
    internal = 200 + 195
    degrees = [290 + 245, 250 + 285, 10]
    expected = internal / m - sum((d / (2 * m)) ** 2 for d in degrees)
    assert modularity(grid_assignment(), grid_problem()) == pytest.approx(expected)


def test_overall_metrics_by_hand():
    o = overall_metrics(grid_assignment(), grid_problem(), grid_zones())
    assert o["territories"] == 2
    assert o["mean_li"] == pytest.approx((LI_1 + LI_2) / 2)
    assert o["min_li"] == pytest.approx(LI_1)
    assert o["weighted_li"] == pytest.approx((4000 * LI_1 + 3000 * LI_2) / 7000)
    assert o["mean_msi"] == pytest.approx((MSI_1 + MSI_2) / 2)
    assert o["mean_compactness"] == pytest.approx(SQUARE_2KM)
    assert o["min_population"] == 3000
    assert o["modularity"] == pytest.approx(modularity(grid_assignment(), grid_problem()))


def test_fragile_zones():
    f = fragile_zones(grid_assignment(), grid_problem(), threshold=0.8)
    assert f.columns == ["zone_code", "territory_id", "stays", "best_share", "second_territory_id", "second_share", "ratio"]
    assert f["zone_code"].to_list() == ["29004", "56001"]  # ratio descending
    first, second = f.row(0, named=True), f.row(1, named=True)
    assert first["territory_id"] == 1 and first["second_territory_id"] == 2 and first["stays"] == 40
    assert first["best_share"] == pytest.approx(0.25) and first["second_share"] == pytest.approx(0.75)
    assert first["ratio"] == pytest.approx(3.0)
    assert second["territory_id"] == 2 and second["second_territory_id"] == 1
    assert second["ratio"] == pytest.approx(45 / 55)
    # a lower threshold lets 29002 (40/60) in; 56003 has no other territory (G3 is out of scope)
    assert fragile_zones(grid_assignment(), grid_problem(), threshold=0.6)["zone_code"].to_list() == [
        "29004", "56001", "29002"]
    assert fragile_zones(grid_assignment(), grid_problem(), threshold=5.0).is_empty()


def test_zone_with_no_stay_in_its_territory_has_infinite_ratio():
    a = grid_assignment().with_columns(
        pl.when(pl.col("zone_code") == "29003").then(2).otherwise(pl.col("territory_id")).cast(pl.Int32).alias("territory_id")
    )
    f = fragile_zones(a, grid_problem()).row(0, named=True)
    assert f["zone_code"] == "29003" and f["best_share"] == 0.0 and math.isinf(f["ratio"])


def test_adjusted_rand():
    a = grid_assignment()
    relabelled = a.with_columns((3 - pl.col("territory_id")).alias("territory_id"))
    assert adjusted_rand(a, relabelled) == pytest.approx(1.0)
    other = a.with_columns(pl.Series("territory_id", [1, 1, 1, 2, 2, 2, 2, 2]))
    expected = adjusted_rand_score(other["territory_id"].to_list(), a["territory_id"].to_list())
    assert adjusted_rand(a, other) == pytest.approx(expected)
    with pytest.raises(ValueError, match="56004"):
        adjusted_rand(a, other.filter(pl.col("zone_code") != "56004"))


def test_planted_territories_of_the_demo_world(demo):
    problem, zones, truth, _ = demo
    assignment = truth.select("zone_code", pl.col("territory_id").cast(pl.Int32))
    m = territory_metrics(assignment, problem, zones)
    assert m.height == 5
    assert m["population"].sum() == problem.zones["population"].sum()
    assert (m["hospitals"] >= 1).all()
    assert m["localization_index"].min() > 0.5
    assert m["market_share_index"].min() > 0.5
    assert m["compactness"].is_between(1.0, 2.0).all()
    o = overall_metrics(assignment, problem, zones)
    assert 0.3 < o["modularity"] < 0.8
    assert adjusted_rand(assignment, truth) == 1.0
