"""The optional death input: the SNDS beneficiaries' referential IR_BEN_R (death dates).

The PMSI records only the deaths in hospital (exit mode 9). The SNDS referential of beneficiaries,
``IR_BEN_R``, holds the death date of every beneficiary whose death the health insurance knows,
wherever it happened. When a file named ``IR_BEN_R`` (``.parquet``, ``.pq``, ``.csv``, or a folder
of Parquet parts) sits in the PMSI folder (``input.pmsi_dir``: it comes with the same SNDS
extraction, patient-level, in the same secure area), respop reads it with no further setting;
``input.deaths = "ignore"`` leaves it aside (to measure what the deaths change).

Link: ``BEN_NIR_PSA`` is the pseudonymised identifier the PMSI carries as ``NIR_ANO_17`` (the
canonical ``patient_key``): the two join as they are. The PMSI has no birth rank
(``BEN_RNG_GEM``): when several rows share a ``BEN_NIR_PSA`` (twins of one opener of rights) and do
not agree on the death, the key's death is unknown (counted as ``ambiguous_keys``).

Every row is typed and checked as the PMSI tables are (:mod:`respop.pmsi.validate`, the rules of
``respop/data/snds/schemas/IR_BEN_R.json``): a missing required column is an
:class:`~respop.errors.InputError` naming the file and the column; an invalid row goes to the
quarantine with its reasons and is counted, ``rows read = rows loaded + rows quarantined``.

Death date of a loaded row: ``BEN_DCD_DTE``; when it is empty, the 15th of the month of
``BEN_DCD_AME`` (year and month); a date (or year) before 1900 is the referential's placeholder
for the living (``1600-01-01`` / ``160001``), not a death. See docs/pmsi.md, "Deaths".
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import re
from dataclasses import asdict, dataclass, field
from functools import cache
from pathlib import Path

import polars as pl

from respop.config import InputConfig, QualityConfig
from respop.errors import InputError
from respop.pmsi.files import (
    ROW,
    Workspace,
    _check_utf8,
    _choose_separator,
    _normalize_names,
    _transcode,
    read_failure,
    scan_parquet,
)
from respop.pmsi.report import TableCount
from respop.pmsi.schema import ColumnRule
from respop.pmsi.validate import (
    CHECKS,
    HELPER,
    REASONS,
    SOURCE,
    TEXT,
    _column_rule,
    _mask,
    _non_empty,
    _stripped,
    detect_date_format,
    kind_dtype,
    quarantined_rows,
    repeated as held_twice,
)
from respop.resources import data_path

TABLE = "IR_BEN_R"
TITLE = "beneficiaries' referential (Référentiel des bénéficiaires): death dates"
KEY = ("BEN_NIR_PSA", "BEN_RNG_GEM")

USED_COLUMNS: tuple[tuple[str, bool, bool], ...] = (
    ("BEN_NIR_PSA", True, True),
    ("BEN_RNG_GEM", False, False),
    ("BEN_SEX_COD", False, False),
    ("BEN_NAI_ANN", False, False),
    ("BEN_DCD_DTE", True, False),
    ("BEN_DCD_AME", False, False),
)
"""(name, required column, required value) of the columns respop reads from IR_BEN_R."""

PLACEHOLDER_BEFORE = dt.date(1900, 1, 1)
"""A death date (or year of ``BEN_DCD_AME``) before this is the placeholder of the living."""
MONTH_DAY = 15
"""Day of the month given to a death known by its year and month only (``BEN_DCD_AME``)."""

DEATH_DATE = "_death_date"
_NAME = re.compile(r"^IR_BEN_R(?P<ext>\.csv|\.parquet|\.pq)?$", re.I)
_SNIFF = 1 << 20


@dataclass(frozen=True)
class DeathFile:
    path: Path
    format: str

    @property
    def label(self) -> str:
        return TABLE


def schema_path() -> Path:
    return data_path("snds", "schemas", f"{TABLE}.json")


@cache
def rules() -> tuple[ColumnRule, ...]:
    """The rules of the columns respop reads, from the shipped ``IR_BEN_R.json``."""
    raw = json.loads(schema_path().read_text(encoding="utf-8"))
    fields = {f["name"]: f for f in raw["fields"]}
    out = []
    for name, req_col, req_val in USED_COLUMNS:
        f = fields[name]
        cons = f.get("constraints") or {}
        kind = {"integer": "integer", "date": "date"}.get(f["type"], "string")
        out.append(
            ColumnRule(
                name=name,
                kind=kind,
                required_column=req_col,
                required_value=req_val,
                minimum=cons.get("minimum"),
                maximum=cons.get("maximum"),
                min_length=cons.get("minLength"),
                max_length=cons.get("maxLength"),
                enum=tuple(cons["enum"]) if "enum" in cons else None,
                pattern=cons.get("pattern"),
                pattern_label="not a year and month (AAAAMM)" if "pattern" in cons else None,
                description=f.get("description", ""),
            )
        )
    return tuple(out)


def columns() -> frozenset[str]:
    return frozenset(name for name, _, _ in USED_COLUMNS)


# --- finding and opening the file ------------------------------------------------------------


def find_death_file(folder: Path, fmt: str = "auto") -> DeathFile | None:
    """The ``IR_BEN_R`` file of ``folder``, or None; present twice is an :class:`InputError`."""
    if not folder.is_dir():
        return None
    found = []
    for entry in sorted(folder.iterdir()):
        m = _NAME.match(entry.name)
        if not m:
            continue
        ext = (m["ext"] or "").lower()
        if entry.is_dir():
            if ext == ".csv":
                continue
            file_format = "parquet"
        elif ext == ".csv":
            file_format = "csv"
        elif ext in (".parquet", ".pq"):
            file_format = "parquet"
        else:
            continue
        if fmt in ("auto", "atih", file_format):  # beside ATIH files, the referential is read as found
            found.append(DeathFile(entry, file_format))
    if len(found) > 1:
        names = ", ".join(f.path.name for f in found)
        raise InputError(
            f"the referential {TABLE} is present more than once ({names}); keep one, or choose with "
            "input.format = 'csv' or 'parquet'",
            folder,
        )
    return found[0] if found else None


def scan_deaths(df: DeathFile, separator: str = "auto", encoding: str = "utf-8", workspace: Workspace | None = None) -> pl.LazyFrame:
    """Open the referential lazily (upper-case names, 1-based ``_row``); a missing required
    column is an :class:`InputError` naming the file and the column."""
    path = df.path
    if df.format == "csv":
        if path.stat().st_size == 0:
            raise InputError("empty file (no header line)", path)
        with path.open("rb") as fh:
            head = fh.read(_SNIFF)
        source = path
        if encoding == "utf-8":
            _check_utf8(head, path, complete=len(head) < _SNIFF)
        else:
            if workspace is None:
                raise InputError(f"reading {encoding} files needs a workspace", path)
            source = _transcode(path, encoding, workspace)
            with source.open("rb") as fh:
                head = fh.read(_SNIFF)
        first = head.decode("utf-8", errors="replace").lstrip("\ufeff").split("\n", 1)[0].rstrip("\r")
        if not first.strip():
            raise InputError("no header line (the first line is empty)", path)
        sep = _choose_separator(first, separator, path)
        names = _normalize_names(next(csv.reader([first], delimiter=sep)), path, columns())
        try:
            lf = pl.scan_csv(
                source, separator=sep, infer_schema=False, row_index_name=ROW, row_index_offset=1,
                new_columns=names, truncate_ragged_lines=False, encoding="utf8",
            )
            lf.collect_schema()
        except pl.exceptions.PolarsError as exc:
            raise read_failure(path, "csv", None, exc, separator=sep) from None
    else:
        lf = scan_parquet(path, columns())
    present = lf.collect_schema().names()
    missing = [name for name, required, _ in USED_COLUMNS if required and name not in present]
    if missing:
        known = [c for c in present if c in columns()]
        raise InputError(
            f"required column(s) missing from {TABLE}: {', '.join(missing)} (columns found: "
            f"{', '.join(known) or 'no column respop reads'}; others not shown)",
            path,
            column=missing[0],
        )
    return lf


# --- validation ------------------------------------------------------------------------------


@dataclass
class DeathInput:
    """The referential of one run: typed rows with their check mask, and what follows from them."""

    file: DeathFile
    raw: pl.LazyFrame
    typed: pl.LazyFrame
    reasons: tuple[str, ...]
    unchecked: pl.LazyFrame | None = None
    """The typed rows before the duplicate-key check (whose bit is ``duplicate_bit``)."""
    duplicate_bit: int = 0

    @property
    def loaded(self) -> pl.LazyFrame:
        return self.typed.filter(pl.col(CHECKS) == 0).drop(CHECKS)

    @property
    def quarantine(self) -> pl.LazyFrame:
        """Quarantined rows as they were read (every column as text), with ``_reasons`` and ``_source``."""
        return quarantined_rows(self.raw, self.typed, self.reasons, TABLE)

    def deaths(self) -> pl.DataFrame:
        """patient_key, death_date: one row per ``BEN_NIR_PSA`` whose loaded rows agree on a death."""
        return _per_key(self.loaded).filter(pl.col("_agree") & pl.col("death_date").is_not_null()).select(
            "patient_key", "death_date"
        ).sort("patient_key").collect(engine="streaming")

    def known(self) -> KnownDeaths:
        """:meth:`deaths` and :meth:`report` in one checking of the file, in bounded memory (what
        :func:`known_deaths` needs).

        The rows are typed and checked once, into a narrow frame in memory: the row number, the
        check mask and, for a valid row, a 64-bit hash of its key and whether it has a death
        (about 21 bytes a row). Most keys are held by one valid row: the sorted hashes find the
        few that repeat. Only the valid rows that matter are then read again, by row number (the
        filter goes down to the scan: the file is read again, but only these rows are typed and
        checked):
        those with a death, and those whose hash repeats (twins, duplicate rows, and any hash
        collision, which only adds rows). These last are grouped exactly, in memory: the
        duplicate-key check and the per-key agreement. A key whose hash does not repeat is one
        valid row, loaded, and its death is its row's. The counts of the report are those of the
        check masks plus the duplicates found among the few.

        On the national referential (71 M rows, quiet): 30.1 s in a staging when the typed rows
        were written to the workspace and read three times, 22.4 s now (the checking pass 12 s,
        the rows read again 4 s, the sort of the hashes 2 s). Grouping every key with a death
        (5.7 M) and joining the duplicates back onto every row took 39 of the 104 s of an earlier
        reading (under load); :meth:`deaths` and :meth:`report` called apart evaluate the plan
        three times and group every key (about 150 s and 14 GB)."""
        valid = pl.col(CHECKS) == 0
        narrow = self.unchecked.select(
            pl.col(ROW),
            CHECKS,
            pl.when(valid).then(_KEY_HASH).alias("_key_hash"),
            (valid & pl.col(DEATH_DATE).is_not_null()).alias("_dies"),
        ).collect(engine="streaming")
        masks = narrow.group_by(CHECKS).agg(pl.len().alias("_n"))
        repeated = held_twice(narrow.get_column("_key_hash").drop_nulls()).implode()
        wanted = narrow.filter(pl.col("_dies") | pl.col("_key_hash").is_in(repeated)).get_column(ROW).implode()
        del narrow
        rows = (
            self.unchecked.filter(pl.col(ROW).is_in(wanted))
            .select(pl.col(ROW), "BEN_NIR_PSA", "BEN_RNG_GEM", CHECKS, DEATH_DATE, _KEY_HASH.alias("_key_hash"))
            .collect(engine="streaming")
        )
        shared = rows.lazy().filter(pl.col("_key_hash").is_in(repeated)).drop("_key_hash")
        first = shared.group_by("BEN_NIR_PSA", _RANK.alias("_rank")).agg(pl.col(ROW).min().alias("_first"))
        marked = _mark_duplicates(shared, first, self.duplicate_bit).collect()
        duplicates = int((marked.get_column(CHECKS) != 0).sum())
        keys = _per_key(marked.lazy().filter(pl.col(CHECKS) == 0).drop(CHECKS)).collect()
        single = rows.filter(~pl.col("_key_hash").is_in(repeated) & pl.col(DEATH_DATE).is_not_null()).select(
            pl.col("BEN_NIR_PSA").alias("patient_key"), pl.col(DEATH_DATE).alias("death_date")
        )
        deaths = pl.concat(
            [single, keys.filter(pl.col("_agree") & pl.col("death_date").is_not_null()).select("patient_key", "death_date")]
        ).sort("patient_key")
        counts = _mask_counts(masks, len(self.reasons))
        counts["loaded"] -= duplicates
        counts["quarantined"] += duplicates
        counts[f"bit{self.duplicate_bit}"] = duplicates
        keys_count = {"deaths": deaths.height, "ambiguous": int((~keys["_agree"]).sum())}
        return KnownDeaths(deaths, self.report(keys=keys_count, counts=counts))

    def _counts(self, typed: pl.LazyFrame) -> dict:
        """Rows of ``typed`` checked, loaded, quarantined, and per bit of the check mask."""
        return typed.select(
            pl.len().alias("read"),
            (pl.col(CHECKS) == 0).sum().alias("loaded"),
            (pl.col(CHECKS) != 0).sum().alias("quarantined"),
            *[((pl.col(CHECKS) & (1 << i)) != 0).sum().alias(f"bit{i}") for i in range(len(self.reasons))],
        ).collect(engine="streaming").row(0, named=True)

    def report(self, typed: pl.LazyFrame | None = None, keys: dict | None = None, counts: dict | None = None) -> DeathReport:
        """Counts only. ``typed``, ``keys``, ``counts``: the typed rows, the key counts and the row
        counts already computed (:meth:`known`)."""
        if counts is None:
            counts = self._counts(typed if typed is not None else self.typed)
        if keys is None:
            keys = _per_key(self.loaded).select(
                (pl.col("_agree") & pl.col("death_date").is_not_null()).sum().alias("deaths"),
                (~pl.col("_agree")).sum().alias("ambiguous"),
            ).collect(engine="streaming").row(0, named=True)
        read = self.raw.select(pl.len()).collect(engine="streaming").item()
        reasons = {why: int(counts[f"bit{i}"]) for i, why in enumerate(self.reasons) if counts[f"bit{i}"]}
        present = self.raw.collect_schema().names()
        table = TableCount(
            table=TABLE,
            label=TABLE,
            year=None,
            path=str(self.file.path),
            format=self.file.format,
            rows_read=int(read),
            rows_loaded=int(counts["loaded"]),
            rows_quarantined=int(counts["quarantined"]),
            reasons=dict(sorted(reasons.items(), key=lambda kv: -kv[1])),
            absent_optional_columns=[n for n, req, _ in USED_COLUMNS if not req and n not in present],
        )
        return DeathReport(known=True, table=table, deaths=int(keys["deaths"] or 0), ambiguous_keys=int(keys["ambiguous"] or 0))


def _per_key(loaded: pl.LazyFrame) -> pl.LazyFrame:
    """Per BEN_NIR_PSA: the death date, and whether its rows agree (one date, or all alive)."""
    return loaded.group_by(pl.col("BEN_NIR_PSA").alias("patient_key")).agg(
        pl.col(DEATH_DATE).min().alias("death_date"),
        (pl.col(DEATH_DATE).n_unique() == 1).alias("_agree"),
    )


def _mask_counts(masks: pl.DataFrame, bits: int) -> dict:
    """The counts of :meth:`DeathInput._counts` (rows read, loaded, quarantined, per bit) from the
    number of rows of each check mask (``masks``: CHECKS, _n)."""
    counts = {"read": 0, "loaded": 0, "quarantined": 0, **{f"bit{i}": 0 for i in range(bits)}}
    for mask, n in masks.iter_rows():
        counts["read"] += n
        counts["loaded" if mask == 0 else "quarantined"] += n
        for i in range(bits):
            if mask & (1 << i):
                counts[f"bit{i}"] += n
    return counts


@dataclass
class DeathReport:
    """Counts only: the referential's rows (read = loaded + quarantined, with reasons), the keys
    with a death, the keys whose rows disagree. ``known`` false: no referential was read, and
    deaths outside hospital are unknown to the run."""

    known: bool
    table: TableCount | None = None
    deaths: int = 0
    ambiguous_keys: int = 0
    reason: str = ""

    @property
    def balanced(self) -> bool:
        return self.table is None or self.table.balanced

    def to_dict(self) -> dict:
        out = asdict(self)
        out["balanced"] = self.balanced
        return out


def validate_deaths(df: DeathFile, raw: pl.LazyFrame, quality: QualityConfig | None = None) -> DeathInput:
    """Type and check the referential lazily (the rules of :func:`rules`, then the row checks)."""
    quality = quality or QualityConfig()
    schema = raw.collect_schema()
    stripped, texts, helpers, values, failures = [], [], [], [], []
    for rule in rules():
        if rule.name in schema:
            dtype = schema[rule.name]
            date_format = detect_date_format(raw, rule.name) if rule.kind == "date" and dtype == pl.String else None
            column_helpers, value, column_failures = _column_rule(rule, dtype, date_format)
            stripped.append(_stripped(pl.col(rule.name), dtype).alias(TEXT + rule.name))
            texts.append(_non_empty(pl.col(TEXT + rule.name)).alias(TEXT + rule.name))
            helpers.extend(expr.alias(HELPER + rule.name) for expr in column_helpers)
        else:
            value, column_failures = pl.lit(None, dtype=kind_dtype(rule)), []
        values.append(value.alias(rule.name))
        failures.extend((cond, f"{rule.name}: {why}") for cond, why in column_failures)
    date, ame, born = pl.col("BEN_DCD_DTE"), pl.col("BEN_DCD_AME"), pl.col("BEN_NAI_ANN")
    real_date = pl.when(date >= PLACEHOLDER_BEFORE).then(date)
    ame_year = ame.str.slice(0, 4).cast(pl.Int32, strict=False)
    ame_date = pl.when(ame_year >= PLACEHOLDER_BEFORE.year).then(
        (ame + pl.lit(f"{MONTH_DAY:02d}")).str.to_date("%Y%m%d", strict=False)  # an invalid month: null, never an error
    )
    death = pl.coalesce(real_date, pl.when(date.is_null()).then(ame_date))
    row_failures = [
        (real_date.dt.year() < born, "BEN_DCD_DTE: death before the year of birth (BEN_NAI_ANN)"),
        (
            real_date.is_not_null() & (ame_year >= PLACEHOLDER_BEFORE.year) & (real_date.dt.strftime("%Y%m") != ame),
            "BEN_DCD_AME: not the year and month of BEN_DCD_DTE",
        ),
    ]
    if quality.max_date is not None:
        row_failures.append((death > quality.max_date, f"BEN_DCD_DTE: date after {quality.max_date}"))
    reasons = [why for _, why in failures] + [why for _, why in row_failures]
    duplicate_bit = len(reasons)
    reasons.append("duplicate primary key (BEN_NIR_PSA, BEN_RNG_GEM): an earlier row has it")

    typed = raw.with_columns(stripped).with_columns(texts)
    if helpers:
        typed = typed.with_columns(helpers)
    typed = typed.with_columns(values).select(
        pl.col(ROW), *(pl.col(r.name) for r in rules()), _mask(cond for cond, _ in failures).alias(CHECKS)
    )
    typed = typed.with_columns(
        (pl.col(CHECKS) | _mask((cond for cond, _ in row_failures), len(failures))).alias(CHECKS),
        death.alias(DEATH_DATE),
    )
    # the first valid row of a key held by several valid rows is loaded; the later ones are not
    valid = typed.filter(pl.col(CHECKS) == 0)
    first = valid.group_by("BEN_NIR_PSA", _RANK.alias("_rank")).agg(pl.col(ROW).min().alias("_first"))
    return DeathInput(file=df, raw=raw, typed=_mark_duplicates(typed, first, duplicate_bit), reasons=tuple(reasons),
                      unchecked=typed, duplicate_bit=duplicate_bit)


_RANK = pl.col("BEN_RNG_GEM").fill_null(1)
"""The birth rank of a row (absent: 1), the second part of the primary key."""
_KEY_HASH = pl.col("BEN_NIR_PSA").hash(seed=0)
"""A 64-bit hash of the key (BEN_NIR_PSA), to find the few keys held by several rows."""


def _mark_duplicates(typed: pl.LazyFrame, first: pl.LazyFrame, bit: int) -> pl.LazyFrame:
    """``typed`` with the duplicate-key bit set on every valid row that is not the first valid row
    of its (BEN_NIR_PSA, rank): ``first`` holds, per key held by several valid rows (or more
    keys), the row number of the first (``_first``)."""
    return (
        typed.with_columns(_RANK.alias("_rank"))
        .join(first, on=["BEN_NIR_PSA", "_rank"], how="left", maintain_order="left")
        .with_columns(
            pl.col(CHECKS)
            | _mask([(pl.col(CHECKS) == 0) & pl.col("_first").is_not_null() & (pl.col(ROW) != pl.col("_first"))], bit)
        )
        .drop("_rank", "_first")
    )


def read_deaths(
    folder: str | Path | None = None,
    input: InputConfig | None = None,
    quality: QualityConfig | None = None,
    workspace: Workspace | None = None,
) -> DeathInput | None:
    """The referential of the PMSI folder (``input.pmsi_dir`` by default), checked lazily; None
    when there is none or ``input.deaths`` is ``"ignore"``."""
    input = input or InputConfig()
    if input.deaths == "ignore":
        return None
    folder = Path(folder) if folder is not None else input.pmsi_dir
    if folder is None:
        return None
    found = find_death_file(folder, input.format)
    if found is None:
        return None
    raw = scan_deaths(found, input.separator, input.encoding, workspace)
    return validate_deaths(found, raw, quality)


@dataclass
class KnownDeaths:
    """What a run knows of deaths outside hospital: the deaths (None: no referential) and the report."""

    deaths: pl.DataFrame | None
    report: DeathReport = field(default_factory=lambda: DeathReport(known=False))


_CACHE: dict[tuple, KnownDeaths] = {}


def known_deaths(input: InputConfig | None, quality: QualityConfig | None = None, folder: Path | None = None) -> KnownDeaths:
    """The deaths of the referential (patient_key, death_date) and its report, read once per file
    and process (the cases and strata steps of one run share them)."""
    input = input or InputConfig()
    folder = folder if folder is not None else input.pmsi_dir
    found = find_death_file(Path(folder), input.format) if folder is not None and input.deaths != "ignore" else None
    if found is None:
        reason = "input.deaths = 'ignore'" if input.deaths == "ignore" else f"no {TABLE} file in the PMSI folder"
        return KnownDeaths(None, DeathReport(known=False, reason=reason))
    key = _cache_key(found, input, quality)
    if key not in _CACHE:
        workspace = Workspace(input.workspace_dir)
        try:
            data = read_deaths(folder, input, quality, workspace)
            assert data is not None
            try:
                _CACHE[key] = data.known()
            except (pl.exceptions.PolarsError, OSError) as exc:
                raise read_failure(found.path, found.format, None, exc) from None
        finally:
            workspace.close()
    return _CACHE[key]


def _cache_key(found: DeathFile, input: InputConfig, quality: QualityConfig | None) -> tuple:
    """What the deaths read from ``found`` depend on: the file (path, time, size) and the settings."""
    stat = found.path.stat()
    return (str(found.path.resolve()), stat.st_mtime_ns, stat.st_size, input.separator, input.encoding,
            quality.max_date if quality is not None else None)


def remember(input: InputConfig, quality: QualityConfig | None, known: KnownDeaths) -> bool:
    """Give :func:`known_deaths` the deaths of the referential of ``input.pmsi_dir`` as read
    earlier (the staged input keeps them: respop.pmsi.stage), so that this process does not
    validate the file again; False (nothing remembered) when no referential is read there."""
    folder = input.pmsi_dir
    found = find_death_file(Path(folder), input.format) if folder is not None and input.deaths != "ignore" else None
    if found is None:
        return False
    _CACHE[_cache_key(found, input, quality)] = known
    return True


def deaths_of(staged) -> pl.DataFrame | None:
    """The referential's deaths for the PMSI data of a run (``PmsiData``: its folder and input)."""
    return known_deaths(staged.input, staged.quality, staged.folder).deaths
