"""One run of tiny (seed 5) attacked alone: every table, every relation a viewer can derive
(tests/attack/viewer.py), every count of 1 to 10 (masked, or never published like deaths per
zone) keeps an integer interval at least P wide."""

from __future__ import annotations

import time

import polars as pl

from tests.attack.solver import solve
from tests.attack.viewer import attack, protection_width


def _first(pinned_store):
    run_id = min(pinned_store.outputs)
    return run_id, {run_id: pinned_store.outputs[run_id]}


def test_the_attacker_models_every_table_and_every_tie(pinned_store):
    """The attacker's model of one run is complete and exact: the hierarchy holds on the truth
    (no cell of indicators, care use or transitions needs an unknown of its own), every kind of
    relation is used, and the cells it judges are there. Guards the judge: an attacker that lost
    its relations would find nothing and pass every store."""
    run_id, outputs = _first(pinned_store)
    system = attack(pinned_store.store(), outputs)
    structure = {k: v for k, v in system.dropped.items() if k.endswith("structure") or k.endswith("categories")}
    assert not {k: v for k, v in structure.items() if k.split(".")[0] in ("indicators", "care_use", "transitions", "flows")}, structure
    for kind in (
        "indicators.cases published", "indicators.cases masked", "care_use.people masked", "care_use.deaths masked",
        "transitions.count masked", "cases = people (all)", "people = followed + deaths (area)",
        "survival_curves.at_risk published", "survival_tests.n published", "model_calibration.n published",
        "model_calibration: n of the models", "quality.rows published", "flows.stays published",
        "territories.stays_residents published", "indicators: incident_cases <= cases", "care_use: deaths <= people",
        "model_cards.n_test published", "model_cards: n_train >= transitions",
    ):
        assert system.kept[kind] > 0, (kind, dict(system.kept))
    # every proportion published beside a masked count or a masked row total is one relation of the
    # attacker (it gives the other away); how many there are is the suppression's business
    transitions = pinned_store.store().read("transitions", run_id)
    totals = transitions.filter(pl.col("to_stratum") == "all").select("disease", "year", "from_stratum", pl.col("count").alias("total"))
    beside = transitions.join(totals, on=["disease", "year", "from_stratum"]).filter(
        (pl.col("count").is_null() | pl.col("total").is_null()) & pl.col("proportion").is_not_null()
    )
    assert system.kept["transitions.proportion"] == beside.height, (system.kept["transitions.proportion"], beside)
    tables = {c.table for c in system.cells}
    # every table of the store is modelled or publishes no count (issue 20's evaluation tables: the
    # outcomes by deprivation quintile are modelled when a run has them, the others hold no count)
    from tests.attack.viewer import EVALUATION_WITHOUT_COUNTS

    without_counts = {"zones", "hospitals", "strata_levels", "catalogue", "model_metrics", "model_importance",
                      *EVALUATION_WITHOUT_COUNTS}
    store_tables = set(pinned_store.store().tables())
    assert store_tables - tables - without_counts <= {"evaluation_deprivation"}, store_tables - tables - without_counts
    assert tables >= {"indicators", "care_use", "transitions", "survival_curves", "survival_tests", "model_calibration",
                      "model_cards", "quality", "flows", "territories"}
    hidden = [c for c in system.cells if c.status == "hidden" and c.sensitive and c.table == "care_use"]
    assert {c.column for c in hidden} == {"deaths", "readmissions_30d"}
    assert all(dict(c.key)["level"] == "zone" for c in hidden)
    assert sum(c.sensitive for c in system.cells) > 1000


def test_no_count_of_1_to_10_is_narrower_than_p_in_one_run(pinned_store):
    """Within one run, across its tables (cases = people, people = followed + deaths, survival
    starts, calibration totals, rates published with their counts, integers and zeros): no count
    of 1 to 10 has an interval narrower than P. On the code of ceeebeb (P = 1): 66 cells
    determined, among them zone 01006, 2019, diabetes, type 1 and unspecified (integer bounds),
    and the in-hospital deaths of strata in the area given by a transition's proportion (133
    published with 0.806061 gives the masked row total 165; 171 people - 165 = 6 deaths)."""
    run_id, outputs = _first(pinned_store)
    started = time.perf_counter()
    result = solve(attack(pinned_store.store(), outputs), protection_width())
    seconds = time.perf_counter() - started
    assert not result.unsolved and not result.findings, f"run {run_id} alone ({seconds:.0f} s):\n{result.summary()}"
