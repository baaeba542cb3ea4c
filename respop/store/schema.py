"""The tables of the results store (SQLAlchemy 2 Core).

Only aggregated, disclosure-controlled results enter these tables (``respop.store.publish``):
counts of people or stays are ``None`` where masked (1 to 10, or complementary), and every rate
built on a masked count is ``None`` too. No patient key, date of birth or row-level data.

Every result table is keyed by ``run_id``: a run is written in one transaction, and earlier runs
stay readable. The Alembic migrations (``respop/store/migrations``) create exactly these tables;
``tests/store`` checks that the migrated schema and this module agree.

Geometries are WKB in the zones' CRS (``runs.crs``, Lambert-93 for France); PostGIS is not
needed.

Times of a run (``runs``):

- ``started_at``: when the run started: the moment ``respop run`` started (before the PMSI was
  read), not the moment its results were published. For ``respop store publish`` (outputs of
  earlier runs published on their own, without running a step) it is the moment publishing
  started, and every step is in ``reused``.
- ``finished_at``: when the run ended (its store step committed, or failed).
- ``timings`` (JSON): ``{step: seconds}`` for each step the run did (``input``, ``territories``,
  ``cases``, ``strata``, ``store``; wall-clock seconds, the store step from the start of its
  publication to its commit); ``clock``: ``{step: [start, end]}`` (ISO 8601, local time, like
  ``started_at``) for those steps; ``reused``: ``{step: written}`` for each step whose outputs
  were there but that the run did not do (``--steps`` left it out, or ``respop store publish``):
  its outputs come from an earlier run, written at ``written`` (ISO; null when unknown), and its
  seconds, which belong to that run, are not in ``timings``. So the numbers of ``timings`` sum to
  the duration of the run's own steps, about ``finished_at - started_at`` (less the loading of
  the configuration and specs between steps). ``staged_input``: ``{reused, reasons,
  fingerprint}`` when the run read the PMSI: whether it read its staged input as it was or
  validated and staged it again, and why (file names, setting keys: respop.pmsi.stage).
  ``skipped``: the parts the data's period left out (respop.periods: ``transitions``,
  ``survival``, ``prediction``, ``evaluation``), each ``{part, step, min_years, years, fr, en}``
  with the sentences the boards and the command line say (docs/store.md, "Any period"). While a
  run is ``running`` it also holds ``process`` (host, pid, start:
  :meth:`respop.store.db.Store.mark_interrupted`). Runs published before these keys existed have
  the seconds of their steps only (their ``started_at`` was the publication's).
"""

from __future__ import annotations

import polars as pl
from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

RUN_STATUSES = ("running", "succeeded", "failed", "interrupted")

runs = Table(
    "runs",
    metadata,
    Column("run_id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False, index=True, comment="the configuration's name"),
    Column("description", Text),
    Column("config_path", Text, comment="the configuration file, as given"),
    Column("config_toml", Text, nullable=False, comment="the configuration file's text"),
    Column("config_sha256", String(64), nullable=False),
    Column("results_sha256", String(64), nullable=False, comment="fingerprint of the published results"),
    Column("code_version", String(40), nullable=False),
    Column("first_year", Integer),
    Column("last_year", Integer),
    Column("status", String(12), nullable=False, comment="running, succeeded or failed"),
    Column("started_at", DateTime, nullable=False),
    Column("finished_at", DateTime),
    Column("timings", JSON, comment="seconds per step"),
    Column("input_report", JSON, comment="the PMSI input report (masked counts are null)"),
    Column("selected_territory", Integer, comment="the configuration's territory of interest"),
    Column("crs", String(40), comment="CRS of the geometries, e.g. EPSG:2154"),
    Column("error", Text),
    Column(
        "disclosure", JSON,
        comment="the disclosure rules and, per table, masked cells, audit programs, cells left narrow or unaudited",
    ),
)


def _run_id() -> Column:
    return Column("run_id", Integer, ForeignKey("runs.run_id", ondelete="CASCADE"), nullable=False, index=True)


def _row_id() -> Column:
    """Surrogate key: rows are read back in the order they were published."""
    return Column("row_id", Integer, primary_key=True, autoincrement=True)


territories = Table(
    "territories",
    metadata,
    _row_id(),
    _run_id(),
    Column("territory_id", Integer, nullable=False),
    Column("territory_name", String(200), nullable=False),
    Column("population", Integer, comment="census population (public)"),
    Column("zones", Integer),
    Column("hospitals", Integer),
    Column("stays_residents", Integer, comment="stays of residents (masked below 11)"),
    Column("localization_index", Float),
    Column("market_share_index", Float),
    Column("compactness", Float),
    Column("area_km2", Float),
    Column("geometry", LargeBinary, comment="WKB"),
)

zones = Table(
    "zones",
    metadata,
    _row_id(),
    _run_id(),
    Column("zone_code", String(10), nullable=False),
    Column("departement", String(3)),
    Column("territory_id", Integer, comment="null: zone outside the configuration's scope"),
    Column("population", Integer, comment="census population (public)"),
    Column("geometry", LargeBinary, comment="WKB"),
)

hospitals = Table(
    "hospitals",
    metadata,
    _row_id(),
    _run_id(),
    Column("hospital_id", String(20), nullable=False, comment="FINESS (public)"),
    Column("name", String(200)),
    Column("town", String(200)),
    Column("zone_code", String(10)),
    Column("territory_id", Integer),
    Column("kind", String(40)),
    Column("has_emergency", Boolean),
)

flows = Table(
    "flows",
    metadata,
    _row_id(),
    _run_id(),
    Column("territory_id", Integer, nullable=False, comment="territory of residence"),
    Column("hospital_group", String(40), nullable=False, comment="'all': every group (the total row)"),
    Column("group_name", String(200)),
    Column("group_territory_id", Integer, comment="territory where the group's main hospital is"),
    Column("stays", Integer, comment="masked below 11"),
    Column("share", Float, comment="share of the territory's resident stays; null where masked"),
)

indicators = Table(
    "indicators",
    metadata,
    _row_id(),
    _run_id(),
    Column("level", String(10), nullable=False, comment="zone, territory or area"),
    Column("unit", String(20), nullable=False),
    Column("unit_name", String(200)),
    Column("year", Integer, nullable=False),
    Column("disease", String(40), nullable=False),
    Column("subtype", String(40), nullable=False, comment="'all' or a sub-type of the algorithm"),
    Column("cases", Integer),
    Column("incident_cases", Integer),
    Column("population", Integer),
    *(
        Column(f"{measure}_{kind}{suffix}", Float)
        for measure in ("prevalence", "incidence")
        for kind in ("crude", "std")
        for suffix in ("", "_low", "_high")
    ),
    Column("complete_history", Boolean),
    Column("cases_outside", Integer),
    Column("cases_unstandardised", Integer),
)

strata_levels = Table(
    "strata_levels",
    metadata,
    _row_id(),
    _run_id(),
    Column("disease", String(40), nullable=False),
    Column("disease_name", String(200)),
    Column("stratum", String(60), nullable=False),
    Column("stratum_level", Integer, nullable=False, comment="1 = least severe"),
    Column("name", String(200), nullable=False, comment="French name"),
    Column("description", Text),
    Column("protocol", Text, comment="care protocol (French)"),
    Column("condition", Text),
)

catalogue = Table(
    "catalogue",
    metadata,
    _row_id(),
    _run_id(),
    Column("disease", String(40), nullable=False),
    Column("kind", String(20), nullable=False,
           comment="disease, source, subtype, branch, feature, strata_source or stratum"),
    Column("name", String(200), nullable=False, comment="identifier (the disease's own row: its id)"),
    Column("rank", Integer, nullable=False, comment="order in the spec (strata: 1 = least severe)"),
    Column("label", Text, nullable=False, comment="French name or label (a source: its reference)"),
    Column("description", Text),
    Column("protocol", Text, comment="strata: care protocol (French)"),
    Column("condition", Text, comment="strata: the condition on the features"),
    Column("codes", Text, comment="code features: ICD-10 prefixes"),
    Column("version", String(40), comment="the disease's own row: the algorithm's version"),
    comment="the specs the run used (respop.spec.catalogue): text only, no count",
)

care_use = Table(
    "care_use",
    metadata,
    _row_id(),
    _run_id(),
    Column("level", String(10), nullable=False),
    Column("unit", String(20), nullable=False),
    Column("unit_name", String(200)),
    Column("year", Integer, nullable=False),
    Column("disease", String(40), nullable=False),
    Column("stratum", String(60), nullable=False, comment="'all': every stratum"),
    Column("people", Integer),
    Column("stays", Integer),
    Column("emergency_stays", Integer),
    Column("bed_days", Integer),
    Column("readmissions_30d", Integer),
    Column("deaths", Integer),
    Column("stays_per_person", Float),
    Column("emergency_stays_per_person", Float),
    Column("bed_days_per_person", Float),
    Column("readmissions_30d_per_person", Float),
    Column("deaths_per_person", Float),
)

transitions = Table(
    "transitions",
    metadata,
    _row_id(),
    _run_id(),
    Column("disease", String(40), nullable=False),
    Column("year", Integer, nullable=False, comment="year N (from); to is year N + 1"),
    Column("from_stratum", String(60), nullable=False),
    Column("to_stratum", String(60), nullable=False, comment="a stratum, 'deces', 'non_revu' or 'all' (row total)"),
    Column("count", Integer),
    Column("proportion", Float),
)

survival_curves = Table(
    "survival_curves",
    metadata,
    _row_id(),
    _run_id(),
    Column("disease", String(40), nullable=False),
    Column("stratum", String(60), nullable=False),
    Column("stratum_level", Integer, nullable=False),
    Column("time", Float, nullable=False, comment="days since 1 January of the year"),
    Column("survival", Float),
    Column("lower", Float),
    Column("upper", Float),
    Column("at_risk", Integer, comment="people still at risk (the curve stops below 11)"),
)

survival_tests = Table(
    "survival_tests",
    metadata,
    _row_id(),
    _run_id(),
    Column("disease", String(40), nullable=False),
    Column("kind", String(20), nullable=False, comment="logrank, cox or ph_test"),
    Column("term", String(100), nullable=False, comment="covariate, or 'higher vs lower' strata"),
    Column("estimate", Float, comment="hazard ratio (cox), statistic (logrank, ph_test)"),
    Column("lower", Float),
    Column("upper", Float),
    Column("p_value", Float),
    Column("n", Integer),
    Column("events", Integer),
    Column("detail", Text, comment="JSON: further figures of the test"),
)

model_metrics = Table(
    "model_metrics",
    metadata,
    _row_id(),
    _run_id(),
    Column("disease", String(40), nullable=False),
    Column("model", String(40), nullable=False),
    Column("auc", Float),
    Column("brier", Float),
    Column("brier_reference", Float),
    Column("log_loss", Float),
    Column("target", String(40), comment="upstratum (higher stratum or death) or emergency_or_death"),
    Column("auc_lower", Float, comment="DeLong interval"),
    Column("auc_upper", Float),
    Column("brier_skill", Float, comment="1 - brier / brier_reference: > 0 beats the prevalence"),
    Column("calibration_slope", Float),
    Column("calibration_slope_lower", Float),
    Column("calibration_slope_upper", Float),
    Column("calibration_intercept", Float, comment="calibration-in-the-large"),
    Column("calibration_intercept_lower", Float),
    Column("calibration_intercept_upper", Float),
    Column("recalibration_intercept", Float, comment="temporal recalibration applied (null: none)"),
    Column("recalibration_slope", Float),
)

model_calibration = Table(
    "model_calibration",
    metadata,
    _row_id(),
    _run_id(),
    Column("disease", String(40), nullable=False),
    Column("model", String(40), nullable=False),
    Column("bin", Integer, nullable=False),
    Column("n", Integer),
    Column("mean_predicted", Float),
    Column("observed_rate", Float),
    Column("target", String(40), comment="upstratum (higher stratum or death) or emergency_or_death"),
)

model_importance = Table(
    "model_importance",
    metadata,
    _row_id(),
    _run_id(),
    Column("disease", String(40), nullable=False),
    Column("feature", String(60), nullable=False),
    Column("importance", Float),
    Column("importance_std", Float),
)

model_cards = Table(
    "model_cards",
    metadata,
    _row_id(),
    _run_id(),
    Column("disease", String(40), nullable=False),
    Column("markdown", Text, nullable=False),
)

quality = Table(
    "quality",
    metadata,
    _row_id(),
    _run_id(),
    Column("section", String(20), nullable=False, comment="file, reason, filter or stays"),
    Column("item", String(100), nullable=False, comment="file label, filter name, or 'stays'"),
    Column("measure", String(40), nullable=False, comment="read, loaded, quarantined; rows; excluded; loaded, kept, sessions"),
    Column("detail", Text, comment="quarantine reason, or what the filter catches"),
    Column("rows", Integer, comment="rows or stays (masked below 11)"),
    Column("enabled", Boolean, comment="filters: applied or not"),
)

evaluation_design = Table(
    "evaluation_design",
    metadata,
    _row_id(),
    _run_id(),
    Column("first_year", Integer, comment="first year of the evaluation's panel"),
    Column("last_year", Integer),
    Column("confidence", Float, comment="level of the confidence intervals"),
    Column("min_pre_years", Integer, comment="years of data required before each pilot's start"),
    Column("exclude_neighbours", Boolean, comment="territories adjacent to a pilot left out of the donors"),
    Column("deprivation", Boolean, comment="a deprivation index was given (evaluation_deprivation)"),
    Column("detail", Text, comment="design.json of the evaluation step as JSON text (ids, years, settings; no count)"),
    comment="the evaluation's design (one row per run that has one): no count",
)

evaluation_territories = Table(
    "evaluation_territories",
    metadata,
    _row_id(),
    _run_id(),
    Column("territory_id", Integer, nullable=False),
    Column("territory_name", String(200)),
    Column("role", String(10), nullable=False, comment="pilot, donor or excluded"),
    Column("start_year", Integer, comment="pilots: the year the intervention started"),
    comment="pilots, donors (comparison territories) and excluded neighbours: no count",
)

evaluation_outcomes = Table(
    "evaluation_outcomes",
    metadata,
    _row_id(),
    _run_id(),
    Column("disease", String(40), nullable=False),
    Column("outcome", String(60), nullable=False),
    Column("label", Text, nullable=False, comment="French label of the outcome"),
    comment="the outcomes evaluated, with their French labels: no count",
)

evaluation_effects = Table(
    "evaluation_effects",
    metadata,
    _row_id(),
    _run_id(),
    Column("method", String(20), nullable=False, comment="did or synthetic_control"),
    Column("disease", String(40), nullable=False),
    Column("outcome", String(60), nullable=False),
    Column("territory_id", Integer, comment="the pilot; null: every pilot pooled"),
    Column("effect", Float, comment="relative effect (-0.15: 15 % lower than without the intervention)"),
    Column("ci_lower", Float),
    Column("ci_upper", Float),
    Column("p_value", Float),
    Column("effect_abs", Float, comment="effect in the outcome's unit"),
    Column("counterfactual", Float, comment="the outcome's level without the intervention"),
    Column("pre_fit", Float, comment="DiD: p-value of the pre-trend test; SC: relative pre-period RMSPE"),
    Column("n_donors", Integer, comment="comparison territories used (not a count of people)"),
    Column("post_years", Integer),
    Column("note", Text, comment="French note (e.g. secret statistique: a value depends on a masked cell)"),
    comment="effects per method, outcome and pilot; null where a value depends on a masked cell",
)

evaluation_event_study = Table(
    "evaluation_event_study",
    metadata,
    _row_id(),
    _run_id(),
    Column("disease", String(40), nullable=False),
    Column("outcome", String(60), nullable=False),
    Column("event_time", Integer, nullable=False, comment="year - start year; -1 is the reference"),
    Column("effect", Float),
    Column("ci_lower", Float),
    Column("ci_upper", Float),
    Column("n_pilots", Integer),
    comment="DiD effects by year since the start; null where a value depends on a masked cell",
)

evaluation_trajectories = Table(
    "evaluation_trajectories",
    metadata,
    _row_id(),
    _run_id(),
    Column("disease", String(40), nullable=False),
    Column("outcome", String(60), nullable=False),
    Column("territory_id", Integer, nullable=False, comment="the pilot"),
    Column("year", Integer, nullable=False),
    Column("observed", Float),
    Column("synthetic", Float, comment="the synthetic control"),
    comment="pilot vs synthetic control; null where a value depends on a masked cell",
)

evaluation_weights = Table(
    "evaluation_weights",
    metadata,
    _row_id(),
    _run_id(),
    Column("disease", String(40), nullable=False),
    Column("outcome", String(60), nullable=False),
    Column("territory_id", Integer, nullable=False, comment="the pilot"),
    Column("donor_id", Integer, nullable=False),
    Column("weight", Float),
    comment="the synthetic control's donor weights; null where they depend on a masked cell",
)

evaluation_power = Table(
    "evaluation_power",
    metadata,
    _row_id(),
    _run_id(),
    Column("disease", String(40), nullable=False),
    Column("outcome", String(60), nullable=False),
    Column("population", Integer, nullable=False, comment="territory population (not a count of cases)"),
    Column("years_pre", Integer),
    Column("years_post", Integer),
    Column("mde", Float, comment="smallest relative effect detected"),
    Column("alpha", Float),
    Column("power", Float),
    comment="minimum detectable effects (area-wide rates and variances): no count",
)

evaluation_deprivation = Table(
    "evaluation_deprivation",
    metadata,
    _row_id(),
    _run_id(),
    Column("year", Integer, nullable=False),
    Column("disease", String(40), nullable=False),
    Column("outcome", String(60), nullable=False),
    Column("quintile", Integer, comment="1 = least deprived ... 5; null: the whole area"),
    Column("events", Integer, comment="masked below 11"),
    Column("denominator", Float, comment="inhabitants, or cases (per-case outcomes: masked below 11)"),
    Column("value", Float, comment="standardised value; null where its events or cases are masked"),
    comment="outcomes by deprivation quintile: counts disclosure-controlled, quintiles summing to the area",
)

EVALUATION_TABLES = (
    "evaluation_design", "evaluation_territories", "evaluation_outcomes", "evaluation_effects",
    "evaluation_event_study", "evaluation_trajectories", "evaluation_weights", "evaluation_power",
    "evaluation_deprivation",
)
"""The tables of the evaluation of the experiment (migration 0005; empty for a run without one)."""

STORE_KEYS = ("run_id", "row_id")
"""Columns the store fills in; a publication gives the others."""


def published_columns(table: Table) -> list[str]:
    """The columns of a result table that a publication gives (all but :data:`STORE_KEYS`)."""
    return [c.name for c in table.columns if c.name not in STORE_KEYS]


RESULT_TABLES: tuple[Table, ...] = tuple(t for t in metadata.sorted_tables if t.name != "runs")
"""Every table keyed by run_id, in dependency order."""


def polars_schema(table) -> dict[str, pl.DataType]:
    """The polars types of a table's columns (``run_id`` included when present)."""
    out: dict[str, pl.DataType] = {}
    for column in table.columns:
        kind = column.type
        if isinstance(kind, Boolean):
            dtype = pl.Boolean
        elif isinstance(kind, Integer):
            dtype = pl.Int64
        elif isinstance(kind, Float):
            dtype = pl.Float64
        elif isinstance(kind, LargeBinary):
            dtype = pl.Binary
        elif isinstance(kind, DateTime):
            dtype = pl.Datetime("us")
        elif isinstance(kind, (String, Text)):
            dtype = pl.String
        else:
            dtype = pl.Object
        out[column.name] = dtype
    return out
