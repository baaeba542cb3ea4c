"""A fabricated ``<output.dir>/evaluation/`` on a copy of the tiny run, written with the exact files
and columns of the evaluation step's outputs (issue 20, "Outputs of the step"), through
``respop.stages.stage_folder`` like the step itself: the store and the boards are tested on it
without the estimators.

tiny (seed 5) has three territories. The design: territory 1 is the pilot from 2021, territories 2
and 3 the donors. The panel's counts are the private care-use counts of the territories (stratum
``all``), so that the store's masks elsewhere in the run apply to them:

- ``diabetes.emergency_per_case``: every territory's emergency arrivals and people are published,
  so its effects, event study, trajectories and weights are published;
- ``diabetes.disease_stays``: the donors' stays of 2022 are masked in ``care_use`` (complements),
  the pilot's are all published: the DiD effect and the event study are masked (any donor), the
  synthetic control's too (its donor of positive weight, territory 3), its weights are published
  (pre-period 2019–2020 only), its synthetic trajectory is masked in 2022 only;
- ``heart_failure.readmissions_30d``: the pilot's own cells are masked in 2020 and 2021: every
  value is masked.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from respop.config import Config, load_config

PILOT, START, DONORS = 1, 2021, [2, 3]
OUTCOMES = [("diabetes", "emergency_per_case"), ("diabetes", "disease_stays"), ("heart_failure", "readmissions_30d")]
EVENTS = {"emergency_per_case": "emergency_stays", "disease_stays": "stays", "readmissions_30d": "readmissions_30d"}
EFFECTS = {  # (effect, lower, upper, p) of the DiD; the synthetic control's a little wider
    "emergency_per_case": (-0.12, -0.20, -0.03, 0.012),
    "disease_stays": (0.02, -0.05, 0.09, 0.61),
    "readmissions_30d": (-0.30, -0.55, 0.10, 0.14),
}

EVALUATION_SECTION = f'[evaluation]\npilots = {{ "{PILOT}" = {START} }}\n'


@dataclass(frozen=True)
class EvaluationRun:
    base: Path
    config_path: Path
    config: Config
    run_id: int


def copy_tiny(tiny_base: Path, folder: Path, section: str = EVALUATION_SECTION) -> Path:
    """tiny's data and outputs copied to ``folder`` (times kept: the steps still chain), with a
    configuration holding ``section`` and a store of its own; returns the configuration's path."""
    shutil.copytree(tiny_base / "data", folder / "data")
    shutil.copytree(tiny_base / "run", folder / "run", ignore=shutil.ignore_patterns("respop.sqlite*", "evaluation", "dossiers"))
    text = (tiny_base / "tiny.toml").read_text(encoding="utf-8")
    path = folder / "tiny.toml"
    path.write_text(text + "[store]\n" + f'url = "sqlite:///{(folder / "store.sqlite").as_posix()}"\n' + section, encoding="utf-8")
    return path


def write_evaluation(config: Config) -> None:
    """The fabricated evaluation/ of the module docstring, with its manifest."""
    from respop.stages import stage_folder, stage_inputs

    out = config.output.dir
    care = pl.read_parquet(out / "strata" / "care_use.parquet").filter(
        (pl.col("level") == "territory") & (pl.col("stratum") == "all")).with_columns(
        pl.col("unit").cast(pl.Int64).alias("territory_id"), pl.col("year").cast(pl.Int64))
    population = pl.read_parquet(out / "territories" / "territories.parquet", columns=["territory_id", "population"])
    names = dict(pl.read_parquet(out / "territories" / "territories.parquet", columns=["territory_id", "territory_name"]).iter_rows())
    years = sorted(set(care["year"].to_list()))
    panel = []
    for disease, outcome in OUTCOMES:
        rows = care.filter(pl.col("disease") == disease).join(population, on="territory_id")
        for r in rows.iter_rows(named=True):
            events = int(r[EVENTS[outcome]])
            per_case = outcome != "disease_stays"
            denominator = float(r["people"] if per_case else r["population"])
            value = events / denominator * (1.0 if per_case else 100_000.0)
            t = r["territory_id"]
            panel.append({
                "territory_id": t, "year": r["year"], "disease": disease, "outcome": outcome, "value": value,
                "crude": value, "events": events, "denominator": denominator, "log_var": 1.0 / max(events, 1),
                "role": "pilot" if t == PILOT else "donor", "start_year": START if t == PILOT else None,
            })
    panel = pl.DataFrame(panel, schema={
        "territory_id": pl.Int64, "year": pl.Int64, "disease": pl.String, "outcome": pl.String, "value": pl.Float64,
        "crude": pl.Float64, "events": pl.Int64, "denominator": pl.Float64, "log_var": pl.Float64, "role": pl.String,
        "start_year": pl.Int64,
    })
    level = {k: panel.filter((pl.col("outcome") == k[1]) & (pl.col("territory_id") == PILOT))["value"].mean() for k in OUTCOMES}
    effects, study, paths, weights, power, deprivation = [], [], [], [], [], []
    for disease, outcome in OUTCOMES:
        effect, low, high, p = EFFECTS[outcome]
        base = level[(disease, outcome)]
        for method, widen, note, fit in (("did", 0.0, None, 0.48), ("synthetic_control", 0.04, "trop peu de territoires de comparaison", 0.06)):
            for territory in (PILOT, None):
                effects.append({
                    "method": method, "disease": disease, "outcome": outcome, "territory_id": territory, "effect": effect,
                    "ci_lower": low - widen, "ci_upper": high + widen, "p_value": min(1.0, p + (0.32 if widen else 0.0)),
                    "effect_abs": effect * base, "counterfactual": base, "pre_fit": fit, "n_donors": len(DONORS),
                    "post_years": years[-1] - START + 1, "note": note,
                })
        for e in range(years[0] - START, years[-1] - START + 1):
            study.append({"disease": disease, "outcome": outcome, "event_time": e,
                          "effect": 0.0 if e == -1 else (effect * (e >= 0) + 0.01 * e),
                          "ci_lower": 0.0 if e == -1 else effect * (e >= 0) - 0.08,
                          "ci_upper": 0.0 if e == -1 else effect * (e >= 0) + 0.07, "n_pilots": 1})
        for y in years:
            observed = 1.0 + (effect if y >= START else 0.01 * (y - years[0]))
            paths.append({"disease": disease, "outcome": outcome, "territory_id": PILOT, "year": y,
                          "observed": observed, "synthetic": 1.0 + 0.005 * (y - years[0])})
        for donor, w in zip(DONORS, (0.35, 0.65) if outcome != "disease_stays" else (0.0, 1.0)):
            weights.append({"disease": disease, "outcome": outcome, "territory_id": PILOT, "donor_id": donor, "weight": w})
        for pop in (50_000, 100_000, 200_000):
            power.append({"disease": disease, "outcome": outcome, "population": pop, "years_pre": 3, "years_post": 2,
                          "mde": 0.9 / (pop / 50_000) ** 0.5, "alpha": 0.05, "power": 0.8})
        for y in years:
            for q in range(1, 6):
                events = [3, 14, 25, 40, 52][q - 1] + (y - years[0]) if outcome != "readmissions_30d" else q + 1
                denominator = float(100 + 20 * q) if outcome != "disease_stays" else float(2000 + 300 * q)
                deprivation.append({"year": y, "disease": disease, "outcome": outcome, "quintile": q, "events": events,
                                    "denominator": denominator, "value": events / denominator})
    design = {  # as respop.evaluation.design.Design.to_dict writes it
        "pilots": [{"territory_id": PILOT, "territory_name": names[PILOT], "start_year": START,
                    "pre_years": len([y for y in years if y < START])}],
        "donors": [{"territory_id": t, "territory_name": names[t]} for t in DONORS], "excluded": [],
        "outcomes": [{"disease": d, "outcome": o} for d, o in OUTCOMES],
        "years": years, "min_pre_years": 2, "confidence": 0.95, "deprivation": True,
    }
    with stage_folder(config, "evaluation", stage_inputs(config, "evaluation")) as folder:
        (folder / "design.json").write_text(json.dumps(design, ensure_ascii=False, indent=2), encoding="utf-8")
        panel.write_parquet(folder / "panel.parquet")
        pl.DataFrame(effects).cast({"territory_id": pl.Int64}).write_parquet(folder / "effects.parquet")
        pl.DataFrame(study).write_parquet(folder / "event_study.parquet")
        pl.DataFrame(paths).write_parquet(folder / "trajectories.parquet")
        pl.DataFrame(weights).write_parquet(folder / "weights.parquet")
        pl.DataFrame(power).write_parquet(folder / "power.parquet")
        pl.DataFrame(deprivation).write_parquet(folder / "by_deprivation.parquet")


def make_evaluation_run(tiny_base: Path, folder: Path) -> EvaluationRun:
    """tiny copied to ``folder`` with the fabricated evaluation, published to its own store."""
    from respop.pipeline import publish

    path = copy_tiny(tiny_base, folder)
    config = load_config(path)
    write_evaluation(config)
    run_id = publish(config, path)
    return EvaluationRun(folder, path, config, run_id)
