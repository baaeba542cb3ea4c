"""The outcomes of the evaluation and the panel the methods read: one value per unit (territory,
deprivation quintile…) × year × disease × outcome, age-sex standardised, with its sampling
variance on the log scale.

**The outcome catalogue** (generic per disease: no disease name here). An outcome is either a
rate over the population of the disease's ages (its spec's ``[population]``, as the indicators,
``respop.case_finding.rates.denominator``) or a mean over the disease's cases of the year (the
person-years of ``person_strata.parquet``, docs/strata.md):

============================  ==========  =====================================================
outcome                       per         person-year value
============================  ==========  =====================================================
``disease_stays``             100,000     ``disease_stays_12m``: the disease's qualifying stays
                              inhabitants of the year
``hospitalised``              100,000     1 when ``disease_stays_12m`` ≥ 1 (a case hospitalised
                              inhabitants for the disease in the year)
``emergency_per_case``        case        ``emergency_stays_12m`` (all causes, as the care use)
``readmissions_30d``          case        ``readmissions_30d`` (the disease's stays 0–30 days
                                          after the previous one)
``deaths_per_case``           case        ``died_in_year`` (in hospital; out of hospital too
                                          when the run has the SNDS referential)
``bed_days_per_case``         case        ``bed_days_12m`` (all causes)
``feature:<code feature>``    case        the code feature's flag (``algorithms/features.toml``)
============================  ==========  =====================================================

``feature:<name>`` exists for the code features the disease's strata conditions use
(:func:`available_outcomes`), e.g. ``feature:foot`` for diabetes. Every outcome is worse when
higher (:func:`higher_is_worse`).

**Age-sex standardisation** (direct). Cells are coarse age bands × sex: the spec's minimum age
(0 without one) to 64, 65–74, 75–84, 85+ (:data:`COARSE_BREAKS`; a break is kept only where the
population table has a band starting there), so that a territory of a few thousand inhabitants
has no empty cell. The standard is the pooled study population:

- population outcomes: the inhabitants of the disease's ages of every zone of the population
  table, every panel year together (a band the age limit cuts counts pro rata of its years,
  :func:`respop.case_finding.rates.band_shares`);
- per-case outcomes: the cases (person-years) of every zone of the population table, every
  panel year together (the pooled case mix).

value = Σ_c W_c m_c / Σ_c W_c over the unit-year's cells with a population (cases), W_c the
standard's count of cell c and m_c the cell's rate (events / inhabitants) or mean (over its
cases): a cell the unit-year does not have is left out and the standard renormalised over the
others, as :func:`respop.case_finding.rates.dsr_fay_feuer` does. A person-year with an unknown age
or a sex other than 1/2 counts in ``crude`` and ``events`` only.

**Sampling variance** (``log_var``, the delta method: Var(value) / value², null when the value is
0 or null), from the person-level data:

- population outcomes: Var = Σ_c W_c² Q_c / n_c² / (Σ W_c)², with Q_c = Σ x_i² over the cell's
  people (compound Poisson: the number of people with an event is Poisson and each brings x_i
  events; for ``hospitalised``, x_i = 1 and Q_c is the Poisson count);
- per-case outcomes: Var = Σ_c W_c² s_c² / n_c / (Σ W_c)², s_c² the variance (ddof 0; binomial
  p(1 − p) for a share) of the values of the unit-year's cases in the cell; when it is 0 (one
  case, or all alike) the cell's variance over the whole study area that year is used instead.

A person-year is in the unit of its residence zone (``zones``: zone → unit); a case without a
residence zone, or whose zone is in no unit, is in none (as in the care use and the indicators).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import polars as pl

from respop.case_finding.indicators import PER
from respop.case_finding.rates import SEXES, band_shares, population_bands
from respop.errors import ConfigError, InputError
from respop.spec.algorithm import AlgorithmSpec
from respop.spec.catalogue import Catalogue, ages_label
from respop.spec.features import CASE_OF, COMPUTED, FeaturesSpec

# ---------------------------------------------------------------------------------------------
# The outcome catalogue

POPULATION = "population"
"""Kind of an outcome counted over the inhabitants of the disease's ages (per 100,000)."""
CASE = "case"
"""Kind of an outcome averaged over the disease's cases of the year."""

FEATURE = "feature:"
"""Prefix of the outcomes that are the share of cases with a code feature: ``feature:<name>``."""


@dataclass(frozen=True)
class Outcome:
    """One outcome: its id, kind (:data:`POPULATION` or :data:`CASE`), the person-strata column
    it is computed from, whether each person-year's value is 0/1 (a share), its French label
    (``{disease}``: the disease's name, lower case), and whether a higher value is worse."""

    id: str
    kind: str
    column: str
    binary: bool
    label: str
    higher_is_worse: bool = True

    def value(self) -> pl.Expr:
        """The person-year's value (Float64)."""
        if self.id == "hospitalised":
            return (pl.col(self.column).fill_null(0) >= 1).cast(pl.Float64)
        return pl.col(self.column).cast(pl.Float64).fill_null(0.0)


GENERIC: tuple[Outcome, ...] = (
    Outcome("disease_stays", POPULATION, "disease_stays_12m", False, "Séjours hospitaliers pour {disease}"),
    Outcome("hospitalised", POPULATION, "disease_stays_12m", True, "Personnes hospitalisées pour {disease}"),
    Outcome("emergency_per_case", CASE, "emergency_stays_12m", False,
            "Arrivées par les urgences (toutes causes) des personnes suivies pour {disease}"),
    Outcome("readmissions_30d", CASE, "readmissions_30d", False, "Réhospitalisations à 30 jours pour {disease}"),
    Outcome("deaths_per_case", CASE, "died_in_year", True, "Décès dans l'année des personnes suivies pour {disease}"),
    Outcome("bed_days_per_case", CASE, "bed_days_12m", False,
            "Journées d'hospitalisation (toutes causes) des personnes suivies pour {disease}"),
)
"""The outcomes every disease has, in the order the outputs list them."""

GENERIC_IDS = tuple(o.id for o in GENERIC)

OUTCOME_LABELS: dict[str, str] = {o.id: o.label for o in GENERIC}
"""French label templates of the generic outcomes (``{disease}``: the disease's name)."""

FEATURE_LABEL = "Personnes suivies pour {disease} avec : {feature}"
"""French label template of a ``feature:<name>`` outcome (``{feature}``: the feature's label)."""

PANEL_SCHEMA: dict[str, pl.DataType] = {
    "year": pl.Int64(), "disease": pl.String(), "outcome": pl.String(),
    "value": pl.Float64(), "crude": pl.Float64(), "events": pl.Int64(), "denominator": pl.Float64(),
    "log_var": pl.Float64(),
}
"""The panel's columns after the unit's (``territory_id`` by default; :func:`build_panel`)."""


def outcome(outcome_id: str) -> Outcome:
    """The :class:`Outcome` of an id (a generic one or ``feature:<name>``); ConfigError otherwise."""
    for o in GENERIC:
        if o.id == outcome_id:
            return o
    if outcome_id.startswith(FEATURE) and outcome_id[len(FEATURE):].isidentifier():
        name = outcome_id[len(FEATURE):]
        return Outcome(outcome_id, CASE, name, True, FEATURE_LABEL)
    raise ConfigError(
        f"unknown outcome {outcome_id!r}: one of {', '.join(GENERIC_IDS)} or {FEATURE}<code feature>"
    )


def strata_code_features(spec: AlgorithmSpec, features: FeaturesSpec | None = None) -> list[str]:
    """The code features the disease's strata conditions use, in the order they first appear
    (levels from the most severe): the names that are neither computed nor case-of features (and,
    with ``features``, that are among its code features)."""
    if spec.strata is None:
        return []
    names: list[str] = []
    for level in spec.strata.levels:
        if level.when is None:
            continue
        for name in _in_text_order(level.when, level.condition.features()):
            if name in COMPUTED or name.startswith(CASE_OF) or name in names:
                continue
            if features is not None and name not in features.codes:
                continue
            names.append(name)
    return names


def _in_text_order(text: str, names: Iterable[str]) -> list[str]:
    found = {n: m.start() for n in names if (m := re.search(rf"\b{re.escape(n)}\b", text))}
    return sorted(found, key=lambda n: (found[n], n))


def available_outcomes(spec: AlgorithmSpec, features: FeaturesSpec | None = None) -> list[str]:
    """The outcome ids of a disease: the generic ones, then ``feature:<name>`` for each code
    feature its strata use (:func:`strata_code_features`)."""
    return [*GENERIC_IDS, *(f"{FEATURE}{name}" for name in strata_code_features(spec, features))]


def _lower_first(name: str) -> str:
    """A disease's name inside a sentence: "Insuffisance cardiaque" → "insuffisance cardiaque",
    an acronym (BPCO) kept."""
    if len(name) > 1 and name[0].isupper() and name[1].islower():
        return name[0].lower() + name[1:]
    return name


def outcome_label(outcome_id: str, disease_label: str, features: FeaturesSpec | None = None) -> str:
    """The French label of an outcome of a disease (its French name, e.g. "Insuffisance
    cardiaque"): "Personnes hospitalisées pour insuffisance cardiaque". A code feature takes its
    label from ``features`` (``features.toml``), else its name."""
    o = outcome(outcome_id)
    disease = _lower_first(disease_label)
    if o.id.startswith(FEATURE):
        found = features.codes.get(o.column) if features is not None else None
        label = (found.label if found is not None and found.label else o.column)
        return FEATURE_LABEL.format(disease=disease, feature=_lower_first(label))
    return o.label.format(disease=disease)


def unit_label(outcome_id: str, spec: AlgorithmSpec | None = None) -> str:
    """What the value of an outcome is per, in French: "pour 100 000 habitants de 18 ans et plus"
    (population outcomes, the spec's ages), "par personne suivie" (counts per case), "part des
    personnes suivies" (shares of cases, 0 to 1)."""
    o = outcome(outcome_id)
    if o.kind == POPULATION:
        ages = ages_label(spec.population.min_age, spec.population.max_age) if spec is not None else "de tous âges"
        return f"pour 100 000 habitants {ages}"
    return "part des personnes suivies" if o.binary else "par personne suivie"


def scale(outcome_id: str) -> int:
    """The factor of the values: :data:`PER` (100,000) for population outcomes, 1 per case."""
    return PER if outcome(outcome_id).kind == POPULATION else 1


def higher_is_worse(outcome_id: str) -> bool:
    """Whether a higher value of the outcome is worse (true of every outcome so far)."""
    return outcome(outcome_id).higher_is_worse


# ---------------------------------------------------------------------------------------------
# Coarse age bands

COARSE_BREAKS = (65, 75, 85)
"""Lower bounds of the coarse age bands after the first (which starts at the spec's minimum age)."""


def coarse_breaks(bands: Sequence[str], min_age: int | None = None, max_age: int | None = None) -> list[int]:
    """The breaks of :data:`COARSE_BREAKS` usable with a population table's ``bands``: above the
    minimum age, at or below the maximum age, and starting one of the table's bands (a coarse
    band is then a union of the table's bands)."""
    starts = {low for _label, low, _high in _bands(bands)}
    return [b for b in COARSE_BREAKS if b > (min_age or 0) and (max_age is None or b <= max_age) and b in starts]


def coarse_labels(breaks: Sequence[int], min_age: int | None = None, max_age: int | None = None) -> list[str]:
    """The labels of the coarse bands of ``breaks`` ("18-64", "65-74", "75-84", "85+")."""
    lows = [min_age or 0, *breaks]
    labels = []
    for i, low in enumerate(lows):
        high = lows[i + 1] - 1 if i + 1 < len(lows) else max_age
        labels.append(f"{low}+" if high is None else f"{low}-{high}")
    return labels


def _bands(bands: Sequence[str]) -> list[tuple[str, int, int | None]]:
    return population_bands(pl.DataFrame({"age_band": list(bands)}, schema={"age_band": pl.String}))


def _cell_of(value: pl.Expr, breaks: Sequence[int]) -> pl.Expr:
    """The coarse cell (Int8: 0 for the first band) of an age."""
    cell = pl.lit(0, pl.Int8)
    for b in breaks:
        cell = cell + (value >= b).cast(pl.Int8)
    return pl.when(value.is_not_null()).then(cell).otherwise(pl.lit(None, pl.Int8))


# ---------------------------------------------------------------------------------------------
# The panel

_PS_COLUMNS = ("disease", "year", "residence_zone", "age", "sex")


def _specs(specs: Catalogue | Sequence[AlgorithmSpec]) -> tuple[list[AlgorithmSpec], FeaturesSpec | None]:
    if isinstance(specs, Catalogue):
        return list(specs.specs), specs.features
    return list(specs), None


def _requested(
    specs: list[AlgorithmSpec], features: FeaturesSpec | None, outcomes: Iterable[str | tuple[str, str]] | None
) -> dict[str, list[Outcome]]:
    """disease → its outcomes to compute, in the catalogue's order."""
    available = {s.disease: available_outcomes(s, features) for s in specs}
    if outcomes is None:
        return {d: [outcome(o) for o in ids] for d, ids in available.items()}
    wanted: dict[str, set[str]] = {}
    for item in outcomes:
        disease, oid = item if isinstance(item, tuple) else item.partition(".")[::2]
        if disease not in available:
            raise ConfigError(
                f"outcome {item!r}: {disease!r} is not a configured disease ({', '.join(available) or 'none'})"
            )
        if oid not in available[disease]:
            raise ConfigError(
                f"outcome {item!r}: not an outcome of {disease} (its outcomes: {', '.join(available[disease])})"
            )
        wanted.setdefault(disease, set()).add(oid)
    return {d: [outcome(o) for o in ids if o in wanted[d]] for d, ids in available.items() if d in wanted}


def _population_frame(population: pl.DataFrame, years: list[int]) -> pl.DataFrame:
    """zone_code, year (Int64), sex, age_band, population (Float64) for each panel year."""
    for column in ("zone_code", "sex", "age_band", "population"):
        if column not in population.columns:
            raise InputError(f"the population table has no column {column!r}", None, column)
    pop = population.select(
        pl.col("zone_code").cast(pl.String),
        *([pl.col("year").cast(pl.Int64)] if "year" in population.columns else []),
        pl.col("sex").cast(pl.Int8),
        pl.col("age_band").cast(pl.String),
        pl.col("population").cast(pl.Float64),
    )
    year_frame = pl.DataFrame({"year": years}, schema={"year": pl.Int64})
    if "year" not in pop.columns:
        return pop.join(year_frame, how="cross")
    missing = sorted(set(years) - set(pop["year"].unique().to_list()))
    if missing:
        raise InputError(
            f"the population table has no row for the year(s) {', '.join(map(str, missing))} of the panel",
            None, "year",
        )
    return pop.join(year_frame, on="year", how="semi")


def _zones(zones: pl.DataFrame, unit: str) -> pl.DataFrame:
    for column in ("zone_code", unit):
        if column not in zones.columns:
            raise InputError(f"the zone → unit table has no column {column!r}", None, column)
    mapping = zones.select(pl.col("zone_code").cast(pl.String), pl.col(unit).cast(pl.Int64)).drop_nulls().unique()
    twice = mapping.filter(pl.len().over("zone_code") > 1)
    if twice.height:
        raise InputError(
            f"the zone → unit table puts zone {twice['zone_code'].sort()[0]!r} in several units ({unit})", None, unit
        )
    return mapping


def build_panel(
    person_strata: pl.DataFrame,
    population: pl.DataFrame,
    zones: pl.DataFrame,
    specs: Catalogue | Sequence[AlgorithmSpec],
    outcomes: Iterable[str | tuple[str, str]] | None = None,
    *,
    unit: str = "territory_id",
    years: Sequence[int] | None = None,
) -> pl.DataFrame:
    """The panel: one row per unit × year × disease × outcome (module docstring), columns
    ``unit`` (Int64) then :data:`PANEL_SCHEMA`, sorted by disease, outcome, unit, year.

    - ``person_strata``: the person-years of ``<output.dir>/strata/person_strata.parquet``
      (disease, year, residence_zone, age, sex and the outcomes' columns);
    - ``population``: zone_code, sex, age_band, population, and year (without it, the same
      population every year), as ``respop.case_finding.run.load_population`` reads it;
    - ``zones``: zone_code → ``unit`` (the territories' ``zone_territory.parquet``; deprivation
      quintiles for ``respop.evaluation.deprivation.by_quintile``); every unit it names gets rows;
    - ``specs``: the run's :class:`~respop.spec.catalogue.Catalogue` (or the specs alone: a
      condition's names that are not computed or case-of features are then taken as code features);
    - ``outcomes``: ``"<disease>.<outcome>"`` (``[evaluation] outcomes``) or (disease, outcome)
      pairs; None: every available outcome of every disease (:func:`available_outcomes`);
    - ``years``: the panel's years (default: those of ``person_strata``).

    ``value`` and ``crude`` are per 100,000 inhabitants (population outcomes) or per case;
    ``events`` is the numerator (stays, people, arrivals, re-hospitalisations, deaths, bed-days,
    cases with the feature), ``denominator`` the inhabitants of the disease's ages or the cases.
    A unit-year without inhabitants (cases) has null values.
    """
    spec_list, features = _specs(specs)
    wanted = _requested(spec_list, features, outcomes)
    mapping = _zones(zones, unit)
    missing = [c for c in _PS_COLUMNS if c not in person_strata.columns]
    if missing:
        raise InputError(f"the person strata have no column {missing[0]!r}", None, missing[0])
    if years is None:
        years = person_strata.get_column("year").drop_nulls().unique().cast(pl.Int64).to_list()
    years = sorted({int(y) for y in years})
    empty = pl.DataFrame(schema={unit: pl.Int64(), **PANEL_SCHEMA})
    if not years or not wanted:
        return empty
    pop = _population_frame(population, years)
    bands = pop.get_column("age_band").unique().to_list()
    _bands(bands)  # the bands must tile 0…∞
    study_zones = pop.select("zone_code").unique()
    units = mapping.select(unit).unique()
    frames = []
    for spec in spec_list:
        if spec.disease not in wanted:
            continue
        columns = sorted({o.column for o in wanted[spec.disease]})
        absent = [c for c in columns if c not in person_strata.columns]
        if absent:
            raise InputError(f"the person strata have no column {absent[0]!r} (outcomes of {spec.disease})", None, absent[0])
        rows = person_strata.filter(pl.col("disease") == spec.disease).select(*_PS_COLUMNS, *columns)
        frames.append(_disease_panel(spec, wanted[spec.disease], rows, pop, bands, mapping, units, study_zones, unit, years))
    if not frames:
        return empty
    return pl.concat(frames).sort("disease", "outcome", unit, "year")


def _disease_panel(
    spec: AlgorithmSpec,
    wanted: list[Outcome],
    rows: pl.DataFrame,
    pop: pl.DataFrame,
    bands: list[str],
    mapping: pl.DataFrame,
    units: pl.DataFrame,
    study_zones: pl.DataFrame,
    unit: str,
    years: list[int],
) -> pl.DataFrame:
    min_age, max_age = spec.population.min_age, spec.population.max_age
    breaks = coarse_breaks(bands, min_age, max_age)
    shares = band_shares(bands, min_age, max_age)
    lows = {label: low for label, low, _high in _bands(bands)}
    band_cell = {label: sum(max(lows[label], min_age or 0) >= b for b in breaks) for label in bands}
    cell = ["sex", "_cell"]

    # inhabitants of the disease's ages per zone, year and cell
    inhabitants = (
        pop.with_columns(
            (pl.col("population") * pl.col("age_band").replace_strict(shares, return_dtype=pl.Float64)).alias("_n"),
            pl.col("age_band").replace_strict(band_cell, return_dtype=pl.Int8).alias("_cell"),
        )
        .filter(pl.col("_n") > 0)
        .sort("zone_code", "year", *cell, "age_band")
        .group_by("zone_code", "year", *cell, maintain_order=True)
        .agg(pl.col("_n").sum())
    )

    # person-years: one row per person-year and outcome (long), with the unit and cell
    people = (
        rows.with_columns(
            pl.col("year").cast(pl.Int64),
            pl.col("residence_zone").cast(pl.String).alias("zone_code"),
            pl.col("sex").cast(pl.Int8),
        )
        .filter(pl.col("year").is_in(years))
        .with_columns(
            pl.when(pl.col("sex").is_in(list(SEXES))).then(_cell_of(pl.col("age").cast(pl.Int64), breaks)).alias("_cell"),
            *[o.value().alias(o.id) for o in wanted],
        )
        .join(mapping, on="zone_code", how="left")
        .with_columns(pl.col("zone_code").is_in(study_zones["zone_code"].implode()).alias("_study"))
        .unpivot(index=["year", unit, "_study", *cell], on=[o.id for o in wanted], variable_name="outcome", value_name="x")
    )
    grid = units.join(pl.DataFrame({"year": years}, schema={"year": pl.Int64}), how="cross")
    frames = []
    pop_ids = [o.id for o in wanted if o.kind == POPULATION]
    case_ids = [o.id for o in wanted if o.kind == CASE]
    if pop_ids:
        frames.append(_population_outcomes(people.filter(pl.col("outcome").is_in(pop_ids)), inhabitants, mapping, grid, pop_ids, unit))
    if case_ids:
        frames.append(_case_outcomes(people.filter(pl.col("outcome").is_in(case_ids)), grid, case_ids, unit))
    return pl.concat(frames, how="diagonal_relaxed").with_columns(pl.lit(spec.disease).alias("disease")).select(
        pl.col(unit).cast(pl.Int64), *[pl.col(c).cast(t) for c, t in PANEL_SCHEMA.items()]
    )


def _finish(out: pl.DataFrame, per: float) -> pl.DataFrame:
    """value, log_var and crude from the sums _A, _B, _R (module docstring), events, denominator."""
    value = pl.when(pl.col("_R") > 0).then(pl.col("_A") / pl.col("_R"))
    variance = pl.when(pl.col("_R") > 0).then(pl.col("_B") / pl.col("_R") ** 2)
    return out.with_columns(
        (value * per).alias("value"),
        pl.when(value > 0).then(variance / value**2).alias("log_var"),
        pl.when(pl.col("denominator") > 0).then(pl.col("events") / pl.col("denominator") * per).alias("crude"),
    )


def _population_outcomes(
    people: pl.DataFrame, inhabitants: pl.DataFrame, mapping: pl.DataFrame, grid: pl.DataFrame, ids: list[str], unit: str
) -> pl.DataFrame:
    cell = ["sex", "_cell"]
    # float sums in a fixed order (sorted input, groups kept in order): the same panel on every run
    standard = inhabitants.sort(*cell, "zone_code", "year").group_by(*cell, maintain_order=True).agg(pl.col("_n").sum().alias("_W"))
    unit_cells = (
        inhabitants.join(mapping, on="zone_code").sort(unit, "year", *cell, "zone_code")
        .group_by(unit, "year", *cell, maintain_order=True).agg(pl.col("_n").sum())
        .join(standard, on=cell, how="left").with_columns(pl.col("_W").fill_null(0.0))
    )
    per_unit = unit_cells.sort(unit, "year", *cell).group_by(unit, "year", maintain_order=True).agg(
        pl.col("_n").sum().alias("denominator"), pl.col("_W").sum().alias("_R"))
    in_unit = people.filter(pl.col(unit).is_not_null())
    sums = (
        in_unit.filter(pl.col("_cell").is_not_null())
        .group_by(unit, "year", "outcome", *cell)
        .agg(pl.col("x").sum().alias("_d"), (pl.col("x") ** 2).sum().alias("_q"))
        .join(unit_cells, on=[unit, "year", *cell], how="inner")
        .sort(unit, "year", "outcome", *cell)
        .group_by(unit, "year", "outcome", maintain_order=True)
        .agg(
            (pl.col("_W") * pl.col("_d") / pl.col("_n")).sum().alias("_A"),
            (pl.col("_W") ** 2 * pl.col("_q") / pl.col("_n") ** 2).sum().alias("_B"),
        )
    )
    events = in_unit.group_by(unit, "year", "outcome").agg(pl.col("x").sum().round(0).cast(pl.Int64).alias("events"))
    out = (
        grid.join(pl.DataFrame({"outcome": ids}), how="cross")
        .join(per_unit, on=[unit, "year"], how="left")
        .join(sums, on=[unit, "year", "outcome"], how="left")
        .join(events, on=[unit, "year", "outcome"], how="left")
        .with_columns(
            pl.col("denominator").fill_null(0.0), pl.col("events").fill_null(0), pl.col("_A", "_B").fill_null(0.0)
        )
    )
    return _finish(out, PER)


def _case_outcomes(people: pl.DataFrame, grid: pl.DataFrame, ids: list[str], unit: str) -> pl.DataFrame:
    cell = ["sex", "_cell"]
    known = people.filter(pl.col("_cell").is_not_null())
    study = known.filter(pl.col("_study"))
    # the standard: the pooled case mix of the study area, every panel year (one count per person-year)
    standard = study.filter(pl.col("outcome") == ids[0]).group_by(*cell).agg(pl.len().cast(pl.Float64).alias("_W"))
    # each cell's variance over the study area in the year (ddof 0)
    pooled = study.group_by("year", "outcome", *cell).agg(
        ((pl.col("x") ** 2).mean() - pl.col("x").mean() ** 2).clip(lower_bound=0.0).alias("_pooled")
    )
    in_unit = known.filter(pl.col(unit).is_not_null())
    cells = (
        in_unit.group_by(unit, "year", "outcome", *cell)
        .agg(
            pl.len().cast(pl.Float64).alias("_n"),
            pl.col("x").mean().alias("_m"),
            ((pl.col("x") ** 2).mean() - pl.col("x").mean() ** 2).clip(lower_bound=0.0).alias("_s2"),
        )
        .join(pooled, on=["year", "outcome", *cell], how="left")
        .join(standard, on=cell, how="left")
        .with_columns(
            pl.col("_W").fill_null(0.0),
            pl.when(pl.col("_s2") > 1e-12).then(pl.col("_s2")).otherwise(pl.col("_pooled").fill_null(0.0)).alias("_s2"),
        )
    )
    sums = cells.sort(unit, "year", "outcome", *cell).group_by(unit, "year", "outcome", maintain_order=True).agg(
        pl.col("_W").sum().alias("_R"),
        (pl.col("_W") * pl.col("_m")).sum().alias("_A"),
        (pl.col("_W") ** 2 * pl.col("_s2") / pl.col("_n")).sum().alias("_B"),
    )
    totals = people.filter(pl.col(unit).is_not_null()).group_by(unit, "year", "outcome").agg(
        pl.col("x").sum().round(0).cast(pl.Int64).alias("events"), pl.len().cast(pl.Float64).alias("denominator")
    )
    out = (
        grid.join(pl.DataFrame({"outcome": ids}), how="cross")
        .join(totals, on=[unit, "year", "outcome"], how="left")
        .join(sums, on=[unit, "year", "outcome"], how="left")
        .with_columns(pl.col("denominator").fill_null(0.0), pl.col("events").fill_null(0))
    )
    return _finish(out, 1)
