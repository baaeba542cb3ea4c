"""A fabricated ``<output.dir>/evaluation/`` on a copy of the tiny run, written with the exact files
and columns of the evaluation step's outputs (issue 20, "Outputs of the step"; design.json with the
French labels as :mod:`respop.evaluation.run` writes them), through ``respop.stages.stage_folder``
like the step itself: the store and the boards are tested on it without the estimators.

tiny has three territories: one is the pilot from 2021, the two others the donors. The panel's
counts are the private care-use counts of the territories (stratum ``all``): an outcome's events
and its cases (``people``), so that the store's masks elsewhere in the run apply to them. Which
cells the store masks depends on the world (seed, generator), so the design is chosen from the
care use the tiny run published (:func:`choose_design`): a pilot and three outcomes, one per role
of :data:`ROLES`:

- ``published``: every territory's cells published every year: everything is published;
- ``donor_masked``: the pilot's cells all published, a donor's masked in some year: the DiD
  effects and event study are masked (any donor), the synthetic control's too (the masked donor
  has a positive weight);
- ``pilot_masked``: a cell of the pilot masked: every effect is masked.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from respop.config import Config, load_config

START = 2021
ROLES = ("published", "donor_masked", "pilot_masked")
EVENTS = {"emergency_per_case": "emergency_stays", "readmissions_30d": "readmissions_30d",
          "deaths_per_case": "deaths", "bed_days_per_case": "bed_days"}
"""The per-case outcomes the fabricated panel holds: the care-use column of their events (their
denominator: the cases, ``people``)."""
EFFECTS = {  # (effect, lower, upper, p) of the DiD per role; the synthetic control's a little wider
    "published": (-0.12, -0.20, -0.03, 0.012),
    "donor_masked": (0.02, -0.05, 0.09, 0.61),
    "pilot_masked": (-0.30, -0.55, 0.10, 0.14),
}


@dataclass(frozen=True)
class Design:
    """The fabricated design: the pilot (from :data:`START`), the donors, and the (disease,
    outcome) of each role of :data:`ROLES`."""

    pilot: int
    donors: list[int]
    outcomes: dict[str, tuple[str, str]] = field(default_factory=dict)

    @property
    def section(self) -> str:
        # min_pre_years as the fabricated design.json says: tiny's 2019 and 2020 before the start
        # (the default, 3, is not met, and the run would leave the evaluation out: respop.periods)
        return f'[evaluation]\npilots = {{ "{self.pilot}" = {START} }}\nmin_pre_years = 2\n'


@dataclass(frozen=True)
class EvaluationRun:
    base: Path
    config_path: Path
    config: Config
    run_id: int
    design: Design


def masked_cells(care_published: pl.DataFrame, disease: str, outcome: str) -> set[tuple[int, int]]:
    """(territory, year) whose cells of the outcome (events or cases) the published ``care_use``
    masks (territory level, stratum ``all``)."""
    rows = care_published.filter((pl.col("level") == "territory") & (pl.col("stratum") == "all") & (pl.col("disease") == disease))
    columns = (EVENTS[outcome], "people")
    return {(int(r["unit"]), int(r["year"])) for r in rows.iter_rows(named=True) if any(r[c] is None for c in columns)}


def choose_design(care_published: pl.DataFrame) -> Design:
    """The first pilot (by id) for which the published care use has an outcome of each role."""
    territories = sorted({int(u) for u in care_published.filter(pl.col("level") == "territory")["unit"]})
    diseases = sorted(set(care_published["disease"].to_list()))
    for pilot in territories:
        donors = [t for t in territories if t != pilot]
        found: dict[str, tuple[str, str]] = {}
        for disease in diseases:
            for outcome in EVENTS:
                hidden = {t for t, _ in masked_cells(care_published, disease, outcome)}
                role = ("pilot_masked" if pilot in hidden else "donor_masked" if hidden else "published")
                found.setdefault(role, (disease, outcome))
        if len(found) == len(ROLES):
            return Design(pilot, donors, {role: found[role] for role in ROLES})
    raise AssertionError("the tiny run masks no territory cell that a fabricated evaluation can depend on "
                         "(or none is published everywhere): choose another seed for tests/store/conftest.py")


def published_care_use(tiny_base: Path) -> pl.DataFrame:
    """The care use the tiny run published (its own store)."""
    from respop.store.db import Store

    config = load_config(tiny_base / "tiny.toml")
    store = Store(config.store.url)
    try:
        return store.read("care_use", store.latest_run())
    finally:
        store.close()


def copy_tiny(tiny_base: Path, folder: Path, section: str) -> Path:
    """tiny's data and outputs copied to ``folder`` (times kept: the steps still chain), with a
    configuration holding ``section`` and a store of its own; returns the configuration's path."""
    shutil.copytree(tiny_base / "data", folder / "data")
    shutil.copytree(tiny_base / "run", folder / "run", ignore=shutil.ignore_patterns("respop.sqlite*", "evaluation", "dossiers"))
    text = (tiny_base / "tiny.toml").read_text(encoding="utf-8").split("[evaluation]")[0]  # tiny's own design replaced
    path = folder / "tiny.toml"
    path.write_text(text + "[store]\n" + f'url = "sqlite:///{(folder / "store.sqlite").as_posix()}"\n' + section, encoding="utf-8")
    return path


def design_outcomes(config: Config, outcomes: list[tuple[str, str]]) -> list[dict]:
    """design.json's outcomes with their French labels, unit, scale and direction, exactly as the
    evaluation step writes them (respop.evaluation.run)."""
    from respop.evaluation.outcomes import higher_is_worse, outcome_label, scale, unit_label
    from respop.spec.catalogue import run_catalogue

    catalogue = run_catalogue(config)
    items = []
    for disease, outcome in outcomes:
        spec = catalogue.spec(disease)
        items.append({"disease": disease, "outcome": outcome,
                      "label": outcome_label(outcome, spec.algorithm.name, catalogue.features),
                      "unit": unit_label(outcome, spec), "scale": scale(outcome), "higher_is_worse": higher_is_worse(outcome)})
    return items


def write_evaluation(config: Config, design: Design) -> None:
    """The fabricated evaluation/ of the module docstring, with its manifest."""
    from respop.evaluation.run import MIN_EVENTS
    from respop.stages import stage_folder, stage_inputs

    out = config.output.dir
    care = pl.read_parquet(out / "strata" / "care_use.parquet").filter(
        (pl.col("level") == "territory") & (pl.col("stratum") == "all")).with_columns(
        pl.col("unit").cast(pl.Int64).alias("territory_id"), pl.col("year").cast(pl.Int64))
    names = dict(pl.read_parquet(out / "territories" / "territories.parquet", columns=["territory_id", "territory_name"]).iter_rows())
    years = sorted(set(care["year"].to_list()))
    pilot, donors = design.pilot, design.donors
    panel = []
    for disease, outcome in design.outcomes.values():
        for r in care.filter(pl.col("disease") == disease).iter_rows(named=True):
            events, denominator = int(r[EVENTS[outcome]]), float(r["people"])
            t, value = r["territory_id"], events / max(denominator, 1.0)
            panel.append({
                "territory_id": t, "year": r["year"], "disease": disease, "outcome": outcome, "value": value,
                "crude": value, "events": events, "denominator": denominator, "log_var": 1.0 / max(events, 1),
                "role": "pilot" if t == pilot else "donor", "start_year": START if t == pilot else None,
            })
    panel = pl.DataFrame(panel, schema={
        "territory_id": pl.Int64, "year": pl.Int64, "disease": pl.String, "outcome": pl.String, "value": pl.Float64,
        "crude": pl.Float64, "events": pl.Int64, "denominator": pl.Float64, "log_var": pl.Float64, "role": pl.String,
        "start_year": pl.Int64,
    })
    effects, study, paths, weights, power, deprivation = [], [], [], [], [], []
    for role, (disease, outcome) in design.outcomes.items():
        effect, low, high, p = EFFECTS[role]
        base = panel.filter((pl.col("outcome") == outcome) & (pl.col("disease") == disease) & (pl.col("territory_id") == pilot))["value"].mean()
        for method, widen, note, fit in (("did", 0.0, None, 0.48), ("synthetic_control", 0.04, "trop peu de territoires de comparaison", 0.06)):
            for territory in (pilot, None):
                effects.append({
                    "method": method, "disease": disease, "outcome": outcome, "territory_id": territory, "effect": effect,
                    "ci_lower": low - widen, "ci_upper": high + widen, "p_value": min(1.0, p + (0.32 if widen else 0.0)),
                    "effect_abs": effect * base, "counterfactual": base, "pre_fit": fit, "n_donors": len(donors),
                    "post_years": years[-1] - START + 1, "note": note,
                })
        for e in range(years[0] - START, years[-1] - START + 1):
            study.append({"disease": disease, "outcome": outcome, "event_time": e,
                          "effect": 0.0 if e == -1 else (effect * (e >= 0) + 0.01 * e),
                          "ci_lower": 0.0 if e == -1 else effect * (e >= 0) - 0.08,
                          "ci_upper": 0.0 if e == -1 else effect * (e >= 0) + 0.07, "n_pilots": 1})
        for y in years:
            observed = 1.0 + (effect if y >= START else 0.01 * (y - years[0]))
            paths.append({"disease": disease, "outcome": outcome, "territory_id": pilot, "year": y,
                          "observed": observed, "synthetic": 1.0 + 0.005 * (y - years[0])})
        for donor, w in zip(donors, (0.35, 0.65)):
            weights.append({"disease": disease, "outcome": outcome, "territory_id": pilot, "donor_id": donor, "weight": w})
        for pop in (50_000, 100_000, 200_000):
            power.append({"disease": disease, "outcome": outcome, "population": pop, "years_pre": 3, "years_post": 2,
                          "mde": 0.9 / (pop / 50_000) ** 0.5, "alpha": 0.05, "power": 0.8})
        for y in years:
            for q in range(1, 6):
                events = [3, 14, 25, 40, 52][q - 1] + (y - years[0])
                denominator = float(100 + 20 * q)
                deprivation.append({"year": y, "disease": disease, "outcome": outcome, "quintile": q, "events": events,
                                    "denominator": denominator, "value": events / denominator})
    design_json = {  # as respop.evaluation.run writes it (Design.to_dict, then the outcomes' labels and min_events)
        "pilots": [{"territory_id": pilot, "territory_name": names[pilot], "start_year": START,
                    "pre_years": len([y for y in years if y < START])}],
        "donors": [{"territory_id": t, "territory_name": names[t]} for t in donors], "excluded": [],
        "outcomes": design_outcomes(config, list(design.outcomes.values())),
        "years": years, "min_pre_years": 2, "confidence": 0.95, "deprivation": True, "min_events": MIN_EVENTS,
    }
    with stage_folder(config, "evaluation", stage_inputs(config, "evaluation")) as folder:
        (folder / "design.json").write_text(json.dumps(design_json, ensure_ascii=False, indent=2), encoding="utf-8")
        panel.write_parquet(folder / "panel.parquet")
        pl.DataFrame(effects).cast({"territory_id": pl.Int64}).write_parquet(folder / "effects.parquet")
        pl.DataFrame(study).write_parquet(folder / "event_study.parquet")
        pl.DataFrame(paths).write_parquet(folder / "trajectories.parquet")
        pl.DataFrame(weights).write_parquet(folder / "weights.parquet")
        pl.DataFrame(power).write_parquet(folder / "power.parquet")
        pl.DataFrame(deprivation).write_parquet(folder / "by_deprivation.parquet")


def make_evaluation_run(tiny_base: Path, folder: Path) -> EvaluationRun:
    """tiny copied to ``folder`` with the fabricated evaluation (its design chosen from what the
    tiny run published), published to its own store."""
    from respop.pipeline import publish

    design = choose_design(published_care_use(tiny_base))
    path = copy_tiny(tiny_base, folder, design.section)
    config = load_config(path)
    write_evaluation(config, design)
    run_id = publish(config, path)
    return EvaluationRun(folder, path, config, run_id, design)
