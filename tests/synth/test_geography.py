"""Geography of the synthetic world: tiling, codes, population, contiguity, planted territories,
hospitals, and the hospital-choice (gravity) model that must carry the territories."""

from __future__ import annotations

import math
import re
import time
from collections import deque

import geopandas as gpd
import numpy as np
import polars as pl
import pytest
import shapely

from respop.pmsi.quality import ZONE_PATTERN, legal_entity_duplicates
from respop.synth.geography import World, hospital_choice, make_world, write_reference, write_truth
from respop.synth.profiles import AGE_BANDS, GeographyProfile, load_profile

SEEDS = (0, 1, 2)


@pytest.fixture(scope="module", params=["tiny", "demo"])
def case(request) -> tuple[GeographyProfile, World, np.ndarray]:
    profile = load_profile(request.param).geography
    world = make_world(profile, np.random.default_rng(20240))
    return profile, world, hospital_choice(world, profile)


# --- helpers ------------------------------------------------------------------------------------


def _neighbours(world: World) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {code: set() for code in world.zones["zone_code"]}
    for a, b in world.adjacency.iter_rows():
        out[a].add(b)
    return out


def _is_connected(codes: set[str], neighbours: dict[str, set[str]]) -> bool:
    start = next(iter(codes))
    seen, todo = {start}, deque([start])
    while todo:
        for nb in neighbours[todo.popleft()] & codes:
            if nb not in seen:
                seen.add(nb)
                todo.append(nb)
    return seen == codes


def _luhn_valid(number: str) -> bool:
    total = 0
    for i, c in enumerate(reversed(number)):
        d = int(c) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


def _territory_shares(world: World, prob: np.ndarray) -> np.ndarray:
    """(zones, territories): probability that a resident's stay is in each planted territory."""
    hosp_terr = world.hospitals["territory_id"].to_numpy()
    n_terr = world.territories.height
    return np.stack([prob[:, hosp_terr == t].sum(axis=1) for t in range(1, n_terr + 1)], axis=1)


# --- zones --------------------------------------------------------------------------------------


def test_zones_tile_the_rectangle(case):
    profile, world, _ = case
    zones = world.zones
    assert zones.crs.to_epsg() == 2154
    rect_area = profile.width_km * profile.height_km * 1e6
    geoms = zones.geometry.values
    assert all(g.geom_type == "Polygon" and g.is_valid and not g.is_empty for g in geoms)
    assert shapely.union_all(geoms).area == pytest.approx(rect_area, rel=1e-9)
    assert shapely.area(geoms).sum() == pytest.approx(rect_area, rel=1e-9)  # no overlaps
    minx, miny, maxx, maxy = shapely.total_bounds(geoms)
    assert (maxx - minx, maxy - miny) == pytest.approx((profile.width_km * 1e3, profile.height_km * 1e3))
    assert 100_000 < minx < maxx < 1_300_000 and 6_000_000 < miny < maxy < 7_200_000  # Lambert-93
    centroids = shapely.centroid(geoms)
    assert np.allclose(shapely.get_x(centroids), zones["x"]) and np.allclose(shapely.get_y(centroids), zones["y"])


def test_zone_codes_and_departements(case):
    profile, world, _ = case
    zones = world.zones
    codes = zones["zone_code"].tolist()
    assert len(codes) == profile.zones == len(set(codes))
    assert codes == sorted(codes)
    assert all(re.fullmatch(r"[0-9]{5}", c) and re.fullmatch(ZONE_PATTERN, c) for c in codes)
    assert (zones["zone_code"].str[:2] == zones["departement"]).all()
    expected = [n for n in range(profile.first_departement, 96) if n != 20][: profile.departements]
    assert sorted(set(zones["departement"])) == [f"{n:02d}" for n in expected]
    neighbours = _neighbours(world)
    for dep, group in zones.groupby("departement"):
        numbers = sorted(int(c[2:]) for c in group["zone_code"])
        assert numbers == list(range(1, len(numbers) + 1))
        assert _is_connected(set(group["zone_code"]), neighbours), f"département {dep} not contiguous"


def test_departement_codes_skip_corsica_and_stop_at_95():
    base = load_profile("tiny").geography
    profile = base.model_copy(update={"first_departement": 19, "departements": 3})
    world = make_world(profile, np.random.default_rng(1))
    assert sorted(set(world.zones["departement"])) == ["19", "21", "22"]
    # 19..95 would need a 96th département once 20 is skipped: the profile refuses it
    with pytest.raises(ValueError, match="past 95"):
        GeographyProfile(**{**base.model_dump(), "zones": 80, "population": 80_000,
                            "first_departement": 19, "departements": 77})


def test_zone_populations(case):
    profile, world, _ = case
    pop = world.zones["population"].to_numpy()
    assert pop.sum() == profile.population
    assert pop.min() >= profile.min_zone_population
    assert pop.max() > 1.3 * np.median(pop)  # towns stand out


def test_population_by_sex_and_age(case):
    _, world, _ = case
    table = world.population
    assert table.schema == pl.Schema({"zone_code": pl.String, "sex": pl.Int8, "age_band": pl.String,
                                      "population": pl.Int64})
    assert table.height == 2 * len(AGE_BANDS) * len(world.zones)
    assert set(table["age_band"].unique()) == set(AGE_BANDS) and set(table["sex"].unique()) == {1, 2}
    assert table["population"].min() >= 0
    per_zone = table.group_by("zone_code").agg(pl.col("population").sum()).sort("zone_code")
    assert per_zone["zone_code"].to_list() == world.zones["zone_code"].tolist()
    assert per_zone["population"].to_list() == world.zones["population"].tolist()
    total = table["population"].sum()
    young = table.filter(pl.col("age_band").is_in(["00-04", "05-09", "10-14"]))["population"].sum()
    old = table.filter(pl.col("age_band") >= "65-69")
    assert 0.16 < young / total < 0.20
    assert 0.19 < old["population"].sum() / total < 0.23
    assert old.filter(pl.col("sex") == 2)["population"].sum() > 1.1 * old.filter(pl.col("sex") == 1)["population"].sum()
    # zones differ in their age structure
    share_old = (table.group_by("zone_code").agg(
        (pl.col("population").filter(pl.col("age_band") >= "65-69").sum() / pl.col("population").sum()).alias("s")
    ))["s"]
    assert share_old.std() > 0.005


def test_adjacency_is_rook_contiguity_and_connected(case):
    _, world, _ = case
    adj = world.adjacency
    assert adj.columns == ["zone_code", "neighbour_code"]
    pairs = set(adj.iter_rows())
    assert len(pairs) == adj.height
    assert all((b, a) in pairs for a, b in pairs)
    assert all(a != b for a, b in pairs)
    geom = dict(zip(world.zones["zone_code"], world.zones.geometry.values))
    codes = list(geom)
    for i, a in enumerate(codes):  # exactly the pairs sharing a border of positive length
        for b in codes[i + 1:]:
            shared = geom[a].intersection(geom[b]).length
            assert ((a, b) in pairs) == (shared > 1.0), (a, b, shared)
    assert _is_connected(set(codes), _neighbours(world))


# --- territories and hospitals ------------------------------------------------------------------


def test_planted_territories_are_contiguous_and_contain_their_hub(case):
    profile, world, _ = case
    zones, hosp, terr = world.zones, world.hospitals, world.territories
    assert terr["territory_id"].to_list() == list(range(1, profile.territories + 1))
    assert sorted(zones["territory_id"].unique()) == list(range(1, profile.territories + 1))
    neighbours = _neighbours(world)
    hub_zone = dict(hosp.select("hospital_id", "zone_code").iter_rows())
    zone_terr = dict(zip(zones["zone_code"], zones["territory_id"]))
    median_pop = np.median(zones["population"])
    pop = dict(zip(zones["zone_code"], zones["population"]))
    for tid, name, hub_id in terr.iter_rows():
        members = set(zones.loc[zones["territory_id"] == tid, "zone_code"])
        assert _is_connected(members, neighbours), f"territory {tid} not contiguous"
        assert zone_terr[hub_zone[hub_id]] == tid
        assert pop[hub_zone[hub_id]] >= median_pop  # hubs sit in large towns
        hub_town = hosp.filter(pl.col("hospital_id") == hub_id)["town"].item()
        assert name.startswith("Territoire ")
        assert name.endswith(hub_town.removeprefix("Les ").removeprefix("Le "))


def test_hospitals_per_territory_and_kinds(case):
    profile, world, _ = case
    hosp, terr, zones = world.hospitals, world.territories, world.zones
    assert hosp.columns == ["hospital_id", "name", "town", "zone_code", "kind", "has_emergency",
                            "territory_id", "attractiveness", "x", "y"]
    assert hosp["hospital_id"].to_list() == sorted(hosp["hospital_id"])
    assert set(hosp["kind"]) <= {"CHU", "CH", "local", "private"}
    hubs = set(terr["hub_hospital_id"])
    assert set(hosp.filter(pl.col("kind").is_in(["CHU", "CH"]))["hospital_id"]) == hubs
    assert (hosp["kind"] == "CHU").sum() == min(profile.chu, profile.territories)
    zone_terr = dict(zip(zones["zone_code"], zones["territory_id"]))
    assert [zone_terr[z] for z in hosp["zone_code"]] == hosp["territory_id"].to_list()
    for lo_hi, kind in ((profile.local_hospitals_per_territory, "local"),
                        (profile.private_clinics_per_territory, "private")):
        counts = hosp.filter(pl.col("kind") == kind).group_by("territory_id").len()
        per = dict(counts.iter_rows())
        for t in range(1, profile.territories + 1):
            assert math.floor(lo_hi) <= per.get(t, 0) <= math.ceil(lo_hi)
    assert hosp.filter(pl.col("kind").is_in(["CHU", "CH"]))["has_emergency"].all()
    assert (hosp["attractiveness"] > 0).all()
    mean_attr = dict(hosp.group_by("kind").agg(pl.col("attractiveness").mean()).iter_rows())
    assert mean_attr["CHU"] > mean_attr.get("CH", 0) and mean_attr["CH"] > mean_attr["private"] > mean_attr["local"]
    # the CHU(s) sit in the largest hub towns
    pop = dict(zip(zones["zone_code"], zones["population"]))
    hub_rows = hosp.filter(pl.col("hospital_id").is_in(list(hubs)))
    chu_pop = min(pop[z] for z in hub_rows.filter(pl.col("kind") == "CHU")["zone_code"])
    ch_pops = [pop[z] for z in hub_rows.filter(pl.col("kind") == "CH")["zone_code"]]
    assert all(p <= chu_pop for p in ch_pops)
    # hospitals lie inside their zone
    geom = dict(zip(zones["zone_code"], zones.geometry.values))
    assert all(geom[z].contains(shapely.Point(x, y)) for z, x, y in hosp.select("zone_code", "x", "y").iter_rows())


def test_finess_numbers(case):
    _, world, _ = case
    hosp = world.hospitals
    ids = hosp["hospital_id"].to_list()
    assert len(ids) == len(set(ids))
    assert all(re.fullmatch(r"[0-9]{9}", i) for i in ids)
    assert all(i[:2] == z[:2] for i, z in zip(ids, hosp["zone_code"]))
    assert not set(ids) & legal_entity_duplicates()
    assert all(_luhn_valid(i) for i in ids)


def test_french_names(case):
    _, world, _ = case
    towns = world.towns
    assert towns["zone_code"].to_list() == world.zones["zone_code"].tolist()
    assert towns["town"].n_unique() == towns.height
    names = world.hospitals["name"].to_list()
    assert len(set(names)) == len(names)
    prefixes = {"CHU": ("CHU ",), "CH": ("CH ",), "local": ("Hôpital local ",),
                "private": ("Clinique ", "Polyclinique ")}
    town_of = dict(towns.iter_rows())
    for name, kind, zone, town in world.hospitals.select("name", "kind", "zone_code", "town").iter_rows():
        assert name.startswith(prefixes[kind]) and town == town_of[zone]
        assert re.search(r"(?:de |d'|du |des )" + re.escape(town.removeprefix("Le ").removeprefix("Les ")), name)


# --- hospital choice ----------------------------------------------------------------------------


def test_choice_probabilities(case):
    profile, world, prob = case
    assert prob.shape == (len(world.zones), world.hospitals.height)
    assert (prob >= 0).all()
    assert np.allclose(prob.sum(axis=1), 1.0, atol=1e-12)
    chu = (world.hospitals["kind"] == "CHU").to_numpy()
    assert (prob[:, chu].sum(axis=1) >= profile.chu_referral_share).all()


def test_choice_matches_the_formula():
    profile = load_profile("tiny").geography.model_copy(update={"chu": 2})
    world = make_world(profile, np.random.default_rng(5))
    prob = hospital_choice(world, profile)
    hosp = world.hospitals.to_dicts()
    total_attr = sum(h["attractiveness"] for h in hosp)
    for i, zone in enumerate(world.zones.itertuples()):
        d = [math.hypot(zone.x - h["x"], zone.y - h["y"]) / 1000 for h in hosp]
        g = [h["attractiveness"] * math.exp(-dj / profile.distance_decay_km)
             * (profile.territory_loyalty if h["territory_id"] == zone.territory_id else 1.0)
             for h, dj in zip(hosp, d)]
        c = [math.exp(-dj / (4 * profile.distance_decay_km)) if h["kind"] == "CHU" else 0.0
             for h, dj in zip(hosp, d)]
        rest = 1 - profile.chu_referral_share - profile.far_stay_share
        expected = [rest * gj / sum(g) + profile.chu_referral_share * cj / sum(c)
                    + profile.far_stay_share * h["attractiveness"] / total_attr
                    for h, gj, cj in zip(hosp, g, c)]
        assert np.allclose(prob[i], expected, rtol=1e-9, atol=1e-15)


def test_choice_without_chu_gives_the_referral_share_to_gravity():
    profile = load_profile("tiny").geography.model_copy(update={"chu": 0})
    world = make_world(profile, np.random.default_rng(2))
    assert (world.hospitals["kind"] == "CHU").sum() == 0
    prob = hospital_choice(world, profile)
    assert np.allclose(prob.sum(axis=1), 1.0, atol=1e-12)
    with_far_only = profile.model_copy(update={"chu_referral_share": 0.0})
    assert np.allclose(prob, hospital_choice(world, with_far_only))


@pytest.mark.parametrize("name", ["tiny", "demo"])
@pytest.mark.parametrize("seed", SEEDS)
def test_flows_carry_the_planted_territories_without_being_trivial(name, seed):
    profile = load_profile(name).geography
    world = make_world(profile, np.random.default_rng(seed))
    prob = hospital_choice(world, profile)
    shares = _territory_shares(world, prob)
    zone_terr = world.zones["territory_id"].to_numpy()
    pop = world.zones["population"].to_numpy()
    plurality_own = (shares.argmax(axis=1) + 1 == zone_terr).mean()
    assert plurality_own >= 0.8
    for t in range(1, profile.territories + 1):
        inside = zone_terr == t
        localization = (pop[inside] * shares[inside, t - 1]).sum() / pop[inside].sum()
        assert 0.5 <= localization <= 0.95, (t, localization)


# --- determinism and files ----------------------------------------------------------------------


def _same_world(a: World, b: World) -> bool:
    return (
        a.zones.drop(columns="geometry").equals(b.zones.drop(columns="geometry"))
        and list(shapely.to_wkb(a.zones.geometry.values)) == list(shapely.to_wkb(b.zones.geometry.values))
        and all(getattr(a, f).equals(getattr(b, f))
                for f in ("population", "adjacency", "hospitals", "territories", "towns"))
    )


def test_deterministic_for_a_seed():
    profile = load_profile("demo").geography
    first = make_world(profile, np.random.default_rng(7))
    second = make_world(profile, np.random.default_rng(7))
    assert _same_world(first, second)
    assert np.array_equal(hospital_choice(first, profile), hospital_choice(second, profile))
    assert not _same_world(first, make_world(profile, np.random.default_rng(8)))


def test_write_reference_and_truth(tmp_path):
    profile = load_profile("tiny").geography
    world = make_world(profile, np.random.default_rng(3))
    write_reference(world, tmp_path / "reference")
    write_truth(world, tmp_path / "truth")
    zones = gpd.read_parquet(tmp_path / "reference" / "zones.parquet")
    assert list(zones.columns) == ["zone_code", "departement", "geometry"]
    assert zones.crs.to_epsg() == 2154
    assert zones["zone_code"].tolist() == world.zones["zone_code"].tolist()
    assert zones.geometry.geom_equals_exact(world.zones.geometry, tolerance=0).all()
    hospitals = pl.read_parquet(tmp_path / "reference" / "hospitals.parquet")
    assert hospitals.columns == ["hospital_id", "name", "town", "zone_code", "kind", "has_emergency"]
    assert pl.read_parquet(tmp_path / "reference" / "population.parquet").equals(world.population)
    assert pl.read_parquet(tmp_path / "reference" / "towns.parquet").equals(world.towns)
    truth = pl.read_parquet(tmp_path / "truth" / "zone_territory.parquet")
    assert truth.columns == ["zone_code", "territory_id", "territory_name"]
    assert truth["territory_id"].to_list() == world.zones["territory_id"].tolist()
    assert truth["territory_name"].null_count() == 0
    assert pl.read_parquet(tmp_path / "truth" / "territories.parquet").equals(world.territories)


@pytest.mark.slow
def test_national_world_builds_quickly():
    profile = load_profile("national").geography
    start = time.perf_counter()
    world = make_world(profile, np.random.default_rng(0))
    prob = hospital_choice(world, profile)
    elapsed = time.perf_counter() - start
    assert elapsed < 30
    assert len(world.zones) == profile.zones and world.zones["population"].sum() == profile.population
    assert world.zones["population"].min() >= profile.min_zone_population
    assert 1200 < world.hospitals.height < 1700
    assert (world.hospitals["kind"] == "CHU").sum() == profile.chu
    assert world.population["population"].sum() == profile.population
    assert np.allclose(prob.sum(axis=1), 1.0)
    neighbours = _neighbours(world)
    assert _is_connected(set(world.zones["zone_code"]), neighbours)
    for t, group in world.zones.groupby("territory_id"):
        assert _is_connected(set(group["zone_code"]), neighbours)
    shares = _territory_shares(world, prob)
    zone_terr = world.zones["territory_id"].to_numpy()
    assert (shares.argmax(axis=1) + 1 == zone_terr).mean() >= 0.8
