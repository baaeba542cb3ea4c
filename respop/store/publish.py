"""What a run publishes: the aggregated outputs of a configuration, made safe to leave the pipeline.

:func:`collect` reads the run's outputs under ``<output.dir>`` (territories, cases, strata, the
input report, the evaluation of the experiment when there is one: :func:`evaluation_tables`), keeps only aggregates, and passes **every count through disclosure control here,
in one place** (:mod:`respop.privacy.disclosure`): counts of 1 to 10 people or stays are masked,
complementary suppression protects them from the totals and from neighbouring cells (strata of a
unit summing to its ``all`` row, zones to their territory, territories to the area, hospital groups
to a territory's total, a file's loaded and quarantined rows to its rows read), and every rate
built on a masked count is masked. Counts tied across tables (the cases of a unit in
``indicators`` are the people of its ``all`` stratum in ``care_use``; those people are the
transitions' row total plus the year's deaths; the start of a survival curve is the sum of the
stratum's row totals over the years) are suppressed together (:func:`shared_count_masks`); the
relations used are those that hold exactly. Survival curves are published only every 11 events
(:func:`survival_steps`).

What is *not* a count of people: census populations (public INSEE figures), indices and rates
built on published counts, model metrics.

Patient keys, dates and person-level rows never enter a :class:`Publication`:
``cases.parquet`` and ``person_strata.parquet`` are not read here.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import numpy as np
import polars as pl
import shapely

from respop import __version__
from respop.config import Config, require_population
from respop.errors import ConfigError, DisclosureError, InputError
from respop.stages import active_stages, check_chain
from respop.spec.catalogue import Catalogue, run_catalogue
from respop.store import schema
from respop.privacy.disclosure import (
    PROTECTION_WIDTH,
    THRESHOLD,
    CrossRelation,
    Extension,
    Relation,
    SuppressionReport,
    exact_relations,
    masked_count,
    protect,
    protect_calibration,
    relations_from_keys,
    relations_from_mapping,
    suppress_together,
)
from respop.privacy.audit import MAX_AUDIT_CELLS
from respop.store.releases import (
    VisibleRun,
    flows_extension,
    followed_elsewhere,
    geographic_extension,
    starts_elsewhere,
    test_totals,
    transitions_extension,
)

SURVIVAL_MIN_DAYS = 7
"""Published points of a survival curve are at least a week apart (and 11 events apart)."""


@dataclass
class Rules:
    """The disclosure rules of one publication (``[disclosure]`` of the configuration) and what
    their audits found, per table (``runs.disclosure`` in the store)."""

    protection: int = PROTECTION_WIDTH
    reports: dict[str, SuppressionReport] = field(default_factory=dict)

    def report_for(self, table: str) -> SuppressionReport:
        return self.reports.setdefault(table, SuppressionReport())

    def summary(self) -> dict:
        """Per table: masked cells, sensitive cells left too narrow, unaudited cells, programs."""
        return {
            name: {"masked": r.masked, "narrow": len(r.failing), "unaudited": r.unaudited, "programs": r.programs}
            for name, r in sorted(self.reports.items())
        }


@dataclass
class Publication:
    """One run's rows for every table of :mod:`respop.store.schema` (without ``run_id``)."""

    run: dict
    tables: dict[str, pl.DataFrame] = field(repr=False)

    def fingerprint(self) -> str:
        """SHA-256 of the published tables' content (equal for equal results)."""
        digest = hashlib.sha256()
        for name in sorted(self.tables):
            table = self.tables[name]
            digest.update(name.encode())
            text = table.with_columns(pl.col(pl.Binary).bin.encode("hex")).write_csv()
            digest.update(text.encode())
        return digest.hexdigest()


def _frame(rows: list[dict], table) -> pl.DataFrame:
    """Rows (dicts) as a frame with the published columns and types of a store table."""
    types = {k: v for k, v in schema.polars_schema(table).items() if k not in schema.STORE_KEYS}
    return pl.DataFrame([{k: r.get(k) for k in types} for r in rows], schema=types) if rows else pl.DataFrame(schema=types)


# ---------------------------------------------------------------------------------------------
# relations


def geographic_relations(table: pl.DataFrame, category: str, same: list[str], zone_territory: pl.DataFrame | None) -> list[Relation]:
    """Relations of a table with ``level`` (zone, territory, area) and ``unit`` columns: the
    categories of a unit sum to its ``all`` row; zones sum to their territory; territories to the
    area. ``same``: the other key columns (year, disease)."""
    relations = relations_from_keys(table, by=["level", "unit", *same], over=category, total_value="all")
    if zone_territory is not None and zone_territory.height:
        codes = zone_territory["zone_code"].to_list()
        ids = [str(t) for t in zone_territory["territory_id"].to_list()]
        child = pl.when(pl.col("level") == "zone").then(
            pl.col("unit").replace_strict(codes, ids, default=None, return_dtype=pl.String)
        )
        parent = pl.when(pl.col("level") == "territory").then(pl.col("unit"))
        relations += relations_from_mapping(table, child, parent, same=[*same, category])
        child = pl.when(pl.col("level") == "territory").then(pl.lit("all"))
        parent = pl.when(pl.col("level") == "area").then(pl.col("unit"))
        relations += relations_from_mapping(table, child, parent, same=[*same, category])
    return relations


# ---------------------------------------------------------------------------------------------
# tables


def _require(path: Path, step: str) -> Path:
    if not path.exists():
        raise InputError(f"{path.name} is missing: run `{step}` on this configuration first", path)
    return path


def _wkb(geometries) -> list[bytes | None]:
    return [None if g is None else bytes(g) for g in shapely.to_wkb(list(geometries))]


def territory_tables(config: Config, visible: list[VisibleRun] | None = None,
                     rules: Rules | None = None) -> tuple[dict[str, pl.DataFrame], pl.DataFrame | None, dict]:
    """territories, zones, hospitals, flows; the zone → territory table; run fields (crs, selected)."""
    folder = config.output.dir / "territories"
    reference = config.input.reference_dir
    zones_path = _require(reference / "zones.parquet", "respop synth or the reference files") if reference else None
    tables: dict[str, pl.DataFrame] = {}
    run: dict = {"crs": None, "selected_territory": None}
    zone_territory = None
    if (folder / "zone_territory.parquet").is_file():
        zone_territory = pl.read_parquet(folder / "zone_territory.parquet").select(
            pl.col("zone_code").cast(pl.String), pl.col("territory_id").cast(pl.Int64)
        )
        gdf = gpd.read_parquet(_require(folder / "territories.parquet", "respop territories build"))
        table = pl.from_pandas(gdf.drop(columns=gdf.geometry.name)).with_columns(
            pl.Series("geometry", _wkb(gdf.geometry), dtype=pl.Binary)
        )
        tables["territories"] = protect(table, ["stays_residents"]).select(
            schema.published_columns(schema.territories)
        )
        run["crs"] = gdf.crs.to_string() if gdf.crs is not None else None
        if (folder / "selected.json").is_file():
            run["selected_territory"] = json.loads((folder / "selected.json").read_text(encoding="utf-8"))["territory_id"]
        if (folder / "flows.parquet").is_file():
            tables["flows"] = flows_table(pl.read_parquet(folder / "flows.parquet"), zone_territory, visible, rules)
    if zones_path is not None:
        zgdf = gpd.read_parquet(zones_path)
        run["crs"] = run["crs"] or (zgdf.crs.to_string() if zgdf.crs is not None else None)
        zones = pl.DataFrame(
            {
                "zone_code": zgdf["zone_code"].astype(str).tolist(),
                "departement": zgdf["departement"].astype(str).tolist() if "departement" in zgdf else None,
                "geometry": _wkb(zgdf.geometry),
            },
            schema={"zone_code": pl.String, "departement": pl.String, "geometry": pl.Binary},
        )
        population_path = reference / "population.parquet"
        if population_path.is_file():
            population = pl.read_parquet(population_path).group_by("zone_code").agg(pl.col("population").sum())
            zones = zones.join(population, on="zone_code", how="left")
        else:
            zones = zones.with_columns(pl.lit(None, pl.Int64).alias("population"))
        mapping = zone_territory if zone_territory is not None else pl.DataFrame(
            schema={"zone_code": pl.String, "territory_id": pl.Int64}
        )
        zones = zones.join(mapping, on="zone_code", how="left")
        tables["zones"] = zones.select("zone_code", "departement", "territory_id", "population", "geometry").sort("zone_code")
        hospitals_path = reference / "hospitals.parquet"
        if hospitals_path.is_file():
            hospitals = pl.read_parquet(hospitals_path).with_columns(pl.col("zone_code").cast(pl.String))
            tables["hospitals"] = (
                hospitals.join(mapping, on="zone_code", how="left")
                .select("hospital_id", "name", "town", "zone_code", "territory_id", "kind", "has_emergency")
                .sort("hospital_id")
            )
    return tables, zone_territory, run


def flows_table(flows: pl.DataFrame, zone_territory: pl.DataFrame, visible: list[VisibleRun] | None = None,
                rules: Rules | None = None) -> pl.DataFrame:
    """Stays of each territory's residents per hospital group, with the territory's total row
    (``hospital_group = 'all'``); masked below 11 with complementary suppression, together with
    the flows of the runs a viewer already sees (``visible``): a territory of another build is
    the sum of this run's zones, whose cells (zone × hospital group) then enter the system as
    never-published cells (two runs with other territories otherwise determined a flow of 8)."""
    rules = rules or Rules()
    group_territory = zone_territory.rename({"zone_code": "group_zone", "territory_id": "group_territory_id"})
    per_group = (
        flows.join(zone_territory, on="zone_code", how="inner")
        .group_by("territory_id", "group")
        .agg(pl.col("group_name").first(), pl.col("group_zone").first(), pl.col("stays").sum())
        .join(group_territory, on="group_zone", how="left")
        .select(
            "territory_id",
            pl.col("group").cast(pl.String).alias("hospital_group"),
            "group_name",
            "group_territory_id",
            pl.col("stays").cast(pl.Int64),
        )
    )
    totals = per_group.group_by("territory_id").agg(
        pl.lit("all").alias("hospital_group"),
        pl.lit("Tous les établissements").alias("group_name"),
        pl.lit(None, pl.Int64).alias("group_territory_id"),
        pl.col("stays").sum(),
    )
    table = pl.concat([totals, per_group], how="vertical_relaxed").sort(
        "territory_id", pl.col("hospital_group") != "all", pl.col("stays"), "hospital_group", descending=[False, False, True, False]
    )
    table = table.with_columns(
        (pl.col("stays") / pl.col("stays").filter(pl.col("hospital_group") == "all").first().over("territory_id")).alias("share")
    )
    relations = relations_from_keys(table, by=["territory_id"], over="hospital_group", total_value="all")
    zone_cells = (
        flows.join(zone_territory, on="zone_code", how="inner")
        .group_by("zone_code", "territory_id", "group").agg(pl.col("stays").sum().cast(pl.Int64))
        .sort("zone_code", "group")
    )
    ext, linked = flows_extension(table, zone_cells, zone_territory, visible or [])
    if not linked:
        out = protect(table, ["stays"], relations, rates={"stays": ["share"]}, extensions={"stays": ext},
                      protection=rules.protection, report=rules.report_for("flows"))
        return mask_shares(out, "stays", "share", ["territory_id"], "hospital_group")
    # the zone cells, never published: a territory's flow to a group is the sum of its zones'
    n = table.height
    row = {(str(t), str(g)): i for i, (t, g) in enumerate(table.select("territory_id", "hospital_group").iter_rows())}
    parts: dict[int, list[int]] = defaultdict(list)
    for k, (territory, group) in enumerate(zone_cells.select("territory_id", "group").iter_rows()):
        i = row.get((str(territory), str(group)))
        if i is not None:
            parts[i].append(n + k)
    relations = [*relations, *(Relation(i, tuple(p)) for i, p in parts.items())]
    full = pl.concat([
        table.with_columns(pl.lit(False).alias("_zone")),
        zone_cells.select(
            "territory_id", pl.col("group").cast(pl.String).alias("hospital_group"), pl.lit(None, pl.String).alias("group_name"),
            pl.lit(None, pl.Int64).alias("group_territory_id"), "stays", pl.lit(None, pl.Float64).alias("share"), pl.lit(True).alias("_zone"),
        ),
    ], how="vertical_relaxed")
    out = protect(full, ["stays"], relations, rates={"stays": ["share"]}, extensions={"stays": ext},
                  hidden={"stays": full["_zone"].to_list()}, protection=rules.protection, report=rules.report_for("flows"))
    out = out.filter(~pl.col("_zone")).drop("_zone").select(table.columns)
    return mask_shares(out, "stays", "share", ["territory_id"], "hospital_group")


INDICATOR_RATES = {
    "cases": [f"prevalence_{k}{s}" for k in ("crude", "std") for s in ("", "_low", "_high")],
    "incident_cases": [f"incidence_{k}{s}" for k in ("crude", "std") for s in ("", "_low", "_high")],
}


def read_indicators(config: Config) -> pl.DataFrame | None:
    """The case-finding indicators (private, unprotected), in the order they are protected in."""
    path = config.output.dir / "cases" / "indicators.parquet"
    return pl.read_parquet(path).sort("disease", "year", "level", "unit", "subtype") if path.is_file() else None


def read_care_use(config: Config) -> pl.DataFrame | None:
    """Care use per unit and stratum (private, unprotected), in the order it is protected in."""
    path = config.output.dir / "strata" / "care_use.parquet"
    return pl.read_parquet(path).sort("disease", "year", "level", "unit", "stratum") if path.is_file() else None


def read_transitions(config: Config) -> pl.DataFrame | None:
    """Transitions N → N+1 (private, unprotected) with a row total (``to_stratum = 'all'``) per
    origin, in the order they are protected in."""
    path = config.output.dir / "strata" / "transitions.parquet"
    if not path.is_file():
        return None
    table = pl.read_parquet(path).rename({"from": "from_stratum", "to": "to_stratum"}).with_columns(pl.col("year").cast(pl.Int64))
    totals = table.group_by("disease", "year", "from_stratum").agg(
        pl.lit("all").alias("to_stratum"), pl.col("count").sum(), pl.lit(1.0).alias("proportion")
    )
    return pl.concat([totals, table], how="vertical_relaxed").sort(
        "disease", "year", "from_stratum", pl.col("to_stratum") != "all", "to_stratum"
    )


def read_survival_starts(config: Config) -> pl.DataFrame | None:
    """The number of person-years at the start of each Kaplan–Meier curve (disease, stratum,
    at_risk): the sum of the stratum's transitions row totals over the years."""
    path = config.output.dir / "strata" / "survival" / "km.parquet"
    if not path.is_file():
        return None
    return pl.read_parquet(path).sort("time").group_by("disease", "stratum", maintain_order=True).agg(pl.col("at_risk").first()).sort("disease", "stratum")


def transition_relations(table: pl.DataFrame) -> list[Relation]:
    return relations_from_keys(table, by=["disease", "year", "from_stratum"], over="to_stratum", total_value="all")


UNIT_KEYS = ["disease", "year", "level", "unit"]
LEVEL_COST = {"zone": 1, "territory": 4, "area": 16}
"""What masking a count costs per unit of its value, by level: a territory's or the area's count is
read by the whole room (the board's headline), a zone's on a map."""
COLUMN_COST = {"indicators.cases": 5, "indicators.incident_cases": 2, "care_use.people": 5}
"""More per unit for the counts a board leads with (cases, new cases) and for a group's people,
whose masking masks every measure of the group with them (``implies``); 1 otherwise."""


def masking_costs(table: pl.DataFrame, column: str, key: str) -> list[float]:
    """What masking each row's ``column`` costs (:func:`respop.privacy.disclosure.suppress`): its
    count times :data:`LEVEL_COST` of its level times :data:`COLUMN_COST` of ``key``. Complements
    then fall on zones' cells and secondary measures before a territory's cases: on tiny (seed 5)
    a law's difference of 4 (heart failure, 2023: 134 people, 138 stays) took every territory's
    cases with it when complements were the smallest count."""
    factor = COLUMN_COST.get(key, 1)
    level = table["level"].replace_strict(LEVEL_COST, default=1).to_list()
    return [float(v or 0) * w * factor for v, w in zip(table[column].to_list(), level)]
HIDDEN_ROWS = pl.col("level") == "zone"
"""Care-use rows where re-hospitalisations and deaths are not published (see ZONE_HIDDEN_COUNTS)."""


def shared_count_masks(
    indicators: pl.DataFrame | None,
    care_use: pl.DataFrame | None,
    transitions: pl.DataFrame | None,
    zone_territory: pl.DataFrame | None,
    survival_starts: pl.DataFrame | None = None,
    visible: list[VisibleRun] | None = None,
    rules: Rules | None = None,
    model_totals: dict[str, tuple[int, int]] | None = None,
) -> dict[str, list[bool]]:
    """Masks of the counts that tie tables together, chosen as one system (:func:`suppress_together`):

    - the cases of a unit and year (``indicators``, subtype ``all``) are the people of its ``all``
      stratum (``care_use``), the same count in two tables;
    - the people of a stratum in the area (``care_use``) are those followed into N + 1 (the row
      total of ``transitions``) plus those who died in hospital in N (``care_use.deaths``), so a
      masked number of deaths would be their difference (demo, heart failure 2022, unstable: 54
      people, 47 followed, 7 deaths masked in care use and given away by the transitions);
    - the people at the start of a stratum's survival curve (and in its log-rank and Cox counts)
      are the sum over the years of the stratum's transitions row totals, so one masked year
      would be the difference.

    - laws a viewer knows, row by row (:data:`INDICATOR_BOUNDS`, :data:`CARE_BOUNDS`: incident
      cases <= cases, deaths <= people...): larger = smaller + a hidden difference, so that a
      published count bounding a masked one is in the audit (tiny, seed 36: a zone's chronic
      cases were exactly 1 because the acute cases, masked, were at least their published
      incident cases);
    - every measure of a group whose people are masked is masked with them (``implies``).

    Keys: ``indicators.<column>`` (cases and those of :data:`INDICATOR_BOUNDS`) and
    ``care_use.<column>`` (:data:`TIED_CARE_COUNTS`; the hidden ones over the rows where they are
    published, not zones), ``transitions.count`` and ``survival.at_risk`` (one per row of
    ``survival_starts``), for the tables given.
    Measured on 5 national years, the first tie alone: protected one table at a time, 30 of these
    counts were masked in one table and published in the other, and 56 masked cells could be
    recovered from the two tables together. Links are made only where the counts agree exactly."""
    rules = rules or Rules()
    visible = visible or []
    columns: dict[str, tuple] = {}
    costs: dict[str, list[float]] = {}
    elsewhere: list[tuple] = []
    bounded: list[tuple[str, str, list[bool]]] = []  # (smaller, larger, rows where the law is tied)
    if indicators is not None:
        relations = geographic_relations(indicators, "subtype", ["year", "disease"], zone_territory)
        for column in ("cases", *(small for small, _ in INDICATOR_BOUNDS)):
            values = indicators[column].to_list()
            ext, _ = geographic_extension(indicators, "indicators", column, zone_territory, visible)
            columns[f"indicators.{column}"] = (values, exact_relations(values, relations), ext)
            costs[f"indicators.{column}"] = masking_costs(indicators, column, f"indicators.{column}")
        bounded += [(f"indicators.{small}", f"indicators.{large}", [True] * indicators.height) for small, large in INDICATOR_BOUNDS]
    if care_use is not None:
        relations = geographic_relations(care_use, "stratum", ["year", "disease"], zone_territory)
        zone = care_use.select(HIDDEN_ROWS)["level"].to_list()
        for column in TIED_CARE_COUNTS:
            values = care_use[column].to_list()
            costs[f"care_use.{column}"] = masking_costs(care_use, column, f"care_use.{column}")
            if column in ZONE_HIDDEN_COUNTS:
                ext, linked = geographic_extension(care_use, "care_use", column, zone_territory, visible, ("zone",), "people")
                columns[f"care_use.{column}"] = (values, exact_relations(values, hidden_count_relations(care_use, zone_territory, linked)), ext, zone)
            else:
                ext, _ = geographic_extension(care_use, "care_use", column, zone_territory, visible, group="people")
                columns[f"care_use.{column}"] = (values, exact_relations(values, relations), ext)
        for small, large in CARE_BOUNDS:
            # a count never published per zone is tied by its law on the rows where it is published
            rows = [not z for z in zone] if small in ZONE_HIDDEN_COUNTS else [True] * care_use.height
            bounded.append((f"care_use.{small}", f"care_use.{large}", rows))
        # the followed of visible runs for years this run has no transitions of: extra cells of
        # the people column (decided), tied by people = followed + deaths below
        elsewhere = followed_elsewhere(care_use, transitions, visible)
        if elsewhere:
            values, rels, ext = columns["care_use.people"]
            ext = Extension(
                (*ext.values, *(e[2] for e in elsewhere)), (*ext.masked, *(e[3] for e in elsewhere)),
                ext.relations, (*ext.structural_flags(), *([False] * len(elsewhere))),
            )
            columns["care_use.people"] = (values, rels, ext)
    starts_there: list[tuple] = []
    cards: list[tuple] = []
    if transitions is not None:
        values = transitions["count"].to_list()
        ext = transitions_extension(transitions, visible)
        # a visible run's survival starts over years this run has no transitions of: extra cells
        # of the transitions column, tied below to its transitions and the followed elsewhere
        starts_there = starts_elsewhere(transitions, elsewhere, visible) if care_use is not None else []
        # the model cards' test-year person-years (published): sums of transitions, this run's
        # and the visible runs' (finding 5: a relation the joint system lacked)
        cards = test_totals(transitions, elsewhere, visible, model_totals)
        if starts_there or cards:
            ext = Extension(
                (*ext.values, *(v for v, _, _, _ in starts_there), *(v for v, _, _ in cards)),
                (*ext.masked, *(m for _, m, _, _ in starts_there), *([False] * len(cards))),
                ext.relations, (*ext.structural_flags(), *([False] * (len(starts_there) + len(cards)))),
            )
        columns["transitions.count"] = (values, exact_relations(values, transition_relations(transitions)), ext)
    if survival_starts is not None and transitions is not None:
        columns["survival.at_risk"] = (survival_starts["at_risk"].to_list(), [])
    if not columns:
        return {}
    # laws a viewer knows (incident cases <= cases, deaths <= people...): larger = smaller + a
    # hidden difference (never published, at least 0), one column of differences per law
    laws = []
    for small, large, rows in bounded:
        a, b = columns[small][0], columns[large][0]
        diff = [(int(y or 0) - int(x or 0)) if keep else 0 for x, y, keep in zip(a, b, rows)]
        # a row whose smaller count is 0 says nothing (the larger is at least 0 anyway)
        tied = [keep and d >= 0 and bool(x) for d, keep, x in zip(diff, rows, a)]
        name = f"{large} - {small}"
        columns[name] = ([max(d, 0) for d in diff], [], None, [True] * len(diff))
        laws.append((small, large, name, tied))
    number = {name: k for k, name in enumerate(columns)}
    links: list[CrossRelation] = [
        CrossRelation((number[large], i), ((number[small], i), (number[name], i)))
        for small, large, name, tied in laws for i, t in enumerate(tied) if t
    ]
    implies: list[tuple[tuple[int, int], tuple[int, int]]] = []
    if "survival.at_risk" in columns:
        years = transitions.with_row_index("_t").filter(pl.col("to_stratum") == "all").group_by(
            "disease", pl.col("from_stratum").alias("stratum")
        ).agg(pl.col("_t"), pl.col("count").sum().alias("_sum"))
        starts = survival_starts.with_row_index("_s").join(years, on=["disease", "stratum"], how="inner").filter(pl.col("at_risk") == pl.col("_sum"))
        links += [
            CrossRelation((number["survival.at_risk"], int(k)), tuple((number["transitions.count"], int(t)) for t in ts))
            for k, ts in starts.select("_s", "_t").iter_rows()
        ]
    if care_use is not None:
        use = care_use.with_row_index("_row").with_columns(pl.col("year").cast(pl.Int64))
        upper = use.filter(~HIDDEN_ROWS).with_columns(pl.col("_row").alias("_upper"))
        people, deaths = number["care_use.people"], number["care_use.deaths"]
        # every measure of a group whose number of people is masked is masked with it
        zone = care_use.select(HIDDEN_ROWS)["level"].to_list()
        implies = [((people, r), (number[f"care_use.{c}"], r)) for r in range(care_use.height)
                   for c in TIED_CARE_COUNTS if c != "people" and not (c in ZONE_HIDDEN_COUNTS and zone[r])]
        first = care_use.height + len(columns["care_use.people"][2].values) - len(elsewhere)
        links += [CrossRelation((people, e[0]), ((people, first + k), (deaths, e[1]))) for k, e in enumerate(elsewhere)]
        if starts_there or cards:
            tr = number["transitions.count"]
            start0 = transitions.height + len(columns["transitions.count"][2].values) - len(starts_there) - len(cards)
            links += [
                CrossRelation((tr, start0 + k), (*((tr, t) for t in rows), *((people, first + j) for j in others)))
                for k, (_, _, rows, others) in enumerate([*((v, m, r, o) for v, m, r, o in starts_there), *((v, False, r, o) for v, r, o in cards)])
            ]
        if indicators is not None:
            a = indicators.with_row_index("_i").with_columns(pl.col("year").cast(pl.Int64)).filter(pl.col("subtype") == "all")
            b = use.filter(pl.col("stratum") == "all")
            pairs = a.join(b, on=UNIT_KEYS, how="inner", nulls_equal=True).filter(pl.col("cases") == pl.col("people"))
            links += [CrossRelation((number["indicators.cases"], int(i)), ((people, int(r)),)) for i, r in pairs.select("_i", "_row").iter_rows()]
        if transitions is not None:
            totals = transitions.with_row_index("_t").filter(pl.col("to_stratum") == "all").select(
                "disease", "year", pl.col("from_stratum").alias("stratum"), "_t", pl.col("count").alias("_followed")
            )
            area = upper.filter((pl.col("level") == "area") & (pl.col("stratum") != "all"))
            tied = area.join(totals, on=["disease", "year", "stratum"], how="inner").filter(
                pl.col("people") == pl.col("_followed") + pl.col("deaths")
            )
            links += [
                CrossRelation((people, int(r)), ((number["transitions.count"], int(t)), (deaths, int(u))))
                for r, t, u in tied.select("_row", "_t", "_upper").iter_rows()
            ]
    masks = suppress_together(list(columns.values()), links, implies, protection=rules.protection,
                              report=rules.report_for("tied counts"), costs=[costs.get(name) for name in columns])
    return {name: mask for name, mask in zip(columns, masks) if name not in {law[2] for law in laws}}


def model_test_totals(config: Config) -> dict[str, tuple[int, int]]:
    """Per disease, the prediction's test year and its person-years (the model card prints them)."""
    path = config.output.dir / "strata" / "summary.json"
    if not path.is_file():
        return {}
    prediction = json.loads(path.read_text(encoding="utf-8")).get("prediction") or {}
    return {d: (int(p["test_year"]), int(p["n_test"])) for d, p in prediction.items()
            if isinstance(p, dict) and p.get("test_year") is not None and p.get("n_test") is not None}


def hidden_count_relations(care_use: pl.DataFrame, zone_territory: pl.DataFrame | None, linked: bool) -> list[Relation]:
    """Relations of a care-use count that is not published per zone (deaths, re-hospitalisations),
    over every row of the table. The zone rows are hidden cells: their relations tell a viewer
    nothing while no other run ties them (every zone is unknown), so they are left out of the
    system unless ``linked`` (a visible run's territory is a sum of this run's zones)."""
    relations = geographic_relations(care_use, "stratum", ["year", "disease"], zone_territory)
    if linked:
        return relations
    zone = care_use.select(HIDDEN_ROWS)["level"].to_list()
    return [r for r in relations if not zone[r.total] and not any(zone[p] for p in r.parts)]


INDICATOR_COUNTS = ["cases", "incident_cases", "cases_outside", "cases_unstandardised"]
INDICATOR_BOUNDS = [("incident_cases", "cases"), ("cases_unstandardised", "cases")]
"""(smaller, larger): laws of the indicators a viewer knows, row by row (a subset of the cases)."""
CARE_BOUNDS = [("people", "stays"), ("emergency_stays", "stays"), ("readmissions_30d", "stays"), ("deaths", "people")]
"""(smaller, larger): laws of care use a viewer knows, row by row (everyone counted has a stay; an
emergency stay, a re-hospitalisation is a stay; the dead were among the people)."""
TIED_CARE_COUNTS = ["people", "stays", "emergency_stays", "readmissions_30d", "deaths"]
"""Care-use counts protected in the joint system (:func:`shared_count_masks`): tied to other
tables or to one another by a law."""


def indicators_table(
    table: pl.DataFrame, zone_territory: pl.DataFrame | None, decided: dict[str, list[bool]] | None = None,
    visible: list[VisibleRun] | None = None, rules: Rules | None = None,
) -> pl.DataFrame:
    """The indicators as published (``table`` from :func:`read_indicators`); ``decided``: the masks
    of the columns chosen in the joint system (:func:`shared_count_masks`, keys without the table's
    name), computed here from this table alone when not given; ``visible``: the runs a viewer
    already sees (respop.store.releases)."""
    rules = rules or Rules()
    if decided is None:
        decided = table_masks(shared_count_masks(table, None, None, zone_territory, None, visible, rules), "indicators")
    relations = geographic_relations(table, "subtype", ["year", "disease"], zone_territory)
    extensions = {c: geographic_extension(table, "indicators", c, zone_territory, visible or [])[0] for c in INDICATOR_COUNTS if c not in decided}
    out = protect(table, INDICATOR_COUNTS, relations, rates=INDICATOR_RATES, decided=decided,
                  extensions=extensions, protection=rules.protection, report=rules.report_for("indicators"))
    return out.with_columns(pl.col(pl.Int16).cast(pl.Int64))


def table_masks(masks: dict[str, list[bool]], table: str) -> dict[str, list[bool]]:
    """The masks of one table's columns among those of :func:`shared_count_masks` (``table.column``)."""
    return {k.split(".", 1)[1]: m for k, m in masks.items() if k.startswith(f"{table}.")}


CARE_COUNTS = ["people", "stays", "emergency_stays", "bed_days", "readmissions_30d", "deaths"]


ZONE_HIDDEN_COUNTS = ["readmissions_30d", "deaths"]
"""Not published per zone, only per territory and area: per zone and stratum they are almost all
below 11 (national: 200,264 of 250,743 zone death cells would be masked), and their masked cells
join into country-wide groups too large for the exact audit."""


def care_use_table(
    table: pl.DataFrame, zone_territory: pl.DataFrame | None, decided: dict[str, list[bool]] | None = None,
    visible: list[VisibleRun] | None = None, rules: Rules | None = None,
) -> pl.DataFrame:
    """Care use per unit and stratum (``table`` from :func:`read_care_use`): a group of fewer than
    11 people publishes no measure; re-hospitalisations and deaths per territory and area only
    (hidden cells per zone). ``decided``: the masks of :data:`TIED_CARE_COUNTS` chosen in the joint
    system (:func:`shared_count_masks`), computed here from this table alone when not given;
    ``visible``: the runs a viewer already sees."""
    rules = rules or Rules()
    visible = visible or []
    if decided is None:
        decided = table_masks(shared_count_masks(None, table, None, zone_territory, None, visible, rules), "care_use")
    relations = geographic_relations(table, "stratum", ["year", "disease"], zone_territory)
    dense = [c for c in CARE_COUNTS if c not in ZONE_HIDDEN_COUNTS]
    extensions = {c: geographic_extension(table, "care_use", c, zone_territory, visible, group="people")[0]
                  for c in dense if c not in decided}
    out = protect(table, dense, relations, rates={c: [f"{c}_per_person"] for c in dense if c != "people"},
                  whole_row="people", decided={c: m for c, m in decided.items() if c in dense},
                  extensions=extensions, protection=rules.protection, report=rules.report_for("care_use"))
    # the measures never published per zone, chosen in the joint system with the zones hidden
    # (masked, at least 0)
    hidden = [*ZONE_HIDDEN_COUNTS, *(f"{c}_per_person" for c in ZONE_HIDDEN_COUNTS)]
    out = out.with_columns(
        pl.when(pl.Series(decided[c], dtype=pl.Boolean)).then(None).otherwise(pl.col(r)).alias(r)
        for c in ZONE_HIDDEN_COUNTS for r in (c, f"{c}_per_person")
    ).with_columns(
        # never per zone; a group whose people are masked publishes none of its measures
        pl.when(HIDDEN_ROWS | pl.col("people").is_null()).then(None).otherwise(pl.col(c)).alias(c) for c in hidden
    ).select(table.columns)
    return out.with_columns(pl.col(pl.Int16).cast(pl.Int64))


def transitions_table(table: pl.DataFrame, count_mask: list[bool] | None = None, visible: list[VisibleRun] | None = None,
                      rules: Rules | None = None) -> pl.DataFrame:
    """Transitions as published (``table`` from :func:`read_transitions`); ``count_mask``: chosen
    with care use (:func:`shared_count_masks`)."""
    rules = rules or Rules()
    out = protect(table, ["count"], transition_relations(table), rates={"count": ["proportion"]},
                  decided={"count": count_mask} if count_mask is not None else None,
                  extensions={"count": transitions_extension(table, visible or [])} if count_mask is None else None,
                  protection=rules.protection, report=rules.report_for("transitions"))
    return mask_shares(out, "count", "proportion", ["disease", "year", "from_stratum"], "to_stratum")


def mask_shares(table: pl.DataFrame, count: str, share: str, by: list[str], over: str) -> pl.DataFrame:
    """Null a share wherever the total it is a share of (the ``all`` row of ``over`` in its group
    ``by``) is masked: a published count with its share gives the total (a transition of 133
    published with its proportion 0.806061 gave its masked row total, 165)."""
    total_masked = pl.col(count).filter(pl.col(over) == "all").first().over(by).is_null()
    return table.with_columns(pl.when(total_masked).then(None).otherwise(pl.col(share)).alias(share))


def survival_steps(time: np.ndarray, survival: np.ndarray, at_risk: np.ndarray) -> list[int]:
    """Rows of one Kaplan–Meier curve (event times, in order) that may be published.

    Between two published points, the fall of the number at risk counts the events and censorings
    in between, and the ratio of the survivals the events: with a point at every event time (or
    every week) these are often 1 to 10 people. A row ``j`` is published when at least
    :data:`THRESHOLD` events happened strictly between the previous published point and ``j``,
    ``j`` is at least :data:`SURVIVAL_MIN_DAYS` after it, and ``j`` has at least 11 people at
    risk. Then the fall of the number at risk (events from the previous point to ``j``, excluded)
    and the ratio of survivals (events after the previous point to ``j``, included) both cover
    those 11 events or more. The curve starts from a point at time 0 (survival 1, everybody at
    risk), which is not a row. Events per row: ``at_risk × (1 − S / S_before)``, rounded down: the
    estimator read backwards, exact at one event time; on a thinned curve (several event times
    between two rows) it counts fewer events than there were, so the rule stays safe."""
    before = np.r_[1.0, survival[:-1]]
    with np.errstate(divide="ignore", invalid="ignore"):
        events = np.where(before > 0, np.floor(at_risk * (1.0 - survival / before) + 1e-6), 0.0)
    kept, last_time, since = [], 0.0, 0.0
    for j in range(len(time)):
        if at_risk[j] < THRESHOLD:
            break
        if since >= THRESHOLD and time[j] - last_time >= SURVIVAL_MIN_DAYS:
            kept.append(j)
            last_time, since = float(time[j]), 0.0
        since += events[j]
    return kept


def survival_curves_table(km: pl.DataFrame, hidden: set[tuple[str, str]] = frozenset()) -> pl.DataFrame:
    """Kaplan–Meier curves per stratum from time 0, at the points :func:`survival_steps` allows
    (at least 11 events between two points, a week or more apart, 11 people or more at risk).
    ``hidden``: (disease, stratum) whose number at the start is masked (:func:`shared_count_masks`)."""
    parts = []
    for (disease, stratum), curve in km.sort("time").group_by(["disease", "stratum"], maintain_order=True):
        if curve["at_risk"][0] < THRESHOLD or (disease, stratum) in hidden:
            continue
        rows = survival_steps(curve["time"].to_numpy(), curve["survival"].to_numpy(), curve["at_risk"].to_numpy())
        start = curve.head(1).with_columns(
            pl.lit(0.0).alias("time"), pl.lit(1.0).alias("survival"), pl.lit(1.0).alias("lower"), pl.lit(1.0).alias("upper")
        )
        parts.append(pl.concat([start, curve[rows]], how="vertical_relaxed"))
    cols = schema.published_columns(schema.survival_curves)
    if not parts:
        return pl.DataFrame(schema={c: km.schema.get(c, pl.Float64) for c in cols})
    out = pl.concat(parts, how="vertical_relaxed")
    return out.select(cols).with_columns(pl.col("stratum_level").cast(pl.Int64), pl.col("at_risk").cast(pl.Int64))


def survival_tests_table(folder: Path, hidden: set[tuple[str, str]] = frozenset()) -> pl.DataFrame:
    """Log-rank tests, Cox hazard ratios and proportional-hazards tests. Their counts of people
    are the strata's numbers at the start of follow-up: masked where that number is (``hidden``,
    see :func:`survival_curves_table`), and the Cox total with any of its disease's."""
    rows: list[dict] = []

    def count(disease: str, stratum: str | None, value) -> int | None:
        if (stratum is None and any(d == disease for d, _ in hidden)) or (disease, stratum) in hidden:
            return None
        return masked_count(value)

    if (folder / "logrank.csv").is_file():
        for r in pl.read_csv(folder / "logrank.csv").iter_rows(named=True):
            n_higher, n_lower = count(r["disease"], r["higher"], r["n_higher"]), count(r["disease"], r["lower"], r["n_lower"])
            detail = {
                "higher": r["higher"], "lower": r["lower"], "n_higher": n_higher, "n_lower": n_lower,
                "ordered": r["ordered"], "survival_365_higher": r["survival_365_higher"],
                "survival_365_lower": r["survival_365_lower"],
            }
            rows.append({
                "disease": r["disease"], "kind": "logrank", "term": f"{r['higher']} vs {r['lower']}",
                "estimate": r["statistic"], "lower": None, "upper": None, "p_value": r["p_value"],
                "n": None if n_higher is None or n_lower is None else n_higher + n_lower, "events": None,
                "detail": json.dumps(detail, ensure_ascii=False),
            })
    if (folder / "cox.csv").is_file():
        for r in pl.read_csv(folder / "cox.csv").iter_rows(named=True):
            rows.append({
                "disease": r["disease"], "kind": "cox", "term": r["covariate"], "estimate": r["hazard_ratio"],
                "lower": r["lower"], "upper": r["upper"], "p_value": r["p_value"],
                "n": count(r["disease"], None, r["n"]), "events": masked_count(r["events"]), "detail": None,
            })
    if (folder / "cox_ph_test.csv").is_file():
        for r in pl.read_csv(folder / "cox_ph_test.csv").iter_rows(named=True):
            rows.append({
                "disease": r["disease"], "kind": "ph_test", "term": r["covariate"], "estimate": r["statistic"],
                "lower": None, "upper": None, "p_value": r["p_value"], "n": None, "events": None, "detail": None,
            })
    return _frame(rows, schema.survival_tests)


def model_tables(folder: Path) -> dict[str, pl.DataFrame]:
    metrics, calibration, importance, cards = [], [], [], []
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []:
        disease = sub.name
        if (sub / "metrics.csv").is_file():
            metrics.append(pl.read_csv(sub / "metrics.csv").with_columns(pl.lit(disease).alias("disease")))
        if (sub / "calibration.csv").is_file():
            deciles = pl.read_csv(sub / "calibration.csv")
            # each target's deciles sum to the test year: protected target by target
            for _, part in deciles.group_by(["target"] if "target" in deciles.columns else [pl.lit(0)], maintain_order=True):
                cal, _ = protect_calibration(part)
                calibration.append(cal.with_columns(pl.lit(disease).alias("disease")))
        if (sub / "importance.csv").is_file():
            importance.append(pl.read_csv(sub / "importance.csv").with_columns(pl.lit(disease).alias("disease")))
        if (sub / "model_card.md").is_file():
            cards.append({"disease": disease, "markdown": (sub / "model_card.md").read_text(encoding="utf-8")})
    out: dict[str, pl.DataFrame] = {}
    if metrics:
        out["model_metrics"] = pl.concat(metrics, how="diagonal_relaxed")
    if calibration:
        out["model_calibration"] = pl.concat(calibration, how="diagonal_relaxed").with_columns(pl.col("n").cast(pl.Int64))
    if importance:
        out["model_importance"] = pl.concat(importance, how="diagonal_relaxed")
    if cards:
        out["model_cards"] = pl.DataFrame(cards)
    return out


def strata_tables(
    config: Config, zone_territory: pl.DataFrame | None, care_use: pl.DataFrame | None, transitions: pl.DataFrame | None,
    masks: dict[str, list[bool]], survival_starts: pl.DataFrame | None = None,
    visible: list[VisibleRun] | None = None, rules: Rules | None = None,
) -> dict[str, pl.DataFrame]:
    folder = config.output.dir / "strata"
    if care_use is None or transitions is None:
        return {}
    tables = {
        "care_use": care_use_table(care_use, zone_territory, table_masks(masks, "care_use") or None, visible, rules),
        "transitions": transitions_table(transitions, masks.get("transitions.count"), visible, rules),
    }
    hidden: set[tuple[str, str]] = set()
    if survival_starts is not None and "survival.at_risk" in masks:
        hidden = {(d, st) for (d, st), m in zip(survival_starts.select("disease", "stratum").iter_rows(), masks["survival.at_risk"]) if m}
    if (folder / "survival" / "km.parquet").is_file():
        tables["survival_curves"] = survival_curves_table(pl.read_parquet(folder / "survival" / "km.parquet"), hidden)
    tables["survival_tests"] = survival_tests_table(folder / "survival", hidden)
    tables.update(model_tables(folder / "prediction"))
    return tables


def strata_levels_table(catalogue: Catalogue) -> pl.DataFrame:
    """The strata of the run's catalogue (the specs the steps computed with, not the TOML files)."""
    rows = []
    for spec in catalogue.specs:
        if spec.strata is None:
            continue
        for level in spec.strata.levels:
            rows.append({
                "disease": spec.algorithm.id, "disease_name": spec.algorithm.name, "stratum": level.name,
                "stratum_level": spec.strata.level_of(level.name), "name": level.label,
                "description": level.description, "protocol": level.protocol, "condition": level.when,
            })
    return _frame(rows, schema.strata_levels)


def catalogue_table(catalogue: Catalogue) -> pl.DataFrame:
    """The run's catalogue as rows of text (names, French labels, versions, sources; no count)."""
    return _frame(catalogue.rows(), schema.catalogue)


def quality_table(report: dict) -> pl.DataFrame:
    """The input report as rows (one count each), masked with its balances as relations: a file's
    rows read = loaded + quarantined; stays loaded = kept + séances + Σ excluded."""
    rows: list[dict] = []
    relations: list[Relation] = []
    for t in report.get("tables", []):
        start = len(rows)
        for measure in ("read", "loaded", "quarantined"):
            rows.append({"section": "file", "item": t["label"], "measure": measure, "detail": None,
                         "rows": t[f"rows_{measure}"], "enabled": None})
        relations.append(Relation(start, (start + 1, start + 2)))
        reasons = []
        for reason, n in t.get("reasons", {}).items():
            reasons.append(len(rows))
            rows.append({"section": "reason", "item": t["label"], "measure": "rows", "detail": reason,
                         "rows": n, "enabled": None})
        # a file's quarantined rows are the sum of its reasons when each row has one reason (kept
        # only where it holds: 30 quarantined, 25 for one reason, would give the other's 5 away)
        if reasons:
            relations.append(Relation(start + 2, tuple(reasons)))
    total = len(rows)
    rows.append({"section": "stays", "item": "stays", "measure": "loaded", "detail": None,
                 "rows": report.get("stays_loaded"), "enabled": None})
    parts = [len(rows), len(rows) + 1]
    rows.append({"section": "stays", "item": "stays", "measure": "kept", "detail": None,
                 "rows": report.get("stays_kept"), "enabled": None})
    rows.append({"section": "stays", "item": "stays", "measure": "sessions", "detail": None,
                 "rows": report.get("sessions_kept"), "enabled": None})
    for f in report.get("filters", []):
        parts.append(len(rows))
        rows.append({"section": "filter", "item": f["name"], "measure": "excluded", "detail": f.get("title"),
                     "rows": f["excluded"], "enabled": f["enabled"]})
    relations.append(Relation(total, tuple(parts)))
    return protect(_frame(rows, schema.quality), ["rows"], relations)


def input_report_summary(report: dict) -> dict:
    """What the runs table keeps of the input report (its counts are in the quality table)."""
    return {
        "folder": Path(report.get("folder", "")).name,
        "years": report.get("years"),
        "balanced": report.get("balanced"),
        "files": [t["label"] for t in report.get("tables", [])],
        # deaths out of hospital known to the run (the SNDS referential read: respop.pmsi.deaths);
        # false: prevalence may include people who died outside hospital (the boards say so)
        "deaths_known": bool((report.get("deaths") or {}).get("known", False)),
    }


# ---------------------------------------------------------------------------------------------


def _empty(table) -> pl.DataFrame:
    return _frame([], table)


def collect(
    config: Config, config_path: Path | None = None, timings: dict | None = None, visible: list[VisibleRun] | None = None,
    started_at: dt.datetime | None = None, clock: dict[str, list[str]] | None = None, store_started: dt.datetime | None = None,
    staged_input: dict | None = None,
) -> Publication:
    """Every table of the store for this configuration's outputs, disclosure-controlled.
    ``visible``: the runs of the store a viewer can already see (:func:`respop.store.releases.visible_runs`):
    this run is protected together with them. Raises :class:`DisclosureError` when a count of 1
    to 10 would stay narrower than the protection width (nothing is published then).

    ``timings``: seconds of the steps the run did, ``clock`` their start and end (ISO),
    ``started_at`` the run's start, ``store_started`` the start of its store step (default: now);
    the steps whose outputs are there but not in ``timings`` are recorded as reused (the run's
    ``timings``: :func:`run_timings`); ``staged_input``: whether the run reused its staged input
    (respop.pmsi.stage), recorded there too."""
    store_started = store_started or dt.datetime.now()
    require_population(config, "la publication dans le store et sur les tableaux de bord", "publishing to the store and the boards")
    check_chain(config, config_path)  # the steps' outputs belong to one build (respop.stages)
    out = config.output.dir
    if not out.is_dir():
        raise InputError("no outputs for this configuration: run `respop run` (or its steps) first", out)
    rules = Rules(protection=config.disclosure.protection)
    tables, zone_territory, run = territory_tables(config, visible, rules)
    indicators, care_use, transitions = read_indicators(config), read_care_use(config), read_transitions(config)
    if care_use is None or transitions is None:
        care_use = transitions = None
    starts = read_survival_starts(config) if transitions is not None else None
    masks = shared_count_masks(indicators, care_use, transitions, zone_territory, starts, visible, rules, model_test_totals(config))
    if indicators is not None:
        tables["indicators"] = indicators_table(indicators, zone_territory, table_masks(masks, "indicators") or None, visible, rules)
    tables.update(strata_tables(config, zone_territory, care_use, transitions, masks, starts, visible, rules))
    names = dict(tables["territories"].select("territory_id", "territory_name").iter_rows()) if "territories" in tables else {}
    tables.update(evaluation_tables(config, care_use, tables.get("care_use"), indicators, tables.get("indicators"), names, rules))
    unaudited = sum(r.unaudited for r in rules.reports.values())
    if unaudited:  # reported, never skipped silently (runs.disclosure keeps the count per table)
        import sys

        print(f"respop: warning: {unaudited} masked cells are in groups too large for the interval audit "
              f"(more than {MAX_AUDIT_CELLS} masked cells): they keep the two-per-relation rule only (docs/store.md)",
              file=sys.stderr, flush=True)
    narrow = {name: r.failing for name, r in rules.reports.items() if r.failing}
    if narrow:
        cells = sum(len(v) for v in narrow.values())
        raise DisclosureError(
            f"{cells} count(s) of 1 to 10 would stay narrower than the protection width ({rules.protection}) "
            f"under the runs already visible ({', '.join(f'{k}: {len(v)}' for k, v in sorted(narrow.items()))}); "
            "nothing was published. Cells of runs already published cannot be masked again: see docs/store.md (Runs and releases)"
        )
    catalogue = run_catalogue(config)  # frozen at the run's start (respop.spec.catalogue)
    tables["strata_levels"] = strata_levels_table(catalogue)
    tables["catalogue"] = catalogue_table(catalogue)
    report_path = out / "input" / "report.json"
    report = json.loads(report_path.read_text(encoding="utf-8")) if report_path.is_file() else None
    if report is not None:
        tables["quality"] = quality_table(report)
    # every table present, with the schema's columns in order
    for table in schema.RESULT_TABLES:
        columns = schema.published_columns(table)
        tables[table.name] = tables[table.name].select(columns) if table.name in tables else _empty(table)
    years = sorted(set(tables["indicators"]["year"].to_list())) if tables["indicators"].height else []
    from respop.secrets import redacted_config_text  # stored and fingerprinted without its credentials

    text = redacted_config_text(config_path.read_text(encoding="utf-8") if config_path is not None and config_path.is_file() else "")
    run.update(
        name=config.name,
        description=config.description,
        config_path=str(config_path) if config_path is not None else None,
        config_toml=text,
        config_sha256=hashlib.sha256(text.encode()).hexdigest(),
        code_version=__version__,
        first_year=years[0] if years else None,
        last_year=years[-1] if years else None,
        timings=run_timings(config, timings, clock, staged_input),
        started_at=started_at or store_started,
        input_report=input_report_summary(report) if report is not None else None,
        disclosure={
            "threshold": THRESHOLD, "protection": rules.protection,
            "visible_runs": [v.run_id for v in visible or []], "tables": rules.summary(),
        },
    )
    publication = Publication(run=run, tables=tables)
    publication.run["results_sha256"] = publication.fingerprint()
    publication.run["collected_at"] = dt.datetime.now().isoformat(timespec="seconds")
    publication.run["store_started_at"] = store_started  # the store step's seconds count from there (Store.write)
    return publication


def run_timings(config: Config, timings: dict | None, clock: dict[str, list[str]] | None,
                staged_input: dict | None = None) -> dict:
    """The run's ``timings`` (respop.store.schema, ``runs.timings``): the seconds of the steps the
    run did, ``clock`` (when each started and ended) and ``reused``: each step whose outputs are in
    ``<output.dir>`` but that the run did not do → when its outputs were written (its manifest's
    ``written``; null without manifest). Their seconds belong to the run that built them and are
    not counted here. The store step's own seconds are added by :meth:`respop.store.db.Store.write`."""
    from respop.stages import STAGES, read_manifest

    done = {k: v for k, v in (timings or {}).items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    out = config.output.dir
    reused = {
        step: (read_manifest(out / step) or {}).get("written")
        for step in STAGES if step not in done and (out / step).is_dir()
    }
    out = {**done, "clock": dict(clock or {}), "reused": reused, "skipped": period_skips(config)}
    if staged_input is not None:  # respop.pmsi.stage: reused or (re)built, and why (file names, setting keys)
        out["staged_input"] = {k: staged_input.get(k) for k in ("reused", "reasons", "fingerprint")}
    return out


def period_skips(config: Config) -> list[dict]:
    """The parts the data's period left out of the outputs published (respop.periods), recorded
    in the run's ``timings["skipped"]``: those the strata step recorded in its ``summary.json``
    (transitions, survival, prediction), and the evaluation when the configuration has one and the
    period does not allow it (its step did not run; a folder left by an earlier build is not
    published: respop.stages.OPTIONAL)."""
    from respop import periods

    summary = config.output.dir / "strata" / "summary.json"
    out: list[dict] = []
    if summary.is_file():
        try:
            out += [s.to_dict() for s in periods.from_dicts(json.loads(summary.read_text(encoding="utf-8")).get("skipped"))]
        except (OSError, ValueError):
            pass
    evaluation = periods.skipped(config, periods.output_years(config), steps=[periods.EVALUATION])
    return out + [s.to_dict() for s in evaluation]


# ---------------------------------------------------------------------------------------------
# the evaluation of the experiment (issue 20): <output.dir>/evaluation/

EVALUATION = "evaluation"
"""The evaluation step's folder in ``<output.dir>`` (written through :func:`respop.stages.stage_folder`)."""

POPULATION_OUTCOMES = ("disease_stays", "hospitalised")
"""Outcomes per inhabitant (their denominator is a census population, public); every other outcome
is per case (its denominator is a count of people: the cases of the disease)."""

OUTCOME_CELLS: dict[str, tuple[str, ...]] = {
    "emergency_per_case": ("emergency_stays", "people"),
    "readmissions_30d": ("readmissions_30d", "people"),
    "deaths_per_case": ("deaths", "people"),
    "bed_days_per_case": ("bed_days", "people"),
}
"""The published cells (``care_use`` of the territory, stratum ``all``, same disease and year) a
panel outcome is computed from: its events, then its denominator (the cases, = the people of the
``all`` stratum). The other outcomes (``disease_stays``, ``hospitalised``, ``feature:*``) are tied
to a care-use count or to the cases where their private values are equal (:func:`evaluation_masked_cells`)."""

CARE_CANDIDATES = ("people", "stays", "emergency_stays", "bed_days", "readmissions_30d", "deaths")
SECRET_NOTE = "secret statistique"
"""The French note of an evaluation value masked because it depends on a masked cell."""

FALLBACK_OUTCOME_LABELS = {
    "disease_stays": "Séjours pour la maladie (pour 100 000 habitants)",
    "hospitalised": "Personnes hospitalisées pour la maladie (pour 100 000 habitants)",
    "emergency_per_case": "Arrivées par les urgences par personne suivie",
    "readmissions_30d": "Réhospitalisations à 30 jours par personne suivie",
    "deaths_per_case": "Décès par personne suivie",
    "bed_days_per_case": "Journées d'hospitalisation par personne suivie",
}
"""French labels used when the evaluation step's outputs do not give one (design.json's outcomes)."""


def _outcome_key(item) -> tuple[str, str] | None:
    if isinstance(item, str) and "." in item:
        d, o = item.split(".", 1)
        return d, o
    if isinstance(item, dict) and item.get("disease") and item.get("outcome"):
        return str(item["disease"]), str(item["outcome"])
    return None


def evaluation_masked_cells(panel: pl.DataFrame, care_private: pl.DataFrame | None, care_published: pl.DataFrame | None,
                            ind_private: pl.DataFrame | None = None, ind_published: pl.DataFrame | None = None) -> set[tuple]:
    """(territory_id, year, disease, outcome) of the panel whose value is computed from a cell the
    store masks elsewhere in the run: the territory's care-use counts (stratum ``all``) mapped by
    :data:`OUTCOME_CELLS`, and, for the other outcomes, any care-use count or the territory's cases
    (``indicators``, sub-type ``all``) equal to the panel's events or denominator. A territory's
    row absent from the published table is a group with nobody (published zeros)."""
    masked: set[tuple] = set()
    if care_private is None or care_published is None:
        return masked
    key = ["unit", "year", "disease"]

    def territory(frame: pl.DataFrame, extra: pl.Expr) -> dict[tuple, dict]:
        rows = frame.filter((pl.col("level") == "territory") & extra).with_columns(pl.col("year").cast(pl.Int64))
        return {tuple(r[k] for k in key): r for r in rows.iter_rows(named=True)}

    private = territory(care_private, pl.col("stratum") == "all")
    published = territory(care_published, pl.col("stratum") == "all")
    cases_private = territory(ind_private, pl.col("subtype") == "all") if ind_private is not None else {}
    cases_published = territory(ind_published, pl.col("subtype") == "all") if ind_published is not None else {}
    for row in panel.iter_rows(named=True):
        k = (str(row["territory_id"]), int(row["year"]), row["disease"])
        pub, priv = published.get(k), private.get(k)
        if pub is None:
            continue  # nobody: nothing masked
        outcome = row["outcome"]
        columns = set(OUTCOME_CELLS.get(outcome, ()))
        if outcome not in OUTCOME_CELLS and priv is not None:
            for value in (row.get("events"), row.get("denominator") if outcome not in POPULATION_OUTCOMES else None):
                if value is None:
                    continue
                columns |= {c for c in CARE_CANDIDATES if priv.get(c) is not None and float(priv[c]) == float(value)}
                if outcome not in POPULATION_OUTCOMES:
                    columns.add("people")
        hidden = any(c in pub and pub[c] is None for c in columns)
        cases = cases_published.get(k)
        if cases is not None and cases_private.get(k) is not None and cases["cases"] is None:
            value = cases_private[k]["cases"]
            hidden |= any(v is not None and float(v) == float(value) for v in (row.get("events"), row.get("denominator")))
        if hidden:
            masked.add((int(row["territory_id"]), int(row["year"]), row["disease"], outcome))
    return masked


def _note(note, masked: bool) -> str | None:
    if not masked:
        return note
    return SECRET_NOTE if not note else f"{SECRET_NOTE} ; {note}"


def evaluation_tables(config: Config, care_private: pl.DataFrame | None, care_published: pl.DataFrame | None,
                      ind_private: pl.DataFrame | None = None, ind_published: pl.DataFrame | None = None,
                      names: dict[int, str] | None = None, rules: Rules | None = None) -> dict[str, pl.DataFrame]:
    """The evaluation's tables (``evaluation_*`` of :mod:`respop.store.schema`) from
    ``<output.dir>/evaluation/`` (none when the configuration has no ``[evaluation]`` or the step
    has not run: that is normal). The panel's counts are not published. Every effect, event-study
    point, trajectory point and weight computed from a cell the store masks elsewhere in this run
    (:func:`evaluation_masked_cells`) is masked (null, note « secret statistique »): a pilot's own
    cells; for the difference-in-differences any donor's; for the synthetic control the donors
    with a positive weight. The outcomes by deprivation quintile are disclosure-controlled like
    the other count tables (the quintiles sum to the area)."""
    folder = config.output.dir / EVALUATION
    if EVALUATION not in active_stages(config) or not folder.is_dir():
        # no [evaluation], or a period that does not allow it (respop.periods): a folder left by an
        # earlier build is not published; else its manifest chains with the other steps'
        # (respop.stages.check_chain, in collect)
        return {}
    rules = rules or Rules()
    design = json.loads((folder / "design.json").read_text(encoding="utf-8")) if (folder / "design.json").is_file() else {}

    def parquet(name: str) -> pl.DataFrame | None:
        return pl.read_parquet(folder / name) if (folder / name).is_file() else None

    panel = parquet("panel.parquet")
    names = names or {}
    # -- design
    pilots = {int(p["territory_id"]): int(p["start_year"]) for p in design.get("pilots", [])}
    pilot_names = {int(p["territory_id"]): p.get("territory_name") for p in design.get("pilots", [])}
    def ids(items) -> list[int]:  # ids, or {territory_id, territory_name, ...} (respop.evaluation.design)
        return [int(i["territory_id"]) if isinstance(i, dict) else int(i) for i in items or []]

    donors = ids(design.get("donors"))
    excluded = ids(design.get("excluded") or design.get("excluded_neighbours"))
    if panel is not None and "role" in panel.columns:
        roles = panel.select(pl.col("territory_id").cast(pl.Int64), "role", *(["start_year"] if "start_year" in panel.columns else [])).unique("territory_id")
        for r in roles.iter_rows(named=True):
            t = int(r["territory_id"])
            if r["role"] == "pilot" and t not in pilots and r.get("start_year") is not None:
                pilots[t] = int(r["start_year"])
            elif r["role"] == "donor" and t not in donors:
                donors.append(t)
            elif r["role"] == "excluded" and t not in excluded:
                excluded.append(t)
    territory_rows = [
        *({"territory_id": t, "territory_name": pilot_names.get(t) or names.get(t), "role": "pilot", "start_year": s} for t, s in sorted(pilots.items())),
        *({"territory_id": t, "territory_name": names.get(t), "role": "donor", "start_year": None} for t in sorted(donors)),
        *({"territory_id": t, "territory_name": names.get(t), "role": "excluded", "start_year": None} for t in sorted(excluded)),
    ]
    years = [int(y) for y in design.get("years", [])] or (sorted(set(panel["year"].to_list())) if panel is not None else [])
    tables: dict[str, pl.DataFrame] = {
        "evaluation_territories": _frame(territory_rows, schema.evaluation_territories),
        "evaluation_design": _frame([{
            "first_year": years[0] if years else None, "last_year": years[-1] if years else None,
            "confidence": design.get("confidence", config.evaluation.confidence),
            "min_pre_years": config.evaluation.min_pre_years,
            "exclude_neighbours": config.evaluation.exclude_neighbours,
            "deprivation": bool(design.get("deprivation")) or (folder / "by_deprivation.parquet").is_file(),
            "detail": json.dumps(design, ensure_ascii=False, sort_keys=True),
        }], schema.evaluation_design),
    }
    # -- outcomes and their French labels
    effects = parquet("effects.parquet")
    outcomes: dict[tuple[str, str], str | None] = {}
    given = design.get("outcome_labels") or {}
    for item in design.get("outcomes", []):
        k = _outcome_key(item)
        if k is not None:
            outcomes[k] = (item.get("label") if isinstance(item, dict) else None) or given.get(f"{k[0]}.{k[1]}")
    if effects is not None:
        for d, o in effects.select("disease", "outcome").unique(maintain_order=True).iter_rows():
            outcomes.setdefault((d, o), None)
    tables["evaluation_outcomes"] = _frame(
        [{"disease": d, "outcome": o, "label": lab or _outcome_label(d, o)} for (d, o), lab in outcomes.items()],
        schema.evaluation_outcomes)
    # -- what depends on a masked cell
    masked = evaluation_masked_cells(panel, care_private, care_published, ind_private, ind_published) if panel is not None else set()
    weights = parquet("weights.parquet")
    positive: dict[tuple, set[int]] = defaultdict(set)
    if weights is not None:
        for d, o, t, donor, w in weights.select("disease", "outcome", "territory_id", "donor_id", "weight").iter_rows():
            if w is not None and w > 1e-9:
                positive[(d, o, int(t))].add(int(donor))
    panel_years = sorted(set(panel["year"].to_list())) if panel is not None else years

    def hit(d: str, o: str, territories, years_=None) -> bool:
        ys = panel_years if years_ is None else years_
        return any((int(t), int(y), d, o) in masked for t in territories for y in ys)

    def pre(t: int) -> list[int]:
        return [y for y in panel_years if y < pilots.get(t, 10**6)]

    values = ["effect", "ci_lower", "ci_upper", "p_value", "effect_abs", "counterfactual", "pre_fit"]
    if effects is not None:
        rows = []
        for r in effects.iter_rows(named=True):
            d, o, t = r["disease"], r["outcome"], r["territory_id"]
            which = list(pilots) if t is None else [int(t)]
            if r["method"] == "did":
                hidden = hit(d, o, [*which, *donors])
            else:
                hidden = hit(d, o, [*which, *(x for p in which for x in positive[(d, o, p)])])
            hidden = hidden and r["effect"] is not None  # an effect the step did not estimate keeps its own reason
            rows.append({**r, **({v: None for v in values} if hidden else {}), "note": _note(r.get("note"), hidden)})
        tables["evaluation_effects"] = _frame(rows, schema.evaluation_effects)
    study = parquet("event_study.parquet")
    if study is not None:
        rows = []
        for r in study.iter_rows(named=True):
            # the reference year (-1) is 0 by construction: a function of nothing
            hidden = r["event_time"] != -1 and hit(r["disease"], r["outcome"], [*pilots, *donors])
            rows.append({**r, **({v: None for v in ("effect", "ci_lower", "ci_upper")} if hidden else {})})
        tables["evaluation_event_study"] = _frame(rows, schema.evaluation_event_study)
    paths = parquet("trajectories.parquet")
    if paths is not None:
        rows = []
        for r in paths.iter_rows(named=True):
            d, o, t, y = r["disease"], r["outcome"], int(r["territory_id"]), int(r["year"])
            span = sorted({*pre(t), y})
            rows.append({**r,
                         "observed": None if hit(d, o, [t], span) else r["observed"],
                         "synthetic": None if hit(d, o, positive[(d, o, t)], span) else r["synthetic"]})
        tables["evaluation_trajectories"] = _frame(rows, schema.evaluation_trajectories)
    if weights is not None:
        rows = []
        for r in weights.iter_rows(named=True):
            d, o, t = r["disease"], r["outcome"], int(r["territory_id"])
            hidden = hit(d, o, [t, *positive[(d, o, t)]], pre(t))
            rows.append({**r, "weight": None if hidden else r["weight"]})
        tables["evaluation_weights"] = _frame(rows, schema.evaluation_weights)
    power = parquet("power.parquet")
    if power is not None:
        tables["evaluation_power"] = power.select(schema.published_columns(schema.evaluation_power)).cast(
            {k: v for k, v in schema.polars_schema(schema.evaluation_power).items() if k not in schema.STORE_KEYS})
    # by_deprivation.parquet stays in the run's private outputs: a quintile's count is a sum of
    # zone cells the store publishes (care use, indicators), and a viewer who knows which zones
    # are in which quintile (a published index) would get new relations that the suppression does
    # not see. It is published once those relations are in the joint suppression (docs/store.md).
    return tables


def _outcome_label(disease: str, outcome: str) -> str:
    """An outcome's label when design.json gives none (outputs of an earlier step's version):
    :data:`FALLBACK_OUTCOME_LABELS` and the disease's id. The store reads the run's outputs, never
    the specs or the evaluation modules (the boards import the store)."""
    if outcome.startswith("feature:"):
        return f"Part des personnes suivies avec « {outcome.split(':', 1)[1]} » — {disease}"
    return f"{FALLBACK_OUTCOME_LABELS.get(outcome, outcome)} — {disease}"


