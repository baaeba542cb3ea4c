"""Populations by year (issue 18, item 2) on `tiny`, with known truth: ``respop synth`` writes each
year's population from the simulated people; the cases step uses each year's own population (a
zone whose population moves between years moves that year's rate, and only it), still runs on a
table without year (with a warning), refuses an index year without population (naming the year
and the file), quarantines invalid rows; one denominator for the indicators and for
``respop cases validate``."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import polars as pl
import pytest

from respop.case_finding.rates import band_shares, denominator
from respop.case_finding.run import PopulationWithoutYear, load_population, run_cases
from respop.case_finding.validation import validate
from respop.config import load_config
from respop.errors import InputError
from respop.spec.loaders import load_spec, shipped_algorithms_dir
from respop.synth import generate, load_profile

CONFIG = """
name = "tiny"
diseases = ["heart_failure"]
[input]
pmsi_dir = "data/pmsi"
reference_dir = "ref"
[quality]
zones_file = "data/reference/zones.parquet"
[cases]
reference_population = "esp2013"  # fixed weights: a changed population changes the rates only
[output]
dir = "run"
"""
YEARS = [2021, 2022, 2023]


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("population-years")
    generate(load_profile("tiny"), seed=4, out=base / "data")
    return base


def setup(world: Path, tmp_path: Path, population: pl.DataFrame, name: str = "population_by_year.parquet") -> Path:
    """A configuration whose reference folder holds only ``population`` (as ``name``)."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "data").symlink_to(world / "data")
    (tmp_path / "ref").mkdir()
    population.write_parquet(tmp_path / "ref" / name)
    (tmp_path / "tiny.toml").write_text(CONFIG)
    return tmp_path / "tiny.toml"


def by_year(world: Path) -> pl.DataFrame:
    return pl.read_parquet(world / "data" / "reference" / "population_by_year.parquet")


def rows(indicators: pl.DataFrame, level: str, subtype: str = "all") -> pl.DataFrame:
    return indicators.filter((pl.col("level") == level) & (pl.col("subtype") == subtype))


def test_generated_population_is_the_simulated_people_of_each_year(world):
    population = by_year(world)
    truth = world / "data" / "truth"
    assert population.columns == ["zone_code", "year", "sex", "age_band", "population"]
    assert sorted(population["year"].unique()) == YEARS
    # each year: the people alive at its start (the truth's residence rows of the year), by sex and age band
    people = (
        pl.read_parquet(truth / "residence.parquet")
        .join(pl.read_parquet(truth / "persons.parquet"), on="person_key")
        .with_columns(pl.min_horizontal((pl.col("year") - pl.col("birth_year")) // 5, 17).alias("_band"))
        .group_by("year", "sex", "_band").len()
    )
    mine = population.with_columns(
        pl.col("age_band").str.slice(0, 2).cast(pl.Int64).floordiv(5).alias("_band")
    ).group_by("year", "sex", "_band").agg(pl.col("population").sum())
    joined = mine.join(people, on=["year", "sex", "_band"], how="full", coalesce=True).fill_null(0)
    assert (joined["population"] == joined["len"]).all()
    # the first year is the world's starting population (population.parquet, without year)
    first = population.filter(pl.col("year") == YEARS[0]).drop("year")
    start = pl.read_parquet(world / "data" / "reference" / "population.parquet")
    assert first.sort("zone_code", "sex", "age_band").equals(start.sort("zone_code", "sex", "age_band").select(first.columns))
    # the population changes between years (deaths, births, moves)
    totals = population.group_by("year").agg(pl.col("population").sum()).sort("year")["population"].to_list()
    assert len(set(totals)) == len(YEARS)


def test_a_zone_whose_population_moves_moves_that_years_rate_only(world, tmp_path):
    population = by_year(world)
    base = run_cases(load_config(setup(world, tmp_path / "a", population)))
    # the same cases, zone 01001's population doubled in 2022 only
    moved_zone, moved_year = "01001", 2022
    doubled = population.with_columns(
        pl.when((pl.col("zone_code") == moved_zone) & (pl.col("year") == moved_year))
        .then(pl.col("population") * 2).otherwise(pl.col("population"))
    )
    moved = run_cases(load_config(setup(world, tmp_path / "b", doubled)))
    key = ["unit", "year", "subtype"]
    before, after = rows(base.indicators, "zone"), rows(moved.indicators, "zone")
    both = before.join(after, on=key, suffix="_moved")
    assert both.height == before.height and (both["cases"] == both["cases_moved"]).all()
    target = (pl.col("unit") == moved_zone) & (pl.col("year") == moved_year)
    changed = both.filter(target)
    assert changed["cases"].item() > 0  # a zone with cases: its rate must move
    assert changed["population_moved"].item() in (2 * changed["population"].item() - 1, 2 * changed["population"].item(),
                                                   2 * changed["population"].item() + 1)
    assert changed["prevalence_crude_moved"].item() == pytest.approx(changed["prevalence_crude"].item() / 2)
    assert changed["prevalence_std_moved"].item() == pytest.approx(changed["prevalence_std"].item() / 2)
    others = both.filter(~target)
    assert (others["population"] == others["population_moved"]).all()
    assert others.select((pl.col("prevalence_crude") == pl.col("prevalence_crude_moved")).fill_null(True).all()).item()
    # the area of the other years is unchanged; 2022's denominator grew by the zone's adults
    area_before, area_after = rows(base.indicators, "area"), rows(moved.indicators, "area")
    for year in YEARS:
        b = area_before.filter(pl.col("year") == year)["population"].item()
        a = area_after.filter(pl.col("year") == year)["population"].item()
        assert (a - b) == (pytest.approx(changed["population"].item(), abs=1) if year == moved_year else 0)
    assert base.summary["population"]["by_year"] is True and base.summary["population"]["years"] == YEARS


def test_each_year_uses_its_own_population_not_the_first(world, tmp_path):
    """2023's rates against the 2023 population: the rate the first year's population would give
    is off by the population's change (the bias of issue 18)."""
    population = by_year(world)
    result = run_cases(load_config(setup(world, tmp_path, population)))
    spec = load_spec(shipped_algorithms_dir() / "heart_failure.toml")
    area = rows(result.indicators, "area")
    for year in YEARS:
        expected = denominator(population.filter(pl.col("year") == year), spec.population.min_age, by=())["population"].item()
        row = area.filter(pl.col("year") == year)
        assert row["population"].item() == round(expected)
        assert row["prevalence_crude"].item() == pytest.approx(row["cases"].item() / expected * 100_000)


def test_a_population_without_year_still_works_with_a_warning(world, tmp_path):
    first = by_year(world).filter(pl.col("year") == YEARS[0]).drop("year")
    config = load_config(setup(world, tmp_path, first, "population.parquet"))
    with pytest.warns(PopulationWithoutYear, match="population.parquet.*no year column"):
        result = run_cases(config)
    area = rows(result.indicators, "area")
    assert area["population"].n_unique() == 1  # the same population every year
    assert result.summary["population"]["by_year"] is False


def test_an_index_year_without_population_is_an_error_naming_the_year_and_the_file(world, tmp_path):
    config = load_config(setup(world, tmp_path, by_year(world).filter(pl.col("year") != 2022)))
    with pytest.raises(InputError, match=r"no row for the index year\(s\) 2022 \(it covers 2021, 2023\)") as err:
        run_cases(config)
    assert err.value.path == tmp_path / "ref" / "population_by_year.parquet" and err.value.column == "year"


def test_a_missing_column_is_named_with_the_file(world, tmp_path):
    config = load_config(setup(world, tmp_path, by_year(world).drop("sex")))
    with pytest.raises(InputError, match="lacks the column.*sex") as err:
        load_population(config)
    assert err.value.path == tmp_path / "ref" / "population_by_year.parquet" and err.value.column == "sex"


def test_invalid_rows_are_quarantined_with_their_reasons(world, tmp_path):
    population = by_year(world).with_columns(pl.col("sex").cast(pl.String), pl.col("population").cast(pl.String))
    bad = pl.DataFrame(
        {"zone_code": ["01001", None, "01002"], "year": [2021, 2021, 2022], "sex": ["3", "1", "2"],
         "age_band": ["00-04", "05-09", "vieux"], "population": ["10", "12", "-4"]},
        schema=population.schema,
    )
    config = load_config(setup(world, tmp_path, pl.concat([population, bad])))
    with warnings.catch_warnings():
        warnings.simplefilter("error", PopulationWithoutYear)  # it has a year: no warning
        result = run_cases(config)
    quarantine = pl.read_parquet(result.out / "quarantine_population.parquet")
    reasons = {row["_row"]: row["_reasons"] for row in quarantine.iter_rows(named=True)}
    first = population.height + 1
    assert reasons == {
        first: ["sex: not 1 (male) or 2 (female)"],
        first + 1: ["zone_code: missing"],
        first + 2: ["age_band: not an age band such as '00-04' or '85+'", "population: not a non-negative integer"],
    }
    assert set(quarantine["_source"]) == {"population_by_year"}
    assert result.summary["population"]["quarantined"] == 3
    assert result.summary["population"]["rows_read"] == population.height + 3
    # the valid rows are the whole population: the rates are those of the clean table
    clean = run_cases(load_config(setup(world, tmp_path / "clean", by_year(world))))
    assert rows(result.indicators, "area")["population"].equals(rows(clean.indicators, "area")["population"])


def test_validate_and_the_indicators_give_the_same_hospitalisation_rate(world, tmp_path):
    """One denominator: the heart-failure figure of ``respop cases validate`` is the area's crude
    prevalence of the acute sub-type (cases hospitalised in the year) in the indicators."""
    config = load_config(setup(world, tmp_path, by_year(world)))
    result = run_cases(config)
    spec = load_spec(shipped_algorithms_dir() / "heart_failure.toml")
    checked = validate(result.cases, [spec], world / "data" / "truth", None, load_population(config).table)
    acute = rows(result.indicators, "area", "acute")
    for r in checked:
        row = acute.filter(pl.col("year") == r.index_year)
        assert r.adults_hospitalised == row["cases"].item()
        assert r.hf_rate_per_100k_adults == pytest.approx(row["prevalence_crude"].item(), rel=1e-12)
        assert 150 < r.hf_rate_per_100k_adults < 600
    # by default, validate reads the population respop synth wrote beside the truth: the same figures
    again = validate(result.cases, [spec], world / "data" / "truth", None)
    assert [r.hf_rate_per_100k_adults for r in again] == [r.hf_rate_per_100k_adults for r in checked]
    summary = json.loads((result.out / "summary.json").read_text())
    assert summary["population"]["file"] == "population_by_year.parquet"


def test_denominator_of_a_cut_band_is_pro_rata():
    shares = band_shares(["00-14", "15-19", "20-64", "65+"], min_age=18)
    assert shares == {"00-14": 0.0, "15-19": 0.4, "20-64": 1.0, "65+": 1.0}
    assert band_shares(["00-64", "65+"], max_age=64) == {"00-64": 1.0, "65+": 0.0}
    population = pl.DataFrame({"year": [2023] * 4, "age_band": ["00-14", "15-19", "20-64", "65+"],
                               "population": [100, 50, 300, 80]})
    assert denominator(population, 18)["population"].to_list() == [0.4 * 50 + 300 + 80]
    assert denominator(population)["population"].to_list() == [530.0]
