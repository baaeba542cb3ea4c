"""Any period works (issue 22): ``respop run`` on ``tiny`` worlds of one, two and three years
succeeds, publishes to a SQLite store what the period allows, and records (runs.timings
``skipped``), says (standard error) and shows (boards, dossier) what it left out and why
(respop.periods)."""

from __future__ import annotations

import contextlib
from html import escape as html_escape
import io
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from respop.config import load_config
from respop.errors import ConfigError
from respop.store.db import Store

CONFIG = """
name = "tiny"
description = "Territoire de test (données synthétiques)"
[input]
pmsi_dir = "data/pmsi"
reference_dir = "data/reference"
[quality]
zones_file = "data/reference/zones.parquet"
[territories]
min_population = 1000
[output]
dir = "run"
[store]
url = "sqlite:///{base}/store.sqlite"
[evaluation]
pilots = {{ "1" = 2023 }}
min_pre_years = 2
"""

ALWAYS = ("territories", "zones", "hospitals", "flows", "indicators", "care_use", "strata_levels", "catalogue", "quality")
"""Tables every period publishes."""
MODELS = ("model_metrics", "model_calibration", "model_importance", "model_cards")


@dataclass(frozen=True)
class PeriodRun:
    base: Path
    config_path: Path
    result: object
    stderr: str
    run: dict

    @property
    def store(self) -> Store:
        return Store(load_config(self.config_path).store.url)

    def rows(self, table: str) -> int:
        store = self.store
        try:
            return store.read(table, self.run["run_id"]).height
        finally:
            store.close()

    @property
    def skipped(self) -> list[dict]:
        return self.run["timings"]["skipped"]


def period_run(base: Path, years: list[int]) -> PeriodRun:
    """``tiny`` (seed 5) of ``years`` generated under ``base`` and run whole (``respop run``)."""
    from respop.pipeline import run
    from respop.synth import generate, load_profile

    generate(load_profile("tiny"), seed=5, out=base / "data", years=years)
    config_path = base / "tiny.toml"
    config_path.write_text(CONFIG.format(base=base.as_posix()), encoding="utf-8")
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        result = run(config_path)
    store = Store(load_config(config_path).store.url)
    try:
        row = store.run(result.run_id)
    finally:
        store.close()
    return PeriodRun(base, config_path, result, err.getvalue(), row)


@pytest.fixture(scope="module")
def one_year(tmp_path_factory) -> PeriodRun:
    return period_run(tmp_path_factory.mktemp("one_year"), [2023])


@pytest.fixture(scope="module")
def two_years(tmp_path_factory) -> PeriodRun:
    return period_run(tmp_path_factory.mktemp("two_years"), [2022, 2023])


def test_one_year_runs_and_publishes_what_it_allows(one_year):
    assert one_year.run["status"] == "succeeded"
    assert (one_year.run["first_year"], one_year.run["last_year"]) == (2023, 2023)
    assert [s["part"] for s in one_year.skipped] == ["transitions", "survival", "prediction", "evaluation"]
    for table in ALWAYS:
        assert one_year.rows(table) > 0, table
    for table in ("transitions", "survival_curves", "survival_tests", *MODELS, "evaluation_design", "evaluation_effects"):
        assert one_year.rows(table) == 0, table
    out = one_year.base / "run"
    assert not (out / "strata" / "survival").exists() and not (out / "strata" / "prediction").exists()
    assert not (out / "evaluation").exists()
    assert "evaluation" not in one_year.result.timings and "store" in one_year.result.timings


def test_one_year_says_why_in_both_languages(one_year):
    survival = next(s for s in one_year.skipped if s["part"] == "survival")
    assert survival["fr"].startswith("Survie non estimée : il faut au moins deux années de données (cette exécution en a une)")
    assert survival["min_years"] == 2 and survival["years"] == [2023] and survival["step"] == "strata"
    lines = one_year.stderr.splitlines()
    assert all(f"respop: {s['en']}" in lines for s in one_year.skipped), one_year.stderr
    assert "respop: survival not estimated: it needs at least two years of data (this run has one: 2023)" in one_year.stderr
    assert [s.part for s in one_year.result.left_out] == [s["part"] for s in one_year.skipped]
    summary = json.loads((one_year.base / "run" / "strata" / "summary.json").read_text(encoding="utf-8"))
    assert [s["part"] for s in summary["skipped"]] == ["transitions", "survival", "prediction"]
    assert summary["survival_notes"] == [survival["en"]]


def test_two_years_fit_survival_and_leave_out_prediction(two_years):
    assert two_years.run["status"] == "succeeded"
    assert [s["part"] for s in two_years.skipped] == ["prediction", "evaluation"]
    prediction = two_years.skipped[0]
    assert prediction["fr"].startswith("Prédiction non estimée : il faut au moins trois années de données "
                                       "(cette exécution en a deux : 2022, 2023)")
    assert "(this run has two: 2022, 2023)" in prediction["en"]
    for table in (*ALWAYS, "transitions", "survival_curves", "survival_tests"):
        assert two_years.rows(table) > 0, table
    for table in (*MODELS, "evaluation_design"):
        assert two_years.rows(table) == 0, table
    assert (two_years.base / "run" / "strata" / "survival" / "km.parquet").is_file()
    assert not (two_years.base / "run" / "strata" / "prediction").exists()


def test_publishing_again_accepts_what_the_period_left_out(two_years):
    """``respop store publish``: the check of the chain accepts strata without prediction when the
    period did not allow it; the new run records the same parts left out, its steps reused."""
    from respop.pipeline import publish

    config = load_config(two_years.config_path)
    run_id = publish(config, two_years.config_path)
    store = Store(config.store.url)
    try:
        again = store.run(run_id)
    finally:
        store.close()
    assert again["status"] == "succeeded" and again["timings"]["skipped"] == two_years.skipped
    assert set(again["timings"]["reused"]) == {"input", "territories", "cases", "strata"}


def test_models_left_out_by_the_user_are_still_refused(two_years, tmp_path):
    """--no-models is a choice, not a limit of the period: the store step refuses it before the
    run, and a strata step built so is refused when published (respop.stages)."""
    from respop.pipeline import publish, run
    from respop.stages import StageError

    with pytest.raises(ConfigError, match="the store step needs the survival and prediction results: run it with the models"):
        run(two_years.config_path, models=False)
    config_path = _copy(two_years, tmp_path / "copy")
    with contextlib.redirect_stderr(io.StringIO()):
        run(config_path, steps=("strata",), models=False)
    with pytest.raises(StageError, match=r"strata was built without survival and prediction \(--no-models\)"):
        publish(load_config(config_path), config_path)


def test_the_boards_and_the_dossier_say_what_is_missing(one_year):
    from respop.boards import data
    from respop.boards.report import Dossier

    url, run_id = load_config(one_year.config_path).store.url, one_year.run["run_id"]
    missing = data.period_skips(url, run_id)
    assert list(missing) == ["transitions", "survival", "prediction", "evaluation"]
    assert data.missing_note(url, run_id, "survival").startswith("Survie non estimée : il faut au moins deux années")
    assert data.run_years(one_year.run) == "2023"
    dossier = Dossier(load_config(one_year.config_path))
    assert ("evaluation", "Évaluation") in dossier.sections()
    html = dossier.trajectories() + dossier.evaluation() + dossier.quality()  # the sections that say it
    for sentence in missing.values():
        assert html.count(html_escape(sentence)) >= 2, sentence  # in its section and in the quality section


@pytest.mark.slow
def test_three_years_run_everything(tmp_path_factory):
    """Prediction needs three years: every part runs and nothing is recorded as left out (the
    models make this run the slow one)."""
    three = period_run(tmp_path_factory.mktemp("three_years"), [2021, 2022, 2023])
    assert three.run["status"] == "succeeded" and three.skipped == [] and three.result.left_out == ()
    assert "needs at least" not in three.stderr
    for table in (*ALWAYS, "transitions", "survival_curves", "survival_tests", *MODELS, "evaluation_design",
                  "evaluation_effects"):
        assert three.rows(table) > 0, table


def _copy(source: PeriodRun, folder: Path) -> Path:
    """The run's folder copied with its files' times (the same input fingerprint), its own store."""
    shutil.copytree(source.base, folder, symlinks=True)
    config_path = folder / "tiny.toml"
    config_path.write_text(CONFIG.format(base=folder.as_posix()), encoding="utf-8")
    return config_path


def test_steps_asked_say_only_their_parts(one_year, tmp_path):
    """``--steps strata,store`` on one year: the strata parts said and left out again, the other
    steps' outputs reused, the run published with every part left out recorded."""
    from respop.pipeline import run

    config_path = _copy(one_year, tmp_path / "copy")
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        result = run(config_path, steps=("strata", "store"))
    assert [s.part for s in result.left_out] == ["transitions", "survival", "prediction"]
    assert "evaluation not run" not in err.getvalue() and "survival not estimated" in err.getvalue()
    store = Store(load_config(config_path).store.url)
    try:
        row = store.run(result.run_id)
    finally:
        store.close()
    assert row["status"] == "succeeded" and row["timings"]["skipped"] == one_year.skipped
    assert set(row["timings"]["reused"]) == {"input", "territories", "cases"}


def test_hospital_mode_on_one_year(one_year, tmp_path):
    """Hospital mode fits no model whatever the period; on one year only the transitions are left out."""
    import polars as pl

    from respop.pipeline import run

    data = one_year.base / "data"
    finess = pl.read_parquet(data / "reference" / "hospitals.parquet").filter(pl.col("kind") == "CHU")["hospital_id"].item()
    config_path = tmp_path / "chu.toml"
    config_path.write_text(
        f'name = "chu"\n[input]\npmsi_dir = "{data / "pmsi"}"\nreference_dir = "{data / "reference"}"\n'
        f'[quality]\nzones_file = "{data / "reference" / "zones.parquet"}"\n[output]\ndir = "run"\n'
        f'[hospital]\nfiness = "{finess}"\n',
        encoding="utf-8",
    )
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        result = run(config_path)
    assert [s.part for s in result.left_out] == ["transitions"]
    assert result.skipped == ("territories", "evaluation", "store") and result.run_id == -1
    summary = json.loads((tmp_path / "run" / "strata" / "summary.json").read_text(encoding="utf-8"))
    assert [s["part"] for s in summary["skipped"]] == ["transitions"]
    assert "transitions not computed" in err.getvalue() and "survival not estimated" not in err.getvalue()


def test_strata_validate_says_what_the_period_left_out(one_year):
    from respop.strata.validation import check_strata

    checks, tables = check_strata(load_config(one_year.config_path))
    left = {c.label: c for c in checks if c.ok is None and c.label in ("transitions", "survival", "prediction")}
    assert set(left) == {"transitions", "survival", "prediction"}
    assert left["survival"].detail.startswith("survival not estimated: it needs at least two years of data")
    assert all(c.ok for c in checks if c.label == "one stratum per person-year")
    assert not any(title.startswith("Survival") for title, _ in tables)
