"""The zone-level deprivation index (optional input of the evaluation): reading it, building it
from a commune-level index, quintiles of zones, and the outcomes by quintile.

- :func:`read_deprivation`: ``zone_code``, ``deprivation`` (higher = more deprived) from a
  Parquet or CSV file; a missing column is an :class:`~respop.errors.InputError` naming the file
  and the column; invalid rows (no zone, an index that is not a finite number, a zone given twice)
  are quarantined with their reasons and counted, in the shape of the population table's
  quarantine (``respop.case_finding.run.read_population``: every column as text, ``_row``,
  ``_reasons``, ``_source``).
- :func:`aggregate_communes`: a published commune-level index (FDep, EDI…) aggregated to the
  PMSI's geographic codes with a commune → zone correspondence, weighted by the communes'
  populations; the communes without correspondence and the zones without an index are reported.
- :func:`quintiles`: population-weighted quintiles of zones, 1 = least deprived.
- :func:`by_quintile`: the evaluation's outcomes per quintile × year × disease
  (:func:`respop.evaluation.outcomes.build_panel` with the quintile as its unit).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from respop.errors import InputError
from respop.evaluation.outcomes import build_panel
from respop.pmsi.files import ROW
from respop.pmsi.validate import REASONS, SOURCE
from respop.spec.algorithm import AlgorithmSpec
from respop.spec.catalogue import Catalogue

DEPRIVATION_COLUMNS = ("zone_code", "deprivation")
DEPRIVATION_FILE = "deprivation.parquet"
"""The default file name in ``input.reference_dir`` (``[evaluation] deprivation_file``)."""

QUINTILES = 5

REASONS_FR: dict[str, str] = {
    "zone_code: missing": "code géographique absent",
    "deprivation: not a number": "indice de défavorisation absent ou non numérique",
    "zone_code: given more than once": "code géographique donné plusieurs fois",
}
"""French versions of the quarantine reasons (what the boards show)."""


# ---------------------------------------------------------------------------------------------
# Reading


def read_table(path: str | Path, columns: Sequence[str], what: str) -> pl.DataFrame:
    """The ``columns`` of a Parquet or CSV file (CSV: ``,`` or ``;``), every value as stripped text,
    with ``_row`` (1-based). A missing file or column is an InputError naming it."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{what} not found", path)
    try:
        if path.suffix.lower() in (".csv", ".txt"):
            with path.open(encoding="utf-8-sig") as handle:
                header = handle.readline()
            separator = ";" if header.count(";") > header.count(",") else ","
            raw = pl.read_csv(path, infer_schema=False, separator=separator, encoding="utf8-lossy")
            raw = raw.rename({c: c.strip() for c in raw.columns})
        else:
            raw = pl.read_parquet(path)
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise InputError(f"cannot read the {what}: {str(exc).strip().splitlines()[0]}", path) from None
    missing = [c for c in columns if c not in raw.columns]
    if missing:
        raise InputError(f"the {what} lacks the column(s) {', '.join(missing)}", path, column=missing[0])
    return raw.select(
        *[pl.col(c).cast(pl.String).str.strip_chars().alias(c) for c in columns]
    ).with_row_index(ROW, offset=1)


def _number(column: str) -> pl.Expr:
    """A text column as a finite Float64; null otherwise (``abc``, ``NaN``, ``inf``, empty)."""
    value = pl.col(column).str.replace(",", ".", literal=True).cast(pl.Float64, strict=False)
    return pl.when(value.is_finite()).then(value).alias(column)


def read_deprivation(path: str | Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The zone-level deprivation index of ``path`` (Parquet or CSV), checked: (table, quarantine).

    ``table``: zone_code (String), deprivation (Float64), one row per zone, sorted by zone.
    ``quarantine``: the invalid rows as they were read (zone_code and deprivation as text), ``_row``
    (1-based), ``_reasons`` (English, :data:`REASONS_FR` in French) and ``_source`` (the file's
    stem): no zone, an index that is not a finite number, a zone given on more than one row (every
    row of such a zone: which one holds is unknown). No valid row at all is an InputError."""
    path = Path(path)
    text = read_table(path, DEPRIVATION_COLUMNS, "deprivation index")
    typed = text.with_columns(_number("deprivation"))
    zone_missing = pl.col("zone_code").is_null() | (pl.col("zone_code") == "")
    value_bad = pl.col("deprivation").is_null()
    # a zone is repeated when two or more of its rows are otherwise valid: all of them go
    twice = typed.filter(~zone_missing & ~value_bad).group_by("zone_code").len().filter(pl.col("len") > 1)
    checks = [
        (zone_missing, "zone_code: missing"),
        (value_bad, "deprivation: not a number"),
        (~zone_missing & ~value_bad & pl.col("zone_code").is_in(twice["zone_code"].implode()), "zone_code: given more than once"),
    ]
    reasons = pl.concat_list([pl.when(bad).then(pl.lit(why)) for bad, why in checks]).list.drop_nulls()
    flagged = typed.with_columns(reasons.alias(REASONS))
    bad = flagged.filter(pl.col(REASONS).list.len() > 0)
    quarantine = text.join(bad.select(ROW, REASONS), on=ROW, how="inner", maintain_order="left").with_columns(
        pl.lit(path.stem).alias(SOURCE)
    )
    table = flagged.filter(pl.col(REASONS).list.len() == 0).select("zone_code", "deprivation").sort("zone_code")
    if not table.height:
        raise InputError("the deprivation index has no valid row (see its quarantine)", path)
    return table, quarantine


# ---------------------------------------------------------------------------------------------
# From communes to zones


@dataclass
class CommuneAggregation:
    """What :func:`aggregate_communes` made and what it could not use."""

    table: pl.DataFrame = field(repr=False)
    """zone_code, deprivation (population-weighted mean), population (of the communes with an
    index), communes (how many): one row per zone with at least one commune with an index."""
    communes_without_zone: pl.DataFrame = field(repr=False)
    """commune_code of the index that the correspondence does not have (not used)."""
    zones_without_index: pl.DataFrame = field(repr=False)
    """zone_code of the correspondence none of whose communes has an index (or with no population)."""
    communes_without_index: pl.DataFrame = field(repr=False)
    """commune_code of the correspondence without a valid index (their population is left out)."""
    invalid_index_rows: int = 0
    """Rows of the index without a commune or a numeric index (left out)."""

    def summary(self) -> dict:
        return {
            "zones": self.table.height,
            "communes_used": int(self.table["communes"].sum()) if self.table.height else 0,
            "communes_without_zone": self.communes_without_zone.height,
            "zones_without_index": self.zones_without_index.height,
            "communes_without_index": self.communes_without_index.height,
            "invalid_index_rows": self.invalid_index_rows,
        }


def _frame(source: pl.DataFrame | str | Path, columns: Sequence[str], what: str) -> pl.DataFrame:
    if isinstance(source, pl.DataFrame):
        missing = [c for c in columns if c not in source.columns]
        if missing:
            raise InputError(f"the {what} lacks the column(s) {', '.join(missing)}", None, column=missing[0])
        return source.select(*[pl.col(c).cast(pl.String).str.strip_chars().alias(c) for c in columns])
    return read_table(source, columns, what).drop(ROW)


def aggregate_communes(
    communes_index: pl.DataFrame | str | Path,
    correspondence: pl.DataFrame | str | Path,
    *,
    index_columns: tuple[str, str] = ("commune_code", "deprivation"),
    correspondence_columns: tuple[str, str, str] = ("commune_code", "zone_code", "population"),
) -> CommuneAggregation:
    """A commune-level index aggregated to zones: per zone, Σ population × index / Σ population
    over its communes that have an index.

    - ``communes_index`` (frame or Parquet/CSV file): the commune's code and its index (number),
      columns ``index_columns`` (a published index's own names, e.g. ("codgeo", "fdep"));
    - ``correspondence`` (frame or file): the commune's code, the zone (the PMSI geographic code)
      and the population (the commune's inhabitants, or the part of them in the zone when a
      commune is split between zones: each row weighs its population), columns
      ``correspondence_columns``.

    Nothing is dropped silently (:class:`CommuneAggregation`): communes of the index without
    correspondence, zones of the correspondence without any commune with an index, communes of
    the correspondence without an index, index rows that are invalid. A commune given twice in
    the index, or a correspondence row without a numeric non-negative population, is an
    InputError (the weights would be wrong)."""
    commune, index = index_columns
    idx = _frame(communes_index, [commune, index], "commune-level index").select(
        pl.col(commune).alias("commune_code"), pl.col(index).alias("_index")
    ).with_columns(_number("_index"))
    is_invalid = pl.col("commune_code").is_null() | (pl.col("commune_code") == "") | pl.col("_index").is_null()
    invalid_rows = idx.filter(is_invalid).height
    idx = idx.filter(~is_invalid)
    twice = idx.filter(pl.len().over("commune_code") > 1)
    if twice.height:
        raise InputError(
            f"the commune-level index gives commune {twice['commune_code'].sort()[0]!r} more than once", None, index
        )
    commune, zone, population = correspondence_columns
    corr = _frame(correspondence, [commune, zone, population], "commune → zone correspondence").select(
        pl.col(commune).alias("commune_code"), pl.col(zone).alias("zone_code"), _number(population).alias("_population")
    )
    bad = corr.filter(
        pl.col("commune_code").is_null() | pl.col("zone_code").is_null() | (pl.col("zone_code") == "")
        | ~(pl.col("_population") >= 0).fill_null(False)
    )
    if bad.height:
        raise InputError(
            f"the commune → zone correspondence has {bad.height} row(s) without a commune, a zone or a "
            "non-negative population", None, population,
        )
    joined = corr.join(idx, on="commune_code", how="left")
    used = joined.filter(pl.col("_index").is_not_null() & (pl.col("_population") > 0))
    table = (
        used.group_by("zone_code")
        .agg(
            ((pl.col("_index") * pl.col("_population")).sum() / pl.col("_population").sum()).alias("deprivation"),
            pl.col("_population").sum().alias("population"),
            pl.col("commune_code").n_unique().cast(pl.Int64).alias("communes"),
        )
        .sort("zone_code")
    )
    zones_without = corr.select("zone_code").unique().join(table, on="zone_code", how="anti").sort("zone_code")
    return CommuneAggregation(
        table=table,
        communes_without_zone=idx.join(corr, on="commune_code", how="anti").select("commune_code").sort("commune_code"),
        zones_without_index=zones_without,
        communes_without_index=joined.filter(pl.col("_index").is_null()).select("commune_code").unique().sort("commune_code"),
        invalid_index_rows=invalid_rows,
    )


# ---------------------------------------------------------------------------------------------
# Quintiles


def zone_population(population: pl.DataFrame) -> pl.DataFrame:
    """zone_code, population (Float64): a population table (zone × sex × age band [× year]) summed
    per zone, the mean over its years when it has a ``year`` column."""
    for column in ("zone_code", "population"):
        if column not in population.columns:
            raise InputError(f"the population table has no column {column!r}", None, column)
    per_year = ["zone_code", *(["year"] if "year" in population.columns else [])]
    summed = population.group_by(per_year).agg(pl.col("population").cast(pl.Float64).sum())
    return summed.group_by(pl.col("zone_code").cast(pl.String)).agg(pl.col("population").mean()).sort("zone_code")


def quintiles(deprivation: pl.DataFrame, population: pl.DataFrame) -> pl.DataFrame:
    """Population-weighted quintiles of the zones' deprivation: zone_code, deprivation,
    population, quintile (Int64, 1 = least deprived … 5 = most deprived).

    Zones are sorted by their index and each falls in the quintile where the middle of its
    population lies on the cumulated population (so each quintile holds about a fifth of the
    inhabitants); zones with the same index share a quintile. ``population``: zone_code,
    population (a population table: :func:`zone_population`). Zones of ``deprivation`` without
    population weigh 0 (they take the quintile of their place); zones without an index have none
    (not in the result)."""
    for column in DEPRIVATION_COLUMNS:
        if column not in deprivation.columns:
            raise InputError(f"the deprivation index has no column {column!r}", None, column)
    zones = (
        deprivation.select(pl.col("zone_code").cast(pl.String), pl.col("deprivation").cast(pl.Float64))
        .join(zone_population(population), on="zone_code", how="left")
        .with_columns(pl.col("population").fill_null(0.0))
    )
    levels = zones.group_by("deprivation").agg(pl.col("population").sum().alias("_p")).sort("deprivation")
    total = levels["_p"].sum()
    if total > 0:
        middle = (pl.col("_p").cum_sum() - pl.col("_p") / 2) / total
    else:  # no population at all: by rank
        middle = (pl.int_range(pl.len()) + 0.5) / pl.len()
    levels = levels.with_columns(
        (middle * QUINTILES).floor().clip(0, QUINTILES - 1).cast(pl.Int64).add(1).alias("quintile")
    )
    return zones.join(levels.select("deprivation", "quintile"), on="deprivation").sort("quintile", "deprivation", "zone_code")


BY_QUINTILE_COLUMNS = ["year", "disease", "outcome", "quintile", "events", "denominator", "value"]


def by_quintile(
    person_strata: pl.DataFrame,
    population: pl.DataFrame,
    deprivation: pl.DataFrame,
    specs: Catalogue | Sequence[AlgorithmSpec],
    outcomes: Iterable[str | tuple[str, str]] | None = None,
    *,
    years: Sequence[int] | None = None,
) -> pl.DataFrame:
    """The outcomes per deprivation quintile × year × disease (``by_deprivation.parquet``):
    :data:`BY_QUINTILE_COLUMNS`, the same computation as the territory panel
    (:func:`respop.evaluation.outcomes.build_panel`, same standard) with the zones grouped by
    their quintile instead of their territory. ``deprivation``: the zones' index (zone_code,
    deprivation: its :func:`quintiles` are taken) or the quintiles already (a ``quintile``
    column)."""
    if "quintile" not in deprivation.columns:
        deprivation = quintiles(deprivation, population)
    zones = deprivation.select("zone_code", "quintile")
    panel = build_panel(person_strata, population, zones, specs, outcomes, unit="quintile", years=years)
    return panel.select(BY_QUINTILE_COLUMNS).sort("disease", "outcome", "year", "quintile")
