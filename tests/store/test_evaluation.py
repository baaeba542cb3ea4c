"""The evaluation of the experiment in the store (issue 20): published from ``<output.dir>/evaluation/``
when the configuration has ``[evaluation]`` (a fabricated folder with the step's exact files and
columns, tests/store/evaluation_outputs.py), round trip on SQLite and PostgreSQL, every value that
depends on a cell masked elsewhere in the run masked, the outcomes by deprivation quintile
disclosure-controlled, the panel's counts never published."""

from __future__ import annotations

import shutil

import polars as pl
import pytest

from respop.config import load_config
from respop.store import schema
from respop.store.db import Store
from respop.store.publish import SECRET_NOTE, collect
from tests.store.evaluation_outputs import DONORS, PILOT, START, copy_tiny, write_evaluation


@pytest.fixture(scope="module")
def published(evaluation_run):
    store = Store(evaluation_run.config.store.url)
    yield {t: store.read(t, evaluation_run.run_id) for t in schema.EVALUATION_TABLES} | {
        "care_use": store.read("care_use", evaluation_run.run_id)}
    store.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.sqlite'}"
    return request.getfixturevalue("fresh_postgres_url")


def test_round_trip(evaluation_run, store_url):
    """Every evaluation table written and read back as published (SQLite, and PostgreSQL when
    RESPOP_TEST_POSTGRES_URL is set); the same outputs give the same fingerprint."""
    publication = collect(evaluation_run.config, evaluation_run.config_path)
    store = Store(store_url)
    try:
        run_id = store.write(publication)
        assert store.run(run_id)["results_sha256"] == publication.fingerprint()
        for name in schema.EVALUATION_TABLES:
            sent, back = publication.tables[name], store.read(name, run_id)
            assert sent.height > 0, name
            assert back.columns == sent.columns, name
            assert back.equals(sent), (name, back, sent)
    finally:
        store.close()
    assert collect(evaluation_run.config, evaluation_run.config_path).fingerprint() == publication.fingerprint()


def test_the_design_and_the_outcomes_in_french(published):
    territories = published["evaluation_territories"]
    assert territories.filter(pl.col("role") == "pilot").select("territory_id", "start_year").rows() == [(PILOT, START)]
    assert sorted(territories.filter(pl.col("role") == "donor")["territory_id"]) == DONORS
    assert territories["territory_name"].null_count() == 0
    design = published["evaluation_design"].row(0, named=True)
    assert (design["first_year"], design["last_year"], design["confidence"], design["deprivation"]) == (2019, 2023, 0.95, True)
    labels = dict(zip(published["evaluation_outcomes"]["outcome"], published["evaluation_outcomes"]["label"]))
    assert labels["disease_stays"] == "Séjours hospitaliers pour diabète"  # respop.evaluation.outcomes.outcome_label


def _care(published, territory: int, disease: str, column: str) -> list:
    care = published["care_use"].filter((pl.col("level") == "territory") & (pl.col("unit") == str(territory))
                                        & (pl.col("stratum") == "all") & (pl.col("disease") == disease)).sort("year")
    return care[column].to_list()


def test_an_effect_whose_donor_cell_is_masked_is_masked(published):
    """diabetes stays: the pilot's cells are all published, the donors' of 2022 are masked in
    care_use (complements): the DiD effect (any donor), the event study and the synthetic control
    (its donor of positive weight) are masked with « secret statistique »; the weights (a function
    of the pre-period only) and the synthetic trajectory outside 2022 stay."""
    assert None not in _care(published, PILOT, "diabetes", "stays")
    assert all(None in _care(published, d, "diabetes", "stays") for d in DONORS)
    effects = published["evaluation_effects"]
    stays = effects.filter(pl.col("outcome") == "disease_stays")
    assert stays.height == 4 and stays["effect"].null_count() == 4 and stays["ci_lower"].null_count() == 4
    assert all(n.startswith(SECRET_NOTE) for n in stays["note"])
    study = published["evaluation_event_study"].filter(pl.col("outcome") == "disease_stays")
    assert study.filter(pl.col("event_time") != -1)["effect"].null_count() == study.height - 1
    weights = published["evaluation_weights"].filter(pl.col("outcome") == "disease_stays")
    assert weights["weight"].null_count() == 0
    paths = published["evaluation_trajectories"].filter(pl.col("outcome") == "disease_stays").sort("year")
    assert paths["observed"].null_count() == 0
    assert [y for y, s in paths.select("year", "synthetic").iter_rows() if s is None] == [2022]
    # every cell of every territory published: everything published
    emergency = effects.filter(pl.col("outcome") == "emergency_per_case")
    assert emergency["effect"].null_count() == 0 and not any(SECRET_NOTE in (n or "") for n in emergency["note"])
    assert published["evaluation_trajectories"].filter(pl.col("outcome") == "emergency_per_case")["synthetic"].null_count() == 0


def test_an_effect_of_a_pilot_with_a_masked_cell_is_masked(published):
    """Heart-failure 30-day re-hospitalisations: the pilot's own cells are masked in care_use:
    every effect, point, trajectory and weight of that outcome is masked."""
    assert None in _care(published, PILOT, "heart_failure", "readmissions_30d")
    for name, column in (("evaluation_effects", "effect"), ("evaluation_trajectories", "observed"),
                         ("evaluation_weights", "weight")):
        rows = published[name].filter(pl.col("outcome") == "readmissions_30d")
        assert rows.height and rows[column].null_count() == rows.height, name


def test_the_outcomes_by_deprivation_stay_in_the_private_outputs(published, evaluation_run):
    """A quintile's count is a sum of zone cells the store publishes: with a published index a
    viewer knows which zones, so the quintiles are not published until those relations are in
    the joint suppression (respop.store.publish)."""
    assert (evaluation_run.config.output.dir / "evaluation" / "by_deprivation.parquet").is_file()
    assert "evaluation_deprivation" not in published or published["evaluation_deprivation"].height == 0


def test_the_panel_is_never_published(evaluation_run):
    """The panel's counts (events, denominators per territory and year) stay in <output.dir>."""
    publication = collect(evaluation_run.config, evaluation_run.config_path)
    columns = {c for t in publication.tables.values() for c in t.columns}
    assert "log_var" not in columns and "crude" not in columns
    assert set(publication.tables) == {t.name for t in schema.RESULT_TABLES}


def test_without_evaluation_nothing_is_published(evaluation_run, tiny_run, tmp_path):
    """A configuration without [evaluation] publishes no evaluation, even with an evaluation
    folder left by an earlier build; a stale evaluation (another [evaluation]) is refused."""
    from respop.stages import StageError

    path = copy_tiny(tiny_run.base, tmp_path / "plain", section="")
    shutil.copytree(evaluation_run.config.output.dir / "evaluation", tmp_path / "plain" / "run" / "evaluation")
    publication = collect(load_config(path), path)
    assert all(publication.tables[t].height == 0 for t in schema.EVALUATION_TABLES)
    other = copy_tiny(tiny_run.base, tmp_path / "other", section='[evaluation]\npilots = { "2" = 2021 }\n')
    shutil.copytree(evaluation_run.config.output.dir / "evaluation", tmp_path / "other" / "run" / "evaluation")
    with pytest.raises(StageError, match="evaluation"):
        collect(load_config(other), other)
    write_evaluation(load_config(other))  # rebuilt on its own settings: published
    assert collect(load_config(other), other).tables["evaluation_effects"].height
