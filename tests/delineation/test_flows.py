"""Zone → hospital-group flows from canonical stays, and the starting configuration file."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys

import geopandas as gpd
import polars as pl
import shapely

from respop.config import load_config
from respop.delineation.flows import build_problem, flows, hospital_grouping, rook_adjacency


def _stays():
    rows = [
        # zone, hospital, age, exit date, DP, GHM
        ("10001", "100000001", 70, dt.date(2023, 3, 1), "I500", "05M09T"),
        ("10001", "100000001", 30, dt.date(2023, 4, 1), "K359", "06C16J"),
        ("10001", "100000002", 80, dt.date(2022, 5, 1), "I500", "05M09T"),
        ("10002", "100000002", 12, dt.date(2023, 6, 1), "S7200", "08C47J"),
    ]
    return pl.LazyFrame(rows, schema=["residence_zone", "hospital_id", "age", "exit_date", "principal_diagnosis", "ghm"], orient="row")


def test_flows_count_stays_with_the_configured_filters():
    assert flows(_stays()).rows() == [("10001", "100000001", 2), ("10001", "100000002", 1), ("10002", "100000002", 1)]
    assert flows(_stays(), years=[2023]).rows() == [("10001", "100000001", 2), ("10002", "100000002", 1)]
    assert flows(_stays(), adults_only=True).rows() == [("10001", "100000001", 2), ("10001", "100000002", 1)]
    assert flows(_stays(), diagnosis_prefixes=["I50"]).rows() == [("10001", "100000001", 1), ("10001", "100000002", 1)]
    assert flows(_stays(), kind="surgical").rows() == [("10001", "100000001", 1), ("10002", "100000002", 1)]


def test_hospital_groups_by_town_and_by_table(tmp_path):
    hospitals = pl.DataFrame({"hospital_id": ["100000001", "100000002"], "zone_code": ["10001", "10002"], "town": ["Troyes", "Troyes"]})
    mapping, groups = hospital_grouping(hospitals, "town")
    assert flows(_stays(), hospital_groups=mapping).rows() == [("10001", "Troyes", 3), ("10002", "Troyes", 1)]
    assert groups.rows() == [("Troyes", "10001", "Troyes")]
    table = tmp_path / "ght.csv"
    pl.DataFrame({"hospital_id": ["100000001", "100000002"], "group": ["GHT Aube", "GHT Aube"]}).write_csv(table)
    mapping, _ = hospital_grouping(hospitals, table)
    assert flows(_stays(), hospital_groups=mapping)["group"].unique().to_list() == ["GHT Aube"]


def test_rook_adjacency_ignores_corner_contacts():
    boxes = [shapely.box(x, y, x + 1000, y + 1000) for y in (0, 1000) for x in (0, 1000)]
    zones = gpd.GeoDataFrame({"zone_code": ["a", "b", "c", "d"]}, geometry=boxes, crs=2154)
    pairs = set(rook_adjacency(zones).iter_rows())
    assert ("a", "b") in pairs and ("b", "a") in pairs and ("a", "c") in pairs
    assert ("a", "d") not in pairs and ("b", "c") not in pairs


def test_problem_covers_every_zone_of_the_scope_even_without_stays():
    boxes = [shapely.box(x, 0, x + 1000, 1000) for x in (0, 1000, 2000)]
    zones = gpd.GeoDataFrame({"zone_code": ["10001", "10002", "10003"]}, geometry=boxes, crs=2154)
    population = pl.DataFrame({"zone_code": ["10001", "10001", "10002"], "population": [600, 500, 2000]})
    hospitals = pl.DataFrame({"hospital_id": ["100000001", "100000002"], "zone_code": ["10001", "10002"], "town": ["A", "B"]})
    problem = build_problem(_stays(), zones, population, hospitals)
    assert problem.zone_codes == ["10001", "10002", "10003"]
    assert problem.zones["population"].to_list() == [1100, 2000, 0]
    assert set(problem.flows["zone_code"]) == {"10001", "10002"}


def test_territories_new_writes_a_valid_commented_file(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "respop", "territories", "new", "cornouaille", "--departements", "29,56", "--folder", str(tmp_path)],
        capture_output=True, text=True, env={"COLUMNS": "200"},
    )
    assert result.returncode == 0, result.stderr
    config = load_config(tmp_path / "cornouaille.toml")
    assert config.territories.departements == ["29", "56"] and config.name == "cornouaille"
    again = subprocess.run(
        [sys.executable, "-m", "respop", "territories", "new", "cornouaille", "--folder", str(tmp_path)],
        capture_output=True, text=True, env={"COLUMNS": "200"},
    )
    assert again.returncode == 2 and "already exists" in again.stderr


def test_rook_adjacency_in_degrees_is_measured_in_metres():
    boxes = [shapely.box(x, 48.0, x + 0.0625, 48.0625) for x in (2.0, 2.0625, 2.125)]  # exact in binary
    zones = gpd.GeoDataFrame({"zone_code": ["a", "b", "c"]}, geometry=boxes, crs=4326)
    assert set(rook_adjacency(zones).iter_rows()) == {("a", "b"), ("b", "a"), ("b", "c"), ("c", "b")}


def test_scope_by_departement_takes_corsica_and_overseas_codes():
    from respop.config import Config, TerritoriesConfig
    from respop.delineation.run import scope
    from respop.errors import ConfigError

    zones = gpd.GeoDataFrame({"zone_code": ["2A004", "2B001", "97101", "97201", "29001"]},
                             geometry=[shapely.box(i, 0, i + 1, 1) for i in range(5)], crs=2154)
    config = Config(territories=TerritoriesConfig(departements=["2A", "971"]))
    assert scope(config, zones) == ["2A004", "97101"]
    import pytest

    with pytest.raises(ConfigError, match="no zone in département"):
        scope(Config(territories=TerritoriesConfig(departements=["56"])), zones)
