"""Build the territories of a configuration: ``respop territories build`` and ``compare``.

Reads the reference tables (zones, population, hospitals) and the canonical stays, builds the
flow problem on the configured scope, fits the method, applies the manual pins, checks the
guarantees, and writes the outputs (zone → territory, dissolved polygons with metrics, metrics
table, fragile zones, map) atomically under ``<output.dir>/territories``.
"""

from __future__ import annotations

import json
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import polars as pl

from respop.config import HOSPITAL_KINDS, Config, require_population
from respop.delineation import guarantees
from respop.delineation.base import Delineation, DelineationError, FlowProblem, finalize
from respop.delineation.flows import build_problem
from respop.delineation.leiden import AnchorWarning, Leiden, TargetCountWarning
from respop.delineation.metrics import fragile_zones, overall_metrics, territory_metrics
from respop.delineation.outputs import territory_names, write_outputs
from respop.delineation.plurality import Plurality
from respop.errors import ConfigError, InputError
from respop.stages import stage_folder, stage_inputs

Progress = Callable[[str], None]
METHODS: dict[str, type[Delineation]] = {"plurality": Plurality, "leiden": Leiden}


@dataclass
class Reference:
    zones: gpd.GeoDataFrame
    population: pl.DataFrame
    hospitals: pl.DataFrame


def load_reference(config: Config) -> Reference:
    """zones.parquet (GeoParquet), population.parquet and hospitals.parquet of input.reference_dir."""
    folder = config.input.reference_dir
    if folder is None:
        raise ConfigError("input.reference_dir is not set: the folder of zones.parquet, population.parquet, hospitals.parquet")
    needed = {
        "zones.parquet": ("zone_code", "geometry"),
        "population.parquet": ("zone_code", "population"),
        "hospitals.parquet": ("hospital_id", "zone_code"),
    }
    for name, columns in needed.items():
        path = folder / name
        if not path.is_file():
            raise InputError("reference table not found", path)
        present = pl.read_parquet_schema(path).names()
        missing = [c for c in columns if c not in present]
        if missing:
            raise InputError(f"reference table lacks the column(s) {', '.join(missing)}", path, column=missing[0])
    hospitals_path = folder / "hospitals.parquet"
    if config.territories.hospital_grouping == "town" and "town" not in pl.read_parquet_schema(hospitals_path).names():
        raise InputError('reference table lacks the column town, which hospital_grouping = "town" groups on',
                         hospitals_path, column="town")
    if "kind" in pl.read_parquet_schema(hospitals_path).names():
        # a misspelt kind ("Ch") would silently take a CH out of the anchor rule: refuse it
        kinds = pl.read_parquet(hospitals_path, columns=["kind"])["kind"].cast(pl.String).drop_nulls().unique().sort()
        unknown = [k for k in kinds.to_list() if k not in HOSPITAL_KINDS]
        if unknown:
            raise InputError(f"reference table: unknown hospital kind(s) {', '.join(map(repr, unknown))} in the column "
                             f"kind (known: {', '.join(HOSPITAL_KINDS)}; leave it empty when unknown)",
                             hospitals_path, column="kind")
    return Reference(
        zones=gpd.read_parquet(folder / "zones.parquet"),
        population=pl.read_parquet(folder / "population.parquet"),
        hospitals=pl.read_parquet(folder / "hospitals.parquet"),
    )


def scope(config: Config, zones: gpd.GeoDataFrame) -> list[str]:
    """The zone codes in scope; unknown départements or zones are a ConfigError naming them."""
    t = config.territories
    codes = zones["zone_code"].astype(str)
    if t.zones is not None:
        unknown = sorted(set(t.zones) - set(codes))
        if unknown:
            raise ConfigError(f"territories.zones: unknown zone(s) {', '.join(unknown)}")
        return sorted(t.zones)
    if t.departements is not None:
        # PMSI zone codes start with their département: 29xxx, 2Axxx, 971xx
        inside = {dep: codes[codes.str.startswith(dep)] for dep in t.departements}
        unknown = sorted(dep for dep, zones_in in inside.items() if zones_in.empty)
        if unknown:
            raise ConfigError(f"territories.departements: no zone in département(s) {', '.join(unknown)}")
        return sorted({z for zones_in in inside.values() for z in zones_in})
    return sorted(codes)


def make_problem(config: Config, stays: pl.LazyFrame, reference: Reference) -> FlowProblem:
    t = config.territories
    grouping = t.hospital_grouping if t.hospital_grouping in ("establishment", "town") else Path(t.hospital_grouping)
    return build_problem(
        stays,
        reference.zones,
        reference.population,
        reference.hospitals,
        grouping=grouping,
        scope=scope(config, reference.zones),
        years=t.years,
        adults_only=t.adults_only,
        diagnosis_prefixes=t.diagnosis_prefixes,
        kind=t.stay_kind,
    )


def territory_inputs(config: Config, progress=None, data=None) -> tuple[Reference, FlowProblem]:
    """The reference tables and the flow problem of a configuration. ``data``: the PMSI already
    read (``respop run`` shares it across steps; the flows keep the stays of the flow years).
    Otherwise the staged input when it is up to date (respop.pmsi.stage), else only the PMSI
    files of the flow years (``territories.years``) are read: each file
    holds the stays that ended in its year, so the others cannot contribute (and reading five
    national years to keep one is costly)."""
    from respop.pmsi import read_pmsi

    say = progress or (lambda _message: None)
    say("reading the reference tables")
    reference = load_reference(config)
    if data is not None:
        say("counting zone → hospital flows")
        return reference, make_problem(config, data.stays, reference)
    from respop.pmsi.stage import for_step

    staged = for_step(config, build=False)  # the staged input when it is up to date
    if staged is not None:
        try:
            say("counting zone → hospital flows")
            return reference, make_problem(config, staged.stays, reference)
        finally:
            staged.close()
    input_config = config.input
    if config.territories.years:
        wanted = sorted(set(config.territories.years) & set(input_config.years or config.territories.years))
        input_config = input_config.model_copy(update={"years": wanted or config.territories.years})
    say("reading the PMSI stays")
    data = read_pmsi(None, input_config, config.quality)
    try:
        say("counting zone → hospital flows")
        problem = make_problem(config, data.stays, reference)
    finally:
        data.close()
    return reference, problem


def make_method(config: Config, name: str | None = None) -> Delineation:
    t = config.territories
    name = name or t.method
    if name == "leiden":
        return Leiden(resolution=t.resolution, target_count=t.target_count, min_population=t.min_population, seed=t.seed,
                      min_containment=t.min_containment, min_localization=t.min_localization,
                      anchor_kinds=tuple(t.anchor_kinds))
    if name == "plurality":
        return Plurality(min_population=t.min_population)
    raise ConfigError(f"unknown delineation method {name!r} (known: {', '.join(METHODS)})")


def apply_pins(method: Delineation, pins: dict[str, str], problem: FlowProblem, min_population: int = 0) -> None:
    """Move each pinned zone to the territory of its anchor zone, then re-check contiguity.

    A pin naming an unknown zone, or one that leaves a territory in pieces, is a ConfigError that
    says which zone and why."""
    if not pins:
        return
    known = set(problem.zone_codes)
    for zone, anchor in pins.items():
        for code, role in ((zone, "pinned zone"), (anchor, "anchor zone")):
            if code not in known:
                raise ConfigError(f"territories.pins: {role} {code} is not a zone of the scope")
    target = dict(method.assignment_.iter_rows())
    moved = method.assignment_.with_columns(
        pl.col("zone_code").replace_strict({z: target[a] for z, a in pins.items()}, default=pl.col("territory_id"), return_dtype=pl.Int32).alias("territory_id")
    )
    try:
        guarantees.check(moved, problem, min_population)
    except DelineationError as exc:
        raise ConfigError(f"territories.pins break a territory ({exc}); pin neighbouring zones together or change the anchor") from None
    method.assignment_, method.main_group_ = finalize(moved, problem)


@dataclass
class BuildResult:
    method: Delineation
    problem: FlowProblem
    names: pl.DataFrame
    metrics: pl.DataFrame
    overall: dict
    fragile: pl.DataFrame
    seconds: float
    paths: dict[str, Path]
    selected: dict | None = None


def fit(config: Config, problem: FlowProblem, name: str | None = None) -> tuple[Delineation, float]:
    method = make_method(config, name)
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", TargetCountWarning)
        warnings.simplefilter("always", AnchorWarning)
        method.fit(problem)
    seconds = time.perf_counter() - start
    note = getattr(method, "anchor_note_", None)
    if note:  # the anchor rule asked for but off (no kind column): said, not silent
        print(f"respop: warning: territories: {note}", file=sys.stderr)
    for warning in caught:  # an unreachable target_count, territories without an anchor: said, not silent
        print(f"respop: warning: territories: {warning.message}", file=sys.stderr)
    return method, seconds


def build(
    config: Config, problem: FlowProblem, reference: Reference, write: bool = True, input_fingerprint: dict | None = None
) -> BuildResult:
    """Fit the configured method, apply the pins, check, measure and (optionally) write.
    ``input_fingerprint``: the PMSI's, taken before reading it (respop.stages; default: now)."""
    require_population(config, "le découpage en territoires", "building territories")
    inputs = stage_inputs(config, "territories", input_fingerprint) if write else None
    method, seconds = fit(config, problem)
    apply_pins(method, config.territories.pins, problem, config.territories.min_population)
    guarantees.check(method.assignment_, problem, config.territories.min_population)
    zones = reference.zones[reference.zones["zone_code"].isin(problem.zone_codes)]
    metrics = territory_metrics(method.assignment_, problem, zones)
    names = territory_names(method.assignment_, method.main_group_, problem)
    selected = selected_territory(config, method.assignment_, names)
    paths: dict[str, Path] = {}
    if write:
        target = config.output.dir / "territories"
        with stage_folder(config, "territories", inputs) as tmp:
            # write_outputs writes into <folder>/territories: flatten it into the staging folder
            written = write_outputs(tmp, method.assignment_, method.main_group_, problem, zones, method.name)
            for path in (tmp / "territories").iterdir():
                path.rename(tmp / path.name)
            (tmp / "territories").rmdir()
            if selected is not None:
                (tmp / "selected.json").write_text(json.dumps(selected, ensure_ascii=False, indent=2), encoding="utf-8")
                written["selected"] = tmp / "selected.json"
            (tmp / "count.json").write_text(json.dumps(count_choice(config, method), ensure_ascii=False, indent=2), encoding="utf-8")
            written["count"] = tmp / "count.json"
        paths = {key: target / Path(path).name for key, path in written.items()}
    return BuildResult(
        method=method,
        problem=problem,
        names=names,
        metrics=metrics.join(names, on="territory_id"),
        overall=overall_metrics(method.assignment_, problem, zones),
        fragile=fragile_zones(method.assignment_, problem),
        seconds=seconds,
        paths=paths,
        selected=selected,
    )


def count_choice(config: Config, method: Delineation) -> dict:
    """How the number of territories was chosen (``count.json``): given (``target_count``), fixed by
    a resolution, or automatic (the self-containment criterion of docs/territories.md), with the
    counts at each step of the automatic search and the warnings of an unmet target."""
    t = config.territories
    mode = "target" if t.target_count is not None else "resolution" if t.resolution is not None else "automatic"
    out: dict = {"method": method.name, "mode": mode, "territories": int(method.assignment_["territory_id"].n_unique())}
    if method.name == "leiden":
        out["criterion"] = {"min_containment": method.min_containment, "min_localization": method.min_localization,
                            "min_population": t.min_population,
                            "anchor_kinds": list(getattr(method, "anchor_kinds_", ())),
                            "anchor_note": getattr(method, "anchor_note_", None)}
        out["target_count"], out["resolution"] = t.target_count, getattr(method, "resolution_", t.resolution)
        out["steps"] = {k: (int(v) if v is not None else None) for k, v in getattr(method, "count_", {}).items()}
        out["warnings"] = list(getattr(method, "warnings_", []))
    return out


def selected_territory(config: Config, assignment: pl.DataFrame, names: pl.DataFrame) -> dict | None:
    """The territory of interest (the one holding ``territories.territory_of_interest``), which the
    later stages work on; written to ``selected.json``."""
    zone = config.territories.territory_of_interest
    if zone is None:
        return None
    row = assignment.filter(pl.col("zone_code") == zone)
    if row.is_empty():
        raise ConfigError(f"territories.territory_of_interest: {zone} is not a zone of the scope")
    territory = int(row["territory_id"][0])
    name = names.filter(pl.col("territory_id") == territory)["territory_name"][0]
    zones = assignment.filter(pl.col("territory_id") == territory)["zone_code"].to_list()
    return {"territory_id": territory, "territory_name": name, "anchor_zone": zone, "zones": zones}


def compare(config: Config, problem: FlowProblem, reference: Reference, methods: list[str]) -> list[dict]:
    """Fit each method on the same flows; one row of overall metrics per method."""
    zones = reference.zones[reference.zones["zone_code"].isin(problem.zone_codes)]
    rows = []
    for name in methods:
        method, seconds = fit(config, problem, name)
        row = {"method": name, **overall_metrics(method.assignment_, problem, zones), "seconds": seconds}
        rows.append(row)
    return rows
