"""``respop cases run``: cases, residence and indicators of a configuration, written atomically.

Reads the PMSI of ``input.pmsi_dir`` (every year, staged once), applies each configured
disease's spec, attaches the residence over a long period and the territory (when the
territories run exists), and writes ``<output.dir>/cases/`` (docs/case_finding.md).
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from respop import __version__
from respop.case_finding.engine import attach_residence, find_cases
from respop.case_finding.spec import AlgorithmSpec, load_specs
from respop.config import Config
from respop.errors import ConfigError, InputError
from respop.fsutil import atomic_folder

Progress = Callable[[str], None]

POPULATION_COLUMNS = ("zone_code", "sex", "age_band", "population")


@dataclass
class CasesResult:
    out: Path
    cases: pl.DataFrame = field(repr=False)
    indicators: pl.DataFrame = field(repr=False)
    summary: dict


def steps(config: Config) -> int:
    return 4 + 2 * len(config.diseases)


def zone_territory(config: Config) -> pl.DataFrame | None:
    """The territories run's zone → territory table, if ``respop territories build`` wrote one."""
    path = config.output.dir / "territories" / "zone_territory.parquet"
    if not path.is_file():
        return None
    return pl.read_parquet(path, columns=["zone_code", "territory_id", "territory_name"])


def load_population(config: Config) -> pl.DataFrame:
    """``population.parquet`` of ``input.reference_dir`` (zone_code, sex, age_band, population[, year])."""
    folder = config.input.reference_dir
    if folder is None:
        raise ConfigError("input.reference_dir is not set: the folder of population.parquet (the denominators)")
    path = folder / "population.parquet"
    if not path.is_file():
        raise InputError("population table not found (the denominators of prevalence and incidence)", path)
    present = pl.read_parquet_schema(path).names()
    missing = [c for c in POPULATION_COLUMNS if c not in present]
    if missing:
        raise InputError(f"population table lacks the column(s) {', '.join(missing)}", path, column=missing[0])
    columns = [*POPULATION_COLUMNS, *(["year"] if "year" in present else [])]
    return pl.read_parquet(path, columns=columns).with_columns(
        pl.col("zone_code").cast(pl.String), pl.col("sex").cast(pl.Int8), pl.col("population").cast(pl.Int64)
    )


def index_years(config: Config, years_read: list[int]) -> list[int]:
    if config.cases.years is None:
        return sorted(years_read)
    missing = sorted(set(config.cases.years) - set(years_read))
    if missing:
        raise ConfigError(
            f"key 'cases.years': {missing} not among the PMSI years read ({sorted(years_read)}); "
            "an index year needs its own stays"
        )
    return sorted(config.cases.years)


def compute_cases(
    config: Config,
    specs: list[AlgorithmSpec],
    stays: pl.LazyFrame,
    diagnoses: pl.LazyFrame,
    years: list[int],
    first_year: int,
    territories: pl.DataFrame | None,
    progress: Progress | None = None,
) -> pl.DataFrame:
    """Cases with residence of every spec, collected (one frame, diseases stacked)."""
    step = progress or (lambda _label: None)
    frames = []
    for spec in specs:
        step(f"finding {spec.algorithm.name.lower()} cases")
        cases = find_cases(spec, stays, diagnoses, years, first_year)
        lookback = config.cases.residence_years if config.cases.residence_years is not None else spec.window.lookback_years
        step(f"attaching {spec.algorithm.name.lower()} cases to their residence")
        with_residence = attach_residence(cases, stays, lookback, config.cases.residence, territories)
        frames.append(_collect(with_residence, f"the {spec.disease} cases"))
    return pl.concat(frames, how="vertical").sort("disease", "index_year", "patient_key")


def run_cases(config: Config, progress: Progress | None = None, data=None, spark=None) -> CasesResult:
    """Find the cases of every configured disease and write ``<output.dir>/cases``.

    ``data``: the PMSI already read and made canonical (``PmsiData.canonical``) by the caller,
    who closes it (``respop run`` shares one across its steps); otherwise it is read here.
    ``spark``: a SparkSession to run the specs on (respop.spark); None runs them on polars.
    """
    from respop.case_finding.indicators import indicators
    from respop.case_finding.rates import reference_population
    from respop.pmsi import read_pmsi

    step = progress or (lambda _label: None)
    started = time.perf_counter()
    timings: dict[str, float] = {}
    specs = load_specs(list(config.diseases), config.cases.algorithms_dir)
    population = load_population(config)
    reference = reference_population(config.cases.reference_population, population)
    territories = zone_territory(config)
    own = data is None
    if own:
        step("reading the PMSI")
        data = read_pmsi(None, config.input, config.quality)
    try:
        staged = data.canonical()
        timings["read"] = round(time.perf_counter() - started, 2)
        read_years = [y for y in staged.years if y is not None]
        if not read_years:
            raise InputError("the PMSI files do not give their year (T_MCOaa…): case finding needs the exit years", data.folder)
        years = index_years(config, read_years)
        t0 = time.perf_counter()
        if spark is None:
            cases = compute_cases(config, specs, staged.stays, staged.diagnoses, years, min(read_years), territories, step)
            counted = cases
        else:
            from respop.spark.run import compute_cases as spark_cases

            cases, counted = spark_cases(spark, config, specs, staged, years, min(read_years), territories, step)
        timings["cases"] = round(time.perf_counter() - t0, 2)
    finally:
        if own:
            data.close()
    step("computing prevalence and incidence")
    t0 = time.perf_counter()
    table = indicators(
        counted,
        population,
        reference,
        {s.disease: [t.name for t in s.subtypes.types] for s in specs},
        {s.disease: [y for y in years if y - s.window.lookback_years >= min(read_years)] for s in specs},
        confidence=config.cases.confidence,
        zone_territory=territories,
        years=years,
    )
    timings["indicators"] = round(time.perf_counter() - t0, 2)
    summary = _summary(config, specs, years, read_years, cases, table, territories is not None, time.perf_counter() - started)
    summary["engine"] = "spark" if spark is not None else "polars"
    summary["timings"] = timings
    step("writing the outputs")
    out = config.output.dir / "cases"
    with atomic_folder(out) as tmp:
        cases.write_parquet(tmp / "cases.parquet")
        table.write_parquet(tmp / "indicators.parquet")
        (tmp / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False), encoding="utf-8")
    return CasesResult(out=out, cases=cases, indicators=table, summary=summary)


def _summary(
    config: Config,
    specs: list[AlgorithmSpec],
    years: list[int],
    read_years: list[int],
    cases: pl.DataFrame,
    table: pl.DataFrame,
    with_territories: bool,
    seconds: float,
) -> dict:
    counts = (
        cases.group_by("disease", "index_year")
        .agg(
            pl.len().alias("rows"),
            pl.col("is_case").sum().alias("cases"),
            pl.col("incident").sum().alias("incident_cases"),
            pl.col("residence_zone").is_null().sum().alias("without_residence"),
        )
        .sort("disease", "index_year")
    )
    return {
        "name": config.name,
        "respop_version": __version__,
        "written": dt.datetime.now().isoformat(timespec="seconds"),
        "seconds": round(seconds, 1),
        "pmsi_years": sorted(read_years),
        "index_years": years,
        "residence": {"method": config.cases.residence, "years": config.cases.residence_years},
        "reference_population": config.cases.reference_population,
        "territories": with_territories,
        "algorithms": [
            {"id": s.disease, "name": s.algorithm.name, "version": s.algorithm.version, "date": s.algorithm.date.isoformat()}
            for s in specs
        ],
        "counts": counts.to_dicts(),
        "indicator_rows": table.height,
    }


def _collect(lf: pl.LazyFrame, label: str) -> pl.DataFrame:
    try:
        return lf.collect(engine="streaming")
    except pl.exceptions.PolarsError as exc:
        raise InputError(f"could not compute {label}: {str(exc).strip().splitlines()[0]}") from None
