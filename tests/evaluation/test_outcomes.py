"""The evaluation's outcome catalogue and panel (respop.evaluation.outcomes), on hand-made frames
whose standardised values are computed by hand here."""

from __future__ import annotations

import math

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from respop.errors import ConfigError
from respop.evaluation.outcomes import (
    GENERIC_IDS, PANEL_SCHEMA, available_outcomes, build_panel, coarse_breaks, coarse_labels, higher_is_worse,
    outcome_label, scale, unit_label,
)
from respop.spec.features import load_features
from respop.spec.loaders import load_specs

SPECS = {s.disease: s for s in load_specs(["heart_failure", "diabetes", "copd"])}
FEATURES = load_features()
HF = SPECS["heart_failure"]  # ages 18 and over

# population bands 00-17 (left out by the spec's ages), 18-64, 65+: two coarse cells × sex
BANDS = ("00-17", "18-64", "65+")


def population(rows: dict[str, dict[tuple[int, str], float]], year: int = 2023) -> pl.DataFrame:
    """zone → {(sex, band): population}."""
    out = [
        {"zone_code": zone, "year": year, "sex": sex, "age_band": band, "population": int(n)}
        for zone, cells in rows.items() for (sex, band), n in cells.items()
    ]
    return pl.DataFrame(out, schema={"zone_code": pl.String, "year": pl.Int16, "sex": pl.Int8, "age_band": pl.String,
                                     "population": pl.Int64})


def person_years(rows: list[dict], disease: str = "heart_failure", year: int = 2023) -> pl.DataFrame:
    base = {
        "disease": disease, "year": year, "disease_stays_12m": 0, "emergency_stays_12m": 0, "bed_days_12m": 0,
        "readmissions_30d": 0, "died_in_year": False,
    }
    frame = [{**base, **r} for r in rows]
    return pl.DataFrame(frame, schema_overrides={"year": pl.Int16, "age": pl.Int16, "sex": pl.Int8,
                                                 "residence_zone": pl.String, "disease_stays_12m": pl.Int32})


ZONES = pl.DataFrame({"zone_code": ["A", "B"], "territory_id": [1, 2]}, schema={"zone_code": pl.String, "territory_id": pl.Int32})

POP = population({
    "A": {(1, "00-17"): 500, (1, "18-64"): 1000, (1, "65+"): 200, (2, "00-17"): 400, (2, "18-64"): 1000, (2, "65+"): 300},
    "B": {(1, "00-17"): 700, (1, "18-64"): 2000, (1, "65+"): 100, (2, "00-17"): 600, (2, "18-64"): 1500, (2, "65+"): 400},
})

PEOPLE = person_years([
    # territory 1 (zone A)
    {"residence_zone": "A", "sex": 1, "age": 50, "disease_stays_12m": 1, "emergency_stays_12m": 1},
    {"residence_zone": "A", "sex": 1, "age": 70, "disease_stays_12m": 2, "emergency_stays_12m": 3},
    {"residence_zone": "A", "sex": 2, "age": 80, "disease_stays_12m": 0, "emergency_stays_12m": 0},
    {"residence_zone": "A", "sex": 2, "age": 40, "disease_stays_12m": 3, "emergency_stays_12m": 2},
    # territory 2 (zone B): no woman under 65
    {"residence_zone": "B", "sex": 1, "age": 30, "disease_stays_12m": 0, "emergency_stays_12m": 0},
    {"residence_zone": "B", "sex": 1, "age": 66, "disease_stays_12m": 1, "emergency_stays_12m": 2},
    {"residence_zone": "B", "sex": 2, "age": 70, "disease_stays_12m": 1, "emergency_stays_12m": 1},
    {"residence_zone": "B", "sex": 2, "age": 75, "disease_stays_12m": 2, "emergency_stays_12m": 3},
    # no residence zone: in no territory, nor in the standard
    {"residence_zone": None, "sex": 2, "age": 75, "disease_stays_12m": 5, "emergency_stays_12m": 9},
])


def row(panel: pl.DataFrame, territory: int, outcome: str) -> dict:
    found = panel.filter((pl.col("territory_id") == territory) & (pl.col("outcome") == outcome))
    assert found.height == 1
    return found.row(0, named=True)


# --- the catalogue ----------------------------------------------------------------------------


def test_available_outcomes_are_generic_plus_the_strata_code_features():
    assert available_outcomes(HF, FEATURES) == list(GENERIC_IDS)
    diabetes = available_outcomes(SPECS["diabetes"], FEATURES)
    assert diabetes[: len(GENERIC_IDS)] == list(GENERIC_IDS)
    assert diabetes[len(GENERIC_IDS):] == ["feature:foot", "feature:dialysis", "feature:kidney", "feature:eye", "feature:cardiovascular"]
    assert available_outcomes(SPECS["copd"], FEATURES)[len(GENERIC_IDS):] == ["feature:respiratory_failure"]
    # without the features file: the names that are neither computed nor case-of features
    assert available_outcomes(SPECS["diabetes"]) == diabetes


def test_labels_and_units_in_french():
    assert outcome_label("hospitalised", "Insuffisance cardiaque") == "Personnes hospitalisées pour insuffisance cardiaque"
    assert outcome_label("readmissions_30d", "BPCO") == "Réhospitalisations à 30 jours pour BPCO"
    assert outcome_label("feature:foot", "Diabète", FEATURES).startswith("Personnes suivies pour diabète avec : pied diabétique")
    assert outcome_label("feature:foot", "Diabète") == "Personnes suivies pour diabète avec : foot"
    assert unit_label("hospitalised", HF) == "pour 100 000 habitants de 18 ans et plus"
    assert unit_label("disease_stays", SPECS["diabetes"]) == "pour 100 000 habitants de tous âges"
    assert unit_label("bed_days_per_case") == "par personne suivie"
    assert unit_label("deaths_per_case") == unit_label("feature:eye") == "part des personnes suivies"
    assert scale("disease_stays") == 100_000 and scale("emergency_per_case") == 1
    assert all(higher_is_worse(o) for o in [*GENERIC_IDS, "feature:foot"])
    with pytest.raises(ConfigError, match="unknown outcome 'visits'"):
        outcome_label("visits", "Diabète")


def test_unknown_requested_outcomes_are_refused():
    with pytest.raises(ConfigError, match="not an outcome of heart_failure"):
        build_panel(PEOPLE, POP, ZONES, [HF], ["heart_failure.feature:foot"])
    with pytest.raises(ConfigError, match="'asthma' is not a configured disease"):
        build_panel(PEOPLE, POP, ZONES, [HF], [("asthma", "hospitalised")])


def test_coarse_bands_follow_the_spec_and_the_population_bands():
    five_year = [f"{a:02d}-{a + 4:02d}" for a in range(0, 85, 5)] + ["85+"]
    assert coarse_breaks(five_year, 18) == [65, 75, 85]
    assert coarse_labels([65, 75, 85], 18) == ["18-64", "65-74", "75-84", "85+"]
    assert coarse_labels([65, 75, 85]) == ["0-64", "65-74", "75-84", "85+"]
    assert coarse_breaks(BANDS, 18) == [65]  # no band starts at 75 or 85
    assert coarse_breaks(five_year, 70) == [75, 85]


# --- the panel, by hand ---------------------------------------------------------------------


def test_population_outcomes_by_hand():
    panel = build_panel(PEOPLE, POP, ZONES, [HF], ["heart_failure.disease_stays", "heart_failure.hospitalised"])
    assert panel.columns == ["territory_id", *PANEL_SCHEMA]
    assert dict(panel.schema) == {"territory_id": pl.Int64, **PANEL_SCHEMA}
    # the standard: the adults of both zones by cell (men 18-64, men 65+, women 18-64, women 65+)
    w = [3000, 300, 2500, 700]
    total = sum(w)
    # territory 1: inhabitants by cell 1000, 200, 1000, 300; stays 1, 2, 3, 0 (one person each)
    n1 = [1000, 200, 1000, 300]
    stays = row(panel, 1, "disease_stays")
    assert stays["value"] == pytest.approx((3000 * 1 / 1000 + 300 * 2 / 200 + 2500 * 3 / 1000) / total * 1e5)
    assert stays["value"] == pytest.approx(207.6923077)
    assert stays["events"] == 6 and stays["denominator"] == pytest.approx(2500.0)
    assert stays["crude"] == pytest.approx(6 / 2500 * 1e5)
    # compound Poisson: Σ W² Σx² / n², relative to the value²
    variance = sum(wc**2 * q / nc**2 for wc, q, nc in zip(w, [1, 4, 9, 0], n1, strict=True)) / total**2
    assert stays["log_var"] == pytest.approx(variance / (13.5 / total) ** 2)
    assert stays["log_var"] == pytest.approx((9 + 9 + 56.25) / 13.5**2)
    hosp = row(panel, 1, "hospitalised")
    assert hosp["events"] == 3
    assert hosp["value"] == pytest.approx(7 / total * 1e5)
    assert hosp["log_var"] == pytest.approx(17.5 / 49)
    # territory 2: 3,500 + 500 adults; stays 0, 1, 0 (no one), 3 (two women 65+)
    n2 = [2000, 100, 1500, 400]
    stays2 = row(panel, 2, "disease_stays")
    expected = (300 * 1 / 100 + 700 * 3 / 400) / total * 1e5
    assert stays2["value"] == pytest.approx(expected)
    variance2 = (300**2 * 1 / n2[1] ** 2 + 700**2 * (1 + 4) / n2[3] ** 2) / total**2
    assert stays2["log_var"] == pytest.approx(variance2 / (expected / 1e5) ** 2)
    assert stays2["denominator"] == pytest.approx(4000.0)


def test_case_outcomes_by_hand():
    panel = build_panel(PEOPLE, POP, ZONES, [HF], ["heart_failure.emergency_per_case"])
    # the standard: the pooled case mix (men 18-64: 2, men 65+: 2, women 18-64: 1, women 65+: 3)
    one = row(panel, 1, "emergency_per_case")
    assert one["value"] == pytest.approx((2 * 1 + 2 * 3 + 1 * 2 + 3 * 0) / 8)
    assert one["crude"] == pytest.approx(6 / 4) and one["events"] == 6 and one["denominator"] == 4
    # every cell of territory 1 has one case: the cell's variance over the area that year (ddof 0):
    # men 18-64 {1, 0}: 1/4; men 65+ {3, 2}: 1/4; women 18-64 {2}: 0; women 65+ {0, 1, 3}: 14/9
    variance = (4 * 0.25 + 4 * 0.25 + 0 + 9 * 14 / 9) / 8**2
    assert one["log_var"] == pytest.approx(variance / 1.25**2)
    # territory 2 has no woman under 65: the standard renormalised over its three cells
    two = row(panel, 2, "emergency_per_case")
    assert two["value"] == pytest.approx((2 * 0 + 2 * 2 + 3 * 2) / 7)
    # women 65+ {1, 3}: their own variance 1 over 2 cases
    assert two["log_var"] == pytest.approx((4 * 0.25 + 4 * 0.25 + 9 * 1 / 2) / 49 / (10 / 7) ** 2)


def test_unknown_sex_counts_in_crude_only_and_empty_units_have_rows():
    people = pl.concat([PEOPLE, person_years([{"residence_zone": "A", "sex": 9, "age": 50, "disease_stays_12m": 4}])],
                       how="diagonal_relaxed")
    zones = pl.concat([ZONES, pl.DataFrame({"zone_code": ["C"], "territory_id": [3]},
                                           schema={"zone_code": pl.String, "territory_id": pl.Int32})])
    panel = build_panel(people, POP, zones, [HF], ["heart_failure.disease_stays", "heart_failure.deaths_per_case"])
    stays = row(panel, 1, "disease_stays")
    assert stays["events"] == 10
    assert stays["value"] == pytest.approx(207.6923077)
    assert stays["crude"] == pytest.approx(10 / 2500 * 1e5)
    # territory 3: no inhabitants, no cases: rows with null values
    empty = panel.filter(pl.col("territory_id") == 3)
    assert empty.height == 2
    assert empty["value"].null_count() == 2 and empty["events"].to_list() == [0, 0]
    # no death: a value of 0, no log variance
    deaths = row(panel, 1, "deaths_per_case")
    assert deaths["value"] == 0 and deaths["log_var"] is None


def test_every_outcome_every_year_and_the_catalogue_default():
    people = pl.concat([PEOPLE, PEOPLE.with_columns(pl.lit(2022, pl.Int16).alias("year"))])
    pop = pl.concat([POP, POP.with_columns(pl.lit(2022, pl.Int16).alias("year"))])
    panel = build_panel(people, pop, ZONES, [HF])
    assert panel.height == 2 * 2 * len(GENERIC_IDS)
    assert panel["outcome"].unique().sort().to_list() == sorted(GENERIC_IDS)
    # the same data in both years: the same values (one standard, pooled over the years)
    a, b = (panel.filter(pl.col("year") == y).sort("outcome", "territory_id") for y in (2022, 2023))
    assert a["value"].to_list() == pytest.approx(b["value"].to_list(), nan_ok=True)


# --- a property: a territory twice as large with the same rates has the same value and half the variance


cells = st.lists(
    st.tuples(st.sampled_from([1, 2]), st.integers(18, 99), st.integers(0, 4), st.integers(0, 3), st.booleans()),
    min_size=1, max_size=12,
)
pops = st.lists(st.integers(50, 5000), min_size=6, max_size=6)


@settings(max_examples=40, deadline=None)
@given(cells, pops)
def test_a_territory_doubled_has_the_same_value_and_half_the_log_variance(people, sizes):
    bands = ["00-17", "18-64", "65-74", "75+"]
    one = {(sex, band): n for (sex, band), n in zip([(s, b) for s in (1, 2) for b in bands[1:]], sizes, strict=True)}
    one.update({(1, "00-17"): 100, (2, "00-17"): 100})
    pop = population({"A": one, "B": {k: 2 * v for k, v in one.items()}})
    rows = [
        {"residence_zone": zone, "sex": sex, "age": age, "disease_stays_12m": stays, "emergency_stays_12m": emergency,
         "died_in_year": died}
        for zone, copies in (("A", 1), ("B", 2)) for sex, age, stays, emergency, died in people for _ in range(copies)
    ]
    panel = build_panel(person_years(rows), pop, ZONES, [HF])
    for outcome in GENERIC_IDS:
        a, b = row(panel, 1, outcome), row(panel, 2, outcome)
        assert b["events"] == 2 * a["events"] and b["denominator"] == pytest.approx(2 * a["denominator"])
        assert b["value"] == pytest.approx(a["value"], rel=1e-9, abs=1e-12)
        if a["log_var"] is None:
            assert b["log_var"] is None
        else:
            assert b["log_var"] == pytest.approx(a["log_var"] / 2, rel=1e-9)
            assert math.isfinite(a["log_var"])
