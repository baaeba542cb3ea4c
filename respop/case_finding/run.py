"""``respop cases run``: cases, residence and indicators of a configuration, written atomically.

Reads the PMSI of ``input.pmsi_dir`` (every year, staged once), applies each configured
disease's spec, attaches the residence over a long period and the territory (when the
territories run exists), and writes ``<output.dir>/cases/`` (docs/case_finding.md).
"""

from __future__ import annotations

import datetime as dt
import json
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from respop import __version__
from respop.case_finding.engine import attach_residence, deaths, find_cases, stays_only
from respop.spec.algorithm import AlgorithmSpec
from respop.spec.catalogue import Catalogue, start_catalogue
from respop.spec.residence import residence_years
from respop.config import Config
from respop.errors import ConfigError, InputError
from respop.pmsi.files import ROW
from respop.pmsi.scope import for_hospital
from respop.pmsi.validate import REASONS, SOURCE
from respop.stages import stage_folder, stage_inputs

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


POPULATION_FILES = ("population_by_year.parquet", "population.parquet")
"""The denominators in ``input.reference_dir``, the first found: the populations of each year
(zone × sex × age band × year, as INSEE's yearly estimates; ``respop synth`` writes it), else the
population table (with or without a ``year`` column)."""


class PopulationWithoutYear(UserWarning):
    """The population table has no year: the same population is used for every index year."""


@dataclass
class Population:
    """The checked population table and what reading it found."""

    path: Path
    table: pl.DataFrame = field(repr=False)
    """zone_code (String), sex (Int8), age_band (String), population (Int64)[, year (Int16)]."""
    quarantine: pl.DataFrame = field(repr=False)
    """Invalid rows as they were read (every column as text), ``_row`` (1-based), ``_reasons``, ``_source``."""
    rows_read: int

    @property
    def by_year(self) -> bool:
        return "year" in self.table.columns

    def check_years(self, years: list[int]) -> None:
        """Every index year has its population (a table without year serves every year)."""
        if not self.by_year:
            return
        available = set(self.table["year"].unique().to_list())
        missing = [y for y in years if y not in available]
        if missing:
            raise InputError(
                f"population table has no row for the index year(s) {', '.join(map(str, missing))} "
                f"(it covers {', '.join(map(str, sorted(available))) or 'no year'}): give the population of every "
                "index year, or a table without a year column to use one population for every year",
                self.path,
                "year",
            )

    def summary(self) -> dict:
        return {"file": self.path.name, "by_year": self.by_year, "rows_read": self.rows_read,
                "quarantined": self.quarantine.height,
                "years": sorted(self.table["year"].unique().to_list()) if self.by_year else None}


def population_file(folder: Path) -> Path:
    """The first of :data:`POPULATION_FILES` in ``folder`` (InputError when there is none)."""
    path = next((folder / name for name in POPULATION_FILES if (folder / name).is_file()), None)
    if path is None:
        raise InputError(
            "population table not found (the denominators of prevalence and incidence): "
            f"{' or '.join(POPULATION_FILES)}", folder / POPULATION_FILES[-1],
        )
    return path


def load_population(config: Config) -> Population:
    """The denominators: :func:`read_population` of the first of :data:`POPULATION_FILES` in
    ``input.reference_dir``."""
    folder = config.input.reference_dir
    if folder is None:
        raise ConfigError("input.reference_dir is not set: the folder of population.parquet (the denominators)")
    return read_population(population_file(folder))


def read_population(path: Path) -> Population:
    """A population table, checked.

    A missing column is an InputError naming the file and the column; invalid rows (no zone, a
    sex other than 1 or 2, an age band that is not a label such as ``00-04`` or ``85+``, a
    population that is not a non-negative integer, no year) are quarantined with their reasons, as
    the PMSI reader does. Without a ``year`` column the same population serves every index year:
    a :class:`PopulationWithoutYear` warning says so."""
    from respop.case_finding.rates import SEXES

    try:
        present = pl.read_parquet_schema(path).names()
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise InputError(f"cannot read the population table: {str(exc).strip().splitlines()[0]}", path) from None
    missing = [c for c in POPULATION_COLUMNS if c not in present]
    if missing:
        raise InputError(f"population table lacks the column(s) {', '.join(missing)}", path, column=missing[0])
    has_year = "year" in present
    columns = [*POPULATION_COLUMNS, *(["year"] if has_year else [])]
    raw = pl.read_parquet(path, columns=columns).with_row_index(ROW, offset=1)
    text = raw.select(pl.col(ROW), *[pl.col(c).cast(pl.String).str.strip_chars().alias(c) for c in columns])
    typed = text.with_columns(
        pl.col("zone_code"),
        _integer("sex", pl.Int8),
        pl.col("age_band"),
        _integer("population", pl.Int64),
        *([_integer("year", pl.Int16)] if has_year else []),
    )
    labels = typed.get_column("age_band").drop_nulls().unique().to_list()
    good_labels = [label for label in labels if _is_band(label)]
    checks = [
        (pl.col("zone_code").is_null() | (pl.col("zone_code") == ""), "zone_code: missing"),
        (~pl.col("sex").is_in(list(SEXES)).fill_null(False), "sex: not 1 (male) or 2 (female)"),
        (~pl.col("age_band").is_in(good_labels).fill_null(False), "age_band: not an age band such as '00-04' or '85+'"),
        (~(pl.col("population") >= 0).fill_null(False), "population: not a non-negative integer"),
        *([(pl.col("year").is_null(), "year: not a year")] if has_year else []),
    ]
    reasons = pl.concat_list([pl.when(bad).then(pl.lit(why)) for bad, why in checks]).list.drop_nulls()
    flagged = typed.with_columns(reasons.alias(REASONS))
    bad = flagged.filter(pl.col(REASONS).list.len() > 0)
    quarantine = text.join(bad.select(ROW, REASONS), on=ROW, how="inner", maintain_order="left").with_columns(
        pl.lit(path.stem).alias(SOURCE)
    )
    table = flagged.filter(pl.col(REASONS).list.len() == 0).select(
        "zone_code", "sex", "age_band", "population", *(["year"] if has_year else [])
    )
    if not table.height:
        raise InputError("population table has no valid row (see its quarantine)", path)
    if not has_year:
        warnings.warn(
            f"{path}: the population table has no year column; the same population is used for every "
            "index year (give zone × sex × age band × year, as INSEE's yearly estimates)",
            PopulationWithoutYear,
            stacklevel=2,
        )
    return Population(path=path, table=table, quarantine=quarantine, rows_read=raw.height)


def _integer(column: str, dtype: pl.DataType) -> pl.Expr:
    """A text column as an integer; null when it is not one (``2.5``, ``abc``) or does not fit."""
    number = pl.col(column).cast(pl.Float64, strict=False)
    return pl.when(number == number.round(0)).then(number).cast(dtype, strict=False).alias(column)


def _is_band(label: str) -> bool:
    from respop.case_finding.rates import parse_age_band

    try:
        parse_age_band(label)
    except ValueError:
        return False
    return True


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
    known_deaths: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """Cases with residence of every spec, collected (one frame, diseases stacked).
    ``known_deaths``: the SNDS referential's deaths (respop.pmsi.deaths), when the run has it."""
    step = progress or (lambda _label: None)
    frames = []
    death_years = _collect(deaths(stays_only(stays), known_deaths), "the deaths") if specs else None
    for spec in specs:
        step(f"finding {spec.algorithm.name.lower()} cases")
        cases = find_cases(spec, stays, diagnoses, years, first_year, known_deaths, config.cases.drop_unseen_years, death_years)
        lookback = residence_years(config.cases.residence_years, spec)
        step(f"attaching {spec.algorithm.name.lower()} cases to their residence")
        with_residence = attach_residence(cases, stays, lookback, config.cases.residence, territories)
        frames.append(_collect(with_residence, f"the {spec.disease} cases"))
    return pl.concat(frames, how="vertical").sort("disease", "index_year", "patient_key")


def polars_cases(
    config: Config, specs: list[AlgorithmSpec], staged, years: list[int], first_year: int,
    territories: pl.DataFrame | None, progress: Progress | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The cases step's engine part on polars (``respop.pipeline.Engine.cases``): the cases with
    residence, and the rows the indicators count (the same frame: one row each)."""
    from respop.pmsi.deaths import deaths_of

    cases = compute_cases(
        config, specs, staged.stays, staged.diagnoses, years, first_year, territories, progress, deaths_of(staged)
    )
    return cases, cases


def run_cases(
    config: Config, progress: Progress | None = None, data=None, engine=None, input_fingerprint: dict | None = None,
    catalogue: Catalogue | None = None,
) -> CasesResult:
    """Find the cases of every configured disease and write ``<output.dir>/cases``.

    ``data``: the PMSI already read and made canonical (``PmsiData.canonical``) by the caller,
    who closes it (``respop run`` shares one across its steps); otherwise it is read here.
    ``engine``: what runs the specs (``respop.pipeline.Engine``, chosen by the pipeline); None
    runs them on polars. ``catalogue``: the run's specs, frozen at its start
    (respop.spec.catalogue); None freezes them now and writes ``<output.dir>/catalogue.json``.
    ``input_fingerprint``: the PMSI's, taken by the caller before reading it (respop.stages);
    the manifest of ``cases/`` records it with the territories the cases were attached to.
    """
    from respop.case_finding.indicators import indicators
    from respop.case_finding.rates import reference_population
    from respop.pmsi.stage import for_step

    step = progress or (lambda _label: None)
    started = time.perf_counter()
    timings: dict[str, float] = {}
    catalogue = catalogue if catalogue is not None else start_catalogue(config)
    specs = catalogue.specs
    hospital = config.hospital is not None  # hospital mode: no denominators, no territories (docs/hospital.md)
    population = None if hospital else load_population(config)
    reference = None if hospital else reference_population(config.cases.reference_population, population.table)
    inputs = stage_inputs(config, "cases", input_fingerprint)
    territories = None if hospital else zone_territory(config)
    hospital_stays = None
    own = data is None
    if own:
        step("reading the PMSI")
        data = for_step(config)  # the staged input, as respop run reads it
    try:
        staged = for_hospital(data, config.hospital)
        timings["read"] = round(time.perf_counter() - started, 2)
        read_years = [y for y in staged.years if y is not None]
        if not read_years:
            raise InputError("the PMSI files do not give their year (T_MCOaa…): case finding needs the exit years", data.folder)
        years = index_years(config, read_years)
        if population is not None:
            population.check_years(years)
        t0 = time.perf_counter()
        compute = engine.cases if engine is not None else polars_cases
        cases, counted = compute(config, specs, staged, years, min(read_years), territories, step)
        timings["cases"] = round(time.perf_counter() - t0, 2)
        if hospital:
            hospital_stays = _hospital_stays(specs, staged)
    finally:
        if own:
            data.close()
    if hospital:
        return _write_hospital_cases(config, specs, years, read_years, cases, hospital_stays, inputs, engine, timings, started)
    step("computing prevalence and incidence")
    t0 = time.perf_counter()
    table = indicators(
        counted,
        population.table,
        reference,
        {s.disease: [t.name for t in s.subtypes.types] for s in specs},
        {s.disease: [y for y in years if y - s.window.lookback_years >= min(read_years)] for s in specs},
        confidence=config.cases.confidence,
        zone_territory=territories,
        years=years,
        ages={s.disease: (s.population.min_age, s.population.max_age) for s in specs},
    )
    timings["indicators"] = round(time.perf_counter() - t0, 2)
    summary = _summary(config, specs, years, read_years, cases, table, territories is not None, time.perf_counter() - started)
    summary["engine"] = engine.name if engine is not None else "polars"
    summary["population"] = population.summary()
    summary["timings"] = timings
    step("writing the outputs")
    out = config.output.dir / "cases"
    with stage_folder(config, "cases", inputs) as tmp:
        cases.write_parquet(tmp / "cases.parquet")
        table.write_parquet(tmp / "indicators.parquet")
        if population.quarantine.height:
            population.quarantine.write_parquet(tmp / "quarantine_population.parquet")
        (tmp / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False), encoding="utf-8")
    return CasesResult(out=out, cases=cases, indicators=table, summary=summary)


HOSPITAL_STAYS = "hospital_stays.parquet"
"""Hospital mode: the hospital's kept stays (séances apart), their FINESS, PMSI year and RSA
numbers, dates and patient key, with ``qualifying`` (the diseases for which the stay qualifies); private, read by
``respop liste`` (docs/hospital.md)."""


def _hospital_stays(specs: list[AlgorithmSpec], staged) -> pl.DataFrame:
    """The hospital's stays (:data:`HOSPITAL_STAYS`), collected."""
    from respop.case_finding.engine import qualifying_stays, stays_only

    stays = stays_only(staged.stays)
    qualifying = [
        qualifying_stays(spec, stays, staged.diagnoses).select("stay_id", pl.lit(spec.disease).alias("disease"))
        for spec in specs
    ]
    by_stay = pl.concat(qualifying).group_by("stay_id").agg(pl.col("disease").unique().sort().alias("qualifying"))
    return _collect(
        stays.select("stay_id", "source_year", "hospital_id", "rsa_num", "patient_key", "entry_date", "exit_date")
        .join(by_stay, on="stay_id", how="left")
        .with_columns(pl.col("qualifying").fill_null(pl.lit([], pl.List(pl.String))))
        .sort("stay_id"),
        "the hospital's stays",
    )


def _write_hospital_cases(config, specs, years, read_years, cases, hospital_stays, inputs, engine, timings, started) -> CasesResult:
    """Hospital mode's cases step: the cases and the hospital's stays, no indicators (no
    denominators: the hospital's patients are not a population)."""
    summary = _summary(config, specs, years, read_years, cases, None, False, time.perf_counter() - started)
    summary["engine"] = engine.name if engine is not None else "polars"
    summary["hospital"] = {"finess": config.hospital.finess, "stays": hospital_stays.height}
    summary["timings"] = timings
    out = config.output.dir / "cases"
    with stage_folder(config, "cases", inputs) as tmp:
        cases.write_parquet(tmp / "cases.parquet")
        hospital_stays.write_parquet(tmp / HOSPITAL_STAYS)
        (tmp / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False), encoding="utf-8")
    return CasesResult(out=out, cases=cases, indicators=pl.DataFrame(), summary=summary)


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
        "indicator_rows": table.height if table is not None else 0,
    }


def _collect(lf: pl.LazyFrame, label: str) -> pl.DataFrame:
    try:
        return lf.collect(engine="streaming")
    except pl.exceptions.PolarsError as exc:
        raise InputError(f"could not compute {label}: {str(exc).strip().splitlines()[0]}") from None
