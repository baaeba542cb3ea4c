"""``respop strata validate``: the checks of a strata run (docs/strata.md).

1. every case-year of the cases run falls in exactly one stratum;
2. the transitions of each (disease, year, stratum) sum to 1;
3. survival is ordered as the strata: between adjacent strata with enough people, the more severe
   one has the worse survival and the log-rank test gives p < 0.001;
4. the prediction (gradient boosting, each target) beats the prevalence (Brier skill > 0) with a
   calibration slope in [0.8, 1.2] on the held-out year, and, on synthetic data, reaches an AUC
   within 0.03 of the oracle that knows the world's latent severity (:func:`prediction_vs_oracle`;
   the goal of AUC ≥ 0.75 was above what the synthetic world allows).

``respop strata validate CONFIG --seeds 1-5`` runs them on several worlds of the generator (the
command line composes it, as the generator and the pipeline are layers above this module): for
each seed, the world (``respop.synth``), the pipeline's steps :data:`SEED_STEPS` on the
configuration pointed at it (:func:`world_config`), then these checks (:class:`SeedChecks`);
:func:`seeds_summary` gives, per check, its result on every seed.

The goals of 3 and 4 are those of the synthetic world's risk gradients: on synthetic data (a
``truth/`` folder beside the PMSI), a disease the truth does not hold (``truth/diseases.json``) is
refused, as by ``respop cases validate``, rather than checked against goals set for others.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from respop import periods
from respop.config import Config, parse_ranges
from respop.errors import InputError

P_GOAL = 0.001
MIN_PER_STRATUM = 100
"""Adjacent strata are compared when both have at least this many person-years followed."""


@dataclass
class Check:
    label: str
    ok: bool | None  # None: could not be checked (too few people)
    detail: str


def _summary(folder: Path) -> dict:
    try:
        return json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def check_strata(config: Config) -> tuple[list[Check], list[tuple[str, pl.DataFrame]]]:
    out = config.output.dir / "strata"
    # the parts the data's period left out (respop.periods), recorded by the strata step
    left_out = {s.part: s for s in periods.from_dicts(_summary(out).get("skipped"))}
    needed = [out / "person_strata.parquet", out / "transitions.parquet"]
    needed += [out / "survival" / "logrank.csv"] if "survival" not in left_out else []
    for path in needed:
        if not path.is_file():
            raise InputError("not found: run `respop strata run` on this configuration first", path)
    ps = pl.read_parquet(out / "person_strata.parquet")
    truth = config.input.pmsi_dir.parent / "truth" if config.input.pmsi_dir is not None else None
    if truth is not None and truth.is_dir():
        from respop.case_finding.validation import check_validatable

        check_validatable(sorted(ps["disease"].cast(pl.String).unique().to_list()), truth)
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

    for skip in left_out.values():
        checks.append(Check(skip.part, None, skip.en))
    logrank = pl.read_csv(out / "survival" / "logrank.csv") if "survival" not in left_out else None
    if logrank is not None:
        tables.append(("Survival: log-rank tests between adjacent strata (time to the next disease stay or death)", logrank))
    for disease in sorted(logrank["disease"].unique().to_list()) if logrank is not None else []:
        rows = logrank.filter(pl.col("disease") == disease)
        testable = rows.filter((pl.col("n_higher") >= MIN_PER_STRATUM) & (pl.col("n_lower") >= MIN_PER_STRATUM))
        if testable.is_empty():
            checks.append(Check(f"{disease}: survival ordered as the strata (log-rank p < {P_GOAL})", None,
                                "too few person-years in adjacent strata"))
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
        if truth is not None and (truth / "severity.parquet").is_file():
            # the synthetic world: the oracle given the true latent severity (a few seconds a disease)
            metrics = prediction_vs_oracle(ps, truth, folder.name).drop("disease")
        tables.append((f"Prediction ({folder.name}): held-out year", metrics))
        calibration = pl.read_csv(folder / "calibration.csv")
        tables.append((f"Calibration ({folder.name}): deciles of predicted risk, held-out year", calibration))
        checks.extend(prediction_checks(folder.name, metrics))
    return checks, tables


def prediction_checks(disease: str, metrics: pl.DataFrame) -> list[Check]:
    """Per target, the gradient boosting's goals: Brier skill > 0, calibration slope in
    :data:`SLOPE_GOAL`, and, with an ``oracle_auc`` column (synthetic data), AUC within
    :data:`AUC_GAP_GOAL` of the oracle."""
    low, high = SLOPE_GOAL
    checks = []
    for row in metrics.filter(pl.col("model") == "gradient_boosting").iter_rows(named=True):
        target = row.get("target") or "upstratum"
        detail = (f"AUC {row['auc']:.3f} ({row.get('auc_lower', float('nan')):.3f}–{row.get('auc_upper', float('nan')):.3f}), "
                  f"Brier skill {row.get('brier_skill', float('nan')):+.4f}, calibration slope "
                  f"{row.get('calibration_slope', float('nan')):.2f}, intercept {row.get('calibration_intercept', float('nan')):+.2f}")
        ok = bool((row.get("brier_skill") or 0) > 0 and low <= (row.get("calibration_slope") or 0) <= high)
        label = f"{disease} ({target}): Brier skill > 0, calibration slope in [{low}, {high}]"
        if row.get("oracle_auc") is not None:
            detail += f"; oracle AUC {row['oracle_auc']:.3f} (gap {row['oracle_auc'] - row['auc']:+.3f})"
            ok = ok and row["oracle_auc"] - row["auc"] <= AUC_GAP_GOAL
            label += f", AUC within {AUC_GAP_GOAL} of the oracle"
        checks.append(Check(label, ok, detail))
    return checks


SEVERITY_KEYS = ("person_key", "year")
"""The keys of the synthetic world's ``truth/severity.parquet``; every other column of it is the
latent severity of a person in a year (stages, types, complications), which no pipeline
observes: what the oracle knows beyond respop's features (the columns are the generator's, read
from the file, so that no disease is named here)."""

AUC_GAP_GOAL = 0.03
"""Goal: respop's AUC within this of the oracle's (issue 18)."""
SLOPE_GOAL = (0.8, 1.2)
"""Goal: the calibration slope in this interval."""


def model_feature_names(person_strata: pl.DataFrame, disease: str) -> list[str]:
    """The features the strata step gives the models of ``disease`` (respop.strata.run): female,
    the level, the computed, case-of (the other diseases of the run) and code features."""
    from respop.spec.features import CASE_OF, load_features, model_features

    case_of = [c for c in person_strata.columns if c.startswith(CASE_OF) and c != f"{CASE_OF}{disease}"]
    return ["female", "stratum_level", *(f for f in model_features(load_features(), case_of) if f in person_strata.columns)]


def prediction_vs_oracle(
    person_strata: pl.DataFrame, truth: Path, disease: str, *, recalibrate: bool = True, random_state: int = 0,
) -> pl.DataFrame:
    """respop's held-out prediction metrics (both targets, both models) beside the oracle's AUC.

    The **oracle** is the same temporal validation and gradient boosting given, beside respop's
    features, the world's true latent severity of year N (every column of
    ``truth/severity.parquet`` but :data:`SEVERITY_KEYS`): what a model could reach if it saw the state that drives next
    year's events in the generator. Columns: disease, target, model, the metrics of
    ``respop.strata.prediction.METRICS_SCHEMA``, ``oracle_auc``, ``auc_gap`` (oracle − model) and
    ``goals`` (AUC within :data:`AUC_GAP_GOAL` of the oracle, calibration slope in
    :data:`SLOPE_GOAL`, Brier skill > 0)."""
    from respop.strata.prediction import evaluate

    path = truth / "severity.parquet"
    if not path.is_file():
        raise InputError("not found: the oracle needs the synthetic truth's severity table", path)
    severity = pl.read_parquet(path).rename({"person_key": "patient_key"}).with_columns(pl.col("year").cast(pl.Int16))
    known = [c for c in severity.columns if c not in ("patient_key", "year")]
    last = int(person_strata["year"].max())
    features = model_feature_names(person_strata, disease)
    rows = person_strata.filter(pl.col("disease") == disease)
    ours = evaluate(rows, disease, last, random_state, features=features, importance=False, recalibrate=recalibrate)
    with_truth = rows.with_columns(pl.col("year").cast(pl.Int16)).join(
        severity.select("patient_key", "year", *known), on=["patient_key", "year"], how="left"
    )
    oracle = evaluate(with_truth, disease, last, random_state, features=[*features, *known], importance=False,
                      recalibrate=recalibrate)
    best = oracle.metrics.filter(pl.col("model") == "gradient_boosting").select("target", pl.col("auc").alias("oracle_auc"))
    low, high = SLOPE_GOAL
    return (
        ours.metrics.join(best, on="target", how="left")
        .with_columns((pl.col("oracle_auc") - pl.col("auc")).alias("auc_gap"))
        .with_columns(
            ((pl.col("auc_gap") <= AUC_GAP_GOAL) & pl.col("calibration_slope").is_between(low, high)
             & (pl.col("brier_skill") > 0)).alias("goals")
        )
        .select(pl.lit(disease).alias("disease"), pl.all())
    )


def summary_path(config: Config) -> Path:
    return config.output.dir / "strata" / "summary.json"


# ------------------------------------------------------------------------------ several seeds

SEED_STEPS = ("input", "territories", "cases", "strata")
"""The pipeline's steps run on each generated world before the checks (no store)."""


def parse_seeds(text: str) -> list[int]:
    """``1-5``, ``1,3,7`` or ``1-3,8``: the seeds, in the order given; a :class:`ConfigError` for
    anything else, an empty range or a seed given twice."""
    return parse_ranges(text, "--seeds", "1-5 or 1,3,7")


def world_config(config: Config, data: Path, out: Path) -> Config:
    """``config`` run on the world ``respop synth`` wrote in ``data`` (its ``pmsi/`` and
    ``reference/``), writing its outputs and its store in ``out``; everything else (quality
    filters, territories, cases, diseases, algorithms) is the configuration's own; the files are
    read as the generator writes them (``format = "auto"``)."""
    data, out = data.resolve(), out.resolve()
    reference = data / "reference"
    return config.model_copy(update={
        "input": config.input.model_copy(update={"pmsi_dir": data / "pmsi", "reference_dir": reference, "format": "auto"}),
        "quality": config.quality.model_copy(update={"zones_file": reference / "zones.parquet"}),
        "output": config.output.model_copy(update={"dir": out}),
        "store": config.store.model_copy(update={"url": f"sqlite:///{(out / 'respop.sqlite').as_posix()}", "url_file": None}),
    })


@dataclass
class SeedChecks:
    """The checks of one generated world (``respop strata validate --seeds``)."""

    seed: int
    folder: Path
    """The world (``data/``) and the pipeline's outputs on it (``run/``)."""
    checks: list[Check]
    tables: list[tuple[str, pl.DataFrame]]


def seeds_summary(runs: list[SeedChecks]) -> list[tuple[str, dict[int, bool | None]]]:
    """Per check (in the order of the first seed that has it): its result on each seed (None:
    could not be checked)."""
    summary: dict[str, dict[int, bool | None]] = {}
    for run in runs:
        for check in run.checks:
            summary.setdefault(check.label, {})[run.seed] = check.ok
    return list(summary.items())
