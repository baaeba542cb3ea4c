"""`respop strata validate CONFIG --seeds …` end to end on `tiny`: each seed's world generated, run
with the configuration's settings and checked, then a summary across seeds that agrees with the
checks of each seed's outputs; the seeds option's syntax."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from respop.config import load_config
from respop.errors import ConfigError
from respop.strata.validation import Check, SeedChecks, parse_seeds, seeds_summary, world_config
from tests.test_cli import respop

# the input paths name nothing that exists: with --seeds the run is pointed at each generated world;
# one disease (the checks are per disease: more would only repeat them, at minutes each in CI)
CONFIG = """
name = "tiny"
diseases = ["heart_failure"]
[input]
pmsi_dir = "nowhere/pmsi"
reference_dir = "nowhere/reference"
[quality]
zones_file = "nowhere/reference/zones.parquet"
[output]
dir = "run"
"""
SEEDS = (3, 4)


@pytest.fixture(scope="module")
def validated(tmp_path_factory):
    base = tmp_path_factory.mktemp("strata-seeds")
    (base / "tiny.toml").write_text(CONFIG)
    result = respop("strata", "validate", str(base / "tiny.toml"), "--seeds", f"{SEEDS[0]}-{SEEDS[1]}",
                    "--profile", "tiny", "--years", "2019-2023", "--work", str(base / "worlds"))
    return base, result


@pytest.mark.slow  # two worlds through the whole pipeline, the prediction and the oracle's models
def test_each_seed_then_the_summary(validated):
    base, result = validated
    assert "Traceback" not in result.stderr, result.stderr
    out = result.stdout
    # one section per seed, in order, each with its log-rank table and its checks, then the summary
    starts = [out.index(f"Seed {seed} (tiny world") for seed in SEEDS]
    assert starts == sorted(starts)
    summary = out.index("Summary across seeds (tiny world)")
    assert summary > starts[-1]
    for seed in SEEDS:
        assert f"Seed {seed}: log-rank tests between adjacent strata" in out
        assert f"seed {seed}" in out[summary:]
    section = out[starts[0]:starts[1]]
    assert "one stratum per person-year" in section and "transition rows sum to 1" in section
    # each seed's world and outputs are kept in --work, and the worlds differ
    worlds = [base / "worlds" / f"tiny-seed{seed}" for seed in SEEDS]
    for world in worlds:
        assert (world / "run" / "strata" / "survival" / "logrank.csv").is_file()
    assert (worlds[0] / "data" / "pmsi" / "T_MCO23B.parquet").read_bytes() != (worlds[1] / "data" / "pmsi" / "T_MCO23B.parquet").read_bytes()
    # the summary counts the failed checks printed in each seed's section (check_strata's, as
    # `respop strata validate` without --seeds prints them: tests/strata/test_run.py), and the exit
    # code follows
    sections = [out[starts[0]:starts[1]], out[starts[1]:summary]]
    failed = 0
    for text in sections:
        lines = [line for line in text.splitlines() if line.startswith(("OK ", "FAILED ", "n/a "))]
        assert any(line.startswith("OK one stratum per person-year") for line in lines), text
        assert any(line.startswith("OK transition rows sum to 1") for line in lines), text
        failed += sum(line.startswith("FAILED ") for line in lines)
    last = out.strip().splitlines()[-1]
    if failed:
        assert re.search(rf"\b{failed} check\(s\) failed over 2 seed\(s\)", last), last
        assert result.returncode == 1
    else:
        assert "every check met on every seed (2)" in last
        assert result.returncode == 0


def test_seeds_syntax():
    assert parse_seeds("1-5") == [1, 2, 3, 4, 5]
    assert parse_seeds("2, 7,3-4") == [2, 7, 3, 4]
    for bad, message in (("5-1", "empty range"), ("1,1-2", "given twice"), ("one", "expected e.g. 1-5"), ("", "expected")):
        with pytest.raises(ConfigError, match=message):
            parse_seeds(bad)


def test_bad_seeds_are_a_message(tmp_path):
    (tmp_path / "tiny.toml").write_text(CONFIG)
    result = respop("strata", "validate", str(tmp_path / "tiny.toml"), "--seeds", "3-1", "--profile", "tiny")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "--seeds: 3-1 is an empty range" in result.stderr
    assert not Path(tmp_path / "run").exists()


def test_world_config_points_only_the_folders_at_the_world(tmp_path):
    (tmp_path / "tiny.toml").write_text(CONFIG.replace("[quality]", "[quality]\nresidence_abroad = false") + "[cases]\nyears = [2023]\n")
    config = load_config(tmp_path / "tiny.toml")
    seeded = world_config(config, tmp_path / "w" / "data", tmp_path / "w" / "run")
    data = (tmp_path / "w" / "data").resolve()
    assert seeded.input.pmsi_dir == data / "pmsi" and seeded.input.reference_dir == data / "reference"
    assert seeded.quality.zones_file == data / "reference" / "zones.parquet"
    assert seeded.output.dir == (tmp_path / "w" / "run").resolve()
    assert seeded.store.url.endswith("/w/run/respop.sqlite")
    # the configuration's own settings are kept
    assert seeded.quality.residence_abroad is False and seeded.cases.years == [2023]
    assert seeded.diseases == config.diseases and seeded.territories == config.territories
    assert config.input.pmsi_dir.name == "pmsi" and "nowhere" in str(config.input.pmsi_dir)  # not modified


def test_seeds_summary_gives_each_check_on_each_seed():
    runs = [
        SeedChecks(1, Path("a"), [Check("one", True, ""), Check("two", False, "")], []),
        SeedChecks(2, Path("b"), [Check("one", True, ""), Check("two", None, ""), Check("three", True, "")], []),
    ]
    assert seeds_summary(runs) == [("one", {1: True, 2: True}), ("two", {1: False, 2: None}), ("three", {2: True})]
