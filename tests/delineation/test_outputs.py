"""Territory names, and the files written for a delineation: readable, right CRS, a plausible map."""

from __future__ import annotations

import struct

import geopandas as gpd
import polars as pl
import pytest
from matplotlib.figure import Figure

from respop.delineation.base import FlowProblem
from respop.delineation.metrics import dissolve_territories
from respop.delineation.outputs import hospital_points, render_map, territory_names, write_outputs
from tests.delineation.test_metrics import build_demo, grid_assignment, grid_problem, grid_zones


def _names(towns: list[tuple[str, str]], main: list[int | None] | None = None) -> list[str]:
    """Names of territories 1..n whose main groups are located in the given (zone, town)."""
    groups = pl.DataFrame({
        "group": [f"G{i}" for i in range(len(towns))],
        "zone_code": [z for z, _ in towns],
        "name": [t for _, t in towns],
    })
    problem = FlowProblem(flows=pl.DataFrame(), zones=pl.DataFrame(), adjacency=pl.DataFrame(), groups=groups)
    ids = list(range(1, len(towns) + 1))
    assignment = pl.DataFrame({"zone_code": [z for z, _ in towns], "territory_id": ids},
                              schema={"zone_code": pl.String, "territory_id": pl.Int32})
    main = main if main is not None else list(range(len(towns)))
    main_group = pl.DataFrame({"territory_id": ids, "group": [None if m is None else f"G{m}" for m in main]},
                              schema={"territory_id": pl.Int32, "group": pl.String})
    out = territory_names(assignment, main_group, problem)
    assert out.columns == ["territory_id", "territory_name"]
    assert out["territory_id"].to_list() == ids
    return out["territory_name"].to_list()


def test_names_use_de_and_elision():
    assert _names([("29001", "Quimper"), ("29002", "Aubens"), ("29003", "Hyères"), ("29004", "Le Mans"),
                   ("29005", "Les Ponts"), ("29006", "Élancourt"), ("29007", "Haute-Goulaine"),
                   ("29008", "La Rochelle"), ("29009", "Yvetot")]) == [
        "Territoire de Quimper", "Territoire d'Aubens", "Territoire d'Hyères", "Territoire du Mans",
        "Territoire des Ponts", "Territoire d'Élancourt", "Territoire de Haute-Goulaine",
        "Territoire de La Rochelle", "Territoire d'Yvetot",
    ]


def test_duplicate_names_get_the_departement_then_a_number():
    assert _names([("29001", "Saint-Pierre"), ("56001", "Saint-Pierre"), ("29002", "Brest")]) == [
        "Territoire de Saint-Pierre (29)", "Territoire de Saint-Pierre (56)", "Territoire de Brest"]
    assert _names([("29001", "Saint-Pierre"), ("29005", "Saint-Pierre"), ("97411", "Saint-Pierre")]) == [
        "Territoire de Saint-Pierre (29)", "Territoire de Saint-Pierre (29) 2", "Territoire de Saint-Pierre (974)"]


def test_territory_without_main_group_is_numbered():
    assert _names([("29001", "Brest"), ("29002", "Morlaix")], main=[0, None]) == [
        "Territoire de Brest", "Territoire n° 2"]


def _png_size(path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", head[16:24])


def test_outputs_are_written_and_read_back(tmp_path):
    problem, zones = grid_problem(), grid_zones()
    main_group = pl.DataFrame({"territory_id": [1, 2], "group": ["G1", "G2"]},
                              schema={"territory_id": pl.Int32, "group": pl.String})
    paths = write_outputs(tmp_path, grid_assignment(), main_group, problem, zones, "plurality")
    assert set(paths) == {"zone_territory", "territories", "metrics", "fragile_zones", "map", "flows"}
    assert all(p.parent == tmp_path / "territories" and p.is_file() for p in paths.values())

    zt = pl.read_parquet(paths["zone_territory"])
    assert zt.columns == ["zone_code", "territory_id", "territory_name"]
    assert zt.height == 8
    assert dict(zt.select("territory_id", "territory_name").unique().iter_rows()) == {
        1: "Territoire d'Aubens", 2: "Territoire de Verac"}

    gdf = gpd.read_parquet(paths["territories"])
    assert len(gdf) == 2 and gdf.crs.to_epsg() == 2154
    assert {"territory_id", "territory_name", "localization_index", "market_share_index", "compactness",
            "area_km2", "population", "hospitals"} <= set(gdf.columns)
    assert gdf.geometry.area.tolist() == pytest.approx([4e6, 4e6])
    assert gdf["localization_index"].tolist() == pytest.approx([200 / 290, 195 / 250])

    raw = paths["metrics"].read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # UTF-8 with a byte-order mark, for spreadsheets
    metrics = pl.read_csv(paths["metrics"])
    assert metrics.columns[:2] == ["territory_id", "territory_name"]
    assert metrics["territory_name"].to_list() == ["Territoire d'Aubens", "Territoire de Verac"]

    fragile = pl.read_csv(paths["fragile_zones"])
    assert fragile["zone_code"].cast(pl.String).to_list() == ["29004", "56001"]
    assert fragile["second_territory_name"].to_list() == ["Territoire de Verac", "Territoire d'Aubens"]

    assert _png_size(paths["map"]) == (1600, 1200)
    assert paths["map"].stat().st_size > 20_000


def test_render_map_returns_a_figure():
    zones = grid_zones()
    assignment = grid_assignment()
    territories = dissolve_territories(assignment, zones)
    territories["territory_name"] = ["Territoire d'Aubens", "Territoire de Verac"]
    zones = zones.merge(assignment.to_pandas(), on="zone_code")
    fig = render_map(territories, zones, hospital_points(grid_problem(), grid_zones()), title="Essai")
    assert isinstance(fig, Figure)
    assert fig.get_size_inches() * fig.dpi == pytest.approx([1600, 1200])
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert "Territoire\nd'Aubens" in texts
    # hospital points: the two groups located in the grid, not the out-of-scope one
    assert len(hospital_points(grid_problem(), grid_zones())) == 2


def test_outputs_of_the_planted_demo_territories(tmp_path_factory, demo_2023):
    out = tmp_path_factory.mktemp("demo_outputs")
    problem, zones, truth, main_group = build_demo(demo_2023)
    assignment = truth.select("zone_code", pl.col("territory_id").cast(pl.Int32))
    paths = write_outputs(out, assignment, main_group, problem, zones, "vérité")
    gdf = gpd.read_parquet(paths["territories"])
    assert len(gdf) == 5 and gdf.crs == zones.crs
    assert gdf.geometry.is_valid.all() and (gdf.geometry.geom_type == "Polygon").all()
    assert gdf.geometry.area.sum() == pytest.approx(zones.geometry.area.sum(), rel=1e-6)
    # main group = the group located in the territory that receives the most stays: the planted hub
    names = dict(pl.read_parquet(paths["zone_territory"]).select("territory_id", "territory_name").unique().iter_rows())
    planted = dict(truth.select("territory_id", "territory_name").unique().iter_rows())
    assert names == planted
    assert _png_size(paths["map"]) == (1600, 1200)
