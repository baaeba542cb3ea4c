"""``respop cases validate``: the cases of a run compared with the truth of synthetic data.

The truth is the ``truth/`` folder ``respop synth`` writes beside ``pmsi/``: persons (disease,
type, onset), residence per year, severity per year (who has the disease, alive), stays (with
their cause, ``kind``) and moves, and ``diseases.json``, which says for each simulated disease (by
the identifier of its algorithm spec) where the truth holds it (:func:`truth_diseases`). A
configured disease the truth does not hold is refused (:func:`check_validatable`): it is never
compared with another disease's truth. For each disease and index year:

- **sensitivity**: true cases found, among all true cases (the PMSI alone never sees those who
  were not hospitalised), among those hospitalised in the window, and among those with a stay
  *caused by* the disease in the window (the ones a hospital-data algorithm could find, though
  coding may still miss the disease);
- **positive predictive value**: detected cases who are true cases (alive with the disease in the
  index year); detected people who had died before it, out of hospital, are counted apart: hospital
  data do not record those deaths (the SNDS referential does);
- **sub-type agreement**: a truth column naming the spec's sub-types, or, by timing, the index
  year's type (``when = "index_year"``) = a stay caused by the disease in the index year;
- **residence attachment**: detected cases whose residence zone (and territory) is their true zone
  in the index year, overall and for people who moved during the window;
- for a disease whose spec gives a published hospitalisation rate
  (``[algorithm] published_rate_per_100k_adults``), the cases of the index year's type per
  100,000 inhabitants of the spec's ages, beside it: the denominator is the indicators' one
  (:func:`respop.case_finding.rates.denominator` of the population table for the year) and the
  numerator counts the cases living in the table's zones, as the indicators do, so the figure is
  the area's crude prevalence of that sub-type in ``indicators.parquet`` (and on the boards).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import polars as pl

from respop.errors import InputError, RespopError
from respop.spec.algorithm import AlgorithmSpec

DISEASES_FILE = "diseases.json"

TRUTH_TABLES = ("persons", "residence", "severity", "stays", "moves")


@dataclass
class DiseaseValidation:
    disease: str
    index_year: int
    true_cases: int
    true_hospitalised: int
    true_with_disease_stay: int
    found: int
    found_hospitalised: int
    found_with_disease_stay: int
    detected: int
    true_positives: int
    detected_dead: int
    subtype_checked: int
    subtype_agree: int
    residence_checked: int
    residence_correct: int
    territory_correct: int | None
    movers_checked: int
    movers_correct: int
    adults: float
    """The rate's denominator: inhabitants of the spec's ages in the index year (rates.denominator)."""
    adults_hospitalised: int | None
    published_rate: float | None = None
    """The spec's published adults hospitalised per 100,000 adults, when it gives one."""

    @property
    def sensitivity(self) -> float | None:
        return _ratio(self.found, self.true_cases)

    @property
    def sensitivity_hospitalised(self) -> float | None:
        return _ratio(self.found_hospitalised, self.true_hospitalised)

    @property
    def sensitivity_disease_stay(self) -> float | None:
        return _ratio(self.found_with_disease_stay, self.true_with_disease_stay)

    @property
    def ppv(self) -> float | None:
        return _ratio(self.true_positives, self.detected)

    @property
    def dead_share(self) -> float | None:
        """Share of the detected cases who had died before the index year (the truth's death date)."""
        return _ratio(self.detected_dead, self.detected)

    @property
    def subtype_agreement(self) -> float | None:
        return _ratio(self.subtype_agree, self.subtype_checked)

    @property
    def residence_accuracy(self) -> float | None:
        return _ratio(self.residence_correct, self.residence_checked)

    @property
    def territory_accuracy(self) -> float | None:
        return None if self.territory_correct is None else _ratio(self.territory_correct, self.residence_checked)

    @property
    def movers_accuracy(self) -> float | None:
        return _ratio(self.movers_correct, self.movers_checked)

    @property
    def hf_rate_per_100k_adults(self) -> float | None:
        if self.adults_hospitalised is None or not self.adults:
            return None
        return self.adults_hospitalised / self.adults * 100_000

    def to_dict(self) -> dict:
        out = asdict(self)
        for name in (
            "sensitivity", "sensitivity_hospitalised", "sensitivity_disease_stay", "ppv", "dead_share", "subtype_agreement",
            "residence_accuracy", "territory_accuracy", "movers_accuracy", "hf_rate_per_100k_adults",
        ):
            out[name] = getattr(self, name)
        published = out.pop("published_rate")
        if published is not None:
            out["hf_rate_published"] = published
        return out


def _ratio(a: int, b: int) -> float | None:
    return a / b if b else None


def truth_folder(pmsi_dir: Path | None, truth: Path | None) -> Path:
    """The truth folder: given, or ``truth/`` beside the PMSI folder (as ``respop synth`` writes it)."""
    folder = truth if truth is not None else (pmsi_dir.parent / "truth" if pmsi_dir is not None else None)
    if folder is None or not folder.is_dir():
        raise InputError(
            "no truth folder: validation needs synthetic data (respop synth writes truth/ beside pmsi/); give --truth",
            folder,
        )
    for name in TRUTH_TABLES:
        if not any(folder.glob(f"{name}*.parquet")):
            raise InputError(f"truth table {name}.parquet not found", folder)
    return folder


def truth_diseases(truth: Path) -> dict[str, dict]:
    """``truth/diseases.json``: per disease id, where the truth holds it (``severity_column``,
    ``stay_kind``, ``death_principal_diagnoses``, ``subtypes``; respop.synth.generate)."""
    path = truth / DISEASES_FILE
    if not path.is_file():
        raise InputError(
            f"{DISEASES_FILE} not found: this truth does not say which diseases it holds "
            "(written by an older respop synth); generate the data again", path
        )
    try:
        described = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise InputError(f"{DISEASES_FILE} is not valid JSON", path) from None
    if not isinstance(described, dict):
        raise InputError(f"{DISEASES_FILE} does not map disease ids to their truth", path)
    return described


def check_validatable(diseases: list[str], truth: Path) -> dict[str, dict]:
    """The truth of each disease; a disease the synthetic truth has nothing for is refused (one
    line), never compared with another disease's truth."""
    described = truth_diseases(truth)
    missing = [d for d in diseases if d not in described]
    if missing:
        raise RespopError(
            f"cannot validate {', '.join(missing)}: the synthetic truth ({truth / DISEASES_FILE}) has nothing for "
            f"{'it' if len(missing) == 1 else 'them'} (it holds {', '.join(sorted(described)) or 'no disease'}); "
            "leave it out of diseases to validate the others"
        )
    return {d: described[d] for d in diseases}


def _scan(folder: Path, name: str) -> pl.LazyFrame:
    return pl.scan_parquet(str(folder / f"{name}*.parquet"))


def validate(
    cases: pl.DataFrame, specs: list[AlgorithmSpec], truth: Path, zone_territory: pl.DataFrame | None,
    population: pl.DataFrame | None = None,
) -> list[DiseaseValidation]:
    """Compare a run's cases (cases.parquet) with the truth, per disease and index year.

    ``population``: the run's population table (respop.case_finding.run.load_population), the
    denominators of the hospitalisation rate; by default the one ``respop synth`` wrote in
    ``reference/`` beside the truth."""
    if population is None:
        from respop.case_finding.run import population_file, read_population

        population = read_population(population_file(truth.parent / "reference")).table
    persons = _scan(truth, "persons")
    severity = _scan(truth, "severity")
    residence = _scan(truth, "residence")
    stays = (
        _scan(truth, "stays")
        .filter((pl.col("kind") != "session") & pl.col("fault").is_null())
        .select("patient_key", "year", "kind", "principal_diagnosis")
    )
    moves = _scan(truth, "moves").select("person_key", "year")
    territory = (
        zone_territory.select(pl.col("zone_code"), pl.col("territory_id").cast(pl.Int32)).lazy()
        if zone_territory is not None
        else None
    )
    described = check_validatable([spec.disease for spec in specs], truth)
    out = []
    for spec in specs:
        disease = spec.disease
        lookback = spec.window.lookback_years
        about = described[disease]
        has = pl.col(about["severity_column"]) > 0
        subtypes = about.get("subtypes") or {}
        by_column = subtypes.get("by") == "column"
        true_columns = ["person_key", *([subtypes["column"]] if by_column else [])]
        # stays caused by the disease; an in-hospital death caused by it has its DP among the listed prefixes
        deaths = about.get("death_principal_diagnoses") or []
        is_disease_stay = (pl.col("kind") == about["stay_kind"]) | (
            (pl.col("kind") == "death") & pl.any_horizontal(
                pl.lit(False), *[pl.col("principal_diagnosis").str.starts_with(p) for p in deaths]
            )
        )
        # by timing: the spec's type of the index year (a stay in N); None when the spec types otherwise
        index_type = next((t.name for t in spec.subtypes.types if t.when == "index_year"), None)
        mine = cases.lazy().filter(pl.col("disease") == disease)
        for year in sorted(cases.filter(pl.col("disease") == disease)["index_year"].unique().to_list()):
            window = pl.col("year").is_between(year - lookback, year)
            true = severity.filter((pl.col("year") == year) & has).select(true_columns)
            hospitalised = stays.filter(window).select(pl.col("patient_key").alias("person_key")).unique()
            disease_stay = (
                stays.filter(window & is_disease_stay).select(pl.col("patient_key").alias("person_key")).unique()
            )
            detected = mine.filter((pl.col("index_year") == year) & pl.col("is_case")).rename({"patient_key": "person_key"})
            found = true.join(detected.select("person_key"), on="person_key", how="semi")

            def count(lf: pl.LazyFrame) -> int:
                return lf.select(pl.len()).collect(engine="streaming").item()

            # true positives: alive in the index year with the disease (the truth's severity rows);
            # detected people who died before the index year died out of hospital: the PMSI cannot know
            tp = detected.join(true, on="person_key", how="inner")
            dead = detected.join(
                persons.filter(pl.col("death_date") < pl.date(year, 1, 1)).select("person_key"), on="person_key", how="semi"
            )
            # sub-types
            if by_column:
                names = {int(k): v for k, v in subtypes["values"].items()}
                column = subtypes["column"]
                typed = tp.filter(pl.col("subtype").is_in(list(names.values())))
                agree = typed.filter(pl.col("subtype") == pl.col(column).replace_strict(names, default=None))
            elif index_type is not None:
                now = stays.filter((pl.col("year") == year) & is_disease_stay).select(
                    pl.col("patient_key").alias("person_key")
                ).unique().with_columns(pl.lit(True).alias("_stay_now"))
                typed = tp.join(now, on="person_key", how="left").with_columns(pl.col("_stay_now").fill_null(False))
                agree = typed.filter((pl.col("subtype") == index_type) == pl.col("_stay_now"))
            else:  # the spec's sub-types are not the truth's: nothing to compare
                typed = agree = tp.head(0)
            # residence
            true_zone = residence.filter(pl.col("year") == year).select("person_key", pl.col("zone_code").alias("_true_zone"))
            placed = detected.join(true_zone, on="person_key", how="inner")
            if territory is not None:
                placed = placed.join(
                    territory.rename({"zone_code": "_true_zone", "territory_id": "_true_territory"}), on="_true_zone", how="left"
                )
            else:
                placed = placed.with_columns(pl.lit(None, pl.Int32).alias("_true_territory"))
            correct = pl.col("residence_zone") == pl.col("_true_zone")
            movers = moves.filter(pl.col("year").is_between(year - lookback, year)).select("person_key").unique()
            moved = placed.join(movers, on="person_key", how="semi")
            res = placed.select(
                pl.len().alias("n"),
                correct.fill_null(False).sum().alias("ok"),
                (pl.col("territory_id") == pl.col("_true_territory")).fill_null(False).sum().alias("territory_ok"),
            ).collect(engine="streaming").row(0, named=True)
            mov = moved.select(pl.len().alias("n"), correct.fill_null(False).sum().alias("ok")).collect(engine="streaming").row(0, named=True)
            # the hospitalisation rate as the indicators compute it: the population of the spec's
            # ages in the year (one definition: rates.denominator), cases living in its zones
            adults = _denominator(population, spec, year)
            adults_hosp = None
            published = spec.algorithm.published_rate_per_100k_adults
            if published is not None and index_type is not None:
                zones = population.get_column("zone_code").cast(pl.String).unique().implode()
                adults_hosp = count(detected.filter(
                    (pl.col("subtype") == index_type) & pl.col("residence_zone").is_in(zones).fill_null(False)
                ))
            out.append(
                DiseaseValidation(
                    disease=disease,
                    index_year=int(year),
                    true_cases=count(true),
                    true_hospitalised=count(true.join(hospitalised, on="person_key", how="semi")),
                    true_with_disease_stay=count(true.join(disease_stay, on="person_key", how="semi")),
                    found=count(found),
                    found_hospitalised=count(found.join(hospitalised, on="person_key", how="semi")),
                    found_with_disease_stay=count(found.join(disease_stay, on="person_key", how="semi")),
                    detected=count(detected),
                    true_positives=count(tp),
                    detected_dead=count(dead),
                    subtype_checked=count(typed),
                    subtype_agree=count(agree),
                    residence_checked=int(res["n"]),
                    residence_correct=int(res["ok"]),
                    territory_correct=int(res["territory_ok"]) if territory is not None else None,
                    movers_checked=int(mov["n"]),
                    movers_correct=int(mov["ok"]),
                    adults=adults,
                    adults_hospitalised=adults_hosp,
                    published_rate=published,
                )
            )
    return out


def _denominator(population: pl.DataFrame, spec: AlgorithmSpec, year: int) -> float:
    """The indicators' denominator for the whole area: the population of the spec's ages in
    ``year`` (a table without year: the same every year; a missing year: InputError)."""
    from respop.case_finding.rates import denominator

    if "year" in population.columns:
        population = population.filter(pl.col("year") == year)
        if not population.height:
            raise InputError(f"the population table has no row for the index year {year}", None, "year")
    total = denominator(population, spec.population.min_age, spec.population.max_age, by=())
    return float(total["population"][0]) if total.height else 0.0
