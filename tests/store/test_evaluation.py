"""The evaluation of the experiment in the store (issue 20): published from ``<output.dir>/evaluation/``
when the configuration has ``[evaluation]`` (a fabricated folder with the step's exact files and
columns, tests/store/evaluation_outputs.py), round trip on SQLite and PostgreSQL, every value that
depends on a cell masked elsewhere in the run masked (the design chosen from the cells the tiny run
masks), the outcomes by deprivation quintile kept private, the panel's counts never published."""

from __future__ import annotations

import shutil

import polars as pl
import pytest

from respop.config import load_config
from respop.store import schema
from respop.store.db import Store
from respop.store.publish import SECRET_NOTE, collect
from tests.store.evaluation_outputs import START, Design, copy_tiny, masked_cells, write_evaluation


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
            assert sent.height > 0 or name == "evaluation_deprivation", name  # kept private (respop.store.publish)
            assert back.columns == sent.columns, name
            assert back.equals(sent), (name, back, sent)
    finally:
        store.close()
    assert collect(evaluation_run.config, evaluation_run.config_path).fingerprint() == publication.fingerprint()


def test_the_design_and_the_outcomes_in_french(evaluation_run, published):
    """The design as design.json gives it, and each outcome's French label as the evaluation step
    writes it (respop.evaluation.outcomes.outcome_label with the disease's French name)."""
    from respop.evaluation.outcomes import outcome_label
    from respop.spec.catalogue import run_catalogue

    design = evaluation_run.design
    territories = published["evaluation_territories"]
    assert territories.filter(pl.col("role") == "pilot").select("territory_id", "start_year").rows() == [(design.pilot, START)]
    assert sorted(territories.filter(pl.col("role") == "donor")["territory_id"]) == design.donors
    assert territories["territory_name"].null_count() == 0
    row = published["evaluation_design"].row(0, named=True)
    assert (row["first_year"], row["last_year"], row["confidence"], row["deprivation"]) == (2019, 2023, 0.95, True)
    catalogue = run_catalogue(evaluation_run.config)
    outcomes = published["evaluation_outcomes"]
    assert outcomes.select("disease", "outcome").rows() == list(design.outcomes.values())
    for disease, outcome, label in outcomes.select("disease", "outcome", "label").iter_rows():
        assert label == outcome_label(outcome, catalogue.spec(disease).algorithm.name, catalogue.features)
        assert "—" not in label and disease not in label  # not the store's fallback (respop.store.publish._outcome_label)
    if ("diabetes", "emergency_per_case") in design.outcomes.values():
        assert "Arrivées par les urgences (toutes causes) des personnes suivies pour diabète" in outcomes["label"].to_list()


def _expected_masks(published, run, disease: str, outcome: str) -> dict[str, list]:
    """What the store must mask for one outcome, from the cells the published ``care_use`` masks
    (territory, stratum ``all``): a value is masked exactly when it is computed from one of them.
    DiD effects and the event study: the pilot's and every donor's cells; the synthetic control's
    effects: the pilot's and its donors of positive weight; a trajectory point of year y: the
    observed the pilot's cells of the pre-period and y, the synthetic its donors'; a weight: the
    pilot's and its donors' of the pre-period."""
    hidden = masked_cells(published["care_use"], disease, outcome)
    pilot, donors = run.design.pilot, run.design.donors
    row = published["evaluation_design"].row(0, named=True)
    years = list(range(row["first_year"], row["last_year"] + 1))
    pre = [y for y in years if y < START]
    weights = published["evaluation_weights"].filter((pl.col("disease") == disease) & (pl.col("outcome") == outcome))
    written = pl.read_parquet(run.config.output.dir / "evaluation" / "weights.parquet")  # the step's, before masking
    positive = written.filter((pl.col("disease") == disease) & (pl.col("outcome") == outcome) & (pl.col("territory_id") == pilot)
                              & (pl.col("weight") > 0))["donor_id"].to_list()

    def hit(territories, ys=None) -> bool:
        return any((t, y) in hidden for t in territories for y in (years if ys is None else ys))

    effects = published["evaluation_effects"].filter((pl.col("disease") == disease) & (pl.col("outcome") == outcome))
    paths = published["evaluation_trajectories"].filter((pl.col("disease") == disease) & (pl.col("outcome") == outcome)).sort("year")
    study = published["evaluation_event_study"].filter((pl.col("disease") == disease) & (pl.col("outcome") == outcome))
    return {
        "effects": [(m, hit([pilot, *donors]) if m == "did" else hit([pilot, *positive])) for m in effects["method"]],
        "study": [e != -1 and hit([pilot, *donors]) for e in study["event_time"]],
        "observed": [hit([pilot], sorted({*pre, y})) for y in paths["year"]],
        "synthetic": [hit(positive, sorted({*pre, y})) for y in paths["year"]],
        "weights": [hit([pilot, *positive], pre)] * weights.height,
    }


def assert_masked_exactly_where_expected(published, run, disease: str, outcome: str) -> dict[str, list]:
    """Every value of the outcome null (note « secret statistique ») exactly when it depends on a
    masked cell, published otherwise; returns the expectations."""
    expected = _expected_masks(published, run, disease, outcome)
    mine = (pl.col("disease") == disease) & (pl.col("outcome") == outcome)
    effects = published["evaluation_effects"].filter(mine)
    assert effects.height == 4
    for (method, masked), r in zip(expected["effects"], effects.iter_rows(named=True)):
        for column in ("effect", "ci_lower", "ci_upper", "p_value", "effect_abs", "counterfactual", "pre_fit"):
            assert (r[column] is None) == masked, (method, column, r)
        assert (r["note"] or "").startswith(SECRET_NOTE) == masked, (method, r["note"])
    study = published["evaluation_event_study"].filter(mine)
    assert [e is None for e in study["effect"]] == expected["study"]
    assert [e is None for e in study["ci_lower"]] == expected["study"]
    paths = published["evaluation_trajectories"].filter(mine).sort("year")
    assert [v is None for v in paths["observed"]] == expected["observed"]
    assert [v is None for v in paths["synthetic"]] == expected["synthetic"]
    assert [v is None for v in published["evaluation_weights"].filter(mine)["weight"]] == expected["weights"]
    return expected


def test_everything_of_an_outcome_without_masked_cells_is_published(evaluation_run, published):
    disease, outcome = evaluation_run.design.outcomes["published"]
    assert masked_cells(published["care_use"], disease, outcome) == set()
    expected = assert_masked_exactly_where_expected(published, evaluation_run, disease, outcome)
    assert not any(m for _, m in expected["effects"]) and not any(expected["study"]) and not any(expected["observed"])


def test_an_effect_whose_donor_cell_is_masked_is_masked(evaluation_run, published):
    """An outcome whose pilot's cells are all published and a donor's masked in care_use: the DiD
    effects and the event study (any donor) and the synthetic control (the donor has a positive
    weight) are masked with « secret statistique »; the pilot's observed trajectory is published."""
    design = evaluation_run.design
    disease, outcome = design.outcomes["donor_masked"]
    hidden = masked_cells(published["care_use"], disease, outcome)
    assert hidden and {t for t, _ in hidden} <= set(design.donors), hidden
    expected = assert_masked_exactly_where_expected(published, evaluation_run, disease, outcome)
    assert all(m for _, m in expected["effects"])  # DiD and synthetic control, the pilot's and pooled
    assert sum(expected["study"]) == len(expected["study"]) - 1  # all but the reference year
    assert not any(expected["observed"])
    effects = published["evaluation_effects"].filter((pl.col("disease") == disease) & (pl.col("outcome") == outcome))
    assert effects["effect"].null_count() == 4 and all(n.startswith(SECRET_NOTE) for n in effects["note"])


def test_an_effect_of_a_pilot_with_a_masked_cell_is_masked(evaluation_run, published):
    """An outcome with a cell of the pilot masked in care_use: every effect is masked, and the
    pilot's observed trajectory from the first masked year on (from the start when it is in the
    pre-period)."""
    design = evaluation_run.design
    disease, outcome = design.outcomes["pilot_masked"]
    hidden = masked_cells(published["care_use"], disease, outcome)
    assert any(t == design.pilot for t, _ in hidden), hidden
    expected = assert_masked_exactly_where_expected(published, evaluation_run, disease, outcome)
    assert all(m for _, m in expected["effects"]) and any(expected["observed"])
    effects = published["evaluation_effects"].filter((pl.col("disease") == disease) & (pl.col("outcome") == outcome))
    assert effects["effect"].null_count() == 4 and all(n.startswith(SECRET_NOTE) for n in effects["note"])


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
    design = evaluation_run.design
    moved = Design(design.donors[0], sorted([design.pilot, *design.donors[1:]]), design.outcomes)  # another pilot
    other = copy_tiny(tiny_run.base, tmp_path / "other", section=moved.section)
    shutil.copytree(evaluation_run.config.output.dir / "evaluation", tmp_path / "other" / "run" / "evaluation")
    with pytest.raises(StageError, match="evaluation"):
        collect(load_config(other), other)
    write_evaluation(load_config(other), moved)  # rebuilt on its own settings: published
    assert collect(load_config(other), other).tables["evaluation_effects"].height
