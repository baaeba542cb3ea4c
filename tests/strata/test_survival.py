"""Tests of respop.strata.survival: follow-up on hand-made rows, estimates on simulated data with a known truth."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pandas as pd
import polars as pl
import pytest
from lifelines import CoxPHFitter
from lifelines.statistics import proportional_hazard_test

from respop.errors import ConfigError, InputError, RespopError
from respop.strata.survival import (
    COX_SCHEMA,
    KM_SCHEMA,
    LOGRANK_SCHEMA,
    PH_TEST_SCHEMA,
    ZERO_DAY_DURATION,
    clustered_sandwich,
    efron_residuals,
    follow_up,
    survival,
    thin_curve,
)

D = dt.date
LAST = D(2021, 12, 31)

# --------------------------------------------------------------------------------------------
# follow_up on hand-made rows


def _person(rows: list[tuple]) -> pl.DataFrame:
    """Rows (patient_key, year, stratum_level, died_in_year, ckd)."""
    names = {1: "stable", 2: "severe"}
    return pl.DataFrame(
        {
            "patient_key": [r[0] for r in rows],
            "disease": ["heart_failure"] * len(rows),
            "year": pl.Series([r[1] for r in rows], dtype=pl.Int16),
            "stratum": [names[r[2]] for r in rows],
            "stratum_level": pl.Series([r[2] for r in rows], dtype=pl.Int8),
            "age": pl.Series([70] * len(rows), dtype=pl.Int16),
            "sex": pl.Series([2] * len(rows), dtype=pl.Int8),
            "died_in_year": [r[3] for r in rows],
            "ckd": [r[4] for r in rows],
            "stays_12m": [1] * len(rows),  # an int feature: ignored
            "residence_zone": ["z1"] * len(rows),  # ignored
        }
    )


def _events(rows: list[tuple]) -> pl.DataFrame:
    """Rows (patient_key, date, kind[, disease])."""
    return pl.DataFrame(
        {
            "patient_key": [r[0] for r in rows],
            "disease": [r[3] if len(r) > 3 else "heart_failure" for r in rows],
            "date": pl.Series([r[1] for r in rows], dtype=pl.Date),
            "kind": [r[2] for r in rows],
        }
    )


@pytest.fixture(scope="module")
def hand_made() -> pl.DataFrame:
    person = _person(
        [
            ("A", 2019, 1, False, True),  # stay before the start ignored; first stay after it
            ("A", 2020, 2, False, False),  # same person next year: its own start
            ("B", 2019, 1, False, False),  # event on the start day
            ("C", 2019, 2, False, True),  # in-hospital death
            ("D", 2019, 1, False, False),  # no event: censored at the last date
            ("E", 2019, 2, True, False),  # died in 2019: not followed
            ("F", 2021, 1, False, False),  # last year: not followed
            ("G", 2020, 1, False, False),  # event after the last date: censored
            ("H", 2020, 2, False, None),  # stay and death on the same day: one death
        ]
    )
    events = _events(
        [
            ("A", D(2019, 6, 1), "disease_stay"),
            ("A", D(2020, 3, 1), "disease_stay"),
            ("A", D(2021, 5, 10), "disease_stay"),
            ("B", D(2020, 1, 1), "disease_stay"),
            ("B", D(2020, 2, 1), "disease_stay"),
            ("C", D(2020, 7, 1), "death"),
            ("D", D(2020, 5, 1), "disease_stay", "diabetes"),  # another disease: not this one's event
            ("E", D(2019, 12, 1), "death"),
            ("G", D(2022, 2, 1), "disease_stay"),
            ("H", D(2021, 3, 3), "disease_stay"),
            ("H", D(2021, 3, 3), "death"),
        ]
    )
    return follow_up(person, events, LAST)


def _row(follow: pl.DataFrame, key: str, year: int) -> dict:
    rows = follow.filter((pl.col("patient_key") == key) & (pl.col("year") == year)).to_dicts()
    assert len(rows) == 1, (key, year, rows)
    return rows[0]


def test_follow_up_rows_kept_and_excluded(hand_made):
    kept = sorted(zip(hand_made["patient_key"], hand_made["year"], strict=True))
    assert kept == [("A", 2019), ("A", 2020), ("B", 2019), ("C", 2019), ("D", 2019), ("G", 2020), ("H", 2020)]


def test_follow_up_columns_and_types(hand_made):
    assert hand_made.columns == [
        "patient_key", "disease", "year", "stratum", "stratum_level", "age", "sex", "ckd",
        "start", "event_date", "event_kind", "duration", "event",
    ]  # fmt: skip
    schema = hand_made.schema
    assert schema["year"] == pl.Int16 and schema["stratum_level"] == pl.Int8
    assert schema["age"] == pl.Int16 and schema["sex"] == pl.Int8 and schema["ckd"] == pl.Boolean
    assert schema["start"] == pl.Date and schema["duration"] == pl.Float64 and schema["event"] == pl.Int8
    assert (hand_made["duration"] > 0).all()


def test_follow_up_first_event_after_start(hand_made):
    a19 = _row(hand_made, "A", 2019)
    assert a19["start"] == D(2020, 1, 1)
    assert a19["event_date"] == D(2020, 3, 1)  # the 2019 stay is before the start
    assert a19["duration"] == (D(2020, 3, 1) - D(2020, 1, 1)).days == 60
    assert a19["event"] == 1 and a19["event_kind"] == "disease_stay"
    assert a19["ckd"] is True and a19["stratum"] == "stable"
    a20 = _row(hand_made, "A", 2020)
    assert a20["start"] == D(2021, 1, 1) and a20["event_date"] == D(2021, 5, 10)
    assert a20["duration"] == (D(2021, 5, 10) - D(2021, 1, 1)).days == 129
    assert a20["stratum_level"] == 2


def test_follow_up_event_on_start_day(hand_made):
    b = _row(hand_made, "B", 2019)
    assert b["event"] == 1 and b["event_date"] == D(2020, 1, 1)
    assert b["duration"] == ZERO_DAY_DURATION == 0.5


def test_follow_up_death(hand_made):
    c = _row(hand_made, "C", 2019)
    assert c["event"] == 1 and c["event_kind"] == "death"
    assert c["duration"] == (D(2020, 7, 1) - D(2020, 1, 1)).days
    h = _row(hand_made, "H", 2020)
    assert h["event_kind"] == "death" and h["duration"] == (D(2021, 3, 3) - D(2021, 1, 1)).days


def test_follow_up_censoring(hand_made):
    d = _row(hand_made, "D", 2019)  # only an event of another disease
    assert d["event"] == 0 and d["event_date"] is None and d["event_kind"] is None
    assert d["duration"] == (LAST - D(2020, 1, 1)).days == 730
    g = _row(hand_made, "G", 2020)  # event after the end of the data
    assert g["event"] == 0 and g["duration"] == (LAST - D(2021, 1, 1)).days == 364


def test_follow_up_explicit_comorbidities_and_categorical_keys():
    person = _person([("A", 2019, 1, False, True)]).with_columns(
        pl.col("disease").cast(pl.Categorical), other_disease=pl.lit(False)
    )
    events = _events([("A", D(2020, 2, 1), "disease_stay")])
    out = follow_up(person, events, LAST, comorbidities=["other_disease"])
    assert out.columns[7] == "other_disease" and "ckd" not in out.columns
    assert out["disease"].dtype == pl.String and out["event"].to_list() == [1]
    assert follow_up(person, events, LAST)["ckd"].to_list() == [True]  # default: the Boolean columns


def test_follow_up_single_year_is_empty_and_survival_refuses_it():
    person = _person([("A", 2021, 1, False, True), ("B", 2021, 2, False, False)])
    out = follow_up(person, _events([("A", D(2021, 5, 1), "death")]), LAST)
    assert out.height == 0 and "duration" in out.columns
    with pytest.raises(InputError, match="no follow-up"):
        survival(out, ["ckd"])


def test_follow_up_input_errors():
    person = _person([("A", 2019, 1, False, True)])
    events = _events([("A", D(2020, 2, 1), "disease_stay")])
    with pytest.raises(InputError) as info:
        follow_up(person.drop("died_in_year"), events, LAST)
    assert info.value.column == "died_in_year"
    with pytest.raises(InputError, match="unknown kind"):
        follow_up(person, events.with_columns(kind=pl.lit("outpatient")), LAST)
    with pytest.raises(RespopError, match="copd"):
        follow_up(person, events, LAST, comorbidities=["copd"])


# --------------------------------------------------------------------------------------------
# survival() on simulated exponential times

RATES = {1: 0.5, 2: 1.0, 3: 2.0}  # per year
NAMES = {1: "low", 2: "mid", 3: "high"}
N_PER_STRATUM = 400


def simulate(seed: int, n: int = N_PER_STRATUM, rates: dict[int, float] = RATES, disease: str = "hf") -> pl.DataFrame:
    """Exponential times (days) of known rates per stratum, censored uniformly between 1 and 3 years.

    Age, sex and ckd have no effect; copd is always false. Times are rounded up to whole days
    (ties, as in the real follow-up).
    """
    rng = np.random.default_rng(seed)
    parts = []
    for level, rate in rates.items():
        t = rng.exponential(365.25 / rate, n) if rate > 0 else np.full(n, np.inf)
        c = rng.uniform(365, 3 * 365, n)
        parts.append(
            pl.DataFrame(
                {
                    "patient_key": [f"{disease}-{level}-{i}" for i in range(n)],
                    "disease": disease,
                    "year": pl.Series([2019] * n, dtype=pl.Int16),
                    "stratum": NAMES.get(level, f"level{level}"),
                    "stratum_level": pl.Series([level] * n, dtype=pl.Int8),
                    "age": pl.Series(rng.integers(45, 95, n), dtype=pl.Int16),
                    "sex": pl.Series(rng.integers(1, 3, n), dtype=pl.Int8),
                    "ckd": rng.random(n) < 0.3,
                    "copd": np.zeros(n, dtype=bool),
                    "duration": np.ceil(np.minimum(t, c)),
                    "event": (t <= c).astype(np.int8),
                }
            )
        )
    return pl.concat(parts)


@pytest.fixture(scope="module")
def simulated() -> pl.DataFrame:
    return simulate(seed=20240501)


@pytest.fixture(scope="module")
def result(simulated):
    return survival(simulated, ["ckd", "copd"])


def test_result_schemas(result):
    assert result.km.schema == pl.Schema(KM_SCHEMA)
    assert result.logrank.schema == pl.Schema(LOGRANK_SCHEMA)
    assert result.cox.schema == pl.Schema(COX_SCHEMA)
    assert result.ph_test.schema == pl.Schema(PH_TEST_SCHEMA)


def test_km_one_year_survival_close_to_truth(result):
    for level, rate in RATES.items():
        curve = result.km.filter(pl.col("stratum_level") == level).sort("time")
        at_year = curve.filter(pl.col("time") <= 365).row(-1, named=True)
        truth = math.exp(-rate * 365 / 365.25)
        se = math.sqrt(truth * (1 - truth) / N_PER_STRATUM)  # no censoring before 1 year
        assert abs(at_year["survival"] - truth) < 4 * se, (level, at_year, truth)
        assert at_year["lower"] < truth < at_year["upper"]


def test_km_curves_well_formed(result):
    assert sorted(result.km["stratum"].unique().to_list()) == ["high", "low", "mid"]
    for (stratum,), curve in result.km.group_by("stratum"):
        curve = curve.sort("time")
        assert curve.height <= 400
        first = curve.row(0, named=True)
        assert first["time"] == 0 and first["survival"] == 1 and first["at_risk"] == N_PER_STRATUM
        assert (curve["survival"].diff().drop_nulls() <= 0).all()
        assert (curve["at_risk"].diff().drop_nulls() <= 0).all()
        assert ((curve["lower"] <= curve["survival"]) & (curve["survival"] <= curve["upper"])).all(), stratum


def test_km_thinning_keeps_the_last_time(simulated):
    thin = survival(simulated, ["ckd"], max_points=50)
    full = survival(simulated, ["ckd"], max_points=10_000)
    for level in RATES:
        t = thin.km.filter(pl.col("stratum_level") == level)
        f = full.km.filter(pl.col("stratum_level") == level)
        assert t.height <= 50 < f.height
        longest = simulated.filter(pl.col("stratum_level") == level)["duration"].max()
        assert t["time"].max() == f["time"].max() == longest
        # every kept row is a point of the full curve
        joined = t.join(f, on="time", suffix="_full")
        assert joined.height == t.height
        assert np.allclose(joined["survival"], joined["survival_full"])
        assert (joined["at_risk"] == joined["at_risk_full"]).all()


def test_thin_curve_unit():
    times = np.arange(0.0, 3000.0)
    survival_ = np.repeat(np.linspace(1, 0.1, 1000), 3)  # a change every third time
    keep = thin_curve(times, survival_, 400)
    assert len(keep) <= 400 and keep[0] == 0 and keep[-1] == len(times) - 1
    assert np.all(np.diff(keep) > 0)
    assert np.diff(times[keep]).max() <= 2 * (times[-1] / 398) + 3  # no long hole
    # few changes: all kept, plus the first and the last time
    few = np.r_[np.ones(10), np.full(10, 0.8), np.full(10, 0.5)]
    assert thin_curve(np.arange(30.0), few, 400).tolist() == [0, 10, 20, 29]
    assert thin_curve(np.array([0.0]), np.array([1.0])).tolist() == [0]


def test_logrank_adjacent_strata_ordered(result):
    lr = result.logrank.sort("higher")
    assert lr.select("higher", "lower").rows() == [("high", "mid"), ("mid", "low")]
    assert (lr["p_value"] < 0.001).all()
    assert lr["ordered"].all()
    assert (lr["n_higher"] == N_PER_STRATUM).all() and (lr["n_lower"] == N_PER_STRATUM).all()
    assert (lr["survival_365_higher"] < lr["survival_365_lower"]).all()


def test_cox_hazard_ratios_near_truth(result):
    hr = dict(zip(result.cox["covariate"], result.cox["hazard_ratio"], strict=True))
    assert set(hr) == {"age_per_10_years", "female", "stratum:mid", "stratum:high", "ckd"}
    assert hr["stratum:mid"] == pytest.approx(RATES[2] / RATES[1], rel=0.25)
    assert hr["stratum:high"] == pytest.approx(RATES[3] / RATES[1], rel=0.25)
    for null in ("age_per_10_years", "female", "ckd"):
        assert hr[null] == pytest.approx(1.0, rel=0.25)
    cox = result.cox
    assert ((cox["lower"] < cox["hazard_ratio"]) & (cox["hazard_ratio"] < cox["upper"])).all()
    assert (cox["n"] == 3 * N_PER_STRATUM).all()
    assert cox["events"][0] > 0
    assert any("copd is constant" in note for note in result.notes)


def test_ph_test_does_not_reject_exponential(result):
    assert set(result.ph_test["covariate"]) == set(result.cox["covariate"])
    assert (result.ph_test["p_value"] > 0.01).all(), result.ph_test


def test_ph_test_rejects_crossing_hazards():
    """Stratum 2 has a high hazard in the first months only: the PH test sees it."""
    rng = np.random.default_rng(7)
    data = simulate(seed=7, rates={1: 1.0, 2: 1.0})
    early = rng.exponential(365.25 / 6, N_PER_STRATUM)  # extra early events, none after 60 days
    level2 = data["stratum_level"] == 2
    duration = data["duration"].to_numpy().copy()
    event = data["event"].to_numpy().copy()
    idx = np.flatnonzero(level2.to_numpy())
    hit = (early < 60) & (early < duration[idx])
    duration[idx[hit]] = np.ceil(early[hit])
    event[idx[hit]] = 1
    data = data.with_columns(duration=pl.Series(duration), event=pl.Series(event, dtype=pl.Int8))
    ph = survival(data, ["ckd"]).ph_test
    assert ph.filter(pl.col("covariate") == "stratum:mid")["p_value"][0] < 0.001


def test_repeated_person_years_clustered(simulated):
    """Each person-year twice under the same patient: same HRs, and the clustered CIs do not shrink."""
    once = survival(simulated, ["ckd"]).cox
    twice = survival(pl.concat([simulated, simulated]), ["ckd"]).cox
    joined = once.join(twice, on="covariate", suffix="_2")
    assert np.allclose(joined["hazard_ratio"], joined["hazard_ratio_2"], rtol=1e-3)
    width = np.log(joined["upper"] / joined["lower"])
    width2 = np.log(joined["upper_2"] / joined["lower_2"])
    assert np.allclose(width, width2, rtol=0.03)  # a naive model would give width / sqrt(2)


def test_small_stratum_skipped_and_penalised():
    """A 4th level with 10 person-years and no event: log-rank skips it, Cox needs the penalizer."""
    data = pl.concat(
        [simulate(seed=3, n=200, rates={1: 0.5, 3: 2.0}), simulate(seed=4, n=10, rates={2: 0.0})]
    )
    res = survival(data, ["ckd"], min_group=30)
    assert res.logrank.select("higher", "lower").rows() == [("high", "low")]
    assert any("mid (level 2) has 10 person-years, fewer than 30" in n for n in res.notes)
    assert any("penalizer of 0.01" in n for n in res.notes)
    assert "stratum:mid" in res.cox["covariate"].to_list()
    assert res.cox.filter(pl.col("covariate") == "stratum:high")["hazard_ratio"][0] == pytest.approx(4, rel=0.25)


def test_comorbidity_identical_to_a_stratum_left_out():
    data = simulate(seed=8, n=200).with_columns(dialysis=pl.col("stratum_level") == 3)
    res = survival(data, ["ckd", "dialysis"])
    assert "dialysis" not in res.cox["covariate"].to_list()
    assert any("dialysis is identical to stratum:high" in note for note in res.notes)
    assert not any("penalizer" in note for note in res.notes)
    without = survival(data, ["ckd"])  # the same model
    assert np.allclose(res.cox["hazard_ratio"], without.cox["hazard_ratio"])


def test_several_diseases_and_single_stratum():
    data = pl.concat([simulate(seed=5, n=150), simulate(seed=6, n=150, rates={1: 1.0}, disease="diabetes")])
    res = survival(data, ["ckd"])
    assert set(res.km["disease"]) == {"hf", "diabetes"}
    assert set(res.logrank["disease"]) == {"hf"}
    assert any(n.startswith("diabetes: fewer than two strata") for n in res.notes)
    diabetes = res.cox.filter(pl.col("disease") == "diabetes")
    assert not any(c.startswith("stratum:") for c in diabetes["covariate"])
    assert diabetes["n"][0] == 150


def test_survival_argument_errors(simulated):
    with pytest.raises(InputError, match="'asthma'"):
        survival(simulated, ["asthma"])
    with pytest.raises(ConfigError):
        survival(simulated, ["ckd"], confidence=95)
    with pytest.raises(InputError, match="reserved"):
        survival(simulated, ["female"])
    with pytest.raises(InputError, match="negative duration"):
        survival(simulated.with_columns(duration=pl.col("duration") - 10_000), [])


def test_end_to_end_from_follow_up():
    """follow_up then survival on person-years built from simulated event dates."""
    rng = np.random.default_rng(11)
    n = 300
    person_rows, event_rows = [], []
    for level, rate in {1: 0.5, 2: 2.0}.items():
        days = np.ceil(rng.exponential(365.25 / rate, n)).astype(int)
        for i, d in enumerate(days):
            key = f"p{level}-{i}"
            person_rows.append((key, 2019, level, False, bool(i % 3 == 0)))
            event_rows.append((key, D(2020, 1, 1) + dt.timedelta(days=int(d) - 1), "disease_stay"))
    person = _person(person_rows)
    follow = follow_up(person, _events(event_rows), D(2021, 12, 31))
    assert follow.height == 2 * n
    res = survival(follow, ["ckd"])
    assert res.logrank["ordered"].all() and res.logrank["p_value"][0] < 0.001


# --------------------------------------------------------------------------------------------
# the robust variance and the residuals against lifelines


def _cox_data(seed: int, n: int, ties: bool) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = np.column_stack([rng.normal(size=n), rng.integers(0, 2, n), rng.integers(0, 2, n)])
    t = rng.exponential(1 / np.exp(x @ np.array([0.3, 0.7, -0.4])))
    c = rng.uniform(0, 2, n)
    time = np.minimum(t, c)
    if ties:
        time = np.ceil(time * 20) / 20
    df = pd.DataFrame(x, columns=["a", "b", "c"])
    df["T"], df["E"], df["id"] = time, (t <= c).astype(int), rng.integers(0, n // 2, n)
    return df


@pytest.mark.parametrize("ties", [False, True])
def test_residuals_match_lifelines(ties):
    df = _cox_data(0, 300, ties)
    cph = CoxPHFitter().fit(df.drop(columns="id"), "T", "E")
    x = df[["a", "b", "c"]].to_numpy()
    score, schoenfeld = efron_residuals(x, df["T"].to_numpy(), df["E"].to_numpy(bool), cph.params_.to_numpy())
    # Efron score residuals sum to the score: ~0 at the estimate (lifelines' tolerance)
    assert np.abs(score.sum(axis=0)).max() < 1e-3
    theirs = cph.compute_residuals(df.drop(columns="id"), "schoenfeld")
    assert np.allclose(theirs.to_numpy(), schoenfeld[theirs.index.to_numpy()])
    assert np.isnan(schoenfeld[df["E"].to_numpy() == 0]).all()
    robust = np.sqrt(np.diag(clustered_sandwich(score, cph.variance_matrix_.to_numpy(), df["id"].to_numpy())))
    clustered = CoxPHFitter().fit(df, "T", "E", cluster_col="id").standard_errors_.to_numpy()
    if ties:  # lifelines ignores ties in its score residuals: close, not equal
        assert np.allclose(robust, clustered, rtol=0.05)
    else:
        assert np.allclose(robust, clustered, rtol=1e-6)


def test_score_residuals_approximate_leave_one_out():
    """With ties, score residuals × variance ≈ the change of the estimate when a row is left out."""
    df = _cox_data(1, 300, ties=True).drop(columns="id")
    cph = CoxPHFitter().fit(df, "T", "E")
    beta, variance = cph.params_.to_numpy(), cph.variance_matrix_.to_numpy()
    score, _ = efron_residuals(df[["a", "b", "c"]].to_numpy(), df["T"].to_numpy(), df["E"].to_numpy(bool), beta)
    delta = score @ variance
    for i in (0, 1, 2, 3, 4, 5):
        left_out = CoxPHFitter().fit(df.drop(index=i), "T", "E").params_.to_numpy()
        assert np.allclose(beta - left_out, delta[i], rtol=0.1, atol=2e-4), i


def test_ph_statistic_matches_lifelines():
    df = _cox_data(2, 300, ties=True).drop(columns="id")
    data = pl.from_pandas(df).select(
        patient_key=pl.int_range(pl.len()).cast(pl.String),
        disease=pl.lit("hf"),
        year=pl.lit(2019, dtype=pl.Int16),
        stratum=pl.when(pl.col("b") == 1).then(pl.lit("high")).otherwise(pl.lit("low")),
        stratum_level=(pl.col("b") + 1).cast(pl.Int8),
        age=pl.lit(70, dtype=pl.Int16),
        sex=(pl.col("c") + 1).cast(pl.Int8),
        duration=pl.col("T"),
        event=pl.col("E"),
    )
    ours = survival(data, [], min_group=1)
    reference = df[["T", "E", "c", "b"]].rename(columns={"c": "female", "b": "stratum:high"})
    cph = CoxPHFitter().fit(reference, "T", "E")
    theirs = proportional_hazard_test(cph, reference, time_transform="rank").summary
    got = dict(zip(ours.ph_test["covariate"], ours.ph_test["statistic"], strict=True))
    assert set(got) == {"female", "stratum:high"}  # age constant: left out
    for name in got:
        assert got[name] == pytest.approx(theirs.loc[name, "test_statistic"], rel=1e-6)
    hr = dict(zip(ours.cox["covariate"], ours.cox["hazard_ratio"], strict=True))
    assert hr["stratum:high"] == pytest.approx(math.exp(cph.params_["stratum:high"]), rel=1e-6)
