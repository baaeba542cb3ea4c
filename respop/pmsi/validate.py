"""Typing and validation of raw SNDS rows (input → staged).

Every column respop uses is parsed to its type and checked against the schema's constraints (with
the documented corrections of :data:`respop.pmsi.schema.OVERRIDES`). A row with any failure goes
to the quarantine with the list of its reasons; the others are loaded. Both are lazy frames over
the same scan, so that ``rows read = rows loaded + rows quarantined`` holds by construction and
is checked in the report.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path

import polars as pl

from respop.pmsi.files import ROW, TableFile
from respop.pmsi.nomenclatures import codes
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


def kind_dtype(rule: ColumnRule) -> pl.DataType:
    """The polars type of a validated column."""
    if rule.kind in ("integer", "year", "month"):
        return pl.Int64
    if rule.kind == "date":
        return pl.Date
    return pl.String


def text(expr: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    """A raw value as trimmed text; empty strings become null."""
    return _non_empty(_stripped(expr, dtype))


def _stripped(expr: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    """A raw value as text without leading or trailing whitespace (empty strings kept)."""
    s = expr if dtype == pl.String else expr.cast(pl.String)
    return s.str.strip_chars()


_ONE_DIGIT = r"^[0-9]$"
"""The pattern of the linkage return codes (schema.RETURN_CODES): one ASCII digit, the same as
being one of :data:`_DIGITS` (``$`` of the regex crate is the end of the text only)."""
_DIGITS = [str(i) for i in range(10)]


def _icd10_code(s: pl.Expr) -> pl.Expr:
    """normalize_icd10 of trimmed text: upper case, without dots."""
    return s.str.to_uppercase().str.replace_all(".", "", literal=True)


def _non_empty(s: pl.Expr) -> pl.Expr:
    """Text with empty strings made null. (A string has a character iff it has a byte.)"""
    return pl.when(s.str.len_bytes() > 0).then(s)


def parse_sas_date(expr: pl.Expr) -> pl.Expr:
    """Parse SNDS dates from text: SAS datetimes (``02Jan2007:22:12:17``) and common date forms.

    Tries every known format on every value; :func:`validate_table` detects a file's format once
    and parses with that one only.
    """
    return pl.coalesce([_parse_one(expr, fmt) for fmt in _DATE_FORMATS])


_FINESS = r"^(?:[0-9]{9}|2[AB][0-9]{7})$"
_FINESS_OR_SHORT = r"^(?:[0-9]{1,9}|2[AB][0-9]{7})$"
"""A FINESS number (schema.OVERRIDES: 9 digits, or 2A/2B and 7 digits) or up to 8 digits that
zero-padding makes one (its leading zeros lost by a reader that took it for an integer)."""

TEXT = "__text_"
"""Prefix of the trimmed-text copy of each raw column, computed once per row."""
HELPER = "__help_"
"""Prefix of intermediate values computed once per row from the text (dropped after typing)."""


def _column_rule(
    rule: ColumnRule, dtype: pl.DataType, date_format: str | None = None, clean: bool = False
) -> tuple[list[pl.Expr], pl.Expr, list[tuple[pl.Expr, str]]]:
    """The helpers, the typed value of one column and its [(failure condition, reason)].

    The value is computed from the raw column (``rule.name``), its trimmed text
    (``__text_<name>``) and the helpers (``__help_<name>``, computed from the text before the
    value: an expression the value and a check both need is computed once, polars' streaming
    engine does not share common sub-expressions); the failure conditions read the text, the
    helpers and the typed value (again under ``rule.name``), so that :func:`validate_table`
    computes each once, in steps.
    ``date_format``: the format detected for a text date column; None tries every known format.
    ``clean``: the file's values of this column are already clean (:func:`clean_columns`): the
    text is the raw value (no trimmed copy) and a CIM-10 code is not upper-cased again.
    """
    raw, t, v = pl.col(rule.name), pl.col(TEXT + rule.name), pl.col(rule.name)
    h = pl.col(HELPER + rule.name)
    helpers: list[pl.Expr] = []
    failures: list[tuple[pl.Expr, str]] = []
    kind = rule.kind
    if kind in ("integer", "year", "month"):
        if dtype in _INTEGER_TYPES:
            value = raw.cast(pl.Int64)
        elif dtype in (pl.Float32, pl.Float64):
            value = pl.when(raw == raw.round(0)).then(raw.cast(pl.Int64, strict=False))
        else:
            value = t.cast(pl.Int64, strict=False)
        failures.append((t.is_not_null() & v.is_null(), "not an integer"))
        lo, hi = rule.minimum, rule.maximum
        if kind == "year":
            lo, hi = _YEAR_RANGE
        elif kind == "month":
            lo, hi = 1, 12
        if lo is not None:
            failures.append((v < lo, f"below the minimum {lo}"))
        if hi is not None:
            failures.append((v > hi, f"above the maximum {hi}"))
    elif kind == "date":
        if dtype == pl.Date:
            value = raw
        elif isinstance(dtype, pl.Datetime):
            value = raw.dt.date()
        elif date_format is not None:
            value = _parse_one(t, date_format)
        else:
            value = parse_sas_date(t)
        failures.append((t.is_not_null() & v.is_null(), "not a date"))
    elif kind == "finess" and rule.pattern == _FINESS:
        # one regular expression for the value and the check: the text is a FINESS number once
        # zero-padded to 9 (1 to 9 digits, or 2A/2B and 7 digits; padding leaves 9 characters as
        # they are), else it is kept as it is and fails
        helpers.append(t.str.contains(_FINESS_OR_SHORT))
        value = pl.when(h).then(t.str.zfill(9)).otherwise(t)
        failures.append((t.is_not_null() & ~h, rule.pattern_label))
    elif kind == "finess":
        value = pl.when(t.str.contains(r"^[0-9]{1,8}$")).then(t.str.zfill(9)).otherwise(t)
        failures.append((v.is_not_null() & ~v.str.contains(rule.pattern), rule.pattern_label))
    elif kind == "rsa":
        helpers.append(t.str.contains(rule.pattern))  # the value and the check need it
        value = pl.when(h).then(t.str.zfill(10)).otherwise(t)
        failures.append((t.is_not_null() & ~h, rule.pattern_label))
    elif kind == "icd10":
        # normalize_icd10 of the (already trimmed) text, its code computed once; nothing to do on
        # a clean column (every value is a code of the CIM-10 or already upper case without a dot)
        helpers.append(t if clean else _icd10_code(t))
        value = _non_empty(h)
        known = v.is_in(_codes_literal(codes("MS_CIM_V")))
        failures.append(((v.is_not_null() & ~known) | (t.is_not_null() & v.is_null()), "code absent from the French CIM-10"))
    else:  # string and return codes
        value = t
        if rule.max_length is not None:
            failures.append((t.str.len_chars() > rule.max_length, f"longer than {_chars(rule.max_length)}"))
        if rule.min_length is not None:
            failures.append((t.str.len_chars() < rule.min_length, f"shorter than {_chars(rule.min_length)}"))
        if rule.pattern is not None:
            # a pattern of one digit is a set of ten codes: a hash look-up, not a regex per value
            matches = t.is_in(_DIGITS) if rule.pattern == _ONE_DIGIT else t.str.contains(rule.pattern)
            failures.append((t.is_not_null() & ~matches, rule.pattern_label or "invalid format"))
        allowed = _allowed(rule)
        if allowed is not None:
            label = rule.nomenclature or "{" + ", ".join(sorted(allowed)) + "}"
            failures.append((t.is_not_null() & ~t.is_in(_codes_literal(allowed)), f"not a code of {label}"))
    if rule.required_value:
        failures.append((t.is_null(), "missing value"))
    return helpers, value, failures


@cache
def _surely_clean(rule: ColumnRule) -> pl.Expr | None:
    """For a text column that validation cleans, a cheap condition on the raw value under which
    cleaning leaves it as it is: it is one of the column's codes (each of them clean; a return code:
    one digit), or for an integer column, a FINESS or an RSA number, it reads as an integer as it
    is (the cast takes no surrounding space). None when there is none (free text, dates: always
    cleaned)."""
    raw = pl.col(rule.name)
    if rule.kind in ("integer", "year", "month", "finess", "rsa"):
        # a FINESS or RSA number is digits (but 2A/2B FINESS numbers: doubtful, few)
        return raw.cast(pl.Int64, strict=False).is_not_null()
    allowed = _allowed(rule)
    if rule.kind == "return_code" and rule.pattern == _ONE_DIGIT:
        allowed = set(_DIGITS) & allowed if allowed is not None else set(_DIGITS)
    if allowed is None:
        return None
    if rule.kind == "icd10":
        if any(c != c.strip().upper().replace(".", "") or c != c.strip() for c in allowed):
            return None
    elif rule.kind not in ("string", "return_code") or any(c != c.strip() for c in allowed):
        return None
    return raw.is_in(_codes_literal(frozenset(allowed)))


_SURROUNDING_SPACE = r"^\s|\s$"
"""Text that trimming (``str.strip_chars()``: Unicode white space) changes."""


def _dirty(rule: ColumnRule, s: pl.Expr) -> pl.Expr:
    """True where reading the raw text ``s`` as it is, instead of cleaning it, could change the
    column's checks or its loaded value (asked of the values that are not surely clean).

    Trimmed text, an integer, a code: the text changes when trimmed. A CIM-10 code that is not a
    code of the CIM-10 as it is: its cleaned code (trimmed, upper case, no dot) is one, or is
    empty; otherwise the row fails the same check either way (code absent from the French CIM-10)
    and is quarantined as it was read, so only the typed value of a quarantined row, which nothing
    reads, differs."""
    if rule.kind == "icd10":
        return _icd10_code(s.str.strip_chars()).is_in(_codes_literal(_allowed(rule) or frozenset(), ("",)))
    return s.str.contains(_SURROUNDING_SPACE)


@cache
def _allowed(rule: ColumnRule) -> frozenset[str] | None:
    """The codes a coded column accepts (enum, nomenclature and its extra codes), None for others
    (once per rule: the validation of every file and :func:`clean_columns` ask again)."""
    if rule.kind == "icd10":
        return codes("MS_CIM_V")
    allowed: set[str] | None = None
    if rule.enum is not None:
        allowed = set(rule.enum)
    if rule.nomenclature is not None:
        allowed = (allowed or set()) | set(codes(rule.nomenclature))
    if allowed is not None:
        allowed |= set(rule.extra_codes)
    return None if allowed is None else frozenset(allowed)


@cache
def _codes_literal(allowed: frozenset[str], extra: tuple[str, ...] = ()) -> pl.Expr:
    """The codes, sorted (then ``extra``), as the literal ``is_in`` looks values up in (the one it
    makes of that list): made once per set of codes (sorting the CIM-10's codes and building the
    literal from a list cost more than validating a small file)."""
    return pl.lit([*sorted(allowed), *extra])


def clean_columns(raw: pl.LazyFrame, table: str) -> frozenset[str]:
    """The text columns of one raw table that :func:`validate_table` can read as they are instead
    of building a cleaned copy (trimmed; for a CIM-10 code also upper-cased, without dots): no value
    of theirs is changed by cleaning (:func:`_dirty`), so that the checks and the loaded values are
    the same either way.

    One pass over the file: only the values that are not surely clean (:func:`_surely_clean`: not
    one of the column's codes, not an integer as they are; few) are cleaned to compare. Columns
    without such a cheap condition (free text, dates) are always cleaned."""
    raw_schema = raw.collect_schema()
    doubtful: dict[str, pl.Expr] = {}
    dirty: dict[str, pl.Expr] = {}
    for rule in table_schema(table).rules:
        if raw_schema.get(rule.name) != pl.String:
            continue
        surely = _surely_clean(rule)
        if surely is not None:  # an empty text is read as a missing value either way
            doubtful[rule.name] = (pl.col(rule.name).str.len_bytes() > 0) & ~surely
            dirty[rule.name] = (doubtful[rule.name] & _dirty(rule, pl.col(rule.name))).any()
    if not dirty:
        return frozenset()
    # a row filter (streaming, bounded memory), then the cleaning compared on the few rows left
    found = (
        raw.filter(pl.any_horizontal(list(doubtful.values())))
        .select(expr.alias(name) for name, expr in dirty.items())
        .collect(engine="streaming")
        .row(0, named=True)
    )
    return frozenset(name for name, is_dirty in found.items() if not is_dirty)


STAY_ROW = "_stay_row"
"""In C, D and UM: the row of T_MCOaaB holding the stay the row belongs to."""

STAY_KEY = "_key"
"""The stay key (ETA_NUM, RSA_NUM) of a row as one integer (:func:`stay_key`), null when either
value failed its check: the foreign keys to B and the duplicate keys are joined and grouped on it."""

_RSA_SPAN = 10**10
_FINESS_SPAN = 10**7


def stay_key(eta: pl.Expr, rsa: pl.Expr) -> pl.Expr:
    """(ETA_NUM, RSA_NUM) as one UInt64, exactly (no collision): for a checked FINESS number (9
    digits, or 2A/2B and 7 digits) and a checked RSA index (1 to 10 digits),
    ``(département × 10⁷ + the 7 other digits) × 10¹⁰ + RSA index``, the département 00-99 being
    its number and 2A, 2B 100 and 101. At most 1.02 × 10¹⁹ < 2⁶⁴; two different checked pairs give
    two different integers. Only for values that passed the ETA_NUM and RSA_NUM checks (else
    meaningless: :func:`validate_table` makes it null there)."""
    u64 = pl.UInt64
    head = eta.str.slice(0, 2)
    dep = (
        pl.when(head == "2A").then(pl.lit(100, u64)).when(head == "2B").then(pl.lit(101, u64))
        .otherwise(head.cast(u64, strict=False))
    )
    finess = dep * pl.lit(_FINESS_SPAN, u64) + eta.str.slice(2).cast(u64, strict=False)
    return finess * pl.lit(_RSA_SPAN, u64) + rsa.cast(u64, strict=False)

CHECKS = "_checks"
"""Bit mask of the checks a row failed (0 for a row to load); decoded into reasons only for the
quarantined rows, so that the valid path stays cheap."""


@dataclass
class ValidatedTable:
    """One table file after validation.

    ``checked`` holds every row with its typed values, :data:`STAY_KEY` and :data:`CHECKS` (all
    checks but the primary key's); in C, D and UM also :data:`STAY_ROW`, and not the typed ETA_NUM
    and RSA_NUM (the stay's are in B), nor in D and UM (no primary key) :data:`STAY_KEY`;
    ``typed`` adds the duplicate-key check; ``loaded`` and ``quarantine`` derive from it.
    :meth:`materialize` writes ``checked`` once to a private workspace so that later reads do not
    parse the raw file again.
    """

    file: TableFile
    raw: pl.LazyFrame
    checked: pl.LazyFrame
    reasons: tuple[str, ...]
    duplicate_bit: int | None = None
    duplicate_keys: pl.DataFrame | None = None

    @property
    def typed(self) -> pl.LazyFrame:
        if self.duplicate_bit is None or (self.duplicate_keys is not None and self.duplicate_keys.is_empty()):
            return self.checked  # no key held twice: no join to pay for on every read
        dups = self.duplicate_keys.lazy() if self.duplicate_keys is not None else _duplicate_keys(self.checked)
        first = pl.col("_first_row")
        duplicate = (pl.col(CHECKS) == 0) & first.is_not_null() & (pl.col(ROW) != first)
        return (
            self.checked.join(dups, on=STAY_KEY, how="left", maintain_order="left")
            .with_columns(pl.col(CHECKS) | _mask([duplicate], self.duplicate_bit))
            .drop("_first_row")
        )

    @property
    def loaded(self) -> pl.LazyFrame:
        return self.typed.filter(pl.col(CHECKS) == 0).drop(CHECKS)

    @property
    def quarantine(self) -> pl.LazyFrame:
        """The quarantined rows as they were read (every column, as text), with ``_reasons``."""
        return quarantined_rows(self.raw, self.typed, self.reasons, self.file.label)

    def materialize(self, folder: Path) -> ValidatedTable:
        """Write the checked rows to ``folder`` (streaming) and return a table that reads them.

        The keys held by more than one valid row (few) are found once and kept in memory."""
        path = folder / f"typed_{self.file.label}.parquet"
        self.checked.sink_parquet(path, **SPEED, statistics=False)  # never filtered on them
        checked = pl.scan_parquet(path)
        dups = _find_duplicate_keys(checked) if self.duplicate_bit is not None else None
        return replace(self, checked=checked, duplicate_keys=dups)


SPEED = {"compression": "lz4"}
"""Options of the Parquet files respop writes for itself to read back (the typed tables, the
flagged stays, the canonical and staged tables): a fast codec (lz4; zstd took 15-22% of the input
step's CPU to write, then a good part of the later steps' to decompress; files about 1.5 times
larger). Statistics are kept: later steps filter the staged tables on the exit year."""


def _duplicate_keys(checked: pl.LazyFrame) -> pl.LazyFrame:
    """The stay keys (:data:`STAY_KEY`) held by several otherwise valid rows, with the first such
    row. (A valid row's key is never null.)"""
    return (
        checked.filter(pl.col(CHECKS) == 0)
        .group_by(STAY_KEY)
        .agg(pl.col(ROW).min().alias("_first_row"), pl.len().alias("_n"))
        .filter(pl.col("_n") > 1)
        .drop("_n")
    )


def _find_duplicate_keys(checked: pl.LazyFrame) -> pl.DataFrame:
    """:func:`_duplicate_keys` collected, in bounded memory: the valid rows' keys (8 bytes a row)
    are sorted to find the few held more than once, and only these are grouped (one national
    year's T_MCOaaB: 0.4 s instead of 1.2 s for grouping every key)."""
    keys = checked.filter(pl.col(CHECKS) == 0).select(STAY_KEY).collect(engine="streaming").get_column(STAY_KEY)
    held_twice = repeated(keys)
    del keys
    return _duplicate_keys(checked.filter(pl.col(STAY_KEY).is_in(held_twice.implode()))).collect(engine="streaming")


def repeated(values: pl.Series) -> pl.Series:
    """The values held more than once in ``values``, each once (nulls aside): sorted, then every
    value equal to the one before it. How respop finds the few duplicates among millions of
    integer keys or 64-bit hashes in bounded memory (8 bytes a row), before grouping only those
    (duplicate primary keys, the deaths referential's keys, the duplicate stays)."""
    ordered = values.sort()
    return ordered.filter(ordered == ordered.shift(1)).unique()


def detect_date_format(raw: pl.LazyFrame, column: str, sample: int = 2000) -> str | None:
    """The date format most of the first non-empty values of a text column follow, or None."""
    values = (
        raw.select(text(pl.col(column), pl.String).alias("v"))
        .filter(pl.col("v").is_not_null())
        .head(sample)
        .collect()
        .get_column("v")
    )
    if values.is_empty():
        return None
    parsed = {fmt: _parse_one(pl.col("v"), fmt) for fmt in _DATE_FORMATS}
    counts = pl.DataFrame({"v": values}).select(
        [expr.is_not_null().sum().alias(fmt) for fmt, expr in parsed.items()]
    ).row(0, named=True)
    best = max(counts, key=lambda fmt: counts[fmt])
    return best if counts[best] > 0 else None


def _parse_one(expr: pl.Expr, fmt: str) -> pl.Expr:
    if ":" in fmt:
        return expr.str.to_datetime(fmt, strict=False).dt.date()
    return expr.str.to_date(fmt, strict=False)


def validate_table(
    tf: TableFile,
    raw: pl.LazyFrame,
    window: DateWindow,
    parent: pl.LazyFrame | None = None,
    find_clean: bool = False,
) -> ValidatedTable:
    """Type and check one raw table (lazily).

    ``find_clean``: first read the file once to find the columns that need no cleaning
    (:func:`clean_columns`), and read those as they are (same checks and loaded values, less
    work); else, and for a CSV file, every text column is cleaned, and nothing is read now.

    ``parent`` (:data:`STAY_KEY` and ``_row`` of the loaded stays of the same year, in B)
    quarantines rows of C, D and UM without a stay in B, as the schema's foreign keys require,
    and gives each row the B row of its stay (:data:`STAY_ROW`).
    """
    schema = table_schema(tf.table)
    raw_schema = raw.collect_schema()
    # not for CSV files: their pass would parse the whole file once more (not measured; Parquet
    # files, and the ATIH files' Parquet tables, read the few columns it needs)
    clean = clean_columns(raw, tf.table) if find_clean and tf.format != "csv" else frozenset()
    stripped: list[pl.Expr] = []
    texts: list[pl.Expr] = []
    helpers: list[pl.Expr] = []
    values: list[pl.Expr] = []
    failures: list[tuple[pl.Expr, str]] = []
    for rule in schema.rules:
        if rule.name in raw_schema:
            dtype = raw_schema[rule.name]
            date_format = None
            if rule.kind == "date" and dtype == pl.String:
                date_format = detect_date_format(raw, rule.name)
            is_clean = rule.name in clean
            column_helpers, value, column_failures = _column_rule(rule, dtype, date_format, is_clean)
            # text(): trimmed once, then emptied strings made null (two steps: one trim per value);
            # a clean column is not trimmed (no copy)
            trimmed = pl.col(rule.name) if is_clean else _stripped(pl.col(rule.name), dtype)
            stripped.append(trimmed.alias(TEXT + rule.name))
            texts.append(_non_empty(pl.col(TEXT + rule.name)).alias(TEXT + rule.name))
            helpers.extend(expr.alias(HELPER + rule.name) for expr in column_helpers)
        else:  # optional column absent from this file
            value, column_failures = pl.lit(None, dtype=kind_dtype(rule)), []
        values.append(value.alias(rule.name))
        failures.extend((cond, f"{rule.name}: {why}") for cond, why in column_failures)
    row_failures = _row_checks(tf, window)
    reasons = [why for _, why in failures] + [why for _, why in row_failures]
    duplicate_bit = len(reasons)
    reasons.append("duplicate primary key (ETA_NUM, RSA_NUM): an earlier row has it")
    orphan_bit = len(reasons)
    reasons.append(f"no loaded stay with this (ETA_NUM, RSA_NUM) in T_MCO{tf.label[5:7]}B")
    if len(reasons) > 63:
        raise ValueError(f"{tf.label}: too many checks ({len(reasons)}) for one bit mask")

    typed = raw.with_columns(stripped).with_columns(texts)
    if helpers:
        typed = typed.with_columns(helpers)
    typed = (
        typed.with_columns(values)
        .select(
            pl.col(ROW),
            *(pl.col(rule.name) for rule in schema.rules),
            _mask(cond for cond, _ in failures).alias(CHECKS),
        )
    )
    # the stay key, from the values whose ETA_NUM and RSA_NUM checks passed (else null: such a row
    # is quarantined, and matches no stay, as its text would match no loaded stay of B)
    key_bits = sum(1 << i for i, (_, why) in enumerate(failures) if why.startswith(tuple(f"{k}: " for k in KEY)))
    key_ok = (pl.col(CHECKS) & pl.lit(key_bits, pl.Int64)) == 0
    typed = typed.with_columns(pl.when(key_ok).then(stay_key(*(pl.col(k) for k in KEY))).alias(STAY_KEY))
    if parent is not None:  # C, D, UM: the stay is STAY_KEY and STAY_ROW; its text is B's (written once)
        typed = typed.drop(*KEY)
    if row_failures:
        start = len(failures)
        row_mask = _mask((cond for cond, _ in row_failures), start)
        typed = typed.with_columns(pl.col(CHECKS) | row_mask)

    if parent is not None:
        stays = parent.select(STAY_KEY, pl.col(ROW).alias(STAY_ROW))
        # rows in any order: nothing reads a child table's typed rows in order (the quarantine
        # is in the raw file's order, the stays in B's, the diagnoses are grouped), and keeping
        # it cost 0.1-0.2 s a million rows
        typed = typed.join(stays, on=STAY_KEY, how="left", maintain_order="none").with_columns(
            pl.col(CHECKS) | _mask([pl.col(STAY_ROW).is_null()], orphan_bit)
        )
        if not schema.primary_key:  # D, UM: the stay is STAY_ROW from here on (less to write)
            typed = typed.drop(STAY_KEY)
    return ValidatedTable(
        file=tf,
        raw=raw,
        checked=typed,
        reasons=tuple(reasons),
        duplicate_bit=duplicate_bit if schema.primary_key else None,
    )


def quarantined_rows(raw: pl.LazyFrame, typed: pl.LazyFrame, reasons: tuple[str, ...], source: str) -> pl.LazyFrame:
    """The rows of ``typed`` whose check mask is not 0, as they were read in ``raw`` (every column
    as text, joined on the 1-based row number), with ``_reasons`` (the names of the mask's bits, in
    ``reasons`` order) and ``_source``."""
    bad = typed.filter(pl.col(CHECKS) != 0).select(ROW, CHECKS)
    decoded = pl.concat_list(
        [pl.when((pl.col(CHECKS) & (1 << i)) != 0).then(pl.lit(why)) for i, why in enumerate(reasons)]
    ).list.drop_nulls()
    # the few quarantined rows joined first, then their columns made text (not every row's)
    return (
        raw.with_columns(pl.col(ROW).cast(pl.UInt32))
        .join(bad.with_columns(pl.col(ROW).cast(pl.UInt32)), on=ROW, how="inner", maintain_order="left")
        .with_columns(pl.exclude(ROW, CHECKS).cast(pl.String))
        .with_columns(decoded.alias(REASONS), pl.lit(source).alias(SOURCE))
        .drop(CHECKS)
    )


def _mask(conditions, start: int = 0) -> pl.Expr:
    """An Int64 with bit ``start + i`` set where the i-th condition is true (null counts as false)."""
    bits = [
        pl.when(cond.fill_null(False)).then(pl.lit(1 << (start + i), pl.Int64)).otherwise(pl.lit(0, pl.Int64))
        for i, cond in enumerate(conditions)
    ]
    if not bits:
        return pl.lit(0, pl.Int64)
    return pl.sum_horizontal(bits)


def _chars(n: int) -> str:
    return f"{n} character" + ("s" if n > 1 else "")


def _row_checks(tf: TableFile, window: DateWindow) -> list[tuple[pl.Expr, str]]:
    """Checks that involve several columns of a row, on typed values."""
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
    return checks
