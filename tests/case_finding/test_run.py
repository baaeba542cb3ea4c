"""`respop cases run` and `respop cases validate` end to end on `tiny`, with known truth; a failed
run leaves the previous results as they were; configuration and input errors are messages."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import polars as pl
import pytest

from respop.case_finding import run as run_module
from respop.case_finding.run import run_cases
from respop.config import load_config
from respop.errors import ConfigError, InputError
from respop.spec.loaders import available_diseases
from respop.synth import generate, load_profile
from tests.test_cli import respop

CONFIG = """
name = "tiny"
[input]
pmsi_dir = "data/pmsi"
reference_dir = "data/reference"
[quality]
zones_file = "data/reference/zones.parquet"
[territories]
method = "leiden"
target_count = 3
min_population = 5000
[output]
dir = "run"
"""


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("cases-run")
    generate(load_profile("tiny"), seed=3, out=base / "data")
    (base / "tiny.toml").write_text(CONFIG)
    return base


@pytest.fixture()
def fresh(world, tmp_path) -> Path:
    """A copy of the configuration with its own output folder (the data are shared)."""
    (tmp_path / "data").symlink_to(world / "data")
    (tmp_path / "tiny.toml").write_text(CONFIG)
    return tmp_path


def test_cli_run_then_validate(world):
    result = respop("territories", "build", str(world / "tiny.toml"))
    assert result.returncode == 0, result.stderr
    result = respop("cases", "run", str(world / "tiny.toml"))
    assert result.returncode == 0, result.stderr
    assert "Diabète : cas repérés" in result.stdout and "Insuffisance cardiaque : cas repérés" in result.stdout
    out = world / "run" / "cases"
    cases = pl.read_parquet(out / "cases.parquet")
    indicators = pl.read_parquet(out / "indicators.parquet")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["index_years"] == [2021, 2022, 2023] and summary["territories"] is True
    # no diseases listed: every spec of the shipped algorithms folder
    assert [a["id"] for a in summary["algorithms"]] == available_diseases()
    # every case is attached to a zone of the region and to a territory, but the few found only
    # through stays whose residence is not used (docs/pmsi.md §5): no zone, counted outside
    found = cases.filter(pl.col("is_case"))
    assert found.height > 100
    placed = found.filter(pl.col("residence_zone").is_not_null())
    assert found.height - placed.height < 0.01 * found.height
    assert placed["territory_id"].null_count() == 0
    # the area row counts every case of the year with a zone, by sub-type and in all, the others outside
    area = indicators.filter(pl.col("level") == "area")
    for (disease, year), group in found.group_by("disease", "index_year"):
        row = area.filter((pl.col("disease") == disease) & (pl.col("year") == year) & (pl.col("subtype") == "all"))
        with_zone = group.filter(pl.col("residence_zone").is_not_null())
        assert row["cases"].item() == with_zone.height
        assert row["cases_outside"].item() == group.height - with_zone.height
        assert row["incident_cases"].item() == with_zone["incident"].sum()
    # territories sum their zones
    zones = indicators.filter(pl.col("level") == "zone").group_by("disease", "year", "subtype").agg(pl.col("cases").sum())
    terrs = indicators.filter(pl.col("level") == "territory").group_by("disease", "year", "subtype").agg(pl.col("cases").sum())
    assert zones.sort(pl.all()).equals(terrs.sort(pl.all()))

    result = respop("cases", "validate", str(world / "tiny.toml"))
    assert result.returncode == 0, result.stderr
    assert "validation against the truth" in result.stdout and "339.3" in result.stdout
    report = {(r["disease"], r["index_year"]): r for r in json.loads((world / "run" / "validation" / "cases.json").read_text())}
    for disease in ("diabetes", "heart_failure"):
        last = report[(disease, 2023)]
        assert last["sensitivity_disease_stay"] > 0.9, last
        assert last["ppv"] > 0.75, last
        assert last["residence_accuracy"] > 0.9, last
        assert last["subtype_agreement"] > 0.9, last
    assert 150 < report[("heart_failure", 2023)]["hf_rate_per_100k_adults"] < 600


def test_without_territories_cases_carry_their_zone_only(fresh):
    result = run_cases(load_config(fresh / "tiny.toml"))
    assert result.summary["territories"] is False
    assert result.cases["territory_id"].null_count() == result.cases.height
    found = result.cases.filter(pl.col("is_case"))
    assert found["residence_zone"].null_count() < 0.01 * found.height  # docs/pmsi.md §5
    assert set(result.indicators["level"].unique()) == {"zone", "area"}


def test_a_failed_run_leaves_the_previous_results(fresh, monkeypatch):
    config = load_config(fresh / "tiny.toml")
    run_cases(config)
    out = fresh / "run" / "cases"
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def broken(*args, **kwargs):
        raise RuntimeError("interrupted while computing")

    monkeypatch.setattr(run_module, "compute_cases", broken)
    with pytest.raises(RuntimeError):
        run_cases(config)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert [p.name for p in out.parent.iterdir() if p.name.startswith(".cases")] == []


def test_index_years_must_be_read(fresh):
    (fresh / "tiny.toml").write_text(CONFIG + "[cases]\nyears = [2019, 2023]\n")
    with pytest.raises(ConfigError, match=r"cases\.years.*2019"):
        run_cases(load_config(fresh / "tiny.toml"))


def test_population_table_lacking_a_column_is_named(fresh):
    data = fresh / "data-copy"
    shutil.copytree(fresh / "data", data, symlinks=False)
    pop = data / "reference" / "population_by_year.parquet"  # read before population.parquet
    pl.read_parquet(pop).drop("age_band").write_parquet(pop)
    (fresh / "tiny.toml").write_text(CONFIG.replace('"data/', '"data-copy/'))
    with pytest.raises(InputError, match="age_band") as err:
        run_cases(load_config(fresh / "tiny.toml"))
    assert err.value.path == pop and err.value.column == "age_band"


def test_a_bad_spec_is_an_error_naming_file_key_and_value(fresh):
    algorithms = fresh / "algorithms"
    algorithms.mkdir()
    root = Path(__file__).resolve().parents[2] / "algorithms"
    (algorithms / "diabetes.toml").write_text((root / "diabetes.toml").read_text().replace('codes = ["E10"]', 'codes = ["E1O"]'))
    (algorithms / "heart_failure.toml").write_text((root / "heart_failure.toml").read_text())
    (fresh / "tiny.toml").write_text(CONFIG + '[cases]\nalgorithms_dir = "algorithms"\n')
    result = respop("cases", "run", str(fresh / "tiny.toml"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "diabetes.toml" in result.stderr and "subtypes.types.0.codes" in result.stderr and "E1O" in result.stderr


def test_validate_needs_a_run_and_a_truth(fresh, tmp_path):
    result = respop("cases", "validate", str(fresh / "tiny.toml"))
    assert result.returncode == 2 and "respop cases run" in result.stderr
