"""Survival without a new disease hospitalisation, per stratum (docs/strata.md, "Outputs", ``survival/``).

**Follow-up** (:func:`follow_up`). Every person-year (a case of a disease in year N, in its stratum
of N) that is alive at the end of N (``died_in_year`` false) with N before the year of
``last_date`` is followed from ``start`` = 1 January of N + 1. The event is the first qualifying
stay of the disease (its entry date) or death (in hospital, or out of hospital when the run has
the SNDS referential: respop.pmsi.deaths) on or after ``start``; without one the
person-year is censored at ``last_date`` (the end of the data). Durations are in days:

- ``duration = event date − start`` or ``last_date − start``;
- a follow-up that ends on the start day itself (an event on 1 January of N + 1, or a censoring
  date equal to ``start``) counts **0.5 day**, so that every duration is positive and an event on
  the first day is an event after time 0 (lifelines' Kaplan–Meier then drops on that day
  instead of at the origin, and the Cox partial likelihood and log-rank test count it);
- events dated after ``last_date`` are ignored (follow-up ends there);
- a stay and a death on the same day are one event, of kind ``death``.

**Landmark analysis.** A person who is a case in several years contributes one person-year per
year, each followed from its own 1 January (with its own stratum, age and comorbidities of the
year); the follow-ups of one person overlap and are not independent. The Cox model therefore uses
robust (sandwich) standard errors clustered on ``patient_key`` (Lin & Wei 1989; what R's
``coxph(..., cluster = id)`` reports). They are computed here (:func:`efron_residuals`,
:func:`clustered_sandwich`) rather than with lifelines' ``cluster_col``: lifelines' score
residuals loop over the rows in Python with a cost quadratic in the rows (about a minute for
120,000 person-years) and ignore tied times, which are the rule with durations in days; ours are
vectorised, take Efron ties into account, and equal lifelines' to rounding when no times are tied
(tested). Kaplan–Meier bands and log-rank tests treat person-years as independent (they are
slightly too narrow / give slightly too small p-values when many people appear in several years).

**Estimates** (:func:`survival`), per disease:

- Kaplan–Meier curves per stratum (lifelines ``KaplanMeierFitter`` with ``alpha = 1 −
  confidence``; its exponential Greenwood band). The curve is the survival at each distinct
  follow-up time, with the number at risk from the event table (people still followed just
  before that time). It is **thinned** to at most ``max_points`` (400) rows per curve: the first
  time (0) and the last time are always kept, and all the times where the survival changes (an
  event) when there are few enough; otherwise the time axis is cut into ``max_points − 2`` equal
  bins and the last change of each bin is kept. Every kept row is an exact point of the curve
  (time, survival, band and at-risk count are those of that time); a step plot of the thinned
  curve puts a drop at most one bin width (follow-up length / 398) later than it happens.
  Times where only censoring happens are dropped (the survival does not change there).
- Log-rank tests (``lifelines.statistics.logrank_test``) between adjacent strata by
  ``stratum_level``, among the levels with at least ``min_group`` person-years (a smaller
  stratum is skipped and said so in the notes; its two neighbours are then compared).
  ``ordered`` is true when the more severe stratum has the lower Kaplan–Meier survival at 365
  days (strictly). The survival at 365 days of both is given beside it
  (``survival_365_higher``, ``survival_365_lower``; the value at the last time when the
  follow-up is shorter).
- A Cox model (lifelines ``CoxPHFitter``: Efron ties, Breslow baseline) on ``age_per_10_years`` (age / 10),
  ``female`` (sex = 2), one dummy ``stratum:<name>`` per stratum above the lowest level present
  (the reference), and the given boolean comorbidities as 0/1 (a missing value counts as absent).
  A covariate that is constant within the disease, or identical to an earlier one (a comorbidity
  that defines a stratum), is left out (said in the notes). Person-years
  with a missing age or sex are left out (counted in the notes). The model is first fitted
  without penalty; if lifelines fails to converge (``ConvergenceError``, a
  ``ConvergenceWarning`` such as complete separation when a stratum has no event, or a singular
  Hessian), it is refitted with an L2 penalizer of 0.01 on the standardised coefficients (said
  in the notes; the hazard ratios are then slightly shrunk towards 1). Hazard ratios with their
  confidence interval and Wald p-value from the robust, clustered standard errors.
- The proportional-hazards test of the fitted model: lifelines'
  ``proportional_hazard_test(cph, df, time_transform="rank")`` (Grambsch–Therneau with the rank
  of the time), fed with the scaled Schoenfeld residuals computed with the Efron ties (the same as
  lifelines' own, which are also computed in a slow Python loop). It uses the model-based
  variance, not the robust one (as in R's ``cox.zph``).

An empty follow-up (e.g. a single year of data) raises :class:`~respop.errors.InputError`.
"""

from __future__ import annotations

import datetime
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import polars as pl
from lifelines import CoxPHFitter, KaplanMeierFitter
from lifelines.exceptions import ConvergenceError, ConvergenceWarning
from lifelines.statistics import logrank_test, proportional_hazard_test
from scipy import stats

from respop.errors import ConfigError, InputError
from respop.strata.engine import in_area

PERSON_COLUMNS = ["patient_key", "disease", "year", "stratum", "stratum_level", "age", "sex"]
"""Columns of the person-years kept in the follow-up (besides the comorbidities)."""

EVENT_KINDS = ("disease_stay", "death")
"""The ``kind`` values of the events frame."""

ZERO_DAY_DURATION = 0.5
"""Duration (days) of a follow-up that ends on its start day."""

MAX_KM_POINTS = 400
"""Default maximum number of rows per Kaplan–Meier curve."""

HORIZON_DAYS = 365
"""Time at which the Kaplan–Meier survivals of two strata are compared (``ordered``)."""

COX_PENALIZER = 0.01
"""L2 penalizer of the Cox model when the unpenalised fit does not converge."""

AGE_COVARIATE = "age_per_10_years"
FEMALE_COVARIATE = "female"
STRATUM_PREFIX = "stratum:"

KM_SCHEMA: dict[str, pl.DataType] = {
    "disease": pl.String(),
    "stratum": pl.String(),
    "stratum_level": pl.Int8(),
    "time": pl.Float64(),
    "survival": pl.Float64(),
    "lower": pl.Float64(),
    "upper": pl.Float64(),
    "at_risk": pl.Int64(),
}
LOGRANK_SCHEMA: dict[str, pl.DataType] = {
    "disease": pl.String(),
    "higher": pl.String(),
    "lower": pl.String(),
    "n_higher": pl.Int64(),
    "n_lower": pl.Int64(),
    "statistic": pl.Float64(),
    "p_value": pl.Float64(),
    "ordered": pl.Boolean(),
    "survival_365_higher": pl.Float64(),
    "survival_365_lower": pl.Float64(),
}
COX_SCHEMA: dict[str, pl.DataType] = {
    "disease": pl.String(),
    "covariate": pl.String(),
    "hazard_ratio": pl.Float64(),
    "lower": pl.Float64(),
    "upper": pl.Float64(),
    "p_value": pl.Float64(),
    "n": pl.Int64(),
    "events": pl.Int64(),
}
PH_TEST_SCHEMA: dict[str, pl.DataType] = {
    "disease": pl.String(),
    "covariate": pl.String(),
    "statistic": pl.Float64(),
    "p_value": pl.Float64(),
}


@dataclass
class SurvivalResult:
    """The survival estimates of :func:`survival` (columns in the ``*_SCHEMA`` constants)."""

    km: pl.DataFrame
    """disease, stratum, stratum_level, time (days), survival, lower, upper, at_risk."""
    logrank: pl.DataFrame
    """disease, higher, lower (strata), n_higher, n_lower, statistic, p_value, ordered, survival_365_*."""
    cox: pl.DataFrame
    """disease, covariate, hazard_ratio, lower, upper, p_value, n, events."""
    ph_test: pl.DataFrame
    """disease, covariate, statistic, p_value."""
    notes: list[str] = field(default_factory=list)
    """What was skipped or adjusted, one sentence each, prefixed by the disease."""


def _require(df: pl.DataFrame, columns: Sequence[str], what: str) -> None:
    for column in columns:
        if column not in df.columns:
            raise InputError(f"{what} lacks the column {column!r} (has {', '.join(df.columns)})", column=column)


def follow_up(
    person_strata: pl.DataFrame,
    events: pl.DataFrame,
    last_date: datetime.date,
    comorbidities: Sequence[str] | None = None,
) -> pl.DataFrame:
    """Follow-up from 1 January of N + 1 of the person-years alive at the end of N, N < ``last_date.year``.

    ``person_strata``: patient_key, disease, year, stratum, stratum_level, age, sex, died_in_year
    and the comorbidity columns (by default every Boolean column other than ``died_in_year``;
    other columns are ignored). ``events``: patient_key, disease, date, kind (``disease_stay``:
    entry date of a qualifying stay of the disease; ``death``: date of a death, in hospital or,
    with the referential, out of hospital).

    Followed: the person-years with a residence zone (:data:`respop.strata.engine.RESIDENCE`), as
    the transitions. Returns one row per followed person-year, sorted by disease, year and patient_key:
    patient_key, disease, year, stratum, stratum_level, age, sex, the comorbidities, ``start``
    (Date), ``event_date`` (Date, null when censored), ``event_kind`` (``disease_stay`` /
    ``death`` / null), ``duration`` (Float64 days, > 0; see the module docstring) and ``event``
    (Int8, 1 = event, 0 = censored at ``last_date``). A ``died_in_year`` that is null counts as
    false. An empty frame (with these columns) when nothing is followed.
    """
    _require(person_strata, [*PERSON_COLUMNS, "died_in_year"], "person_strata")
    _require(events, ["patient_key", "disease", "date", "kind"], "events")
    if comorbidities is None:
        comorbidities = [
            name
            for name, dtype in person_strata.schema.items()
            if dtype == pl.Boolean and name != "died_in_year" and name not in PERSON_COLUMNS
        ]
    else:
        comorbidities = list(comorbidities)
        _require(person_strata, comorbidities, "person_strata")

    kinds = set(events.get_column("kind").cast(pl.String).drop_nulls().unique().to_list())
    unknown = sorted(kinds - set(EVENT_KINDS))
    if unknown:
        raise InputError(f"events: unknown kind(s) {unknown}; expected {list(EVENT_KINDS)}", column="kind")

    rows = (
        person_strata.lazy()
        .filter(~pl.col("died_in_year").fill_null(False) & (pl.col("year") < last_date.year) & in_area(person_strata.columns))
        .select(
            pl.col("patient_key").cast(pl.String),
            pl.col("disease").cast(pl.String),
            pl.col("year").cast(pl.Int16),
            pl.col("stratum").cast(pl.String),
            pl.col("stratum_level").cast(pl.Int8),
            pl.col("age").cast(pl.Int16),
            pl.col("sex").cast(pl.Int8),
            *[pl.col(name).cast(pl.Boolean) for name in comorbidities],
        )
        .with_columns(start=pl.date(pl.col("year").cast(pl.Int32) + 1, 1, 1))
        .collect()
    )
    # Only the events that can end a follow-up are kept, with an integer key: those of the
    # followed patients and diseases (not every death of the PMSI, nor other diseases' stays),
    # from the first start to the end of the data; one row per patient, disease and date.
    keys = rows.select("patient_key").unique().with_row_index("_key")
    first_start = rows.get_column("start").min() if rows.height else last_date
    event_days = (
        events.lazy()
        .select(
            pl.col("patient_key").cast(pl.String),
            pl.col("disease").cast(pl.String),
            pl.col("date").cast(pl.Date).alias("event_date"),
            (pl.col("kind").cast(pl.String) == "death").alias("_death"),
        )
        .filter(
            pl.col("event_date").is_between(pl.lit(first_start, dtype=pl.Date), pl.lit(last_date, dtype=pl.Date))
            & pl.col("disease").is_in(rows.get_column("disease").unique().to_list())
        )
        .join(keys.lazy(), on="patient_key", how="inner")
        .group_by("_key", "disease", "event_date")
        .agg(pl.col("_death").any())
        .select(
            "_key",
            "disease",
            "event_date",
            pl.when(pl.col("_death")).then(pl.lit("death")).otherwise(pl.lit("disease_stay")).alias("event_kind"),
        )
        .sort("event_date")
    )
    # First event on or after the start, per patient and disease: a forward as-of join (both
    # sides are sorted on the date globally, hence within each group).
    followed = (
        rows.lazy()
        .join(keys.lazy(), on="patient_key", how="left")
        .sort("start")
        .join_asof(
            event_days,
            left_on="start",
            right_on="event_date",
            by=["_key", "disease"],
            strategy="forward",
            coalesce=False,
            check_sortedness=False,
        )
    )
    days = (
        pl.when(pl.col("event_date").is_not_null())
        .then(pl.col("event_date") - pl.col("start"))
        .otherwise(pl.lit(last_date, dtype=pl.Date) - pl.col("start"))
        .dt.total_days()
        .cast(pl.Float64)
    )
    return (
        followed.with_columns(
            duration=pl.when(days <= 0).then(pl.lit(ZERO_DAY_DURATION)).otherwise(days),
            event=pl.col("event_date").is_not_null().cast(pl.Int8),
        )
        .select(*PERSON_COLUMNS, *comorbidities, "start", "event_date", "event_kind", "duration", "event")
        .sort("disease", "year", "patient_key")
        .collect()
    )


def survival(
    follow: pl.DataFrame,
    comorbidities: list[str],
    confidence: float = 0.95,
    min_group: int = 30,
    max_points: int = MAX_KM_POINTS,
) -> SurvivalResult:
    """Kaplan–Meier curves, log-rank tests, Cox model and proportional-hazards test per disease.

    ``follow`` is the output of :func:`follow_up` (at least patient_key, disease, stratum,
    stratum_level, age, sex, duration, event and the ``comorbidities``). Person-years of one
    person in several years are all kept (landmark analysis; see the module docstring): the Cox
    standard errors are clustered on ``patient_key``.

    Raises :class:`~respop.errors.InputError` when ``follow`` is empty (no person-year alive at the
    end of a year before the last one, e.g. a single year of data) or lacks a column, and
    :class:`~respop.errors.ConfigError` for a confidence outside (0, 1), ``min_group`` < 1 or
    ``max_points`` < 3.
    """
    if not 0 < confidence < 1:
        raise ConfigError(f"survival confidence must be between 0 and 1 (exclusive), got {confidence}")
    if min_group < 1:
        raise ConfigError(f"survival min_group must be at least 1, got {min_group}")
    if max_points < 3:
        raise ConfigError(f"survival max_points must be at least 3, got {max_points}")
    reserved = {AGE_COVARIATE, FEMALE_COVARIATE, "duration", "event", "patient_key"}
    clash = sorted(set(comorbidities) & reserved)
    if clash:
        raise InputError(f"comorbidity names {clash} are reserved for the Cox model's own columns")
    _require(follow, [*PERSON_COLUMNS, "duration", "event", *comorbidities], "follow-up")
    if follow.height == 0:
        raise InputError(
            "no follow-up for the survival analysis: no person-year is alive at the end of a year before "
            "the last year of data (a single year of data?); survival needs at least two years"
        )
    bad = follow.filter(
        pl.col("duration").is_null()
        | pl.col("duration").cast(pl.Float64).is_nan()
        | (pl.col("duration") < 0)
        | pl.col("event").is_null()
        | ~pl.col("event").is_in([0, 1])
    )
    if bad.height:
        raise InputError(f"follow-up: {bad.height} row(s) with a missing or negative duration or an event not 0/1")

    alpha = 1 - confidence
    follow = follow.with_columns(pl.col("disease").cast(pl.String), pl.col("stratum").cast(pl.String))
    km_parts: list[pl.DataFrame] = []
    logrank_rows: list[dict] = []
    cox_parts: list[pl.DataFrame] = []
    ph_parts: list[pl.DataFrame] = []
    notes: list[str] = []
    for disease in sorted(follow.get_column("disease").unique().to_list()):
        rows = follow.filter(pl.col("disease") == disease)
        fitters = _kaplan_meier(rows, disease, alpha, max_points, km_parts)
        logrank_rows.extend(_logrank(fitters, disease, min_group, notes))
        cox, ph = _cox(rows, disease, comorbidities, alpha, notes)
        cox_parts.append(cox)
        ph_parts.append(ph)

    return SurvivalResult(
        km=_concat(km_parts, KM_SCHEMA),
        logrank=pl.DataFrame(logrank_rows, schema=LOGRANK_SCHEMA),
        cox=_concat(cox_parts, COX_SCHEMA),
        ph_test=_concat(ph_parts, PH_TEST_SCHEMA),
        notes=notes,
    )


def _concat(parts: list[pl.DataFrame], schema: dict[str, pl.DataType]) -> pl.DataFrame:
    parts = [part for part in parts if part.height]
    if not parts:
        return pl.DataFrame(schema=schema)
    return pl.concat(parts, how="vertical").cast(schema)


@dataclass
class _Group:
    stratum: str
    level: int
    durations: np.ndarray
    events: np.ndarray
    kmf: KaplanMeierFitter

    @property
    def n(self) -> int:
        return len(self.durations)

    def survival_at(self, days: float) -> float:
        return float(self.kmf.survival_function_at_times(days).iloc[0])


def _kaplan_meier(
    rows: pl.DataFrame, disease: str, alpha: float, max_points: int, km_parts: list[pl.DataFrame]
) -> list[_Group]:
    """One Kaplan–Meier fit per stratum (ascending level); appends the thinned curves to ``km_parts``."""
    groups: list[_Group] = []
    strata = rows.select("stratum_level", "stratum").unique().sort("stratum_level", "stratum")
    duplicated = strata.filter(pl.col("stratum_level").is_duplicated())
    if duplicated.height:
        raise InputError(
            f"follow-up of {disease}: several strata share a stratum_level: "
            + ", ".join(f"{r['stratum']} ({r['stratum_level']})" for r in duplicated.iter_rows(named=True))
        )
    for level, stratum in strata.iter_rows():
        part = rows.filter(pl.col("stratum_level") == level)
        durations = part.get_column("duration").to_numpy().astype(float)
        events = part.get_column("event").to_numpy().astype(int)
        kmf = KaplanMeierFitter(alpha=alpha).fit(durations, events)
        groups.append(_Group(stratum, int(level), durations, events, kmf))

        times = kmf.survival_function_.index.to_numpy(dtype=float)
        surv = kmf.survival_function_.iloc[:, 0].to_numpy(dtype=float)
        band = kmf.confidence_interval_survival_function_
        at_risk = kmf.event_table["at_risk"].reindex(kmf.survival_function_.index).to_numpy()
        keep = thin_curve(times, surv, max_points)
        km_parts.append(
            pl.DataFrame(
                {
                    "disease": disease,
                    "stratum": stratum,
                    "stratum_level": int(level),
                    "time": times[keep],
                    "survival": surv[keep],
                    "lower": band.iloc[:, 0].to_numpy(dtype=float)[keep],
                    "upper": band.iloc[:, 1].to_numpy(dtype=float)[keep],
                    "at_risk": at_risk[keep].astype(np.int64),
                }
            )
        )
    return groups


def thin_curve(times: np.ndarray, survival: np.ndarray, max_points: int = MAX_KM_POINTS) -> np.ndarray:
    """Indices of the points of a step curve to keep: at most ``max_points`` (≥ 3), sorted.

    The first and the last point are always kept, with every point where ``survival`` changes
    when that fits; otherwise the time span is cut into ``max_points − 2`` equal bins and the last
    change of each bin is kept.
    """
    n = len(times)
    if n <= 2:
        return np.arange(n)
    changes = np.r_[False, survival[1:] != survival[:-1]]
    changes[0] = changes[-1] = True
    if changes.sum() <= max_points:
        return np.flatnonzero(changes)
    interior = np.flatnonzero(changes[1:-1]) + 1
    width = (times[-1] - times[0]) / (max_points - 2)
    bins = np.minimum(np.floor((times[interior] - times[0]) / width), max_points - 3).astype(np.int64)
    last_of_bin = np.r_[bins[1:] != bins[:-1], True]
    return np.unique(np.r_[0, interior[last_of_bin], n - 1])


def _logrank(groups: list[_Group], disease: str, min_group: int, notes: list[str]) -> list[dict]:
    eligible = []
    for group in groups:
        if group.n >= min_group:
            eligible.append(group)
        else:
            notes.append(
                f"{disease}: stratum {group.stratum} (level {group.level}) has {group.n} person-years, "
                f"fewer than {min_group}; log-rank against it skipped"
            )
    if len(eligible) < 2:
        notes.append(f"{disease}: fewer than two strata with at least {min_group} person-years; no log-rank test")
        return []
    out = []
    for lower, higher in zip(eligible[:-1], eligible[1:], strict=True):
        test = logrank_test(higher.durations, lower.durations, higher.events, lower.events)
        s_higher = higher.survival_at(HORIZON_DAYS)
        s_lower = lower.survival_at(HORIZON_DAYS)
        out.append(
            {
                "disease": disease,
                "higher": higher.stratum,
                "lower": lower.stratum,
                "n_higher": higher.n,
                "n_lower": lower.n,
                "statistic": float(test.test_statistic),
                "p_value": float(test.p_value),
                "ordered": s_higher < s_lower,
                "survival_365_higher": s_higher,
                "survival_365_lower": s_lower,
            }
        )
    return out


def _cox(
    rows: pl.DataFrame, disease: str, comorbidities: list[str], alpha: float, notes: list[str]
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Cox model and proportional-hazards test of one disease (empty frames when it cannot be fitted)."""
    empty = pl.DataFrame(schema=COX_SCHEMA), pl.DataFrame(schema=PH_TEST_SCHEMA)
    missing = rows.filter(pl.col("age").is_null() | pl.col("sex").is_null()).height
    if missing:
        notes.append(f"{disease}: {missing} person-years with a missing age or sex left out of the Cox model")
        rows = rows.filter(pl.col("age").is_not_null() & pl.col("sex").is_not_null())
    if rows.height == 0 or rows.get_column("event").sum() == 0:
        notes.append(f"{disease}: no event in the follow-up; Cox model skipped")
        return empty

    levels = rows.select("stratum_level", "stratum").unique().sort("stratum_level")
    reference = levels.row(0)
    stratum_dummies = [
        (pl.col("stratum_level") == level).cast(pl.Int8).alias(STRATUM_PREFIX + stratum)
        for level, stratum in levels.iter_rows()
        if level != reference[0]
    ]
    design = rows.select(
        pl.col("patient_key"),
        pl.col("duration").cast(pl.Float64),
        pl.col("event").cast(pl.Int64),
        (pl.col("age").cast(pl.Float64) / 10).alias(AGE_COVARIATE),
        (pl.col("sex") == 2).cast(pl.Int8).alias(FEMALE_COVARIATE),
        *stratum_dummies,
        *[pl.col(name).cast(pl.Boolean).fill_null(False).cast(pl.Int8).alias(name) for name in comorbidities],
    )
    covariates = [c for c in design.columns if c not in ("patient_key", "duration", "event")]
    constant = [c for c in covariates if design.get_column(c).n_unique() < 2]
    for name in constant:
        value = design.get_column(name)[0]
        notes.append(f"{disease}: covariate {name} is constant (always {value}); left out of the Cox model")
    duplicates = []
    kept: list[str] = []
    for name in (c for c in covariates if c not in constant):
        same = next((k for k in kept if design.get_column(k).equals(design.get_column(name))), None)
        if same is None:
            kept.append(name)
        else:
            duplicates.append(name)
            notes.append(f"{disease}: covariate {name} is identical to {same}; left out of the Cox model")
    design = design.drop(constant + duplicates)
    if not kept:
        notes.append(f"{disease}: no covariate varies; Cox model skipped")
        return empty

    df = design.drop("patient_key").to_pandas()
    cph, failure = None, None
    for penalizer in (0.0, COX_PENALIZER):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", ConvergenceWarning)
                cph = CoxPHFitter(penalizer=penalizer, alpha=alpha).fit(df, duration_col="duration", event_col="event")
            if penalizer:
                notes.append(
                    f"{disease}: the Cox model did not converge without penalty ({failure}); "
                    f"refitted with an L2 penalizer of {penalizer}"
                )
            break
        except (ConvergenceError, ConvergenceWarning, np.linalg.LinAlgError) as exc:
            cph, failure = None, _first_line(exc)
    if cph is None:
        notes.append(
            f"{disease}: the Cox model did not converge, even with a penalizer of {COX_PENALIZER} ({failure}); skipped"
        )
        return empty

    names = list(cph.params_.index)
    beta = cph.params_.to_numpy(dtype=float)
    variance = cph.variance_matrix_.loc[names, names].to_numpy(dtype=float)
    x = df[names].to_numpy(dtype=float)
    time = df["duration"].to_numpy(dtype=float)
    event = df["event"].to_numpy(dtype=bool)
    score, schoenfeld = efron_residuals(x, time, event, beta)
    robust = clustered_sandwich(score, variance, _cluster_ids(design.get_column("patient_key")))
    se = np.sqrt(np.diag(robust))
    z = stats.norm.ppf(1 - alpha / 2)
    n, n_events = len(df), int(event.sum())
    cox = pl.DataFrame(
        {
            "disease": disease,
            "covariate": names,
            "hazard_ratio": np.exp(beta),
            "lower": np.exp(beta - z * se),
            "upper": np.exp(beta + z * se),
            "p_value": stats.chi2.sf((beta / se) ** 2, 1),
            "n": n,
            "events": n_events,
        }
    )
    # lifelines' statistic, fed with the scaled Schoenfeld residuals computed above, in the order
    # of the fitted model's (sorted) death times.
    deaths = cph.durations.index[cph.event_observed.to_numpy(dtype=bool)]
    scaled = pd.DataFrame(n_events * schoenfeld[deaths.to_numpy()] @ variance, columns=cph.params_.index, index=deaths)
    test = proportional_hazard_test(cph, df, time_transform="rank", precomputed_residuals=scaled)
    summary = test.summary.reindex(names)
    ph = pl.DataFrame(
        {
            "disease": disease,
            "covariate": names,
            "statistic": summary["test_statistic"].to_numpy(dtype=float),
            "p_value": summary["p"].to_numpy(dtype=float),
        }
    )
    return cox, ph


def efron_residuals(
    x: np.ndarray, time: np.ndarray, event: np.ndarray, beta: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Score and Schoenfeld residuals of a Cox model with Efron ties, vectorised (O(n log n)).

    ``x`` (n × p), ``time``, ``event`` (bool) and the fitted coefficients ``beta``. At a death
    time with d tied deaths, risk-set sums S0, S1 and the deaths' sums S0d, S1d, the Efron
    denominators are ``S0 − k/d·S0d`` (k = 0 … d − 1) with means ``x̄_k``. The score residual of
    row i (Therneau & Grambsch 2000, §3.7; R's ``residuals(coxph, "score")``) is
    ``δ_i (x_i − mean_k x̄_k) − r_i Σ_j Σ_k w_ik (x_i − x̄_k) / den_jk`` over the death times
    t_j ≤ T_i, with w = 1 while at risk and w = 1 − k/d at the row's own death time; the
    residuals sum to the Efron score (zero at the unpenalised estimate). The Schoenfeld residual
    of a death is ``x_i − mean_k x̄_k`` (NaN for censored rows). Rows are in the input order.
    """
    x = np.asarray(x, dtype=float)
    n, p = x.shape
    time = np.asarray(time, dtype=float)
    event = np.asarray(event, dtype=bool)
    # n × p arrays are computed in place and freed as soon as possible: at national scale (millions
    # of follow-ups) each one takes hundreds of MB
    order = np.argsort(time, kind="stable")
    xs = x[order]
    xs -= x.mean(axis=0)  # centring leaves every residual unchanged and keeps exp() tame
    ts, es = time[order], event[order]
    r = np.exp(xs @ np.asarray(beta, dtype=float))
    if not es.any():
        return np.zeros((n, p)), np.full((n, p), np.nan)
    rx = r[:, None] * xs

    death_rows = np.flatnonzero(es)
    death_times, ties = np.unique(ts[death_rows], return_counts=True)
    m = len(death_times)
    first = np.searchsorted(ts, death_times, side="left")  # first row at risk at each death time
    s0 = np.cumsum(r[::-1])[::-1][first]
    s1 = np.cumsum(rx[::-1], axis=0)[::-1][first]
    group_start = np.r_[0, np.cumsum(ties)[:-1]]
    s0d = np.add.reduceat(r[death_rows], group_start)
    s1d = np.add.reduceat(rx[death_rows], group_start, axis=0)
    del rx

    j = np.repeat(np.arange(m), ties)  # one row per (death time, k)
    frac = (np.arange(len(j)) - group_start[j]) / ties[j]
    den = s0[j] - frac * s0d[j]
    xbar = (s1[j] - frac[:, None] * s1d[j]) / den[:, None]

    def per_time(values: np.ndarray) -> np.ndarray:
        if values.ndim == 1:
            return np.bincount(j, weights=values, minlength=m)
        return np.column_stack([np.bincount(j, weights=values[:, c], minlength=m) for c in range(p)])

    a_full, b_full = per_time(1 / den), per_time(xbar / den[:, None])
    a_own, b_own = per_time((1 - frac) / den), per_time(xbar * ((1 - frac) / den)[:, None])
    x_efron = per_time(xbar) / ties[:, None]

    last = np.searchsorted(death_times, ts, side="right") - 1  # last death time <= T_i (-1: none)
    at = np.maximum(last, 0)
    cum_a = np.where(last >= 0, np.cumsum(a_full)[at], 0.0)
    cum_b = np.cumsum(b_full, axis=0)[at]
    cum_b[last < 0] = 0.0
    # A death is at risk at its own time with the Efron weights 1 − k/d.
    cum_a[es] += a_own[last[es]] - a_full[last[es]]
    cum_b[es] += b_own[last[es]] - b_full[last[es]]
    # sorted score = −r (xs · cum_a − cum_b), in place
    sorted_score = xs * cum_a[:, None]
    np.subtract(sorted_score, cum_b, out=sorted_score)
    del cum_b
    np.multiply(-r[:, None], sorted_score, out=sorted_score)
    own = xs[es] - x_efron[last[es]]
    del xs
    sorted_score[es] += own
    score = np.empty((n, p))
    score[order] = sorted_score
    del sorted_score
    schoenfeld = np.full((n, p), np.nan)
    schoenfeld[order[es]] = own
    return score, schoenfeld


def clustered_sandwich(score: np.ndarray, variance: np.ndarray, clusters: np.ndarray) -> np.ndarray:
    """Robust covariance ``V (Σ_c U_c U_cᵀ) V`` of Cox coefficients clustered on ``clusters``.

    ``score`` are the rows' score residuals, ``variance`` the model-based covariance (inverse
    information) and ``U_c`` the sum of the score residuals of cluster c (Lin & Wei 1989; R's
    ``coxph(..., cluster = id)``).
    """
    _, inverse = np.unique(clusters, return_inverse=True)
    delta = score @ variance
    groups = int(inverse.max()) + 1
    summed = np.column_stack(
        [np.bincount(inverse, weights=delta[:, c], minlength=groups) for c in range(delta.shape[1])]
    )
    return summed.T @ summed


def _cluster_ids(keys: pl.Series) -> np.ndarray:
    """The patient keys as integers in the same order (dense rank: polars sorts strings by their
    UTF-8 bytes, which is the order of their code points, as numpy's sort of Python strings), so
    that :func:`clustered_sandwich` numbers the clusters as it would from the keys, without
    sorting millions of Python strings (np.unique of an object array: seconds at national scale)."""
    if keys.dtype != pl.String or keys.null_count():
        return keys.to_numpy()
    return keys.rank("dense").cast(pl.Int64).to_numpy()


def _first_line(exc: BaseException) -> str:
    """The first sentence of an exception's message (lifelines' are long)."""
    text = str(exc).strip().splitlines()
    return text[0].split(". ")[0].rstrip(".") if text else type(exc).__name__
