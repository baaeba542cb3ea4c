"""A slow, plain reference implementation of the risk strata (docs/strata.md).

Written from the documentation (docs/strata.md, docs/case_finding.md, algorithms/features.toml)
without reading ``respop.strata.features`` or ``respop.strata.engine``: the tests compare the
engine with it. Plain pandas and Python loops over people and stays; the code features are read
from ``features.toml`` with ``tomllib`` here, and conditions are evaluated by a translation of the
condition text to a Python expression (not by ``respop.strata.conditions``).

Readings of the documentation where it leaves room (each is reported beside the tests):

- the person-years of a disease are the rows of ``cases`` of that disease with ``is_case`` true
  (rows that are not cases, possible when ``min_stays`` > 1, have no stratum);
- "kept stays" are the stays given, séances (``is_session``) and stays without a patient key left
  out; a stay's year is the year of its exit date;
- a qualifying stay is as in docs/case_finding.md (age within ``[population]`` at the stay, a
  branch holds, no ``exclude_stays`` criterion holds);
- ``days_since_disease_stay``: from the exit of the latest qualifying stay exiting on or before
  31 December of N (it is always inside the case's window) to 31 December of N;
- ``via_emergency`` null counts as not via the emergency department; ``length_of_stay`` null as 0;
- code features: any kept stay of the patient (qualifying or not) exiting in N − lookback … N with
  a diagnosis at one of ``positions`` starting with one of ``codes`` (and none of ``exclude`` if
  given); ``positions`` default to DP, DR, DAS;
- ``readmissions_30d``: the patient's qualifying stays (of any year) are ordered by entry date
  (then exit date, stay id): a readmission is an admission; a qualifying stay exiting in N counts
  when its entry date minus the exit date of the stay just before it in that order is between 0
  and 30 days (inclusive). Ordering by exit date instead differs on tiny for one person-year (two
  stays exiting the same day, one nested in the other): see :func:`readmissions`;
- ``died_in_year``: a kept stay of the patient exiting in N with ``died`` (exit mode 9);
- care-use counts (``stays_12m``, ``emergency_stays_12m``, ``bed_days_12m``,
  ``disease_emergency_stays_12m``, ``disease_bed_days_12m``, ``readmissions_30d``) leave out the
  stays whose ``stay_counted`` is false (an inter-hospital service: docs/pmsi.md §5); the
  disease's stay counts from ``cases``, the code features and the deaths keep them;
- ``case_of_<other>``, one per other configured disease: a row of ``cases`` for the same patient
  and year, of that disease, with ``is_case`` true;
- a condition on a null feature: a comparison with null is false and a null boolean feature is
  false (``not`` of it is then true);
- transitions: the state in N + 1 is ``deces`` when the patient has an in-hospital death in N + 1
  (even if they are also a case in N + 1), otherwise their stratum in N + 1, otherwise
  ``non_revu``; a person-year is followed only if N < ``last_year`` and the patient has no
  in-hospital death in N and a residence zone in N (the area's person-years, as care use; their
  state in N + 1 wherever they live then); only the (from, to) pairs seen are listed (no zero
  counts);
- care use: ``stays`` = ``stays_12m`` (all kept stays of the year, not only the disease's),
  ``emergency_stays`` = ``emergency_stays_12m``, ``bed_days`` = ``bed_days_12m``,
  ``readmissions_30d`` = the outcome, ``deaths`` = person-years with ``died_in_year``; each
  ``*_per_person`` divides by ``people`` (the person-years); the area level counts every
  person-year that has a residence zone (a case without one is in no level), whatever the
  zone's territory; strata with nobody are not listed.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import tomllib
from collections import defaultdict
from pathlib import Path

import pandas as pd
import polars as pl

from respop.spec.algorithm import AlgorithmSpec
from tests.case_finding.reference import criterion_holds

COMPUTED = [
    "age",
    "disease_stays_12m",
    "disease_stays_window",
    "disease_emergency_stays_12m",
    "disease_bed_days_12m",
    "days_since_disease_stay",
    "stays_12m",
    "emergency_stays_12m",
    "bed_days_12m",
]
"""The computed features of docs/strata.md, in the table's order."""

IDENTITY = ["patient_key", "disease", "year", "residence_zone", "territory_id", "territory_name", "sex"]
"""Columns of a person-year row that are not features."""
OUTCOMES = ["readmissions_30d", "died_in_year"]
DEATH = "deces"
NOT_SEEN = "non_revu"
ALL = "all"
DEFAULT_POSITIONS = ["DP", "DR", "DAS"]


# --- small helpers -------------------------------------------------------------------------------


def _missing(value) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, float) and math.isnan(value)


def _date(value) -> dt.date | None:
    if _missing(value):
        return None
    if isinstance(value, pd.Timestamp | dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return pd.Timestamp(value).date()


def _int(value, default=None):
    return default if _missing(value) else int(value)


def _bool(value) -> bool:
    return False if _missing(value) else bool(value)


def _str(value) -> str | None:
    return None if _missing(value) else str(value)


# --- code features, read from features.toml -------------------------------------------------------


def read_code_features(path: str | Path) -> dict[str, dict]:
    """``{name: {codes, exclude, positions, lookback_years}}`` from a features.toml (no checks)."""
    raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    out = {}
    for name, item in raw.get("codes", {}).items():
        out[name] = {
            "codes": [c.strip().upper().replace(".", "") for c in item["codes"]],
            "exclude": [c.strip().upper().replace(".", "") for c in item.get("exclude", [])],
            "positions": list(item.get("positions", DEFAULT_POSITIONS)),
            "lookback_years": int(item["lookback_years"]),
        }
    return out


def _carries(feature: dict, diagnoses: list[tuple[str, str]]) -> bool:
    for code, position in diagnoses:
        if position not in feature["positions"]:
            continue
        if any(code.startswith(c) for c in feature["codes"]) and not any(code.startswith(e) for e in feature["exclude"]):
            return True
    return False


# --- stays ---------------------------------------------------------------------------------------


def _stays_by_patient(stays_df: pd.DataFrame) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = defaultdict(list)
    for row in stays_df.to_dict("records"):
        if "is_session" in row and _bool(row["is_session"]):
            continue
        key = _str(row["patient_key"])
        exit_date = _date(row["exit_date"])
        if key is None or exit_date is None:
            continue
        out[key].append(
            {
                "stay_id": int(row["stay_id"]),
                "entry_date": _date(row["entry_date"]),
                "exit_date": exit_date,
                "year": exit_date.year,
                "age": _int(row["age"]),
                "via_emergency": _bool(row["via_emergency"]),
                "length_of_stay": _int(row["length_of_stay"], 0),
                "died": _bool(row["died"]),
                # absent column: every stay counts as a stay
                "counted": _bool(row["stay_counted"]) if "stay_counted" in row else True,
            }
        )
    return out


def _diagnoses_by_stay(diagnoses_df: pd.DataFrame) -> dict[int, list[tuple[str, str]]]:
    out: dict[int, list[tuple[str, str]]] = defaultdict(list)
    for stay_id, code, position in zip(diagnoses_df["stay_id"], diagnoses_df["code"], diagnoses_df["position"], strict=True):
        if _missing(code) or _missing(stay_id):
            continue
        out[int(stay_id)].append((str(code), str(position)))
    return out


def _qualifies(spec: AlgorithmSpec, stay: dict, diagnoses: list[tuple[str, str]]) -> bool:
    lo, hi = spec.population.min_age, spec.population.max_age
    if lo is not None or hi is not None:
        age = stay["age"]
        if age is None or (lo is not None and age < lo) or (hi is not None and age > hi):
            return False
    if any(criterion_holds(e, diagnoses) for e in spec.exclude_stays):
        return False
    return any(
        all(criterion_holds(c, diagnoses) for c in b.all) and not any(criterion_holds(c, diagnoses) for c in b.unless)
        for b in spec.branches
    )


# --- features and outcomes -----------------------------------------------------------------------


def reference_features(
    spec: AlgorithmSpec,
    cases_df: pd.DataFrame,
    stays_df: pd.DataFrame,
    diagnoses_df: pd.DataFrame,
    code_features: dict[str, dict],
    others: list[str] | tuple[str, ...] = (),
) -> pd.DataFrame:
    """One row per person-year of ``spec``'s disease: identity, every feature (``case_of_<o>`` for
    each of ``others``), the outcomes."""
    disease = spec.disease
    stays = _stays_by_patient(stays_df)
    diagnoses = _diagnoses_by_stay(diagnoses_df)
    case_rows = [r for r in cases_df.to_dict("records") if _bool(r["is_case"])]
    other_cases = {
        o: {(str(r["patient_key"]), int(r["index_year"])) for r in case_rows if str(r["disease"]) == o} for o in others
    }

    qualifying: dict[str, list[dict]] = {}
    carried: dict[int, set[str]] = {}

    def patient_stays(patient: str) -> list[dict]:
        own = stays.get(patient, [])
        if patient not in qualifying:
            for s in own:
                diags = diagnoses.get(s["stay_id"], [])
                carried[s["stay_id"]] = {name for name, f in code_features.items() if _carries(f, diags)}
            qualifying[patient] = sorted(
                (s for s in own if _qualifies(spec, s, diagnoses.get(s["stay_id"], []))),
                key=lambda s: (s["exit_date"], s["stay_id"]),
            )
        return own

    rows = []
    for case in case_rows:
        if str(case["disease"]) != disease:
            continue
        patient, n = str(case["patient_key"]), int(case["index_year"])
        own = patient_stays(patient)
        quals = qualifying[patient]
        in_n = [s for s in own if s["year"] == n]
        quals_n = [s for s in quals if s["year"] == n]
        up_to_n = [s for s in quals if s["year"] <= n]
        end = dt.date(n, 12, 31)
        row = {
            "patient_key": patient,
            "disease": disease,
            "year": n,
            "residence_zone": _str(case.get("residence_zone")),
            "territory_id": _int(case.get("territory_id")),
            "territory_name": _str(case.get("territory_name")),
            "sex": _int(case.get("sex")),
            "age": _int(case.get("age")),
            "disease_stays_12m": len(quals_n),
            "disease_stays_window": len([s for s in quals if n - spec.window.lookback_years <= s["year"] <= n]),
            "disease_emergency_stays_12m": sum(s["via_emergency"] for s in quals_n if s["counted"]),
            "disease_bed_days_12m": sum(s["length_of_stay"] for s in quals_n if s["counted"]),
            "days_since_disease_stay": (end - up_to_n[-1]["exit_date"]).days if up_to_n else None,
            "stays_12m": len([s for s in in_n if s["counted"]]),
            "emergency_stays_12m": sum(s["via_emergency"] for s in in_n if s["counted"]),
            "bed_days_12m": sum(s["length_of_stay"] for s in in_n if s["counted"]),
            **{f"case_of_{o}": (patient, n) in other_cases[o] for o in others},
        }
        for name, f in code_features.items():
            lb = f["lookback_years"]
            row[name] = any(name in carried[s["stay_id"]] for s in own if n - lb <= s["year"] <= n)
        row["readmissions_30d"] = readmissions([s for s in quals if s["counted"]], n)
        row["died_in_year"] = any(s["died"] for s in in_n)
        rows.append(row)
    columns = [*IDENTITY, *COMPUTED, *[f"case_of_{o}" for o in others], *code_features, *OUTCOMES]
    return pd.DataFrame(rows, columns=columns)


def readmissions(quals: list[dict], n: int, reading: str = "entry") -> int:
    """Qualifying stays exiting in N whose entry is 0–30 days after the exit of the previous one.

    ``reading`` says which stay is "the previous qualifying stay" (docs/strata.md does not say):
    ``entry``: the one just before in the order of entry dates (then exit date, stay id);
    ``exit``: the one just before in the order of exit dates (then stay id);
    ``before_entry``: the latest (exit date, stay id) of the others exiting on or before its entry.
    """
    count = 0
    for s in quals:
        if s["year"] != n or s["entry_date"] is None:
            continue
        if reading == "before_entry":
            earlier = [o for o in quals if o is not s and o["exit_date"] <= s["entry_date"]]
            prev = max(earlier, key=lambda o: (o["exit_date"], o["stay_id"])) if earlier else None
        else:
            order = (
                sorted(quals, key=lambda o: (o["entry_date"] or o["exit_date"], o["exit_date"], o["stay_id"]))
                if reading == "entry"
                else sorted(quals, key=lambda o: (o["exit_date"], o["stay_id"]))
            )
            i = next(i for i, o in enumerate(order) if o is s)
            prev = order[i - 1] if i > 0 else None
        if prev is not None:
            count += 0 <= (s["entry_date"] - prev["exit_date"]).days <= 30
    return count


# --- conditions ----------------------------------------------------------------------------------


class _Null:
    """A null feature value: every comparison with it is false, and it is false on its own."""

    def __bool__(self):
        return False

    def _false(self, other):
        return False

    __lt__ = __le__ = __gt__ = __ge__ = __eq__ = __ne__ = _false
    __hash__ = object.__hash__


NULL = _Null()
_TOKEN = re.compile(r"\s*(?:(\d+(?:\.\d+)?)|([A-Za-z_][A-Za-z0-9_]*)|(<=|>=|==|!=|<|>|\(|\)|-))")
_WORDS = {"and": "and", "or": "or", "not": "not", "true": "True", "false": "False"}


def to_python(text: str, known: set[str]) -> str:
    """The condition as a Python expression on the names of ``known`` (ValueError otherwise)."""
    text = " ".join(text.split())
    if not text:
        raise ValueError("empty condition")
    out, pos = [], 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise ValueError(f"unexpected {text[pos:]!r} in {text!r}")
        number, word, symbol = m.groups()
        if word is not None:
            if word in _WORDS:
                out.append(_WORDS[word])
            elif word in known:
                out.append(word)
            else:
                raise ValueError(f"unknown name {word!r} in {text!r}")
        else:
            out.append(number if number is not None else symbol)
        pos = m.end()
    return " ".join(out)


def holds(text: str, features: dict) -> bool:
    """Evaluate a condition on one person-year's features (a null value: see :class:`_Null`)."""
    names = {k: (NULL if _missing(v) else (bool(v) if isinstance(v, bool) else v)) for k, v in features.items()}
    return bool(eval(to_python(text, set(names)), {"__builtins__": {}}, names))  # noqa: S307


def feature_values(row: dict) -> dict:
    """The features of a person-year row (identity, outcomes and stratum columns left out)."""
    return {k: v for k, v in row.items() if k not in IDENTITY and k not in OUTCOMES and k not in ("stratum", "stratum_level")}


def first_level(levels: list[tuple[str, str | None]], features: dict) -> str:
    """The first (name, when) whose condition holds; a level without ``when`` always holds."""
    for name, when in levels:
        if when is None or holds(when, features):
            return name
    raise AssertionError("no level holds (the last level should have no condition)")


def reference_assign(spec: AlgorithmSpec, features_df: pd.DataFrame) -> pd.DataFrame:
    """``features_df`` with ``stratum`` and ``stratum_level`` (1 = last listed level)."""
    levels = [(lv.name, lv.when) for lv in spec.strata.levels]
    names = [name for name, _ in levels]
    out = features_df.copy()
    strata = [first_level(levels, feature_values(row)) for row in features_df.to_dict("records")]
    out["stratum"] = strata
    out["stratum_level"] = [len(names) - names.index(s) for s in strata]
    return out


# --- transitions and care use --------------------------------------------------------------------


def reference_death_years(stays_df: pd.DataFrame) -> dict[str, set[int]]:
    out: dict[str, set[int]] = defaultdict(set)
    for patient, own in _stays_by_patient(stays_df).items():
        for s in own:
            if s["died"]:
                out[patient].add(s["year"])
    return out


def _has_zone(row: dict) -> bool:
    zone = row.get("residence_zone")
    return not (zone is None or (isinstance(zone, float) and zone != zone))


def reference_transitions(person_strata: pd.DataFrame, deaths: dict[str, set[int]], last_year: int) -> pd.DataFrame:
    records = person_strata.to_dict("records")
    state = {(str(r["disease"]), str(r["patient_key"]), int(r["year"])): str(r["stratum"]) for r in records}
    zoned = {(str(r["disease"]), str(r["patient_key"]), int(r["year"])) for r in records if _has_zone(r)}
    counts: dict[tuple, int] = defaultdict(int)
    for (disease, patient, n), stratum in state.items():
        died = deaths.get(patient, set())
        if n >= last_year or n in died or (disease, patient, n) not in zoned:
            continue
        if n + 1 in died:
            to = DEATH
        else:
            to = state.get((disease, patient, n + 1), NOT_SEEN)
        counts[(disease, n, stratum, to)] += 1
    totals: dict[tuple, int] = defaultdict(int)
    for (disease, n, frm, _), c in counts.items():
        totals[(disease, n, frm)] += c
    rows = [
        {"disease": d, "year": n, "from": f, "to": t, "count": c, "proportion": c / totals[(d, n, f)]}
        for (d, n, f, t), c in counts.items()
    ]
    return pd.DataFrame(rows, columns=["disease", "year", "from", "to", "count", "proportion"])


CARE_USE_SUMS = {
    "stays": "stays_12m",
    "emergency_stays": "emergency_stays_12m",
    "bed_days": "bed_days_12m",
    "readmissions_30d": "readmissions_30d",
    "deaths": "died_in_year",
}


def reference_care_use_area(person_strata: pd.DataFrame) -> pd.DataFrame:
    """Area level: per year, disease and stratum (and ``all``)."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in person_strata.to_dict("records"):
        if not _has_zone(r):  # no residence zone: in no level
            continue
        key = (int(r["year"]), str(r["disease"]))
        groups[(*key, str(r["stratum"]))].append(r)
        groups[(*key, ALL)].append(r)
    rows = []
    for (year, disease, stratum), members in groups.items():
        row = {"year": year, "disease": disease, "stratum": stratum, "people": len(members)}
        for out, col in CARE_USE_SUMS.items():
            row[out] = int(sum(int(_bool(m[col])) if col == "died_in_year" else _int(m[col], 0) for m in members))
        for out in CARE_USE_SUMS:
            row[f"{out}_per_person"] = row[out] / row["people"]
        rows.append(row)
    return pd.DataFrame(rows)


def to_polars(df: pd.DataFrame, schema: dict[str, pl.DataType]) -> pl.DataFrame:
    # an integer column with missing values comes from pandas as floats (a case without a
    # territory): back to integers
    data = {
        c: [None if _missing(v) else int(v) if t.is_integer() and isinstance(v, float) else v for v in df[c].tolist()]
        for c, t in schema.items()
    }
    return pl.DataFrame(data, schema=schema)
