"""Indicators per zone, territory and area: hand-computed small worlds and properties."""

from __future__ import annotations

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import stats

from respop.case_finding.indicators import INDICATOR_COLUMNS, INDICATOR_SCHEMA, indicators
from respop.case_finding.rates import reference_population
from respop.errors import InputError

SUBTYPES = {"hf": ["acute", "chronic"]}
BANDS = ["00-64", "65+"]

# population per zone: (00-64 men, 00-64 women, 65+ men, 65+ women)
POPULATION = {"A": (400, 600, 200, 300), "B": (900, 900, 100, 100), "C": (250, 250, 250, 250)}

# a hand-made reference: 80% under 65, half and half between the sexes
REFERENCE = pl.DataFrame(
    {"age_band": ["00-64", "00-64", "65+", "65+"], "sex": [1, 2, 1, 2], "weight": [0.4, 0.4, 0.1, 0.1]},
    schema={"age_band": pl.String, "sex": pl.Int8, "weight": pl.Float64},
)
ZONE_TERRITORY = pl.DataFrame(
    {"zone_code": ["A", "B", "C"], "territory_id": [1, 1, 2], "territory_name": ["Nord", "Nord", "Sud"]}
)


def population_table(values: dict[str, tuple[int, ...]] = POPULATION) -> pl.DataFrame:
    rows = [
        (zone, sex, band, counts[2 * b + sex - 1])
        for zone, counts in values.items() for b, band in enumerate(BANDS) for sex in (1, 2)
    ]
    return pl.DataFrame(rows, schema=["zone_code", "sex", "age_band", "population"], orient="row")


CASE_SCHEMA = {
    "disease": pl.String, "index_year": pl.Int16, "is_case": pl.Boolean, "subtype": pl.String,
    "incident": pl.Boolean, "complete_history": pl.Boolean, "age": pl.Int16, "sex": pl.Int8,
    "residence_zone": pl.String, "territory_id": pl.Int32, "territory_name": pl.String,
}
TERRITORY = {"A": (1, "Nord"), "B": (1, "Nord"), "C": (2, "Sud")}


def case_rows(rows: list[tuple], year: int = 2020, disease: str = "hf", complete: bool = True) -> pl.DataFrame:
    """rows: (zone, subtype, age, sex, incident[, is_case])."""
    out = []
    for zone, subtype, age, sex, incident, *rest in rows:
        is_case = rest[0] if rest else True
        territory_id, territory_name = TERRITORY.get(zone, (None, None))
        out.append((disease, year, is_case, subtype if is_case else None, incident, complete, age, sex, zone,
                    territory_id, territory_name))
    return pl.DataFrame(out, schema=CASE_SCHEMA, orient="row")


CASES = case_rows([
    ("A", "acute", 70, 1, True),
    ("A", "acute", 80, 2, False),
    ("A", "chronic", 30, 1, False),
    ("A", None, 50, 2, False, False),  # not a case
    ("B", "acute", 66, 2, True),
    ("B", "chronic", 40, 2, False),
    ("B", "chronic", 50, None, True),  # unknown sex: crude only
    (None, "acute", 60, 1, False),  # no residence: outside
    ("Z", "chronic", 60, 1, True),  # zone absent from the population: outside
])


@pytest.fixture(scope="module")
def result() -> pl.DataFrame:
    return indicators(CASES, population_table(), REFERENCE, SUBTYPES, zone_territory=ZONE_TERRITORY)


def row(df: pl.DataFrame, level: str, unit: str, subtype: str = "all", year: int = 2020) -> dict:
    found = df.filter(
        (pl.col("level") == level) & (pl.col("unit") == unit) & (pl.col("subtype") == subtype) & (pl.col("year") == year)
    )
    assert found.height == 1, (level, unit, subtype, year)
    return found.row(0, named=True)


def fay_feuer(events: list[int], population: list[int], weight: list[float]) -> tuple[float, float, float]:
    """The Fay & Feuer interval written out (per 100,000), all strata populated."""
    total = sum(weight)
    w = [r / total / n for r, n in zip(weight, population, strict=True)]
    y = sum(wi * d for wi, d in zip(w, events, strict=True))
    v = sum(wi * wi * d for wi, d in zip(w, events, strict=True))
    wm = max(w)
    low = stats.gamma.ppf(0.025, y * y / v, scale=v / y) if y > 0 else 0.0
    high = stats.gamma.ppf(0.975, (y + wm) ** 2 / (v + wm * wm), scale=(v + wm * wm) / (y + wm))
    return y * 1e5, low * 1e5, high * 1e5


def exact(k: int, n: int) -> tuple[float, float, float]:
    low = stats.chi2.ppf(0.025, 2 * k) / 2 if k else 0.0
    high = stats.chi2.ppf(0.975, 2 * k + 2) / 2
    return k / n * 1e5, low / n * 1e5, high / n * 1e5


def test_columns_and_types(result):
    assert result.columns == INDICATOR_COLUMNS
    assert result.schema == pl.Schema(INDICATOR_SCHEMA)
    # 3 zones + 2 territories + the area, one year, 2 sub-types + all
    assert result.height == (3 + 2 + 1) * 3
    assert result["level"].unique(maintain_order=True).to_list() == ["zone", "territory", "area"]
    assert result.filter(pl.col("level") == "zone")["unit"].unique(maintain_order=True).to_list() == ["A", "B", "C"]
    assert result["subtype"].head(3).to_list() == ["acute", "chronic", "all"]


def test_crude_rates_hand_computed(result):
    a = row(result, "zone", "A")
    assert (a["cases"], a["incident_cases"], a["population"]) == (3, 1, 1500)
    assert (a["prevalence_crude"], a["prevalence_crude_low"], a["prevalence_crude_high"]) == pytest.approx(exact(3, 1500))
    assert a["prevalence_crude"] == pytest.approx(200.0)
    assert (a["incidence_crude"], a["incidence_crude_low"], a["incidence_crude_high"]) == pytest.approx(exact(1, 1500))
    b = row(result, "zone", "B", "chronic")
    assert (b["cases"], b["incident_cases"], b["population"]) == (2, 1, 2000)
    assert b["prevalence_crude"] == pytest.approx(100.0)


def test_standardised_rates_hand_computed_for_two_zones(result):
    a = row(result, "zone", "A")
    # strata (00-64 m, 00-64 f, 65+ m, 65+ f): cases 1, 0, 1, 1 over 400, 600, 200, 300
    expected = fay_feuer([1, 0, 1, 1], [400, 600, 200, 300], [0.4, 0.4, 0.1, 0.1])
    assert expected[0] == pytest.approx((0.4 / 400 + 0.1 / 200 + 0.1 / 300) * 1e5)  # 183.33…
    assert (a["prevalence_std"], a["prevalence_std_low"], a["prevalence_std_high"]) == pytest.approx(expected)
    assert a["cases_unstandardised"] == 0
    b = row(result, "zone", "B")
    # the case of unknown sex is left out: cases 0, 1, 0, 1 over 900, 900, 100, 100
    expected = fay_feuer([0, 1, 0, 1], [900, 900, 100, 100], [0.4, 0.4, 0.1, 0.1])
    assert expected[0] == pytest.approx((0.4 / 900 + 0.1 / 100) * 1e5)  # 144.44…
    assert (b["prevalence_std"], b["prevalence_std_low"], b["prevalence_std_high"]) == pytest.approx(expected)
    assert b["cases_unstandardised"] == 1
    # incidence in B: the incident acute case (65+ f); the incident chronic one has no sex
    expected = fay_feuer([0, 0, 0, 1], [900, 900, 100, 100], [0.4, 0.4, 0.1, 0.1])
    assert (b["incidence_std"], b["incidence_std_low"], b["incidence_std_high"]) == pytest.approx(expected)


def test_zone_without_cases_has_rows(result):
    for subtype in ("acute", "chronic", "all"):
        c = row(result, "zone", "C", subtype)
        assert (c["cases"], c["incident_cases"], c["population"], c["cases_outside"]) == (0, 0, 1000, 0)
        assert (c["prevalence_crude"], c["prevalence_crude_low"], c["prevalence_crude_high"]) == pytest.approx(exact(0, 1000))
        assert c["prevalence_std"] == 0 and c["prevalence_std_low"] == 0
        assert c["prevalence_std_high"] > 0


def test_subtype_all_is_the_sum_of_the_subtypes(result):
    keys = ["level", "unit", "year", "disease"]
    summed = result.filter(pl.col("subtype") != "all").group_by(keys).agg(
        pl.col("cases", "incident_cases", "cases_outside", "cases_unstandardised").sum(), pl.col("population").first()
    )
    total = result.filter(pl.col("subtype") == "all").select(*keys, *summed.columns[len(keys):])
    assert summed.sort(keys).equals(total.sort(keys))


def test_territory_and_area_are_sums_of_their_zones(result):
    zones = result.filter(pl.col("level") == "zone").join(
        ZONE_TERRITORY.select(pl.col("zone_code").alias("unit"), pl.col("territory_id").cast(pl.String).alias("territory")),
        on="unit",
    )
    counts = ["cases", "incident_cases", "population", "cases_unstandardised"]
    by_territory = zones.group_by("territory", "subtype").agg(pl.col(counts).sum())
    for territory, subtype, *values in by_territory.iter_rows():
        t = row(result, "territory", territory, subtype)
        assert [t[c] for c in counts] == values
    assert row(result, "territory", "1")["unit_name"] == "Nord"
    assert row(result, "territory", "2", "acute")["unit_name"] == "Sud"
    for subtype in ("acute", "chronic", "all"):
        area = row(result, "area", "all", subtype)
        zone_sum = zones.filter(pl.col("subtype") == subtype).select(pl.col(counts).sum()).row(0)
        assert [area[c] for c in counts] == list(zone_sum)
    area = row(result, "area", "all")
    assert (area["cases"], area["population"]) == (6, 4500)
    # territory 1 = A + B, stratum by stratum
    t = row(result, "territory", "1")
    expected = fay_feuer([1, 1, 1, 2], [1300, 1500, 300, 400], [0.4, 0.4, 0.1, 0.1])
    assert (t["prevalence_std"], t["prevalence_std_low"], t["prevalence_std_high"]) == pytest.approx(expected)
    assert t["prevalence_crude"] == pytest.approx(6 / 3500 * 1e5)


def test_cases_outside_are_counted_on_the_area_only(result):
    assert row(result, "area", "all")["cases_outside"] == 2
    assert row(result, "area", "all", "acute")["cases_outside"] == 1
    assert row(result, "area", "all", "chronic")["cases_outside"] == 1
    assert result.filter(pl.col("level") != "area")["cases_outside"].sum() == 0


def test_complete_history_from_data_or_given():
    cases = pl.concat([
        case_rows([("A", "acute", 70, 1, True)], year=2020, complete=False),
        case_rows([("A", "acute", 70, 1, True)], year=2021, complete=True),
    ])
    out = indicators(cases, population_table(), REFERENCE, SUBTYPES, zone_territory=ZONE_TERRITORY)
    by_year = out.group_by("year").agg(pl.col("complete_history").unique())
    assert dict(by_year.iter_rows()) == {2020: [False], 2021: [True]}
    out = indicators(cases, population_table(), REFERENCE, SUBTYPES, {"hf": [2020]}, zone_territory=ZONE_TERRITORY)
    by_year = out.group_by("year").agg(pl.col("complete_history").unique())
    assert dict(by_year.iter_rows()) == {2020: [True], 2021: [False]}


def test_same_population_every_year_without_a_year_column():
    cases = pl.concat([case_rows([("A", "acute", 70, 1, True)], year=y) for y in (2020, 2021)])
    out = indicators(cases, population_table(), REFERENCE, SUBTYPES, zone_territory=ZONE_TERRITORY)
    assert out["year"].unique().sort().to_list() == [2020, 2021]
    assert row(out, "zone", "A", year=2020)["population"] == row(out, "zone", "A", year=2021)["population"] == 1500


def test_population_joined_by_year_and_missing_year():
    pop = pl.concat([
        population_table().with_columns(pl.lit(2020).alias("year")),
        population_table().with_columns(pl.lit(2021).alias("year"), pl.col("population") * 2),
    ])
    cases = pl.concat([case_rows([("A", "acute", 70, 1, True)], year=y) for y in (2020, 2021)])
    out = indicators(cases, pop, REFERENCE, SUBTYPES, zone_territory=ZONE_TERRITORY)
    assert row(out, "zone", "A", year=2020)["population"] == 1500
    assert row(out, "zone", "A", year=2021)["population"] == 3000
    assert row(out, "zone", "A", year=2021)["prevalence_crude"] == pytest.approx(1 / 3000 * 1e5)
    with pytest.raises(InputError, match="no row for the index year.*2022") as err:
        indicators(cases, pop, REFERENCE, SUBTYPES, zone_territory=ZONE_TERRITORY, years=[2021, 2022])
    assert err.value.column == "year"


def test_territories_from_the_cases_when_no_mapping_is_given():
    out = indicators(CASES, population_table(), REFERENCE, SUBTYPES)
    territories = out.filter(pl.col("level") == "territory")
    # zone C has no case, so it is in no territory: only territory 1 (A + B)
    assert territories["unit"].unique().to_list() == ["1"]
    assert row(out, "territory", "1")["population"] == 3500
    assert row(out, "area", "all")["population"] == 4500


def test_reference_from_the_population_makes_area_std_equal_crude():
    ref = reference_population("population", population_table())
    out = indicators(CASES.filter(pl.col("sex").is_not_null()), population_table(), ref, SUBTYPES, zone_territory=ZONE_TERRITORY)
    area = out.filter(pl.col("level") == "area")
    assert area["prevalence_std"].to_list() == pytest.approx(area["prevalence_crude"].to_list())


@pytest.mark.parametrize(
    ("frame", "column"),
    [("cases", "sex"), ("cases", "residence_zone"), ("population", "age_band"), ("population", "population")],
)
def test_missing_columns(frame, column):
    cases, pop = CASES, population_table()
    if frame == "cases":
        cases = cases.drop(column)
    else:
        pop = pop.drop(column)
    with pytest.raises(InputError, match=column) as err:
        indicators(cases, pop, REFERENCE, SUBTYPES, zone_territory=ZONE_TERRITORY)
    assert err.value.column == column


def test_bad_inputs():
    bad_bands = population_table().with_columns(pl.col("age_band").replace({"65+": "66+"}))
    with pytest.raises(InputError, match="gap") as err:
        indicators(CASES, bad_bands, REFERENCE, SUBTYPES, zone_territory=ZONE_TERRITORY)
    assert err.value.column == "age_band"
    bad_label = population_table().with_columns(pl.col("age_band").replace({"65+": "65 and over"}))
    with pytest.raises(InputError, match="not a label"):
        indicators(CASES, bad_label, REFERENCE, SUBTYPES, zone_territory=ZONE_TERRITORY)
    with pytest.raises(InputError, match="hf: acute") as err:
        indicators(CASES, population_table(), REFERENCE, {"hf": ["chronic"]}, zone_territory=ZONE_TERRITORY)
    assert err.value.column == "subtype"
    with pytest.raises(InputError, match="diseases without sub-types"):
        indicators(CASES, population_table(), REFERENCE, {"diabetes": ["type 1"]}, zone_territory=ZONE_TERRITORY)
    with pytest.raises(InputError, match="sex"):
        indicators(CASES, population_table().with_columns(pl.lit(3).alias("sex")), REFERENCE, SUBTYPES)
    conflicting = pl.concat([ZONE_TERRITORY, pl.DataFrame({"zone_code": ["A"], "territory_id": [2], "territory_name": ["Sud"]})])
    with pytest.raises(InputError, match="'A' in several territories"):
        indicators(CASES, population_table(), REFERENCE, SUBTYPES, zone_territory=conflicting)
    with pytest.raises(ValueError, match="not bands of the population table"):
        indicators(CASES, population_table(), REFERENCE.with_columns(pl.lit("00-99").alias("age_band")), SUBTYPES)


# --- property ---------------------------------------------------------------------------------


@st.composite
def same_structure_worlds(draw):
    """Zones that all share one age-sex structure (a multiple of it), with random cases."""
    structure = draw(st.lists(st.integers(1, 30), min_size=4, max_size=4))
    multipliers = draw(st.lists(st.integers(1, 8), min_size=1, max_size=4))
    pops = {f"Z{i}": tuple(m * s for s in structure) for i, m in enumerate(multipliers)}
    rows = []
    ages = {"00-64": 40, "65+": 75}
    for zone, counts in pops.items():
        for b, band in enumerate(BANDS):
            for sex in (1, 2):
                n = counts[2 * b + sex - 1]
                k = draw(st.integers(0, min(n, 6)))
                for j in range(k):
                    subtype = draw(st.sampled_from(SUBTYPES["hf"]))
                    rows.append((zone, subtype, ages[band], sex, j % 2 == 0))
    return pops, rows


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(same_structure_worlds())
def test_std_equals_crude_with_the_study_population_as_reference(world):
    pops, rows = world
    pop = population_table(pops)
    cases = case_rows(rows) if rows else case_rows([("Z0", "acute", 40, 1, False, False)])
    mapping = pl.DataFrame({"zone_code": list(pops), "territory_id": [i % 2 for i in range(len(pops))]})
    out = indicators(cases, pop, reference_population("population", pop), SUBTYPES, zone_territory=mapping)
    assert out.height == (len(pops) + len({i % 2 for i in range(len(pops))}) + 1) * 3
    for measure in ("prevalence", "incidence"):
        crude, std = out[f"{measure}_crude"].to_list(), out[f"{measure}_std"].to_list()
        assert std == pytest.approx(crude, rel=1e-9, abs=1e-9)
        for kind in ("crude", "std"):
            rate, low, high = (out[f"{measure}_{kind}{s}"] for s in ("", "_low", "_high"))
            assert (low <= rate * (1 + 1e-12)).all() and (rate <= high).all()
    assert (out["cases_unstandardised"] == 0).all()


def test_units_without_population_have_null_rates():
    pop = population_table({**POPULATION, "D": (0, 0, 0, 0)})
    mapping = pl.concat([
        ZONE_TERRITORY,
        pl.DataFrame({"zone_code": ["D", "E"], "territory_id": [3, 4], "territory_name": ["Est", "Ouest"]}),
    ])
    cases = pl.concat([CASES, case_rows([("D", "acute", 70, 1, True)])])
    out = indicators(cases, pop, REFERENCE, SUBTYPES, zone_territory=mapping)
    d = row(out, "zone", "D")
    assert (d["cases"], d["population"], d["cases_unstandardised"]) == (1, 0, 1)
    assert all(d[c] is None for c in out.columns if c.startswith(("prevalence", "incidence")))
    assert row(out, "territory", "4")["population"] == 0  # zone E is not in the population table
    area = row(out, "area", "all")
    # the case of D is standardised on the area (its stratum is populated there); B's has no sex
    assert (area["cases"], area["cases_outside"], area["cases_unstandardised"]) == (7, 2, 1)


def test_years_without_cases():
    out = indicators(CASES.clear(), population_table(), REFERENCE, SUBTYPES, zone_territory=ZONE_TERRITORY, years=[2020])
    assert out.height == (3 + 2 + 1) * 3
    assert out["cases"].sum() == 0 and out["complete_history"].is_null().all()
    assert indicators(CASES.clear(), population_table(), REFERENCE, SUBTYPES, zone_territory=ZONE_TERRITORY).is_empty()
