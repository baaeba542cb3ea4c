"""`respop strata run` and `respop strata validate` end to end on `tiny`: every output written,
consistent with the cases; a failed run leaves the previous results; errors are messages."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from respop.case_finding.run import run_cases
from respop.config import load_config
from respop.errors import InputError
from respop.strata import run as run_module
from respop.strata.run import run_strata
from respop.synth import generate, load_profile
from tests.test_cli import respop

CONFIG = """
name = "tiny"
[input]
pmsi_dir = "data/pmsi"
reference_dir = "data/reference"
[quality]
zones_file = "data/reference/zones.parquet"
[output]
dir = "run"
"""


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("strata-run")
    profile = load_profile("tiny")
    generate(profile, seed=5, out=base / "data", years=[2019, 2020, 2021, 2022, 2023])
    (base / "tiny.toml").write_text(CONFIG)
    run_cases(load_config(base / "tiny.toml"))
    return base


def test_cli_run_then_validate(world):
    result = respop("strata", "run", str(world / "tiny.toml"))
    assert result.returncode == 0, result.stderr
    assert "Insuffisance cardiaque : strates 2023" in result.stdout and "IC instable" in result.stdout
    out = world / "run" / "strata"
    for name in ("person_strata.parquet", "care_use.parquet", "transitions.parquet", "summary.json",
                 "survival/km.parquet", "survival/logrank.csv", "survival/cox.csv", "survival/cox_ph_test.csv"):
        assert (out / name).is_file(), name
    for disease in ("diabetes", "heart_failure"):
        for name in ("metrics.csv", "calibration.csv", "importance.csv", "model_card.md"):
            assert (out / "prediction" / disease / name).is_file(), (disease, name)
        card = (out / "prediction" / disease / "model_card.md").read_text()
        assert "AUC" in card and "synthétiques" in card.lower() and "Fiche du modèle" in card
    ps = pl.read_parquet(out / "person_strata.parquet")
    cases = pl.read_parquet(world / "run" / "cases" / "cases.parquet").filter(pl.col("is_case"))
    assert ps.height == cases.height and ps["stratum"].null_count() == 0
    use = pl.read_parquet(out / "care_use.parquet")
    area = use.filter((pl.col("level") == "area") & (pl.col("stratum") == "all"))
    # the area is the sum of its zones: cases without a residence zone are counted in no published cell
    counts = ps.filter(pl.col("residence_zone").is_not_null()).group_by("disease", "year").len()
    joined = area.join(counts, on=["disease", "year"])
    assert (joined["people"] == joined["len"]).all() and joined.height == counts.height
    # the transitions follow the same person-years: a stratum's followed people are its people in the
    # area minus its deaths, so that neither table gives away the cases without a zone
    assert ps["residence_zone"].null_count() > 0, "tiny seed 5 has cases without a residence zone"
    moves = pl.read_parquet(out / "transitions.parquet")
    followed = moves.group_by("disease", "year", pl.col("from").alias("stratum")).agg(pl.col("count").sum())
    strata_area = use.filter((pl.col("level") == "area") & (pl.col("stratum") != "all"))
    tied = followed.join(strata_area, on=["disease", "year", "stratum"], how="left")
    assert tied.height == followed.height
    assert (tied["count"] == tied["people"] - tied["deaths"]).all()
    km = pl.read_parquet(out / "survival" / "km.parquet")
    assert km["survival"].is_between(0, 1).all() and (km["lower"] <= km["survival"]).all()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["end_of_follow_up"] == "2023-12-31"
    assert {p["test_year"] for p in summary["prediction"].values()} == {2022}

    result = respop("strata", "validate", str(world / "tiny.toml"))
    assert "Traceback" not in result.stderr, result.stderr
    assert "OK one stratum per person-year" in result.stdout
    assert "OK transition rows sum to 1" in result.stdout
    assert "log-rank" in result.stdout
    # the prediction's goals per target, against the oracle that knows tiny's latent severity
    for target in ("upstratum", "emergency_or_death"):
        assert f"heart_failure ({target}): Brier skill > 0, calibration slope in [0.8, 1.2], AUC within 0.03 of the oracle" in result.stdout
    assert "oracle AUC" in result.stdout
    # tiny is too small for the survival and AUC goals: validate reports, and its status says
    assert result.returncode in (0, 1)


def test_a_failed_run_leaves_the_previous_results(world, monkeypatch):
    config = load_config(world / "tiny.toml")
    out = world / "run" / "strata"
    if not (out / "summary.json").is_file():  # no previous results yet (test_cli_run_then_validate's run, when it ran)
        run_strata(config)
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file() and p.name != "summary.json"}

    def broken(*args, **kwargs):
        raise RuntimeError("interrupted")

    monkeypatch.setattr(run_module, "care_use", broken)
    with pytest.raises(RuntimeError):
        run_strata(config)
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file() and p.name != "summary.json"}
    assert after.keys() == before.keys()
    assert [p.name for p in out.parent.iterdir() if p.name.startswith(".strata")] == []


def test_strata_need_the_cases(tmp_path):
    (tmp_path / "tiny.toml").write_text(CONFIG)
    with pytest.raises(InputError, match="respop cases run"):
        run_strata(load_config(tmp_path / "tiny.toml"))
    result = respop("strata", "validate", str(tmp_path / "tiny.toml"))
    assert result.returncode == 2 and "respop strata run" in result.stderr
