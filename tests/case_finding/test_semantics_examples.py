"""Small hand-made patients whose expected rows are written out: the tie-breaks and edge cases of
docs/case_finding.md, where random data rarely go. Each checks the engine against the reference
(row for row) and against the values written here."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from respop.spec.algorithm import AlgorithmSpec
from respop.pmsi.canonical import DIAGNOSIS_SCHEMA, STAY_SCHEMA
from tests.case_finding.helpers import check_cases, check_residence

D = dt.date


def spec(lookback: int = 1, min_stays: int = 1, by: str = "codes", min_age: int | None = None) -> AlgorithmSpec:
    subtypes = (
        {"by": "codes", "default": "unspecified", "types": [
            {"name": "type_1", "label": "type 1", "codes": ["E10"]},
            {"name": "type_2", "label": "type 2", "codes": ["E11"]},
            {"name": "unspecified", "label": "non précisé", "codes": ["E14"]},
        ]}
        if by == "codes"
        else {"by": "timing", "types": [
            {"name": "acute", "label": "aiguë", "when": "index_year"},
            {"name": "chronic", "label": "chronique", "when": "before_index_year"},
        ]}
    )
    return AlgorithmSpec.model_validate({
        "algorithm": {"id": "diabetes", "name": "Diabète", "version": "1.0", "date": D(2026, 1, 1), "sources": ["test"]},
        "population": {"min_age": min_age},
        "window": {"lookback_years": lookback, "min_stays": min_stays},
        "branches": [
            {"name": "diabete", "label": "diabète", "all": [{"codes": ["E10", "E11", "E14"]}]},
            {"name": "dp_e11", "label": "E11 en DP", "all": [{"codes": ["E11"], "positions": ["DP"]}]},
        ],
        "exclude_stays": [{"name": "grossesse", "label": "grossesse", "codes": ["O"], "positions": ["DP"]}],
        "subtypes": subtypes,
    })


def frames(*stays: dict) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Stays given as dicts (stay_id, patient, exit, codes={position: [codes]}, age, sex, died, zone,
    session); every other column filled in."""
    rows, diagnoses = [], []
    for s in stays:
        codes = s.get("codes", {"DP": ["Z511"]})
        dp = codes.get("DP", ["Z511"])[0]
        dr = (codes.get("DR") or [None])[0]
        rows.append({
            "stay_id": s["id"], "source_year": s["exit"].year, "hospital_id": "010000001", "rsa_num": str(s["id"]),
            "patient_key": s.get("patient", "P"), "residence_zone": s.get("zone", "01001"), "residence_departement": "01",
            "age": s.get("age", 50), "sex": s.get("sex", 1), "entry_date": s["exit"], "exit_date": s["exit"],
            "length_of_stay": 0, "entry_mode": "8", "provenance": None, "via_emergency": False,
            "exit_mode": "9" if s.get("died") else "8", "died": bool(s.get("died")), "ghm": "28Z04Z" if s.get("session") else "10M021",
            "stay_type": None, "is_session": bool(s.get("session")), "principal_diagnosis": dp, "related_diagnosis": dr,
        })
        codes = {"DP": [dp], **codes}
        for position, cs in codes.items():
            diagnoses += [{"stay_id": s["id"], "code": c, "position": position, "unit_rank": 1 if position.startswith("UM") else None} for c in cs]
    return pl.DataFrame(rows, schema=STAY_SCHEMA), pl.DataFrame(diagnoses, schema=DIAGNOSIS_SCHEMA)


def row(df: pl.DataFrame, year: int, patient: str = "P") -> dict:
    found = df.filter((pl.col("patient_key") == patient) & (pl.col("index_year") == year))
    assert found.height == 1, (patient, year, df)
    return found.row(0, named=True)


def test_subtype_tie_goes_to_the_type_seen_most_recently():
    """type_1 and type_2 on two stays each, unspecified on one; the latest stay carries only E14:
    of the tied types, type_2 was seen last (November) → type_2 (not type_1, the first listed)."""
    stays, diagnoses = frames(
        {"id": 1, "exit": D(2022, 1, 10), "codes": {"DAS": ["E109"]}},
        {"id": 2, "exit": D(2022, 3, 10), "codes": {"DAS": ["E119"]}},
        {"id": 3, "exit": D(2022, 10, 10), "codes": {"DAS": ["E101"]}},
        {"id": 4, "exit": D(2022, 11, 10), "codes": {"DAS": ["E110"]}},
        {"id": 5, "exit": D(2022, 12, 10), "codes": {"DAS": ["E149"]}},
    )
    got, _ = check_cases(spec(), stays, diagnoses, [2022])
    assert row(got, 2022)["subtype"] == "type_2"


def test_subtype_tie_on_one_date_goes_to_the_greater_stay_id():
    stays, diagnoses = frames(
        {"id": 20, "exit": D(2022, 5, 1), "codes": {"DAS": ["E109"]}},
        {"id": 10, "exit": D(2022, 5, 1), "codes": {"DAS": ["E119"]}},
    )
    got, _ = check_cases(spec(), stays, diagnoses, [2022])
    assert row(got, 2022)["subtype"] == "type_1"
    stays = stays.with_columns(pl.when(pl.col("stay_id") == 10).then(30).otherwise(pl.col("stay_id")).alias("stay_id"))
    diagnoses = diagnoses.with_columns(pl.when(pl.col("stay_id") == 10).then(30).otherwise(pl.col("stay_id")).alias("stay_id"))
    got, _ = check_cases(spec(), stays, diagnoses, [2022])
    assert row(got, 2022)["subtype"] == "type_2"


def test_subtype_tie_on_one_stay_goes_to_the_type_listed_first():
    stays, diagnoses = frames({"id": 1, "exit": D(2022, 5, 1), "codes": {"DAS": ["E119", "E109"]}})
    got, _ = check_cases(spec(), stays, diagnoses, [2022])
    assert row(got, 2022)["subtype"] == "type_1"


def test_a_death_before_the_index_year_drops_the_row_and_a_death_in_it_is_flagged():
    stays, diagnoses = frames(
        {"id": 1, "exit": D(2021, 2, 1), "codes": {"DAS": ["E119"]}},
        {"id": 2, "exit": D(2021, 6, 1), "died": True},  # not qualifying: still a death
        {"id": 3, "patient": "Q", "exit": D(2021, 6, 1), "codes": {"DAS": ["E119"]}},
        {"id": 4, "patient": "Q", "exit": D(2022, 6, 1), "codes": {"DAS": ["E119"]}, "died": True},
    )
    got, _ = check_cases(spec(lookback=1), stays, diagnoses, [2021, 2022])
    assert row(got, 2021)["died_in_year"] is True
    assert got.filter((pl.col("patient_key") == "P") & (pl.col("index_year") == 2022)).is_empty()
    assert row(got, 2021, "Q")["died_in_year"] is False and row(got, 2022, "Q")["died_in_year"] is True


def test_age_sex_from_the_latest_qualifying_stay_counting_the_years_since():
    stays, diagnoses = frames(
        {"id": 9, "exit": D(2021, 12, 31), "codes": {"DAS": ["E119"]}, "age": 60, "sex": 2},
        {"id": 5, "exit": D(2021, 12, 31), "codes": {"DAS": ["E119"]}, "age": 59, "sex": 1},
        {"id": 7, "exit": D(2022, 3, 1), "age": 70, "sex": 1},  # not qualifying: does not count
    )
    got, _ = check_cases(spec(lookback=2), stays, diagnoses, [2021, 2023])
    r = row(got, 2023)
    assert (r["age"], r["sex"]) == (62, 2)
    assert (r["qualifying_stays"], r["stays_in_index_year"], r["incident"]) == (2, 0, False)
    assert (r["first_stay_date"], r["last_stay_date"]) == (D(2021, 12, 31), D(2021, 12, 31))
    assert row(got, 2021)["incident"] is True


def test_population_positions_and_exclusions_act_on_each_stay():
    stays, diagnoses = frames(
        {"id": 1, "exit": D(2022, 1, 1), "codes": {"DAS": ["E119"]}, "age": 17},  # too young at the stay
        {"id": 2, "exit": D(2022, 2, 1), "codes": {"UM_DP": ["E119"]}},  # position not searched
        {"id": 3, "exit": D(2022, 3, 1), "codes": {"DP": ["O800"], "DAS": ["E119"]}},  # pregnancy stay
        {"id": 4, "exit": D(2022, 4, 1), "codes": {"DP": ["E119"]}, "age": 18},
    )
    got, _ = check_cases(spec(min_age=18, min_stays=2), stays, diagnoses, [2022])
    r = row(got, 2022)
    assert (r["qualifying_stays"], r["is_case"], r["subtype"], r["branches"]) == (1, False, None, "diabete+dp_e11")
    assert r["incident"] is False


def test_timing_subtypes():
    stays, diagnoses = frames({"id": 1, "exit": D(2021, 5, 1), "codes": {"DAS": ["E119"]}})
    got, _ = check_cases(spec(by="timing"), stays, diagnoses, [2021, 2022])
    assert row(got, 2021)["subtype"] == "acute" and row(got, 2022)["subtype"] == "chronic"


def test_complete_history_from_the_first_year():
    stays, diagnoses = frames(
        {"id": 1, "exit": D(2020, 5, 1), "codes": {"DAS": ["E119"]}},
        {"id": 2, "exit": D(2021, 5, 1), "codes": {"DAS": ["E119"]}},
    )
    got, _ = check_cases(spec(lookback=1), stays, diagnoses, [2020, 2021])  # first year: 2020, the earliest exit
    assert (row(got, 2020)["complete_history"], row(got, 2021)["complete_history"]) == (False, True)
    got, _ = check_cases(spec(lookback=1), stays, diagnoses, [2021], first_year=2021)
    assert row(got, 2021)["complete_history"] is False


@pytest.mark.parametrize("method, zone, share", [("modal", "01002", 0.4), ("latest", "01003", 0.2)])
def test_residence_modal_tie_and_latest(method, zone, share):
    """Two stays in 01001, two in 01002 (the latest of them later), one in 01003 on the same day
    as the latest 01002 stay but with a greater stay id; one stay without a zone is not counted."""
    stays, diagnoses = frames(
        {"id": 1, "exit": D(2021, 1, 1), "zone": "01001", "codes": {"DAS": ["E119"]}},
        {"id": 2, "exit": D(2022, 1, 1), "zone": "01001"},
        {"id": 3, "exit": D(2021, 2, 1), "zone": "01002"},
        {"id": 4, "exit": D(2022, 6, 1), "zone": "01002"},
        {"id": 5, "exit": D(2022, 6, 1), "zone": "01003"},
        {"id": 6, "exit": D(2022, 12, 1), "zone": None},
        {"id": 7, "exit": D(2019, 1, 1), "zone": "01003"},  # before the residence window
    )
    got, expected = check_cases(spec(lookback=1), stays, diagnoses, [2022])
    territories = pl.DataFrame({"zone_code": ["01002", "01003"], "territory_id": [2, 3], "territory_name": ["B", "C"]})
    res = check_residence(got, expected, stays, 1, method, territories)
    r = row(res, 2022)
    assert (r["residence_zone"], r["residence_stays"]) == (zone, 5)
    assert r["residence_share"] == pytest.approx(share)
    assert r["territory_id"] == int(zone[-1]) and r["territory_name"] == zone[-1].translate(str.maketrans("23", "BC"))


def test_seances_are_not_used():
    """docs/case_finding.md: séances are not stays and are not used (here a séance carries E11 and
    a death): neither a row nor a death nor a residence comes from it. ``PmsiData.stays`` already
    leaves séances out by default; this checks a stays frame that keeps them
    (``quality.sessions_apart = false``)."""
    stays, diagnoses = frames(
        {"id": 1, "exit": D(2022, 5, 1), "codes": {"DAS": ["E119"]}, "session": True, "patient": "S"},
        {"id": 2, "exit": D(2021, 5, 1), "codes": {"DAS": ["E119"]}},
        {"id": 3, "exit": D(2021, 7, 1), "session": True, "died": True, "zone": "01009"},
    )
    got, expected = check_cases(spec(lookback=1), stays, diagnoses, [2021, 2022], first_year=2021)
    assert got["patient_key"].to_list() == ["P", "P"]
    res = check_residence(got, expected, stays, 1, "latest")
    assert set(res["residence_zone"]) == {"01001"}
