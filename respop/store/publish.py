"""What a run publishes: the aggregated outputs of a configuration, made safe to leave the pipeline.

:func:`collect` reads the run's outputs under ``<output.dir>`` (territories, cases, strata, the
input report), keeps only aggregates, and passes **every count through disclosure control here,
in one place** (:mod:`respop.store.disclosure`): counts of 1 to 10 people or stays are masked,
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
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import numpy as np
import polars as pl
import shapely

from respop import __version__
from respop.config import Config
from respop.errors import InputError
from respop.store import schema
from respop.store.disclosure import (
    THRESHOLD,
    CrossRelation,
    Relation,
    exact_relations,
    masked_count,
    protect,
    protect_calibration,
    relations_from_keys,
    relations_from_mapping,
    suppress_together,
)

SURVIVAL_MIN_DAYS = 7
"""Published points of a survival curve are at least a week apart (and 11 events apart)."""


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
    from respop.store.db import polars_schema

    types = {k: v for k, v in polars_schema(table).items() if k not in schema.STORE_KEYS}
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


def territory_tables(config: Config) -> tuple[dict[str, pl.DataFrame], pl.DataFrame | None, dict]:
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
            tables["flows"] = flows_table(pl.read_parquet(folder / "flows.parquet"), zone_territory)
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


def flows_table(flows: pl.DataFrame, zone_territory: pl.DataFrame) -> pl.DataFrame:
    """Stays of each territory's residents per hospital group, with the territory's total row
    (``hospital_group = 'all'``); masked below 11 with complementary suppression."""
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
    return protect(table, ["stays"], relations, rates={"stays": ["share"]})


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
HIDDEN_ROWS = pl.col("level") == "zone"
"""Care-use rows where re-hospitalisations and deaths are not published (see ZONE_HIDDEN_COUNTS)."""


def shared_count_masks(
    indicators: pl.DataFrame | None,
    care_use: pl.DataFrame | None,
    transitions: pl.DataFrame | None,
    zone_territory: pl.DataFrame | None,
    survival_starts: pl.DataFrame | None = None,
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

    Keys: ``indicators.cases``, ``care_use.people`` (every row), ``care_use.deaths`` (the rows
    where deaths are published, not zones), ``transitions.count`` and ``survival.at_risk`` (one
    per row of ``survival_starts``), for the tables given.
    Measured on 5 national years, the first tie alone: protected one table at a time, 30 of these
    counts were masked in one table and published in the other, and 56 masked cells could be
    recovered from the two tables together. Links are made only where the counts agree exactly."""
    columns: dict[str, tuple[list, list[Relation]]] = {}
    if indicators is not None:
        values = indicators["cases"].to_list()
        columns["indicators.cases"] = (values, exact_relations(values, geographic_relations(indicators, "subtype", ["year", "disease"], zone_territory)))
    if care_use is not None:
        values = care_use["people"].to_list()
        columns["care_use.people"] = (values, exact_relations(values, geographic_relations(care_use, "stratum", ["year", "disease"], zone_territory)))
        upper = care_use.filter(~HIDDEN_ROWS)
        values = upper["deaths"].to_list()
        columns["care_use.deaths"] = (values, exact_relations(values, geographic_relations(upper, "stratum", ["year", "disease"], zone_territory)))
    if transitions is not None:
        values = transitions["count"].to_list()
        columns["transitions.count"] = (values, exact_relations(values, transition_relations(transitions)))
    if survival_starts is not None and transitions is not None:
        columns["survival.at_risk"] = (survival_starts["at_risk"].to_list(), [])
    if not columns:
        return {}
    number = {name: k for k, name in enumerate(columns)}
    links: list[CrossRelation] = []
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
        upper = use.filter(~HIDDEN_ROWS).with_row_index("_upper")
        people, deaths = number["care_use.people"], number["care_use.deaths"]
        implies = [((people, int(r)), (deaths, int(u))) for r, u in upper.select("_row", "_upper").iter_rows()]
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
    masks = suppress_together(list(columns.values()), links, implies)
    return dict(zip(columns, masks))


def indicators_table(table: pl.DataFrame, zone_territory: pl.DataFrame | None, cases_mask: list[bool] | None = None) -> pl.DataFrame:
    """The indicators as published (``table`` from :func:`read_indicators`); ``cases_mask``: the
    mask of ``cases`` chosen with care use (:func:`shared_count_masks`)."""
    relations = geographic_relations(table, "subtype", ["year", "disease"], zone_territory)
    out = protect(table, ["cases", "incident_cases", "cases_outside", "cases_unstandardised"], relations, rates=INDICATOR_RATES,
                  decided={"cases": cases_mask} if cases_mask is not None else None)
    return out.with_columns(pl.col(pl.Int16).cast(pl.Int64))


CARE_COUNTS = ["people", "stays", "emergency_stays", "bed_days", "readmissions_30d", "deaths"]


ZONE_HIDDEN_COUNTS = ["readmissions_30d", "deaths"]
"""Not published per zone, only per territory and area: per zone and stratum they are almost all
below 11 (national: 200,264 of 250,743 zone death cells would be masked), and their masked cells
join into country-wide groups too large for the exact audit."""


def care_use_table(
    table: pl.DataFrame, zone_territory: pl.DataFrame | None, people_mask: list[bool] | None = None, deaths_mask: list[bool] | None = None
) -> pl.DataFrame:
    """Care use per unit and stratum (``table`` from :func:`read_care_use`): a group of fewer than
    11 people publishes no measure; re-hospitalisations and deaths per territory and area only.
    ``people_mask``, ``deaths_mask`` (rows other than zones): masks chosen with the other tables
    (:func:`shared_count_masks`)."""
    relations = geographic_relations(table, "stratum", ["year", "disease"], zone_territory)
    dense = [c for c in CARE_COUNTS if c not in ZONE_HIDDEN_COUNTS]
    out = protect(table, dense, relations, rates={c: [f"{c}_per_person"] for c in dense if c != "people"},
                  whole_row="people", decided={"people": people_mask} if people_mask is not None else None)
    upper = table.with_row_index("_row").filter(~HIDDEN_ROWS)
    upper_relations = geographic_relations(upper.drop("_row"), "stratum", ["year", "disease"], zone_territory)
    # the hidden measures are protected from the people masked in the whole table
    upper_people = out["people"].is_null().gather(upper["_row"]).to_list()
    protected = protect(upper.drop("_row"), ["people", *ZONE_HIDDEN_COUNTS], upper_relations,
                        rates={c: [f"{c}_per_person"] for c in ZONE_HIDDEN_COUNTS}, whole_row="people",
                        decided={"people": upper_people, **({"deaths": deaths_mask} if deaths_mask is not None else {})})
    hidden = [*ZONE_HIDDEN_COUNTS, *(f"{c}_per_person" for c in ZONE_HIDDEN_COUNTS)]
    values = pl.DataFrame({"_row": upper["_row"]}).with_columns(protected.select(hidden))
    out = (
        out.drop(hidden).with_row_index("_row").join(values, on="_row", how="left").drop("_row")
        # a group whose people are masked in the full table publishes none of its measures
        .with_columns(pl.when(pl.col("people").is_null()).then(None).otherwise(pl.col(c)).alias(c) for c in hidden)
        .select(table.columns)
    )
    return out.with_columns(pl.col(pl.Int16).cast(pl.Int64))


def transitions_table(table: pl.DataFrame, count_mask: list[bool] | None = None) -> pl.DataFrame:
    """Transitions as published (``table`` from :func:`read_transitions`); ``count_mask``: chosen
    with care use (:func:`shared_count_masks`)."""
    return protect(table, ["count"], transition_relations(table), rates={"count": ["proportion"]},
                   decided={"count": count_mask} if count_mask is not None else None)


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
            cal, _ = protect_calibration(pl.read_csv(sub / "calibration.csv"))
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
) -> dict[str, pl.DataFrame]:
    folder = config.output.dir / "strata"
    if care_use is None or transitions is None:
        return {}
    tables = {
        "care_use": care_use_table(care_use, zone_territory, masks.get("care_use.people"), masks.get("care_use.deaths")),
        "transitions": transitions_table(transitions, masks.get("transitions.count")),
    }
    hidden: set[tuple[str, str]] = set()
    if survival_starts is not None and "survival.at_risk" in masks:
        hidden = {(d, st) for (d, st), m in zip(survival_starts.select("disease", "stratum").iter_rows(), masks["survival.at_risk"]) if m}
    if (folder / "survival" / "km.parquet").is_file():
        tables["survival_curves"] = survival_curves_table(pl.read_parquet(folder / "survival" / "km.parquet"), hidden)
    tables["survival_tests"] = survival_tests_table(folder / "survival", hidden)
    tables.update(model_tables(folder / "prediction"))
    return tables


def strata_levels_table(config: Config) -> pl.DataFrame:
    from respop.case_finding.spec import load_specs

    rows = []
    for spec in load_specs(list(config.diseases), config.cases.algorithms_dir):
        if spec.strata is None:
            continue
        for level in spec.strata.levels:
            rows.append({
                "disease": spec.algorithm.id, "disease_name": spec.algorithm.name, "stratum": level.name,
                "stratum_level": spec.strata.level_of(level.name), "name": level.label,
                "description": level.description, "protocol": level.protocol, "condition": level.when,
            })
    return _frame(rows, schema.strata_levels)


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
        for reason, n in t.get("reasons", {}).items():
            rows.append({"section": "reason", "item": t["label"], "measure": "rows", "detail": reason,
                         "rows": n, "enabled": None})
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
    }


# ---------------------------------------------------------------------------------------------


def _empty(table) -> pl.DataFrame:
    return _frame([], table)


def collect(config: Config, config_path: Path | None = None, timings: dict | None = None) -> Publication:
    """Every table of the store for this configuration's outputs, disclosure-controlled."""
    out = config.output.dir
    if not out.is_dir():
        raise InputError("no outputs for this configuration: run `respop run` (or its steps) first", out)
    tables, zone_territory, run = territory_tables(config)
    indicators, care_use, transitions = read_indicators(config), read_care_use(config), read_transitions(config)
    if care_use is None or transitions is None:
        care_use = transitions = None
    starts = read_survival_starts(config) if transitions is not None else None
    masks = shared_count_masks(indicators, care_use, transitions, zone_territory, starts)
    if indicators is not None:
        tables["indicators"] = indicators_table(indicators, zone_territory, masks.get("indicators.cases"))
    tables.update(strata_tables(config, zone_territory, care_use, transitions, masks, starts))
    tables["strata_levels"] = strata_levels_table(config)
    report_path = out / "input" / "report.json"
    report = json.loads(report_path.read_text(encoding="utf-8")) if report_path.is_file() else None
    if report is not None:
        tables["quality"] = quality_table(report)
    # every table present, with the schema's columns in order
    for table in schema.RESULT_TABLES:
        columns = schema.published_columns(table)
        tables[table.name] = tables[table.name].select(columns) if table.name in tables else _empty(table)
    years = sorted(set(tables["indicators"]["year"].to_list())) if tables["indicators"].height else []
    summaries = {step: out / step / "summary.json" for step in ("cases", "strata")}
    step_seconds = {
        step: json.loads(p.read_text(encoding="utf-8")).get("seconds") for step, p in summaries.items() if p.is_file()
    }
    text = config_path.read_text(encoding="utf-8") if config_path is not None and config_path.is_file() else ""
    run.update(
        name=config.name,
        description=config.description,
        config_path=str(config_path) if config_path is not None else None,
        config_toml=text,
        config_sha256=hashlib.sha256(text.encode()).hexdigest(),
        code_version=__version__,
        first_year=years[0] if years else None,
        last_year=years[-1] if years else None,
        timings={**step_seconds, **(timings or {})},
        input_report=input_report_summary(report) if report is not None else None,
    )
    publication = Publication(run=run, tables=tables)
    publication.run["results_sha256"] = publication.fingerprint()
    publication.run["collected_at"] = dt.datetime.now().isoformat(timespec="seconds")
    return publication
