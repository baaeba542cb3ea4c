"""The number of territories chosen from the flows (issue 18, item 4): a world whose right count
differs from the old default is found, an unreachable target warns with its reason, hospitals
without a ``town`` column work, and the generator's shapes are what they say."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import polars as pl
import pytest

from respop.config import load_config
from respop.delineation.flows import build_problem
from respop.delineation.graph import merge_uncontained, refine_borders
from respop.delineation.guarantees import violations
from respop.delineation.leiden import Leiden, TargetCountWarning
from respop.delineation.metrics import adjusted_rand
from respop.delineation.run import build, load_reference, make_problem
from respop.errors import InputError
from respop.pmsi import read_pmsi
from respop.synth import generate, load_profile
from respop.synth.geography import make_world
from tests.delineation.worlds import as_dict, code, grid, labels, problem


@pytest.fixture(scope="module")
def peripheral(tmp_path_factory):
    """The held-out shape of the issue: 11 planted territories, 3 of them small, on the edge."""
    out = tmp_path_factory.mktemp("peripheral")
    generate(load_profile("peripheral"), seed=1, out=out, years=[2023])
    ref = out / "reference"
    p = build_problem(read_pmsi(out / "pmsi").stays, gpd.read_parquet(ref / "zones.parquet"),
                      pl.read_parquet(ref / "population.parquet"), pl.read_parquet(ref / "hospitals.parquet"),
                      years=[2023])
    truth = pl.read_parquet(out / "truth" / "zone_territory.parquet").select("zone_code", "territory_id")
    return p, truth


def test_default_finds_a_count_the_old_default_misses(peripheral):
    p, truth = peripheral
    planted = truth["territory_id"].n_unique()
    old = Leiden(resolution=1.0).fit(p)  # the default before: one fit at resolution 1
    new = Leiden().fit(p)
    assert planted == 11
    assert old.assignment_["territory_id"].n_unique() < planted
    assert new.assignment_["territory_id"].n_unique() == planted
    assert adjusted_rand(new.assignment_, truth) >= 0.9
    assert violations(new.assignment_, p) == []
    assert new.count_["territories"] == planted
    assert new.warnings_ == []


def test_unreachable_target_warns_with_the_reason(peripheral):
    p, _ = peripheral
    with pytest.warns(TargetCountWarning, match=r"target_count 11 not met: \d territories, because the minimum population 30,000 merged"):
        m = Leiden(target_count=11, min_population=30_000).fit(p)
    assert m.assignment_["territory_id"].n_unique() < 11
    assert len(m.warnings_) == 1
    with pytest.warns(TargetCountWarning, match="only 2 zones host a hospital group"):
        Leiden(target_count=3).fit(_two_hospitals())


def _two_hospitals():
    """Two hospitals at the ends of a 1 × 4 strip, each zone using the nearer."""
    flows = {("z00", "A"): 90, ("z01", "A"): 60, ("z01", "B"): 10, ("z02", "B"): 60, ("z02", "A"): 10,
             ("z03", "B"): 90}
    return problem(grid(1, 4), flows, {"A": "z00", "B": "z03"})


def test_a_reachable_target_does_not_warn(recwarn):
    m = Leiden(target_count=2).fit(_two_hospitals())
    assert m.assignment_["territory_id"].n_unique() == 2
    assert not [w for w in recwarn if issubclass(w.category, TargetCountWarning)]


def test_merge_uncontained_merges_a_territory_whose_residents_go_next_door():
    # territory 2 (z02) sends 30 stays to its own hospital C and 60 to A's territory: ratio 0.5
    flows = {("z00", "A"): 100, ("z01", "A"): 80, ("z02", "C"): 30, ("z02", "A"): 60, ("z03", "B"): 100}
    p = problem(grid(1, 4), flows, {"A": "z00", "B": "z03", "C": "z02"})
    start = labels({"z00": 1, "z01": 1, "z02": 2, "z03": 3})
    out = as_dict(merge_uncontained(start, p, 1.5))
    assert out["z02"] == out["z00"] == out["z01"] != out["z03"]
    # a territory using its own hospitals twice as much as any neighbour's stays
    kept = as_dict(merge_uncontained(start, p, 0.4))
    assert len(set(kept.values())) == 3


def test_refine_borders_moves_a_zone_to_the_territory_it_uses_and_keeps_contiguity():
    # z01 is labelled with B's territory but uses A's hospitals; z11 would cut its territory
    flows = {(code(r, c), "A" if c == 0 else "B") for r in range(2) for c in range(3)}
    flows = {k: 50 for k in flows}
    flows[("z01", "A")] = 70
    p = problem(grid(2, 3), flows, {"A": "z00", "B": "z02"})
    start = labels({"z00": 1, "z10": 1, "z01": 2, "z02": 2, "z11": 2, "z12": 2})
    out = as_dict(refine_borders(start, p))
    assert out["z01"] == out["z00"]
    assert out["z11"] == out["z02"]
    assert violations(refine_borders(start, p), p) == []


def test_hospitals_without_town(tmp_path):
    data = tmp_path / "data"
    generate(load_profile("tiny"), seed=5, out=data, years=[2023])
    hospitals = pl.read_parquet(data / "reference" / "hospitals.parquet")
    hospitals.drop("town").write_parquet(data / "reference" / "hospitals.parquet")
    path = tmp_path / "territory.toml"
    path.write_text('[input]\npmsi_dir = "data/pmsi"\nreference_dir = "data/reference"\n'
                    '[territories]\nmin_population = 1000\n[output]\ndir = "run"\n')
    config = load_config(path)
    reference = load_reference(config)
    p = make_problem(config, read_pmsi(config.input.pmsi_dir).stays, reference)
    result = build(config, p, reference)
    names = result.names["territory_name"].to_list()
    assert names == [f"Territoire n° {k}" for k in range(1, len(names) + 1)]
    assert len(names) == 3
    path.write_text(path.read_text().replace("[territories]\n", '[territories]\nhospital_grouping = "town"\n'))
    with pytest.raises(InputError, match="lacks the column town") as caught:
        load_reference(load_config(path))
    assert caught.value.column == "town"
    assert caught.value.path.name == "hospitals.parquet"


def _world(name: str, seed: int = 1):
    return make_world(load_profile(name).geography, np.random.default_rng(seed))


def test_peripheral_shape_has_small_territories_on_the_edge():
    world = _world("peripheral")
    pops = world.zones.groupby("territory_id")["population"].sum().sort_values()
    assert len(pops) == 11
    assert (pops < 15_000).sum() >= 3


def test_metropole_and_border_shapes():
    metropole = _world("metropole")
    chu = metropole.hospitals.filter(pl.col("kind") == "CHU")
    assert chu.height == 3 and chu["territory_id"].n_unique() == 1
    border = _world("border")
    outside = border.hospitals.filter(~pl.col("zone_code").is_in(border.zones["zone_code"].tolist()))
    assert outside.height == 3
    assert (outside["territory_id"] == 0).all()
    assert (outside["x"] > border.zones.total_bounds[2]).all()
    coast = _world("coast")
    hubs = coast.hospitals.filter(pl.col("kind").is_in(["CH", "CHU"]))
    top = coast.zones.total_bounds[3]
    assert (hubs["y"] > top - 20_000).all()  # every hub within 20 km of the coast


def test_default_on_the_coast_shape(tmp_path):
    """Coast seed 4: 7 territories running from the coast to the hinterland, each carried by a CH
    or the CHU. With no count given the default finds the 7 (ARI 1.0); without the anchor rule
    it keeps an 8th, a piece of hinterland around a private clinic that is as self-contained as a
    planted territory (ARI 0.924). Not every coast seed reaches 0.9: since the generator's
    deprivation gradient (issue 20), seeds 1-10 give 1.0, 0.884, 0.803, 1.0, 1.0, 0.824, 1.0, 0.976,
    0.831, 0.879 (1.0, 0.933, 0.803, 0.924, 1.0, 0.691, 1.0, 0.918, 0.760, 0.756 without the rule;
    benchmarks/README.md: where planted zones use a neighbouring planted territory's hospitals
    most, no partition that follows the flows reaches 0.9). Seed 2, this test's world before that
    change, now gives the 7 territories with ARI 0.884."""
    generate(load_profile("coast"), seed=4, out=tmp_path, years=[2023])
    ref = tmp_path / "reference"
    p = build_problem(read_pmsi(tmp_path / "pmsi").stays, gpd.read_parquet(ref / "zones.parquet"),
                      pl.read_parquet(ref / "population.parquet"), pl.read_parquet(ref / "hospitals.parquet"),
                      years=[2023])
    truth = pl.read_parquet(tmp_path / "truth" / "zone_territory.parquet").select("zone_code", "territory_id")
    m = Leiden().fit(p)
    assert truth["territory_id"].n_unique() == 7
    assert m.count_["territories"] == 7, m.count_
    assert adjusted_rand(m.assignment_, truth) >= 0.95
    assert violations(m.assignment_, p) == []
    assert m.warnings_ == [] and m.unanchored_ == [] and m.anchor_kinds_ == ("CH", "CHU")
    without = Leiden(anchor_kinds=()).fit(p)
    assert without.count_["territories"] == 8, without.count_
    assert adjusted_rand(without.assignment_, truth) < adjusted_rand(m.assignment_, truth)


def test_the_run_records_how_the_count_was_chosen(peripheral):
    """count.json (respop.delineation.run.count_choice): automatic, with the criterion and the
    counts at each step; with a target that cannot be met, the target and the warning."""
    from respop.config import Config
    from respop.delineation.run import count_choice

    p, _ = peripheral
    auto = count_choice(Config.model_validate({}), Leiden().fit(p))
    assert auto["mode"] == "automatic" and auto["territories"] == 11
    assert auto["criterion"]["min_containment"] == 1.5
    assert auto["steps"]["territories"] == 11 and auto["warnings"] == []
    config = Config.model_validate({"territories": {"target_count": 11, "min_population": 30_000}})
    with pytest.warns(TargetCountWarning):
        method = Leiden(target_count=11, min_population=30_000).fit(p)
    target = count_choice(config, method)
    assert target["mode"] == "target" and target["target_count"] == 11 and target["territories"] < 11
    assert "minimum population 30,000" in target["warnings"][0]
