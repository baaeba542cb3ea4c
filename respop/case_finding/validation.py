"""``respop cases validate``: the cases of a run compared with the truth of synthetic data.

The truth is the ``truth/`` folder ``respop synth`` writes beside ``pmsi/``: persons (disease,
type, onset), residence per year, severity per year (who has the disease, alive), stays (with
their cause, ``kind``) and moves. For each disease and index year:

- **sensitivity**: true cases found, among all true cases (the PMSI alone never sees those who
  were not hospitalised), among those hospitalised in the window, and among those with a stay
  *caused by* the disease in the window (the ones a hospital-data algorithm could find, though
  coding may still miss the disease);
- **positive predictive value**: detected cases who are true cases (alive with the disease in the
  index year); detected people who had died before it, out of hospital, are counted apart: hospital
  data do not record those deaths (the SNDS referential does);
- **sub-type agreement** (diabetes type 1/2; heart failure acute = a heart-failure stay in the
  index year);
- **residence attachment**: detected cases whose residence zone (and territory) is their true zone
  in the index year, overall and for people who moved during the window;
- the **heart-failure hospitalisation rate** of adults per 100,000 adults, beside the published
  339.3 (Santé publique France 2022).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import polars as pl

from respop.case_finding.spec import AlgorithmSpec
from respop.errors import InputError

PUBLISHED_HF_RATE = 339.3
"""Adults hospitalised for heart failure per 100,000 adults, France 2022 (Santé publique France)."""

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
    adults: int
    adults_hospitalised: int | None

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
            "sensitivity", "sensitivity_hospitalised", "sensitivity_disease_stay", "ppv", "subtype_agreement",
            "residence_accuracy", "territory_accuracy", "movers_accuracy", "hf_rate_per_100k_adults",
        ):
            out[name] = getattr(self, name)
        if self.disease == "heart_failure":
            out["hf_rate_published"] = PUBLISHED_HF_RATE
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


def _scan(folder: Path, name: str) -> pl.LazyFrame:
    return pl.scan_parquet(str(folder / f"{name}*.parquet"))


def validate(cases: pl.DataFrame, specs: list[AlgorithmSpec], truth: Path, zone_territory: pl.DataFrame | None) -> list[DiseaseValidation]:
    """Compare a run's cases (cases.parquet) with the truth, per disease and index year."""
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
    out = []
    for spec in specs:
        disease = spec.disease
        lookback = spec.window.lookback_years
        has = (pl.col("diabetes_type") > 0) if disease == "diabetes" else (pl.col("hf_stage") > 0)
        # stays caused by the disease; a death from heart failure has its DP in I50
        is_disease_stay = (pl.col("kind") == disease) | (
            (pl.col("kind") == "death") & pl.col("principal_diagnosis").str.starts_with("I50") & (disease == "heart_failure")
        )
        mine = cases.lazy().filter(pl.col("disease") == disease)
        for year in sorted(cases.filter(pl.col("disease") == disease)["index_year"].unique().to_list()):
            window = pl.col("year").is_between(year - lookback, year)
            true = severity.filter((pl.col("year") == year) & has).select("person_key", "diabetes_type")
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
            if disease == "diabetes":
                typed = tp.filter(pl.col("subtype").is_in(["type_1", "type_2"]))
                agree = typed.filter(
                    ((pl.col("subtype") == "type_1") & (pl.col("diabetes_type") == 1))
                    | ((pl.col("subtype") == "type_2") & (pl.col("diabetes_type") == 2))
                )
            else:
                hf_now = stays.filter((pl.col("year") == year) & is_disease_stay).select(
                    pl.col("patient_key").alias("person_key")
                ).unique().with_columns(pl.lit(True).alias("_hf_now"))
                typed = tp.join(hf_now, on="person_key", how="left").with_columns(pl.col("_hf_now").fill_null(False))
                agree = typed.filter((pl.col("subtype") == "acute") == pl.col("_hf_now"))
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
            # adults of the truth population and adults hospitalised for heart failure (acute cases)
            adults = count(
                residence.filter(pl.col("year") == year)
                .join(persons.select("person_key", "birth_year"), on="person_key")
                .filter(year - pl.col("birth_year").cast(pl.Int32) >= 18)
            )
            adults_hosp = None
            if disease == "heart_failure":
                adults_hosp = count(detected.filter((pl.col("subtype") == "acute") & (pl.col("age") >= 18)))
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
                )
            )
    return out
