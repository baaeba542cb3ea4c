"""Generated figures beside the published ones (``respop synth --report``).

Published figures (../shared/reference/published-figures.md): about 0.28 MCO stays per inhabitant
a year (18.9 million stays in 2022, 68 million inhabitants), heart-failure hospitalisation 339.3
per 100,000 adults a year (Santé publique France 2022: adults hospitalised for heart failure),
heart-failure prevalence 2.6% of adults, treated diabetes about 5-6% of the population; treated
COPD 3.8% of people aged 40 or more (Laurendeau et al., Rev Mal Respir 2015: EGB 2011), admissions
for a COPD exacerbation about 26 per 10,000 adults aged 25 or more a year (Santé publique France's
broad definition, 2007: 38 per 10,000 men and 16 per 10,000 women; Fuhrman et al., Respir Med 2011;
the two rates weighted by the sexes' shares of adults, about 47% men).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl

PUBLISHED = {
    "stays_per_inhabitant": (0.28, "MCO stays per inhabitant a year (ATIH, DREES)"),
    "hf_hospitalised_per_100k_adults": (339.3, "adults hospitalised for heart failure per 100,000 adults, SpF rule on coded stays (SpF 2022)"),
    "hf_prevalence_adults": (0.026, "heart-failure prevalence among adults (SpF 2022)"),
    "diabetes_prevalence": (0.055, "diabetes prevalence in the population (SpF, about 5-6%)"),
    "copd_prevalence_40plus": (0.038, "treated COPD among people aged 40+ (Laurendeau et al. 2015, EGB 2011)"),
    "copd_admissions_per_100k_25plus": (
        263.0, "admissions for a COPD exacerbation per 100,000 adults aged 25+, SpF broad rule on coded stays (SpF 2007)"
    ),
}


@dataclass
class Figure:
    name: str
    label: str
    generated: float
    published: float

    @property
    def relative_difference(self) -> float:
        return self.generated / self.published - 1


def calibration(out: str | Path, year: int) -> list[Figure]:
    """The calibration figures of ``year`` from a generated folder's truth (and its coded stays)."""
    truth = Path(out) / "truth"
    residence = pl.scan_parquet(truth / "residence*.parquet").filter(pl.col("year") == year)
    persons = pl.scan_parquet(truth / "persons*.parquet").select("person_key", "birth_year")
    people = residence.join(persons, on="person_key").with_columns((year - pl.col("birth_year")).alias("age"))
    counts = people.select(
        pl.len().alias("population"),
        (pl.col("age") >= 18).sum().alias("adults"),
        (pl.col("age") >= 25).sum().alias("adults_25"),
        (pl.col("age") >= 40).sum().alias("over_40"),
    ).collect(engine="streaming")
    severity = pl.scan_parquet(truth / "severity*.parquet").filter(pl.col("year") == year)
    diabetes = severity.filter(pl.col("diabetes_type") > 0).select(pl.len()).collect(engine="streaming").item()
    hf_adults = (
        severity.filter(pl.col("hf_stage") > 0)
        .join(persons, on="person_key")
        .filter(year - pl.col("birth_year") >= 18)
        .select(pl.len())
        .collect(engine="streaming")
        .item()
    )
    copd_40 = (
        severity.filter(pl.col("copd_stage") > 0)
        .join(persons, on="person_key")
        .filter(year - pl.col("birth_year") >= 40)
        .select(pl.len())
        .collect(engine="streaming")
        .item()
    )
    stays = pl.scan_parquet(truth / "stays*.parquet").filter(pl.col("year") == year)
    n_stays = stays.filter((pl.col("kind") != "session") & (pl.col("fault") != "duplicate_stays").fill_null(True)).select(pl.len()).collect(engine="streaming").item()
    hf_hosp = hf_hospitalised_adults(Path(out) / "pmsi", year)
    population, adults, adults_25, over_40 = counts.row(0)
    generated = {
        "stays_per_inhabitant": n_stays / population,
        "hf_hospitalised_per_100k_adults": hf_hosp / adults * 100_000,
        "hf_prevalence_adults": hf_adults / adults,
        "diabetes_prevalence": diabetes / population,
        "copd_prevalence_40plus": copd_40 / over_40,
        "copd_admissions_per_100k_25plus": copd_admissions(Path(out) / "pmsi", year) / adults_25 * 100_000,
    }
    return [Figure(name, PUBLISHED[name][1], generated[name], PUBLISHED[name][0]) for name in PUBLISHED]


HF_RULE_DP = ("I110", "I130", "I132", "I139", "K761", "J81")
"""Santé publique France rule (Pérel et al. 2012): DP I50, or one of these DP with I50 as DR or DAS."""


def _scan(folder: Path, label: str) -> pl.LazyFrame:
    for candidate in (folder / f"{label}.parquet", folder / f"{label}.csv"):
        if candidate.is_file():
            if candidate.suffix == ".csv":
                return pl.scan_csv(candidate, separator=";", infer_schema=False)
            return pl.scan_parquet(candidate)
    return pl.scan_parquet(str(folder / label / "*.parquet"))


def hf_hospitalised_adults(pmsi: Path, year: int) -> int:
    """Adults hospitalised for heart failure in ``year``, as Santé publique France counts them:
    the rule applied to the coded diagnoses of the SNDS tables (not to the simulation's truth),
    counting distinct patients with a usable key."""
    yy = f"{year % 100:02d}"
    b = _scan(pmsi, f"T_MCO{yy}B").select("ETA_NUM", "RSA_NUM", "AGE_ANN", "DGN_PAL", "DGN_REL")
    c = _scan(pmsi, f"T_MCO{yy}C").select("ETA_NUM", "RSA_NUM", "NIR_ANO_17")
    das_i50 = (
        _scan(pmsi, f"T_MCO{yy}D").filter(pl.col("ASS_DGN").str.starts_with("I50"))
        .select("ETA_NUM", "RSA_NUM").unique().with_columns(pl.lit(True).alias("das_i50"))
    )
    stays = b.join(das_i50, on=["ETA_NUM", "RSA_NUM"], how="left").join(c, on=["ETA_NUM", "RSA_NUM"])
    i50_elsewhere = pl.col("DGN_REL").str.starts_with("I50").fill_null(False) | pl.col("das_i50").fill_null(False)
    rule = pl.col("DGN_PAL").str.starts_with("I50") | (pl.col("DGN_PAL").is_in(list(HF_RULE_DP)) & i50_elsewhere)
    return (
        stays.filter(rule & (pl.col("AGE_ANN").cast(pl.Int32) >= 18))
        .select(pl.col("NIR_ANO_17").n_unique())
        .collect(engine="streaming")
        .item()
    )


COPD_RULE_DP = ("J960", "J09", "J10", "J11", "J12", "J13", "J14", "J15", "J16", "J17", "J18", "J20", "J22")
"""Santé publique France's broad definition (Fuhrman et al. 2011), as algorithms/copd.toml: DP J44,
or one of these DP with J44 as DR or DAS."""


def copd_admissions(pmsi: Path, year: int) -> int:
    """Admissions for a COPD exacerbation in ``year`` of patients aged 25 or more, as Santé publique
    France counts them: the rule applied to the coded diagnoses of the SNDS tables, counting stays."""
    yy = f"{year % 100:02d}"
    b = _scan(pmsi, f"T_MCO{yy}B").select("ETA_NUM", "RSA_NUM", "AGE_ANN", "DGN_PAL", "DGN_REL")
    das_j44 = (
        _scan(pmsi, f"T_MCO{yy}D").filter(pl.col("ASS_DGN").str.starts_with("J44"))
        .select("ETA_NUM", "RSA_NUM").unique().with_columns(pl.lit(True).alias("das_j44"))
    )
    stays = b.join(das_j44, on=["ETA_NUM", "RSA_NUM"], how="left")
    j44_elsewhere = pl.col("DGN_REL").str.starts_with("J44").fill_null(False) | pl.col("das_j44").fill_null(False)
    second = pl.any_horizontal(pl.col("DGN_PAL").str.starts_with(p) for p in COPD_RULE_DP)
    rule = pl.col("DGN_PAL").str.starts_with("J44") | (second & j44_elsewhere)
    return (
        stays.filter(rule & (pl.col("AGE_ANN").cast(pl.Int32) >= 25))
        .select(pl.len())
        .collect(engine="streaming")
        .item()
    )
