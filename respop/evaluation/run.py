"""``respop evaluate``: the evaluation of the experiment, written to ``<output.dir>/evaluation/``.

Reads the run's territories (names, zones), the strata step's person-years
(``strata/person_strata.parquet``: private), the population of each year and, when there is one,
the zone-level deprivation index; checks the design (:mod:`respop.evaluation.design`), builds
the territory × year panel of every outcome, age-sex standardised
(:mod:`respop.evaluation.outcomes`), and estimates each outcome's effect in the pilots by
difference-in-differences (:mod:`respop.evaluation.did`) and by synthetic control
(:mod:`respop.evaluation.synthetic_control`), with the power table (:mod:`respop.evaluation.power`).

**Series too small to evaluate.** A territory's series of an outcome enters the evaluation only
when every year has at least :data:`MIN_EVENTS` events and a denominator of at least
:data:`MIN_EVENTS`: below, a log-rate is too noisy for either method (a year with 0 events has
none), and no published value of the evaluation then rests on a count of 1 to 10 (the store masks
those; docs/evaluation.md). A pilot whose series is too small gets a row saying so, without
figures; a donor's is left out of that outcome's pool.

Outputs (docs/evaluation.md): ``design.json``, ``panel.parquet`` (private: it holds the counts),
``effects.parquet``, ``event_study.parquet``, ``trajectories.parquet``, ``weights.parquet``,
``power.parquet``, ``by_deprivation.parquet`` (with a deprivation index), ``summary.json``.
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
from respop.case_finding.run import load_population, zone_territory
from respop.config import Config, require_population
from respop.errors import ConfigError, InputError
from respop.evaluation import did, power, synthetic_control
from respop.evaluation.deprivation import DEPRIVATION_FILE, by_quintile, quintiles, read_deprivation
from respop.evaluation.design import Design, resolve_design
from respop.evaluation.outcomes import available_outcomes, build_panel, higher_is_worse, outcome_label, scale, unit_label
from respop.spec.catalogue import Catalogue, run_catalogue
from respop.stages import stage_folder, stage_inputs

Progress = Callable[[str], None]

MIN_EVENTS = 20
"""Events and denominator a territory's series needs in every year to enter an outcome's
evaluation (module docstring)."""


EFFECT_COLUMNS = {
    "method": pl.String, "disease": pl.String, "outcome": pl.String, "territory_id": pl.Int64,
    "effect": pl.Float64, "ci_lower": pl.Float64, "ci_upper": pl.Float64, "p_value": pl.Float64,
    "effect_abs": pl.Float64, "counterfactual": pl.Float64, "pre_fit": pl.Float64,
    "n_donors": pl.Int64, "post_years": pl.Int64, "note": pl.String,
}
"""The columns of ``effects.parquet`` (territory_id null: every pilot pooled)."""

POWER_POST_YEARS = (1, 2, 3)
"""Years after the start of the power table (the smallest detectable effect after 1, 2, 3 years)."""

NOTE_SMALL = "non évaluable : moins de {n} événements une année au moins dans ce territoire"
NOTE_NO_DONOR = "non évaluable : trop peu de territoires de comparaison avec assez d'événements chaque année"


@dataclass
class EvaluationResult:
    out: Path
    design: Design
    effects: pl.DataFrame = field(repr=False)
    summary: dict


def steps(config: Config) -> int:
    return 4


def _read(path: Path, what: str, command: str) -> Path:
    if not path.is_file():
        raise InputError(f"{what} is not there: run `{command}` on this configuration first", path)
    return path


def territory_names(config: Config) -> dict[int, str]:
    zt = zone_territory(config)
    if zt is None:
        raise InputError("the territories are not there: run `respop territories build` first",
                         config.output.dir / "territories" / "zone_territory.parquet")
    pairs = zt.select("territory_id", "territory_name").unique().sort("territory_id")
    return {int(t): str(n) for t, n in pairs.iter_rows()}


def territory_adjacency(config: Config, zt: pl.DataFrame) -> list[tuple[int, int]]:
    """Pairs of territories sharing a border (their zones' rook adjacency)."""
    import geopandas as gpd

    from respop.delineation.flows import rook_adjacency

    path = config.input.reference_dir / "zones.parquet" if config.input.reference_dir is not None else None
    if path is None or not path.is_file():
        raise InputError("zones.parquet is needed to find the pilots' neighbours (exclude_neighbours = true)", path)
    pairs = rook_adjacency(gpd.read_parquet(path, columns=["zone_code", "geometry"]))
    t = zt.select("zone_code", "territory_id")
    joined = (
        pairs.join(t, on="zone_code").join(t.rename({"zone_code": "neighbour_code", "territory_id": "neighbour_id"}), on="neighbour_code")
        .filter(pl.col("territory_id") != pl.col("neighbour_id")).select("territory_id", "neighbour_id").unique()
    )
    return [(int(a), int(b)) for a, b in joined.iter_rows()]


def deprivation_path(config: Config) -> Path | None:
    """The configured deprivation file, else ``deprivation.parquet`` of the reference folder when
    present, else None (no context by deprivation)."""
    evaluation = config.evaluation
    if evaluation is not None and evaluation.deprivation_file is not None:
        if not evaluation.deprivation_file.is_file():
            raise InputError("deprivation index not found ([evaluation] deprivation_file)", evaluation.deprivation_file)
        return evaluation.deprivation_file
    folder = config.input.reference_dir
    if folder is not None and (folder / DEPRIVATION_FILE).is_file():
        return folder / DEPRIVATION_FILE
    return None


def evaluable(panel: pl.DataFrame, years: list[int]) -> set[int]:
    """Territories of one outcome's panel with every year present, at least :data:`MIN_EVENTS`
    events and denominator each year, and a positive value."""
    ok = (
        panel.filter(pl.col("year").is_in(years))
        .group_by("territory_id")
        .agg(
            pl.len().alias("n"),
            (pl.col("events").min() >= MIN_EVENTS).alias("events_ok"),
            (pl.col("denominator").min() >= MIN_EVENTS).alias("denominator_ok"),
            (pl.col("value").min() > 0).alias("value_ok"),
        )
        .filter((pl.col("n") == len(years)) & pl.col("events_ok") & pl.col("denominator_ok") & pl.col("value_ok"))
    )
    return {int(t) for t in ok["territory_id"]}


def _empty_row(method: str, disease: str, outcome: str, territory: int | None, note: str, n_donors: int, post: int) -> dict:
    row = dict.fromkeys(EFFECT_COLUMNS)
    row.update(method=method, disease=disease, outcome=outcome, territory_id=territory, note=note,
               n_donors=n_donors, post_years=post)
    return row


def territory_inhabitants(population: pl.DataFrame, zt: pl.DataFrame, years: list[int]) -> pl.DataFrame:
    """territory_id, year, population (every age): the power table's sizes are inhabitants."""
    pop = population.join(zt.select("zone_code", "territory_id"), on="zone_code")
    if "year" in pop.columns:
        return pop.group_by("territory_id", pl.col("year").cast(pl.Int64)).agg(pl.col("population").sum())
    total = pop.group_by("territory_id").agg(pl.col("population").sum())
    return total.join(pl.DataFrame({"year": years}, schema={"year": pl.Int64}), how="cross")


def territory_covariates(population: pl.DataFrame, zt: pl.DataFrame, deprivation: pl.DataFrame | None, year: int) -> pl.DataFrame:
    """Per territory: the share of inhabitants aged 75 or more and, with an index, the
    population-weighted mean deprivation (the synthetic control's covariates; the year before
    the first start)."""
    pop = population
    if "year" in pop.columns:
        years = pop["year"].unique().sort().to_list()
        chosen = max([y for y in years if y <= year], default=years[0])
        pop = pop.filter(pl.col("year") == chosen)
    pop = pop.join(zt.select("zone_code", "territory_id"), on="zone_code")
    old = pl.col("age_band").str.slice(0, 2).cast(pl.Int64, strict=False) >= 75
    out = pop.group_by("territory_id").agg(
        (pl.col("population").filter(old).sum() / pl.col("population").sum()).alias("share_75_plus")
    )
    if deprivation is not None:
        zone_pop = pop.group_by("zone_code", "territory_id").agg(pl.col("population").sum())
        dep = zone_pop.join(deprivation.select("zone_code", "deprivation"), on="zone_code").group_by("territory_id").agg(
            ((pl.col("deprivation") * pl.col("population")).sum() / pl.col("population").sum()).alias("deprivation")
        )
        out = out.join(dep, on="territory_id", how="left")
    return out.sort("territory_id")


def run_evaluation(
    config: Config,
    progress: Progress | None = None,
    input_fingerprint: dict | None = None,
    catalogue: Catalogue | None = None,
) -> EvaluationResult:
    """The evaluation step (module docstring); outputs written atomically."""
    step = progress or (lambda _: None)
    started = time.perf_counter()
    require_population(config, "l'évaluation", "the evaluation")
    evaluation = config.evaluation
    if evaluation is None:
        raise ConfigError("the configuration has no [evaluation] section: name the pilot territories and their start years (docs/evaluation.md)")
    inputs = stage_inputs(config, "evaluation", input_fingerprint)
    catalogue = catalogue if catalogue is not None else run_catalogue(config)
    step("reading the territories and the person-years")
    names = territory_names(config)
    zt = zone_territory(config)
    ps_path = _read(config.output.dir / "strata" / "person_strata.parquet", "the strata step's person-years", "respop strata run")
    person_strata = pl.read_parquet(ps_path)
    population = load_population(config).table
    years = sorted(int(y) for y in person_strata["year"].unique().to_list())
    available = {spec.disease: available_outcomes(spec, catalogue.features) for spec in catalogue.specs}
    adjacency = territory_adjacency(config, zt) if evaluation.exclude_neighbours else []
    design = resolve_design(evaluation, names, years, available, adjacency)
    dep_path = deprivation_path(config)
    deprivation = None
    dep_quarantined = 0
    if dep_path is not None:
        deprivation, dep_quarantine = read_deprivation(dep_path)
        dep_quarantined = dep_quarantine.height
    step("building the outcomes per territory and year")
    panel = build_panel(person_strata, population, zt, catalogue, design.outcomes)
    covariates = territory_covariates(population, zt, deprivation, min(design.pilots.values()) - 1)
    inhabitants = territory_inhabitants(population, zt, design.years)
    step("estimating the effects")
    effects, events, trajectories, weights, powers, panels = [], [], [], [], [], []
    for disease, outcome in design.outcomes:
        sub = panel.filter((pl.col("disease") == disease) & (pl.col("outcome") == outcome))
        ok = evaluable(sub, design.years)
        pilots = {t: s for t, s in design.pilots.items() if t in ok}
        donors = [d for d in design.donors if d in ok]
        role = (
            pl.when(pl.col("territory_id").is_in(list(pilots))).then(pl.lit("pilot"))
            .when(pl.col("territory_id").is_in(donors)).then(pl.lit("donor"))
            .otherwise(pl.lit("excluded"))
        )
        panels.append(sub.with_columns(
            role.alias("role"),
            pl.col("territory_id").replace_strict(design.pilots, default=None, return_dtype=pl.Int64).alias("start_year"),
        ))
        for method in ("did", "synthetic_control"):
            for t in design.pilots:
                if t not in pilots:
                    effects.append(_empty_row(method, disease, outcome, t, NOTE_SMALL.format(n=MIN_EVENTS), len(donors),
                                              len([y for y in design.years if y >= design.pilots[t]])))
        if not pilots:
            continue
        if len(donors) < 2:
            for method in ("did", "synthetic_control"):
                for t in pilots:
                    effects.append(_empty_row(method, disease, outcome, t, NOTE_NO_DONOR, len(donors),
                                              len([y for y in design.years if y >= pilots[t]])))
            continue
        data = sub.filter(pl.col("territory_id").is_in([*pilots, *donors]))
        key = {"disease": disease, "outcome": outcome}
        d = did.estimate(data, pilots, donors, evaluation.confidence)
        effects.append(_effects(d.overall, "did", key, len(donors)))
        events.append(d.event_study.with_columns(pl.lit(disease).alias("disease"), pl.lit(outcome).alias("outcome")))
        s = synthetic_control.estimate(data, pilots, donors, evaluation.confidence, covariates=covariates)
        effects.append(_effects(s.overall, "synthetic_control", key, len(donors)))
        trajectories.append(s.trajectories.with_columns(pl.lit(disease).alias("disease"), pl.lit(outcome).alias("outcome")))
        weights.append(s.weights.with_columns(pl.lit(disease).alias("disease"), pl.lit(outcome).alias("outcome")))
        pre = min(len(design.pre_years(t)) for t in pilots)
        powers.append(
            power.power_table(data, evaluation.power_populations, pre, list(POWER_POST_YEARS), donors=donors, inhabitants=inhabitants)
            .with_columns(pl.lit(disease).alias("disease"), pl.lit(outcome).alias("outcome"))
        )
    effects_frame = _frame(effects, EFFECT_COLUMNS)
    by_dep = None
    if deprivation is not None:
        step("outcomes by deprivation quintile")
        zone_quintile = quintiles(deprivation, population)
        by_dep = by_quintile(person_strata, population, zone_quintile, catalogue, design.outcomes)
    summary = {
        "name": config.name,
        "respop_version": __version__,
        "written": dt.datetime.now().isoformat(timespec="seconds"),
        "seconds": round(time.perf_counter() - started, 1),
        "min_events": MIN_EVENTS,
        "deprivation": None if dep_path is None else {"file": dep_path.name, "quarantined": dep_quarantined},
        "effects": effects_frame.filter(pl.col("territory_id").is_null()).drop("note").to_dicts(),
    }
    step("writing the outputs")
    out = config.output.dir / "evaluation"
    with stage_folder(config, "evaluation", inputs) as tmp:
        design_dict = design.to_dict(evaluation.min_pre_years, evaluation.confidence, deprivation is not None)
        # the French labels travel with the outputs: the store and the boards read them here
        for item in design_dict["outcomes"]:
            spec = catalogue.spec(item["disease"])
            item.update(label=outcome_label(item["outcome"], spec.algorithm.name, catalogue.features),
                        unit=unit_label(item["outcome"], spec), scale=scale(item["outcome"]),
                        higher_is_worse=higher_is_worse(item["outcome"]))
        design_dict["min_events"] = MIN_EVENTS
        (tmp / "design.json").write_text(json.dumps(design_dict, indent=2, ensure_ascii=False), encoding="utf-8")
        pl.concat(panels, how="diagonal_relaxed").write_parquet(tmp / "panel.parquet")
        effects_frame.write_parquet(tmp / "effects.parquet")
        _concat(events, did.EVENT_STUDY_SCHEMA).write_parquet(tmp / "event_study.parquet")
        _concat(trajectories, synthetic_control.TRAJECTORY_SCHEMA).write_parquet(tmp / "trajectories.parquet")
        _concat(weights, synthetic_control.WEIGHT_SCHEMA).write_parquet(tmp / "weights.parquet")
        _concat(powers, power.POWER_SCHEMA).write_parquet(tmp / "power.parquet")
        if by_dep is not None:
            by_dep.write_parquet(tmp / "by_deprivation.parquet")
        (tmp / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False, default=str), encoding="utf-8")
    return EvaluationResult(out=out, design=design, effects=effects_frame, summary=summary)


def _effects(overall: pl.DataFrame, method: str, key: dict, n_donors: int) -> list[dict]:
    rows = []
    for r in overall.iter_rows(named=True):
        row = dict.fromkeys(EFFECT_COLUMNS)
        row.update({k: v for k, v in r.items() if k in EFFECT_COLUMNS})
        row.update(method=method, n_donors=n_donors, **key)
        if row.get("pre_fit") is None:
            row["pre_fit"] = r.get("pre_trend_p", r.get("pre_rmspe"))
        if row.get("post_years") is None:
            row["post_years"] = r.get("n_post_years")
        if row["effect"] is not None and row["counterfactual"] is not None:
            row["effect_abs"] = row["effect"] * row["counterfactual"]
        rows.append(row)
    return rows


def _frame(rows: list, schema: dict) -> pl.DataFrame:
    flat = [r for item in rows for r in (item if isinstance(item, list) else [item])]
    return pl.DataFrame(flat, schema=schema, orient="row") if flat else pl.DataFrame(schema=schema)


def _concat(frames: list[pl.DataFrame], schema: dict) -> pl.DataFrame:
    """The frames of every outcome, or an empty frame with the columns (and disease, outcome)."""
    if frames:
        return pl.concat(frames, how="diagonal_relaxed")
    return pl.DataFrame(schema={**schema, "disease": pl.String, "outcome": pl.String})
