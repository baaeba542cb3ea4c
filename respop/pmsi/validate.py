"""Typing and validation of raw SNDS rows (input → staged).

Every column respop uses is parsed to its type and checked against the schema's constraints (with
the documented corrections of :data:`respop.pmsi.schema.OVERRIDES`). A row with any failure goes
to the quarantine with the list of its reasons; the others are loaded. Both are lazy frames over
the same scan, so that ``rows read = rows loaded + rows quarantined`` holds by construction and
is checked in the report.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import polars as pl

from respop.pmsi.files import ROW, TableFile
from respop.pmsi.nomenclatures import codes, normalize_icd10
from respop.pmsi.schema import KEY, ColumnRule, table_schema

REASONS = "_reasons"
"""List of the reasons a row was quarantined (empty for loaded rows)."""
SOURCE = "_source"
"""Label of the file a quarantined row came from, e.g. ``T_MCO22B``."""

_DATE_FORMATS = ("%d%b%Y:%H:%M:%S", "%Y-%m-%d", "%Y-%m-%d %H:%M:%S", "%d/%m/%Y", "%d%m%Y")
_YEAR_RANGE = (1990, 2100)
_INTEGER_TYPES = (pl.Int8, pl.Int16, pl.Int32, pl.Int64, pl.UInt8, pl.UInt16, pl.UInt32, pl.UInt64)


@dataclass(frozen=True)
class DateWindow:
    """Dates outside [minimum, maximum] are quarantined as out of range."""

    minimum: dt.date
    maximum: dt.date


@dataclass
class ValidatedTable:
    """One table file after validation."""

    file: TableFile
    raw: pl.LazyFrame
    loaded: pl.LazyFrame
    quarantine: pl.LazyFrame


def kind_dtype(rule: ColumnRule) -> pl.DataType:
    """The polars type of a validated column."""
    if rule.kind in ("integer", "year", "month"):
        return pl.Int64
    if rule.kind == "date":
        return pl.Date
    return pl.String


def text(expr: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    """A raw value as trimmed text; empty strings become null."""
    s = expr if dtype == pl.String else expr.cast(pl.String)
    s = s.str.strip_chars()
    return pl.when(s.str.len_chars() > 0).then(s)


def parse_sas_date(expr: pl.Expr) -> pl.Expr:
    """Parse SNDS dates from text: SAS datetimes (``02Jan2007:22:12:17``) and common date forms."""
    return pl.coalesce(
        [
            expr.str.to_datetime(fmt, strict=False).dt.date()
            if ":" in fmt
            else expr.str.to_date(fmt, strict=False)
            for fmt in _DATE_FORMATS
        ]
    )


def _parsed(rule: ColumnRule, raw: pl.Expr, dtype: pl.DataType) -> tuple[pl.Expr, pl.Expr, list[tuple[pl.Expr, str]]]:
    """Return (text, typed value, [(failure condition, reason)]) for one column."""
    t = text(raw, dtype)
    failures: list[tuple[pl.Expr, str]] = []
    kind = rule.kind
    if kind in ("integer", "year", "month"):
        if dtype in _INTEGER_TYPES:
            value = raw.cast(pl.Int64)
        elif dtype in (pl.Float32, pl.Float64):
            value = pl.when(raw == raw.round(0)).then(raw.cast(pl.Int64, strict=False))
        else:
            value = t.cast(pl.Int64, strict=False)
        failures.append((t.is_not_null() & value.is_null(), "not an integer"))
        lo, hi = rule.minimum, rule.maximum
        if kind == "year":
            lo, hi = _YEAR_RANGE
        elif kind == "month":
            lo, hi = 1, 12
        if lo is not None:
            failures.append((value < lo, f"below the minimum {lo}"))
        if hi is not None:
            failures.append((value > hi, f"above the maximum {hi}"))
    elif kind == "date":
        if dtype == pl.Date:
            value = raw
        elif isinstance(dtype, pl.Datetime):
            value = raw.dt.date()
        else:
            value = parse_sas_date(t)
        failures.append((t.is_not_null() & value.is_null(), "not a date"))
    elif kind == "finess":
        value = pl.when(t.str.contains(r"^[0-9]{1,8}$")).then(t.str.zfill(9)).otherwise(t)
        failures.append((value.is_not_null() & ~value.str.contains(rule.pattern), rule.pattern_label))
    elif kind == "rsa":
        valid = t.str.contains(rule.pattern)
        value = pl.when(valid).then(t.str.zfill(10)).otherwise(t)
        failures.append((t.is_not_null() & ~valid, rule.pattern_label))
    elif kind == "icd10":
        value = normalize_icd10(t)
        known = value.is_in(list(codes("MS_CIM_V")))
        failures.append((value.is_not_null() & ~known, "code absent from the French CIM-10"))
    else:  # string and return codes
        value = t
        if rule.max_length is not None:
            failures.append((t.str.len_chars() > rule.max_length, f"longer than {_chars(rule.max_length)}"))
        if rule.min_length is not None:
            failures.append((t.str.len_chars() < rule.min_length, f"shorter than {_chars(rule.min_length)}"))
        if rule.pattern is not None:
            failures.append((t.is_not_null() & ~t.str.contains(rule.pattern), rule.pattern_label or "invalid format"))
        allowed: set[str] | None = None
        if rule.enum is not None:
            allowed = set(rule.enum)
        if rule.nomenclature is not None:
            allowed = (allowed or set()) | set(codes(rule.nomenclature))
        if allowed is not None:
            allowed |= set(rule.extra_codes)
            label = rule.nomenclature or "{" + ", ".join(sorted(allowed)) + "}"
            failures.append((t.is_not_null() & ~t.is_in(sorted(allowed)), f"not a code of {label}"))
    if rule.required_value:
        failures.append((t.is_null(), "missing value"))
    return t, value, failures


def validate_table(
    tf: TableFile,
    raw: pl.LazyFrame,
    window: DateWindow,
    parent_keys: pl.LazyFrame | None = None,
) -> ValidatedTable:
    """Type and check one raw table.

    ``parent_keys`` (ETA_NUM, RSA_NUM of the loaded stays of the same year) makes rows of D and UM
    without a stay in B quarantined, as the schema's foreign key requires.
    """
    schema = table_schema(tf.table)
    raw_schema = raw.collect_schema()
    values: list[pl.Expr] = []
    reasons: list[pl.Expr] = []
    for rule in schema.rules:
        if rule.name in raw_schema:
            _, value, failures = _parsed(rule, pl.col(rule.name), raw_schema[rule.name])
        else:  # optional column absent from this file
            value, failures = pl.lit(None, dtype=kind_dtype(rule)), []
        values.append(value.alias(rule.name))
        reasons.extend(pl.when(cond).then(pl.lit(f"{rule.name}: {why}")) for cond, why in failures)

    typed = raw.select(
        pl.col(ROW),
        *values,
        pl.concat_list(reasons).list.drop_nulls().alias(REASONS) if reasons else pl.lit([], pl.List(pl.String)).alias(REASONS),
    )
    typed = typed.with_columns(_row_checks(tf, window))

    if schema.primary_key:
        ok = pl.col(REASONS).list.len() == 0
        first = pl.col(ROW).min().over([*KEY, ok])
        duplicate = ok & (pl.col(ROW) != first)
        typed = typed.with_columns(
            _add_reason(duplicate, "duplicate primary key (ETA_NUM, RSA_NUM): an earlier row has it")
        )
    if parent_keys is not None:
        parents = parent_keys.select(*KEY).unique().with_columns(pl.lit(True).alias("_has_stay"))
        typed = (
            typed.join(parents, on=list(KEY), how="left", maintain_order="left")
            .with_columns(
                _add_reason(
                    pl.col("_has_stay").is_null(),
                    f"no loaded stay with this (ETA_NUM, RSA_NUM) in T_MCO{tf.label[5:7]}B",
                )
            )
            .drop("_has_stay")
        )

    is_ok = pl.col(REASONS).list.len() == 0
    loaded = typed.filter(is_ok).drop(REASONS)
    bad_rows = typed.filter(~is_ok).select(ROW, REASONS)
    quarantine = (
        raw.select(pl.all().cast(pl.String))
        .with_columns(pl.col(ROW).cast(pl.UInt32))
        .join(bad_rows, on=ROW, how="inner", maintain_order="left")
        .with_columns(pl.lit(tf.label).alias(SOURCE))
    )
    return ValidatedTable(file=tf, raw=raw, loaded=loaded, quarantine=quarantine)


def _chars(n: int) -> str:
    return f"{n} character" + ("s" if n > 1 else "")


def _add_reason(condition: pl.Expr, reason: str) -> pl.Expr:
    return (
        pl.when(condition)
        .then(pl.col(REASONS).list.concat(pl.lit([reason], pl.List(pl.String))))
        .otherwise(pl.col(REASONS))
        .alias(REASONS)
    )


def _row_checks(tf: TableFile, window: DateWindow) -> list[pl.Expr]:
    """Checks that involve several columns of a row."""
    if tf.table != "C":
        return []
    entry, exit_ = pl.col("EXE_SOI_DTD"), pl.col("EXE_SOI_DTF")
    checks = [
        (entry > exit_, "EXE_SOI_DTD: entry date after the exit date"),
        (entry < window.minimum, f"EXE_SOI_DTD: date before {window.minimum}"),
        (exit_ < window.minimum, f"EXE_SOI_DTF: date before {window.minimum}"),
        (entry > window.maximum, f"EXE_SOI_DTD: date after {window.maximum}"),
        (exit_ > window.maximum, f"EXE_SOI_DTF: date after {window.maximum}"),
    ]
    if tf.year is not None:
        checks.append(
            (exit_.dt.year() != tf.year, f"EXE_SOI_DTF: exit date outside {tf.year}, the year of {tf.label}")
        )
    out = pl.col(REASONS)
    for cond, why in checks:
        out = pl.when(cond.fill_null(False)).then(out.list.concat(pl.lit([why], pl.List(pl.String)))).otherwise(out)
    return [out.alias(REASONS)]
