"""A slow, plain reference implementation of the case-finding semantics (docs/case_finding.md).

Written from the documentation only, without reading ``respop.case_finding.engine``: the tests
compare the engine with it. Clarity over speed: plain pandas and Python loops over stays and
patients. Only the spec models are imported from ``respop.case_finding``.

Readings of the documentation where it leaves room (each is reported beside the tests):

- séances (``is_session``) are not stays: they are dropped before anything else (qualifying
  stays, deaths, residence); ``first_year=None`` still means the earliest exit year of the stays
  frame as given;
- a stay without a patient key is ignored everywhere (it cannot belong to a row);
- ``incident`` is False (not null) on a row that is not a case; ``subtype`` is null there;
- ``complete_history`` is ``N - lookback_years >= first_year`` (the index year itself is taken
  as covered: there is no ``last_year``);
- a death is a stay with ``died`` true (exit mode 9), whatever the stay (qualifying or not, any
  age); a row of N is dropped when such a stay exits in a year before N;
- sub-types by codes, ties: among the tied types, the one whose latest stay carrying it is the
  latest (exit date, then stay id); equal → the type listed first;
- residence: ``residence_stays`` counts the window's stays with a non-null zone (the share's
  denominator); a row with none gets a null zone, share and territory and ``residence_stays`` 0;
  a stay whose ``residence_used`` is false (docs/pmsi.md §5: residence invalid or abroad, an
  inter-hospital service) gives no residence, but counts for the cases and deaths like any other.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict

import pandas as pd
import polars as pl

from respop.spec.algorithm import AlgorithmSpec, Criterion

CASE_SCHEMA: dict[str, pl.DataType] = {
    "patient_key": pl.String,
    "disease": pl.String,
    "index_year": pl.Int16,
    "is_case": pl.Boolean,
    "subtype": pl.String,
    "first_stay_date": pl.Date,
    "last_stay_date": pl.Date,
    "qualifying_stays": pl.Int32,
    "stays_in_index_year": pl.Int32,
    "branches": pl.String,
    "incident": pl.Boolean,
    "complete_history": pl.Boolean,
    "age": pl.Int16,
    "sex": pl.Int8,
    "died_in_year": pl.Boolean,
}
"""Columns and types of ``find_cases`` (brief of the engine)."""

RESIDENCE_SCHEMA: dict[str, pl.DataType] = {
    "residence_zone": pl.String,
    "territory_id": pl.Int32,
    "territory_name": pl.String,
    "residence_share": pl.Float64,
    "residence_stays": pl.Int32,
}
"""Columns ``attach_residence`` adds."""


# --- small helpers -------------------------------------------------------------------------------


def _missing(value) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, float) and math.isnan(value)


def _as_date(value) -> dt.date | None:
    if _missing(value):
        return None
    if isinstance(value, pd.Timestamp):
        return value.date()
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return pd.Timestamp(value).date()


def _as_int(value) -> int | None:
    return None if _missing(value) else int(value)


def _as_bool(value) -> bool:
    return False if _missing(value) else bool(value)


def _as_str(value) -> str | None:
    return None if _missing(value) else str(value)


def _stay_records(stays_df: pd.DataFrame) -> list[dict]:
    """The stays as plain dicts with Python values; séances and stays without a key dropped."""
    out = []
    for row in stays_df.to_dict("records"):
        if "is_session" in row and _as_bool(row["is_session"]):
            continue
        key = _as_str(row["patient_key"])
        if key is None:
            continue
        exit_date = _as_date(row["exit_date"])
        out.append(
            {
                "stay_id": int(row["stay_id"]),
                "patient_key": key,
                "exit_date": exit_date,
                "year": None if exit_date is None else exit_date.year,
                "age": _as_int(row["age"]),
                "sex": _as_int(row["sex"]),
                "died": _as_bool(row["died"]),
                "residence_zone": _as_str(row["residence_zone"]),
                # absent column: every stay's residence is used
                "residence_used": _as_bool(row["residence_used"]) if "residence_used" in row else True,
            }
        )
    return out


def _latest(stays: list[dict]) -> dict:
    """The latest stay: greatest exit date, then greatest stay id."""
    return max(stays, key=lambda s: (s["exit_date"], s["stay_id"]))


def criterion_holds(criterion: Criterion, diagnoses: list[tuple[str, str]]) -> bool:
    """One of the stay's (code, position) is at one of the positions, starts with one of the codes
    and with none of the exclusions."""
    for code, position in diagnoses:
        if position not in criterion.positions:
            continue
        if any(code.startswith(c) for c in criterion.codes) and not any(code.startswith(e) for e in criterion.exclude):
            return True
    return False


def _diagnoses_by_stay(diagnoses_df: pd.DataFrame) -> dict[int, list[tuple[str, str]]]:
    out: dict[int, list[tuple[str, str]]] = defaultdict(list)
    for stay_id, code, position in zip(diagnoses_df["stay_id"], diagnoses_df["code"], diagnoses_df["position"]):
        if _missing(code) or _missing(stay_id):
            continue
        out[int(stay_id)].append((str(code), str(position)))
    return out


def _age_ok(spec: AlgorithmSpec, age: int | None) -> bool:
    lo, hi = spec.population.min_age, spec.population.max_age
    if lo is None and hi is None:
        return True
    if age is None:
        return False
    return (lo is None or age >= lo) and (hi is None or age <= hi)


# --- cases ---------------------------------------------------------------------------------------


def reference_cases(
    spec: AlgorithmSpec,
    stays_df: pd.DataFrame,
    diagnoses_df: pd.DataFrame,
    index_years: list[int],
    first_year: int | None = None,
) -> pd.DataFrame:
    """One row per (patient, index year) as docs/case_finding.md, section "Semantics"."""
    if first_year is None:
        years = [d.year for d in (_as_date(v) for v in stays_df["exit_date"]) if d is not None]
        first_year = min(years) if years else None
    lookback = spec.window.lookback_years
    min_stays = spec.window.min_stays
    stays = _stay_records(stays_df)
    diagnoses = _diagnoses_by_stay(diagnoses_df)
    subtype_criteria = spec.subtype_criteria()

    # 1. Qualifying stays, with the branches that hold and the sub-types whose codes are found.
    by_patient: dict[str, list[dict]] = defaultdict(list)
    for stay in stays:
        by_patient[stay["patient_key"]].append(stay)
        diags = diagnoses.get(stay["stay_id"], [])
        held = [
            b.name
            for b in spec.branches
            if all(criterion_holds(c, diags) for c in b.all) and not any(criterion_holds(c, diags) for c in b.unless)
        ]
        excluded = any(criterion_holds(e, diags) for e in spec.exclude_stays)
        stay["qualifies"] = bool(held) and not excluded and _age_ok(spec, stay["age"]) and stay["exit_date"] is not None
        stay["branches"] = held
        stay["types"] = {name for name, c in subtype_criteria if criterion_holds(c, diags)}

    rows = []
    for patient, own in by_patient.items():
        death_years = {s["year"] for s in own if s["died"] and s["year"] is not None}
        for n in index_years:
            window = [s for s in own if s["qualifies"] and n - lookback <= s["year"] <= n]
            if not window:
                continue
            if any(y < n for y in death_years):
                continue
            in_n = [s for s in window if s["year"] == n]
            is_case = len(window) >= min_stays
            latest = _latest(window)
            held = {b for s in window for b in s["branches"]}
            rows.append(
                {
                    "patient_key": patient,
                    "disease": spec.disease,
                    "index_year": n,
                    "is_case": is_case,
                    "subtype": _subtype(spec, window, len(in_n)) if is_case else None,
                    "first_stay_date": min(s["exit_date"] for s in window),
                    "last_stay_date": max(s["exit_date"] for s in window),
                    "qualifying_stays": len(window),
                    "stays_in_index_year": len(in_n),
                    "branches": "+".join(b.name for b in spec.branches if b.name in held),
                    "incident": is_case and len(in_n) == len(window),
                    "complete_history": first_year is not None and n - lookback >= first_year,
                    "age": None if latest["age"] is None else latest["age"] + (n - latest["year"]),
                    "sex": latest["sex"],
                    "died_in_year": n in death_years,
                }
            )
    return pd.DataFrame(rows, columns=list(CASE_SCHEMA))


def _subtype(spec: AlgorithmSpec, window: list[dict], stays_in_index_year: int) -> str:
    subtypes = spec.subtypes
    if subtypes.by == "timing":
        when = "index_year" if stays_in_index_year > 0 else "before_index_year"
        return next(t.name for t in subtypes.types if t.when == when)
    counts = {t.name: sum(1 for s in window if t.name in s["types"]) for t in subtypes.types}
    best = max(counts.values())
    if best == 0:
        return subtypes.default
    tied = [t.name for t in subtypes.types if counts[t.name] == best]  # in the spec's order
    if len(tied) == 1:
        return tied[0]
    latest_with = {name: max((s["exit_date"], s["stay_id"]) for s in window if name in s["types"]) for name in tied}
    top = max(latest_with.values())
    return next(name for name in tied if latest_with[name] == top)


# --- residence -----------------------------------------------------------------------------------


def reference_residence(
    cases_df: pd.DataFrame,
    stays_df: pd.DataFrame,
    lookback_years: int,
    method: str = "modal",
    zone_territory_df: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """``cases_df`` with the residence columns (docs/case_finding.md, "Residence over a long period")."""
    assert method in ("modal", "latest"), method
    territories: dict[str, tuple[int | None, str | None]] = {}
    if zone_territory_df is not None:
        for row in zone_territory_df.to_dict("records"):
            territories[str(row["zone_code"])] = (_as_int(row["territory_id"]), _as_str(row["territory_name"]))

    by_patient: dict[str, list[dict]] = defaultdict(list)
    for stay in _stay_records(stays_df):
        if stay["residence_zone"] is not None and stay["year"] is not None and stay["residence_used"]:
            by_patient[stay["patient_key"]].append(stay)

    added = {name: [] for name in RESIDENCE_SCHEMA}
    for patient, n in zip(cases_df["patient_key"], cases_df["index_year"]):
        n = int(n)
        window = [s for s in by_patient.get(str(patient), []) if n - lookback_years <= s["year"] <= n]
        if not window:
            zone, share = None, None
        else:
            per_zone: dict[str, list[dict]] = defaultdict(list)
            for s in window:
                per_zone[s["residence_zone"]].append(s)
            if method == "latest":
                zone = _latest(window)["residence_zone"]
            else:
                zone = max(per_zone, key=lambda z: (len(per_zone[z]), _latest(per_zone[z])["exit_date"], _latest(per_zone[z])["stay_id"]))
            share = len(per_zone[zone]) / len(window)
        territory_id, territory_name = territories.get(zone, (None, None)) if zone is not None else (None, None)
        added["residence_zone"].append(zone)
        added["territory_id"].append(territory_id)
        added["territory_name"].append(territory_name)
        added["residence_share"].append(share)
        added["residence_stays"].append(len(window))

    out = cases_df.reset_index(drop=True).copy()
    for name, values in added.items():
        out[name] = pd.Series(values, dtype=object, index=out.index)
    return out


def to_polars(df: pd.DataFrame, schema: dict[str, pl.DataType]) -> pl.DataFrame:
    """A reference frame as polars with the engine's types (values as Python objects, no float
    round trip for nullable integers)."""
    records = {name: [None if _missing(v) else v for v in df[name].tolist()] for name in schema}
    for name, dtype in schema.items():
        if dtype == pl.Date:
            records[name] = [_as_date(v) for v in records[name]]
        elif dtype.is_integer():
            records[name] = [_as_int(v) for v in records[name]]
        elif dtype == pl.Boolean:
            records[name] = [None if v is None else bool(v) for v in records[name]]
    return pl.DataFrame(records, schema=schema)
