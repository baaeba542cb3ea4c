"""Age bands, exact Poisson limits, Fay & Feuer standardised rates and reference populations."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
from scipy import stats

from respop.case_finding.rates import (
    band_of_age, check_bands, dsr_fay_feuer, parse_age_band, poisson_ci, reference_population,
)
from respop.errors import ConfigError, InputError

ESP2013 = [5000, 5500, 5500, 5500, 6000, 6000, 6500, 7000, 7000, 7000, 7000, 6500, 6000, 5500, 5000,
           4000, 2500, 1500, 800, 200]


# --- age bands ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("label", "expected"),
    [("00-04", (0, 4)), ("5-9", (5, 9)), ("85+", (85, None)), ("95 +", (95, None)), ("90-94", (90, 94)),
     (" 10 - 14 ", (10, 14)), ("0-0", (0, 0))],
)
def test_parse_age_band(label, expected):
    assert parse_age_band(label) == expected


@pytest.mark.parametrize("label", ["", "abc", "85", "9-5", "-5", "85++", "5–9", "5-9+", "1000+", "5 to 9"])
def test_parse_age_band_rejects(label):
    with pytest.raises(ValueError, match="age band"):
        parse_age_band(label)


@pytest.mark.parametrize(
    ("bands", "problem"),
    [
        (["00-04", "05-09"], "closed"),
        (["00-04", "06-09", "10+"], "gap"),
        (["00-04", "04-09", "10+"], "overlap"),
        (["01-04", "05+"], "start at 1"),
        (["00-04", "05+", "10+"], "overlap"),
        (["00-04", "00-04", "05+"], "twice"),
        (["00-04", "bad", "05+"], "not a label"),
        ([], "no age bands"),
    ],
)
def test_check_bands_names_the_problem(bands, problem):
    with pytest.raises(ValueError, match=problem):
        check_bands(bands)


def test_band_of_age_maps_boundaries_whatever_the_order_of_the_bands():
    bands = ["85+", "00-04", "5-9", "10-84"]
    ages = pl.DataFrame({"age": [0, 4, 5, 9, 10, 84, 85, 120, -1, None]}, schema={"age": pl.Int16})
    got = ages.select(band_of_age(pl.col("age"), bands).alias("band"))["band"].to_list()
    assert got == ["00-04", "00-04", "5-9", "5-9", "10-84", "10-84", "85+", "85+", None, None]


def test_band_of_age_checks_the_tiling():
    with pytest.raises(ValueError, match="gap"):
        band_of_age(pl.col("age"), ["00-04", "06+"])


# --- exact Poisson limits -------------------------------------------------------------------


def test_poisson_ci_known_values():
    low, high = poisson_ci(np.array([0, 1, 10]))
    # Garwood limits (tables of exact Poisson confidence limits)
    np.testing.assert_allclose(low, [0.0, 0.0253, 4.7954], atol=1e-4)
    np.testing.assert_allclose(high, [3.6889, 5.5716, 18.3904], atol=1e-4)


@pytest.mark.parametrize("k", [1, 2, 7, 40, 300])
def test_poisson_ci_tail_probabilities(k):
    """At the limits, the Poisson tails are exactly α/2 (the definition of the exact interval)."""
    low, high = poisson_ci([k], 0.9)
    assert stats.poisson.sf(k - 1, low[0]) == pytest.approx(0.05, rel=1e-8)  # P(X ≥ k | low)
    assert stats.poisson.cdf(k, high[0]) == pytest.approx(0.05, rel=1e-8)  # P(X ≤ k | high)


def test_poisson_ci_rejects_bad_input():
    with pytest.raises(ValueError, match="negative"):
        poisson_ci([-1])
    with pytest.raises(ValueError, match="confidence"):
        poisson_ci([1], confidence=95)


# --- Fay & Feuer ----------------------------------------------------------------------------


def _one_group(events, population, weight, **kw) -> tuple[float, float, float]:
    df = pl.DataFrame({"g": ["x"] * len(events), "events": events, "population": population, "weight": weight})
    row = dsr_fay_feuer(df, ["g"], **kw).row(0, named=True)
    return row["rate"], row["low"], row["high"]


def test_dsr_hand_computed():
    # two strata: 3 events / 1000, 10 events / 2000; reference shares 0.4 / 0.6
    rate, low, high = _one_group([3, 10], [1000, 2000], [0.4, 0.6])
    w = [0.4 / 1000, 0.6 / 2000]
    y = w[0] * 3 + w[1] * 10  # 0.0042
    v = w[0] ** 2 * 3 + w[1] ** 2 * 10  # 1.38e-6
    wm = max(w)
    assert y == pytest.approx(0.0042) and v == pytest.approx(1.38e-6)
    assert rate == pytest.approx(y, rel=1e-12)
    assert low == pytest.approx(stats.gamma.ppf(0.025, y * y / v, scale=v / y), rel=1e-10)
    assert high == pytest.approx(
        stats.gamma.ppf(0.975, (y + wm) ** 2 / (v + wm * wm), scale=(v + wm * wm) / (y + wm)), rel=1e-10
    )
    # weights as counts (not shares) give the same result
    assert _one_group([3, 10], [1000, 2000], [4000, 6000]) == pytest.approx((rate, low, high), rel=1e-12)


def test_dsr_matches_published_example():
    """Down syndrome, birth order 5+, Michigan 1950-64 (Fay & Feuer 1997, table II); values printed
    by the vignette of the R package dsrTest (gamma method): 75.52901 [67.70212, 188.30017] per 1e5."""
    cases = [0, 8, 63, 112, 262, 295]
    births = [327, 30666, 123419, 149919, 104088, 34392]
    standard = [319933, 931318, 786511, 488235, 237863, 61313]
    rate, low, high = _one_group(cases, births, standard)
    assert rate * 1e5 == pytest.approx(75.52901, abs=1e-5)
    assert low * 1e5 == pytest.approx(67.70212, abs=1e-5)
    assert high * 1e5 == pytest.approx(188.30017, abs=1e-5)


@pytest.mark.parametrize("d", [0, 1, 4, 25, 1000])
@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
def test_dsr_one_stratum_is_the_exact_poisson_interval(d, confidence):
    n = 12_345
    rate, low, high = _one_group([d], [n], [1.0], confidence=confidence)
    p_low, p_high = poisson_ci([d], confidence)
    assert rate == pytest.approx(d / n)
    assert low == pytest.approx(p_low[0] / n, rel=1e-9, abs=1e-15)
    assert high == pytest.approx(p_high[0] / n, rel=1e-9)


def test_dsr_no_event_has_zero_lower_limit():
    rate, low, high = _one_group([0, 0], [100, 400], [0.5, 0.5])
    wm = 0.5 / 100
    assert rate == 0 and low == 0
    assert high == pytest.approx(-wm * math.log(0.025))  # Gamma(1, w_M) quantile


def test_dsr_empty_strata_are_dropped_and_the_reference_renormalised():
    # the first stratum has no population: its events are ignored and the second weighs 1
    assert _one_group([5, 2], [0, 100], [0.5, 0.5]) == pytest.approx(_one_group([2], [100], [1.0]))
    # no population at all, or only strata of zero reference weight: null
    assert _one_group([1, 1], [0, 0], [0.5, 0.5]) == (None, None, None)
    assert _one_group([1, 1], [0, 10], [0.5, 0.0]) == (None, None, None)


def test_dsr_groups_keep_their_order_and_null_keys():
    df = pl.DataFrame({
        "zone": ["b", "b", None, None, "a", "a"],
        "year": [1, 1, 1, 1, 1, 1],
        "events": [1, 2, 0, 3, 5, None],
        "population": [10, 20, 30, 40, 50, None],
        "weight": [0.5, 0.5] * 3,
    })
    out = dsr_fay_feuer(df, ["zone", "year"])
    assert out.columns == ["zone", "year", "rate", "low", "high"]
    assert out["zone"].to_list() == ["b", None, "a"]
    assert out["rate"].to_list() == pytest.approx([0.5 * 1 / 10 + 0.5 * 2 / 20, 0.5 * 3 / 40, 5 / 50])


def test_dsr_rejects_negative_counts_and_missing_columns():
    df = pl.DataFrame({"g": [1], "events": [-1], "population": [10], "weight": [1.0]})
    with pytest.raises(ValueError, match="negative"):
        dsr_fay_feuer(df, ["g"])
    with pytest.raises(ValueError, match="missing columns"):
        dsr_fay_feuer(df.drop("weight"), ["g"])


@pytest.mark.parametrize("scale", [0.2, 3.0])
def test_dsr_coverage_by_simulation(scale):
    """Simulated Poisson counts: the 95% gamma interval covers the true DSR at least ~95% of the
    time (the method is conservative), with few and with many events."""
    rng = np.random.default_rng(20240611)
    draws = 600
    n = np.array([2000.0, 5000.0, 8000.0, 3000.0, 500.0])
    ref = np.array([0.3, 0.3, 0.2, 0.15, 0.05])
    lam = np.array([0.0005, 0.001, 0.002, 0.01, 0.03]) * scale
    true_dsr = float((ref * lam).sum())
    counts = rng.poisson(lam * n, size=(draws, len(n)))
    df = pl.DataFrame({
        "draw": np.repeat(np.arange(draws), len(n)),
        "events": counts.ravel(),
        "population": np.tile(n, draws),
        "weight": np.tile(ref, draws),
    })
    out = dsr_fay_feuer(df, ["draw"])
    covered = ((out["low"] <= true_dsr) & (true_dsr <= out["high"])).mean()
    assert covered >= 0.95 - 0.02
    assert ((out["low"] <= out["rate"]) & (out["rate"] <= out["high"])).all()


# --- reference populations ------------------------------------------------------------------


def _population(bands: list[str]) -> pl.DataFrame:
    rows = [(zone, sex, band, 10 * (i + 1) + sex) for zone in ("A", "B") for i, band in enumerate(bands) for sex in (1, 2)]
    return pl.DataFrame(rows, schema=["zone_code", "sex", "age_band", "population"], orient="row")


ESP_BANDS = [f"{a:02d}-{a + 4:02d}" for a in range(0, 95, 5)] + ["95+"]


def test_esp2013_is_shipped_exactly():
    ref = reference_population("esp2013", _population(ESP_BANDS))
    assert ref.schema == pl.Schema({"age_band": pl.String, "sex": pl.Int8, "weight": pl.Float64})
    assert ref["age_band"].to_list() == [b for b in ESP_BANDS for _ in (1, 2)]
    assert ref["sex"].to_list() == [1, 2] * len(ESP_BANDS)
    assert ref["weight"].sum() == pytest.approx(1.0)
    # half and half between the sexes
    expected = [v / 100_000 / 2 for v in ESP2013 for _ in (1, 2)]
    assert ref["weight"].to_list() == pytest.approx(expected)


def test_esp2013_summed_into_coarser_population_bands():
    bands = ["0-44", "45-64", "65-84", "85+"]
    ref = reference_population("ESP2013", _population(bands))
    per_band = ref.group_by("age_band").agg(pl.col("weight").sum())
    got = dict(per_band.iter_rows())
    assert got["0-44"] == pytest.approx(sum(ESP2013[:9]) / 1e5)
    assert got["45-64"] == pytest.approx(sum(ESP2013[9:13]) / 1e5)
    assert got["65-84"] == pytest.approx(sum(ESP2013[13:17]) / 1e5)
    assert got["85+"] == pytest.approx((1500 + 800 + 200) / 1e5)


def test_reference_straddling_population_bands_is_a_config_error():
    with pytest.raises(ConfigError, match="'85-89' straddles .*'80-86'.*'87\\+'"):
        reference_population("esp2013", _population(["00-79", "80-86", "87+"]))
    # a reference open band that covers several population bands
    with pytest.raises(ConfigError, match="straddles"):
        reference_population("esp2013", _population(["00-94", "95-99", "100+"]))


def test_reference_from_the_study_population_sums_zones_and_years():
    pop = pl.concat([
        _population(["00-64", "65+"]).with_columns(pl.lit(2020).alias("year")),
        _population(["00-64", "65+"]).with_columns(pl.lit(2021).alias("year"), pl.col("population") * 3),
    ])
    ref = reference_population("population", pop)
    # per zone and year: 00-64 → 11 / 12, 65+ → 21 / 22; two zones; years weigh 1 and 3
    total = 2 * 4 * (11 + 12 + 21 + 22)
    assert ref["weight"].to_list() == pytest.approx([2 * 4 * p / total for p in (11, 12, 21, 22)])


def test_reference_csv_with_and_without_sex(tmp_path):
    pop = _population(["00-64", "65+"])
    with_sex = tmp_path / "ref_sex.csv"
    with_sex.write_text("age_band,sex,population\n0-39,1,30\n0-39,2,30\n40-64,1,20\n40-64,2,10\n65+,1,4\n65+,2,6\n")
    ref = reference_population(str(with_sex), pop)
    assert ref.rows() == [("00-64", 1, 0.5), ("00-64", 2, 0.4), ("65+", 1, 0.04), ("65+", 2, 0.06)]
    no_sex = tmp_path / "ref.csv"
    no_sex.write_text("age_band,population\n0-64,80\n65+,20\n")
    ref = reference_population(str(no_sex), pop)
    assert ref["weight"].to_list() == pytest.approx([0.4, 0.4, 0.1, 0.1])


def test_reference_csv_errors_name_the_file_and_column(tmp_path):
    pop = _population(["00-64", "65+"])
    bad = tmp_path / "bad.csv"
    bad.write_text("band,population\n0-64,80\n65+,20\n")
    with pytest.raises(InputError, match="bad.csv.*'age_band'") as err:
        reference_population(str(bad), pop)
    assert err.value.column == "age_band" and err.value.path == bad
    bad.write_text("age_band,count\n0-64,80\n65+,20\n")
    with pytest.raises(InputError) as err:
        reference_population(str(bad), pop)
    assert err.value.column == "population"
    bad.write_text("age_band,population\n0-64,80\n66+,20\n")
    with pytest.raises(InputError, match="gap") as err:
        reference_population(str(bad), pop)
    assert err.value.column == "age_band"
    bad.write_text("age_band,population,sex\n0-64,80,1\n65+,20,3\n")
    with pytest.raises(InputError) as err:
        reference_population(str(bad), pop)
    assert err.value.column == "sex"
    with pytest.raises(InputError, match="not found"):
        reference_population(str(tmp_path / "missing.csv"), pop)


def test_population_table_errors():
    with pytest.raises(InputError) as err:
        reference_population("esp2013", _population(["00-64", "65+"]).drop("sex"))
    assert err.value.column == "sex"
    with pytest.raises(InputError, match="gap") as err:
        reference_population("esp2013", _population(["00-63", "65+"]))
    assert err.value.column == "age_band"


def test_reference_csv_non_numeric_values(tmp_path):
    pop = _population(["00-64", "65+"])
    bad = tmp_path / "bad.csv"
    bad.write_text("age_band,population,sex\n0-64,80,M\n65+,20,F\n")
    with pytest.raises(InputError, match="non-numeric") as err:
        reference_population(str(bad), pop)
    assert err.value.column == "sex"
    bad.write_text("age_band,population\n0-64,many\n65+,20\n")
    with pytest.raises(InputError, match="non-numeric") as err:
        reference_population(str(bad), pop)
    assert err.value.column == "population"
