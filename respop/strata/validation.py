"""``respop strata validate``: the checks of a strata run (docs/strata.md).

1. every case-year of the cases run falls in exactly one stratum;
2. the transitions of each (disease, year, stratum) sum to 1;
3. survival is ordered as the strata: between adjacent strata with enough people, the more severe
   one has the worse survival and the log-rank test gives p < 0.001;
4. the prediction reaches an AUC of at least 0.75 on the held-out year (gradient boosting), with
   its calibration table.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl

from respop.config import Config
from respop.errors import InputError

AUC_GOAL = 0.75
P_GOAL = 0.001
MIN_PER_STRATUM = 100
"""Adjacent strata are compared when both have at least this many person-years followed."""


@dataclass
class Check:
    label: str
    ok: bool | None  # None: could not be checked (too few people)
    detail: str


def check_strata(config: Config) -> tuple[list[Check], list[tuple[str, pl.DataFrame]]]:
    out = config.output.dir / "strata"
    needed = [out / "person_strata.parquet", out / "transitions.parquet", out / "survival" / "logrank.csv"]
    for path in needed:
        if not path.is_file():
            raise InputError("not found: run `respop strata run` on this configuration first", path)
    ps = pl.read_parquet(out / "person_strata.parquet")
    cases = pl.read_parquet(config.output.dir / "cases" / "cases.parquet", columns=["patient_key", "disease", "index_year", "is_case"])
    checks: list[Check] = []
    tables: list[tuple[str, pl.DataFrame]] = []

    expected = cases.filter(pl.col("is_case")).height
    keys = ps.select("patient_key", "disease", "year").unique().height
    nulls = ps["stratum"].null_count()
    checks.append(Check(
        "one stratum per person-year",
        nulls == 0 and keys == ps.height == expected,
        f"{ps.height:,} person-years, {keys:,} distinct, {nulls} without stratum, {expected:,} case-years in cases.parquet",
    ))

    moves = pl.read_parquet(out / "transitions.parquet")
    sums = moves.group_by("disease", "year", "from").agg(pl.col("proportion").sum().alias("total"))
    worst = float((sums["total"] - 1).abs().max() or 0.0)
    checks.append(Check("transition rows sum to 1", worst < 1e-9, f"{sums.height} rows, largest deviation {worst:.1e}"))

    logrank = pl.read_csv(out / "survival" / "logrank.csv")
    tables.append(("Survival: log-rank tests between adjacent strata (time to next disease stay or in-hospital death)", logrank))
    for disease in sorted(logrank["disease"].unique().to_list()):
        rows = logrank.filter(pl.col("disease") == disease)
        testable = rows.filter((pl.col("n_higher") >= MIN_PER_STRATUM) & (pl.col("n_lower") >= MIN_PER_STRATUM))
        if testable.is_empty():
            checks.append(Check(f"{disease}: survival ordered as the strata", None, "too few person-years in adjacent strata"))
            continue
        bad = testable.filter(~pl.col("ordered") | (pl.col("p_value") >= P_GOAL))
        detail = "; ".join(
            f"{r['higher']} vs {r['lower']}: p={r['p_value']:.1e}{'' if r['ordered'] else ', NOT ordered'}"
            for r in testable.iter_rows(named=True)
        )
        skipped = rows.height - testable.height
        if skipped:
            detail += f" ({skipped} pair(s) with fewer than {MIN_PER_STRATUM} person-years not tested)"
        checks.append(Check(f"{disease}: survival ordered as the strata (log-rank p < {P_GOAL})", bad.is_empty(), detail))

    for folder in sorted((out / "prediction").iterdir()) if (out / "prediction").is_dir() else []:
        metrics = pl.read_csv(folder / "metrics.csv")
        tables.append((f"Prediction ({folder.name}): held-out year", metrics))
        calibration = pl.read_csv(folder / "calibration.csv")
        tables.append((f"Calibration ({folder.name}): deciles of predicted risk, held-out year", calibration))
        gb = metrics.filter(pl.col("model") == "gradient_boosting")
        auc = float(gb["auc"].item()) if gb.height else float("nan")
        checks.append(Check(f"{folder.name}: prediction AUC ≥ {AUC_GOAL}", auc >= AUC_GOAL, f"gradient boosting AUC {auc:.3f}"))
    return checks, tables


def summary_path(config: Config) -> Path:
    return config.output.dir / "strata" / "summary.json"
