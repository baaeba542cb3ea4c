"""Deaths out of hospital (the SNDS referential IR_BEN_R, respop.pmsi.deaths) in case finding and
the strata, on hand-made patients whose expected rows are written out; the option that drops the
chronic cases not seen in hospital (``cases.drop_unseen_years``); and, on `tiny` with its truth,
the share of dead people among the cases with and without the referential."""

from __future__ import annotations

import datetime as dt
import json

import polars as pl
import pytest

from respop.case_finding.engine import find_cases
from respop.strata.engine import death_years, outcome_events, transitions
from respop.strata.survival import follow_up
from tests.case_finding.test_semantics_examples import frames, row, spec

D = dt.date


def known(*pairs: tuple[str, dt.date]) -> pl.DataFrame:
    return pl.DataFrame(list(pairs), schema={"patient_key": pl.String, "death_date": pl.Date}, orient="row")


def cases(stays, diagnoses, years, deaths=None, unseen=None, lookback=2):
    return find_cases(spec(lookback=lookback), stays.lazy(), diagnoses.lazy(), years, 2019, deaths, unseen).collect()


def keys(df: pl.DataFrame) -> set[tuple[str, int]]:
    return set(df.select("patient_key", "index_year").iter_rows())


# P: a diabetes stay in 2021, died at home on 1 March 2022 (only the referential knows it)
# Q: alive, stays in 2021 and 2022; R: died in hospital in 2022, the referential one day later
STAYS = (
    {"id": 1, "exit": D(2021, 2, 1), "codes": {"DAS": ["E119"]}},
    {"id": 2, "patient": "Q", "exit": D(2021, 5, 1), "codes": {"DAS": ["E119"]}},
    {"id": 3, "patient": "Q", "exit": D(2022, 5, 1), "codes": {"DAS": ["E119"]}},
    {"id": 4, "patient": "R", "exit": D(2021, 5, 1), "codes": {"DAS": ["E119"]}},
    {"id": 5, "patient": "R", "exit": D(2022, 3, 1), "died": True},
)
DEATHS = known(("P", D(2022, 3, 1)), ("R", D(2022, 3, 2)), ("Z", D(2020, 1, 1)))


def test_without_the_referential_a_person_who_died_at_home_stays_a_case():
    stays, diagnoses = frames(*STAYS)
    got = cases(stays, diagnoses, [2021, 2022, 2023])
    assert {("P", 2021), ("P", 2022), ("P", 2023)} <= keys(got)
    assert row(got, 2023)["is_case"] is True and row(got, 2022)["died_in_year"] is False



@pytest.mark.parametrize("referential", [None, DEATHS])
def test_death_years_computed_once_give_the_same_cases(referential):
    # the cases step computes the death years once for every disease and hands them to find_cases
    from respop.case_finding.engine import deaths, stays_only

    stays, diagnoses = frames(*STAYS)
    once = deaths(stays_only(stays.lazy()), referential).collect()
    for unseen in (None, 1):
        alone = cases(stays, diagnoses, [2021, 2022, 2023], referential, unseen)
        given = find_cases(spec(lookback=2), stays.lazy(), diagnoses.lazy(), [2021, 2022, 2023], 2019, referential,
                           unseen, once).collect()
        assert given.sort("patient_key", "index_year").equals(alone.sort("patient_key", "index_year"))

def test_with_the_referential_a_person_is_a_case_up_to_death():
    stays, diagnoses = frames(*STAYS)
    got = cases(stays, diagnoses, [2021, 2022, 2023], DEATHS)
    # P: a case in 2021, in 2022 (alive on 1 January, died in it), not in 2023
    assert row(got, 2021)["died_in_year"] is False
    assert row(got, 2022)["is_case"] is True and row(got, 2022)["died_in_year"] is True
    assert ("P", 2023) not in keys(got)
    # Q is alive: unchanged; R died in hospital in 2022: the earlier of the two dates, the same year
    assert {("Q", 2021), ("Q", 2022), ("Q", 2023)} <= keys(got)
    assert row(got, 2022, "R")["died_in_year"] is True and ("R", 2023) not in keys(got)
    # the referential's people without a qualifying stay (Z) give no row
    assert "Z" not in set(got["patient_key"])


def test_drop_unseen_years_leaves_out_the_chronic_cases_not_seen_for_n_years():
    stays, diagnoses = frames(
        {"id": 1, "exit": D(2019, 2, 1), "codes": {"DAS": ["E119"]}},
        {"id": 2, "patient": "Q", "exit": D(2019, 5, 1), "codes": {"DAS": ["E119"]}},
        {"id": 3, "patient": "Q", "exit": D(2022, 5, 1)},  # any stay counts as seen, not only the disease's
    )
    every = cases(stays, diagnoses, [2021, 2022, 2023], lookback=5)
    assert keys(every) == {(p, y) for p in "PQ" for y in (2021, 2022, 2023)}
    got = cases(stays, diagnoses, [2021, 2022, 2023], unseen=2, lookback=5)
    # P last seen in 2019: kept in 2020 (not asked) and in no asked year after 2020; Q seen in 2022
    assert keys(got) == {("Q", 2022), ("Q", 2023)}
    assert keys(cases(stays, diagnoses, [2021], unseen=3, lookback=5)) == {("P", 2021), ("Q", 2021)}


def test_strata_deaths_out_of_hospital_end_follow_up_as_deaths():
    stays, diagnoses = frames(*STAYS)
    years = death_years(stays.lazy(), DEATHS).collect().sort("patient_key")
    assert years.rows() == [("P", 2022), ("R", 2022), ("Z", 2020)]
    assert death_years(stays.lazy()).collect().rows() == [("R", 2022)]
    events = outcome_events(spec(lookback=2), stays.lazy(), diagnoses.lazy(), known_deaths=DEATHS).collect()
    assert ("P", D(2022, 3, 1), "death") in set(events.select("patient_key", "date", "kind").iter_rows())
    person = pl.DataFrame(
        {"patient_key": ["P", "Q"], "disease": ["diabetes"] * 2, "year": [2021, 2021], "stratum": ["a", "a"],
         "stratum_level": [1, 1], "age": [70, 70], "sex": [1, 2], "died_in_year": [False, False]},
        schema_overrides={"year": pl.Int16, "stratum_level": pl.Int8, "age": pl.Int16, "sex": pl.Int8},
    )
    followed = follow_up(person, events, D(2023, 12, 31)).sort("patient_key")
    p = followed.row(0, named=True)
    assert (p["event"], p["event_kind"], p["event_date"]) == (1, "death", D(2022, 3, 1))
    moves = transitions(person.with_columns(pl.col("year").cast(pl.Int16)), years, 2023, {"diabetes": ["a"]})
    assert moves.filter(pl.col("to") == "deces")["count"].to_list() == [1]


@pytest.mark.slow
def test_tiny_dead_cases_with_and_without_the_referential(tmp_path):
    """On `tiny` (seed 5): no case of 2022-2023 had died before the year with the referential;
    some without it; the input report says which."""
    from respop.case_finding.run import zone_territory
    from respop.case_finding.validation import validate
    from respop.config import load_config
    from respop.pipeline import run
    from respop.spec.catalogue import run_catalogue
    from respop.synth import generate, load_profile
    from tests.store.conftest import CONFIG

    generate(load_profile("tiny"), seed=5, out=tmp_path / "data", years=[2019, 2020, 2021, 2022, 2023])
    shares = {}
    for name, extra in (("with", ""), ("without", 'deaths = "ignore"\n')):
        text = CONFIG.replace("[quality]", f"{extra}[quality]").replace('dir = "run"', f'dir = "run_{name}"')
        path = tmp_path / f"{name}.toml"
        path.write_text(text, encoding="utf-8")
        run(path, steps=("input", "cases"))
        cfg = load_config(path)
        report = json.loads((cfg.output.dir / "input" / "report.json").read_text(encoding="utf-8"))
        assert report["deaths"]["known"] is (name == "with")
        assert ("IR_BEN_R" in [t["label"] for t in report["tables"]]) is (name == "with")
        results = validate(pl.read_parquet(cfg.output.dir / "cases" / "cases.parquet"), run_catalogue(cfg).specs,
                           tmp_path / "data" / "truth", zone_territory(cfg))
        shares[name] = {(r.disease, r.index_year): (r.detected_dead, r.detected) for r in results if r.index_year >= 2022}
    assert sum(dead for dead, _ in shares["with"].values()) <= 0.01 * sum(n for _, n in shares["with"].values())
    assert sum(dead for dead, _ in shares["without"].values()) > 0
    hf = [shares[k][("heart_failure", 2023)] for k in ("with", "without")]
    assert hf[0][0] / hf[0][1] < 0.01 < hf[1][0] / hf[1][1]
