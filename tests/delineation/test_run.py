"""`respop territories build` on the tiny world: outputs, manual pins, territory of interest."""

from __future__ import annotations

import json

import polars as pl
import pytest

from respop.config import load_config
from respop.delineation.run import build, load_reference, make_problem
from respop.errors import ConfigError
from respop.pmsi import read_pmsi
from respop.synth import generate, load_profile


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny")
    generate(load_profile("tiny"), seed=5, out=out / "data", years=[2023])
    return out


def _config(world, extra: str = ""):
    path = world / "territory.toml"
    path.write_text(
        '[input]\npmsi_dir = "data/pmsi"\nreference_dir = "data/reference"\n'
        f'[territories]\nmethod = "leiden"\ntarget_count = 3\n{extra}\n[output]\ndir = "run"\n'
    )
    config = load_config(path)
    reference = load_reference(config)
    problem = make_problem(config, read_pmsi(config.input.pmsi_dir).stays, reference)
    return config, reference, problem


def test_build_writes_every_output_and_covers_every_zone(world):
    config, reference, problem = _config(world)
    result = build(config, problem, reference)
    folder = config.output.dir / "territories"
    assert sorted(p.name for p in folder.iterdir()) == [
        "count.json", "flows.parquet", "fragile_zones.csv", "manifest.json", "map.png", "metrics.csv", "territories.parquet",
        "zone_territory.parquet",
    ]
    flows = pl.read_parquet(folder / "flows.parquet")
    assert flows["stays"].sum() == problem.flows["stays"].sum()
    zt = pl.read_parquet(folder / "zone_territory.parquet")
    assert sorted(zt["zone_code"]) == sorted(problem.zone_codes)
    assert zt["territory_id"].n_unique() == len(result.names) == 3
    assert all(name.startswith("Territoire ") for name in zt["territory_name"])


def test_a_pin_moves_a_border_zone_and_a_bad_pin_is_explained(world):
    config, reference, problem = _config(world)
    base = build(config, problem, reference, write=False).method.assignment_
    territory = dict(base.iter_rows())
    # a zone on a border, pinned to its neighbour across the border
    pairs = problem.adjacency.filter(
        pl.col("zone_code").replace_strict(territory) != pl.col("neighbour_code").replace_strict(territory)
    )
    moved = None
    for zone, anchor in pairs.iter_rows():
        cfg, _, _ = _config(world, f'pins = {{ "{zone}" = "{anchor}" }}')
        try:
            moved = build(cfg, problem, reference, write=False).method.assignment_
            break
        except ConfigError:
            continue  # this pin would cut its old territory in two: try another border zone
    assert moved is not None
    now = dict(moved.iter_rows())
    assert now[zone] == now[anchor]
    # a zone pinned to a far-away territory leaves it in pieces: a clear error naming the pin
    far = problem.zones["zone_code"].to_list()
    remote = next(a for a in far if territory[a] != territory[far[0]] and (far[0], a) not in set(problem.adjacency.iter_rows()))
    cfg, _, _ = _config(world, f'pins = {{ "{far[0]}" = "{remote}" }}')
    with pytest.raises(ConfigError, match="territories.pins break a territory"):
        build(cfg, problem, reference, write=False)
    cfg, _, _ = _config(world, 'pins = { "99999" = "00000" }')
    with pytest.raises(ConfigError, match="pinned zone 99999 is not a zone of the scope"):
        build(cfg, problem, reference, write=False)


def test_territory_of_interest_is_written(world):
    zone = _config(world)[2].zone_codes[0]
    config, reference, problem = _config(world, f'territory_of_interest = "{zone}"')
    result = build(config, problem, reference)
    selected = json.loads((config.output.dir / "territories" / "selected.json").read_text())
    assert selected["anchor_zone"] == zone and zone in selected["zones"]
    assert selected == result.selected
    bad, reference, problem = _config(world, 'territory_of_interest = "00000"')
    with pytest.raises(ConfigError, match="00000 is not a zone of the scope"):
        build(bad, problem, reference)
