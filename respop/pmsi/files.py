"""Finding and opening SNDS PMSI MCO files (input layer: raw tables as they come).

A folder holds one file per table and exit year, named as in the SNDS: ``T_MCO22B.parquet``,
``T_MCO22C.csv``… (``aa`` instead of the year is accepted, as in the HDH samples: year unknown).
A Parquet table may also be a folder of Parquet parts (``T_MCO22B/part-0.parquet``…).

Opening a file checks what can be checked cheaply and early (empty file, unreadable Parquet
footer, encoding, separator, missing columns) and returns a lazy frame of the raw rows with a
1-based ``_row`` number. Nothing is loaded in memory here.

Error messages name the file, the line and the column when they can, and the kind of problem;
they never quote the file's content (a row holds patient keys and dates): a header is shown by
its SNDS column names only, and a reader's failure (polars quotes the values it could not parse)
is described by :func:`read_failure`, never passed on as it is.
"""

from __future__ import annotations

import codecs
import csv
import difflib
import json
import re
import shutil
import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Literal

import polars as pl

from respop.errors import DiskFullError, InputError, is_disk_full
from respop.pmsi.schema import TABLES, table_schema
from respop.resources import snds_schema_path

ROW = "_row"
"""Name of the 1-based row-number column added to every raw table."""

_NAME = re.compile(r"^T_MCO(?P<yy>\d{2}|AA)(?P<table>UM|B|C|D)(?P<ext>\.csv|\.parquet|\.pq)?$", re.I)
_SEPARATORS = (";", ",", "\t", "|")
_SNIFF_BYTES = 1 << 20

Format = Literal["csv", "parquet", "atih"]
"""How a table was read: SNDS CSV or Parquet, or parsed from ATIH files (respop.pmsi.atih)."""


@dataclass(frozen=True)
class TableFile:
    """One SNDS table file: table letter, exit year (None when the name says ``aa``), path."""

    table: str
    year: int | None
    path: Path
    format: Format

    @property
    def label(self) -> str:
        yy = "aa" if self.year is None else f"{self.year % 100:02d}"
        return f"T_MCO{yy}{self.table}"


def discover(
    folder: str | Path,
    years: list[int] | None = None,
    fmt: Literal["auto", "csv", "parquet"] = "auto",
) -> dict[int | None, dict[str, TableFile]]:
    """Find the PMSI MCO tables in ``folder``, per exit year and table.

    Every year found (or asked for) must have the four tables B, C, D and UM; a missing one is an
    :class:`InputError` naming the file expected.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError("folder not found (expected a folder of SNDS PMSI tables)", folder)
    found: dict[int | None, dict[str, list[TableFile]]] = {}
    for entry in sorted(folder.iterdir()):
        m = _NAME.match(entry.name)
        if not m:
            continue
        ext = (m["ext"] or "").lower()
        if entry.is_dir():
            if ext not in ("", ".parquet", ".pq"):
                continue
            file_format: Format = "parquet"
        elif ext == ".csv":
            file_format = "csv"
        elif ext in (".parquet", ".pq"):
            file_format = "parquet"
        else:
            continue
        if fmt != "auto" and file_format != fmt:
            continue
        yy = m["yy"].upper()
        year = None if yy == "AA" else 2000 + int(yy)
        table = m["table"].upper()
        found.setdefault(year, {}).setdefault(table, []).append(
            TableFile(table, year, entry, file_format)
        )
    if not found:
        raise InputError(
            "no PMSI MCO tables found: expected files named like T_MCO22B.parquet or T_MCO22B.csv "
            "(tables B, C, D and UM)",
            folder,
        )
    if years is not None:
        absent = [y for y in years if y not in found]
        if absent:
            have = sorted(str(y) for y in found if y is not None) or [
                "none; the files' names carry no year (T_MCOaa…)"
            ]
            raise InputError(
                f"no PMSI tables for year(s) {absent} (years present: {', '.join(have)})", folder
            )
        found = {y: found[y] for y in years}
    out: dict[int | None, dict[str, TableFile]] = {}
    for year, tables in sorted(found.items(), key=lambda kv: -1 if kv[0] is None else kv[0]):
        yy = "aa" if year is None else f"{year % 100:02d}"
        for table in TABLES:
            candidates = tables.get(table, [])
            if not candidates:
                raise InputError(
                    f"table T_MCO{yy}{table} ({table_schema(table).title}) is missing: expected "
                    f"T_MCO{yy}{table}.parquet or T_MCO{yy}{table}.csv",
                    folder,
                )
            if len(candidates) > 1:
                names = ", ".join(c.path.name for c in candidates)
                raise InputError(
                    f"table T_MCO{yy}{table} is present more than once ({names}); keep one, or "
                    "choose with input.format = 'csv' or 'parquet'",
                    folder,
                )
        out[year] = {table: tables[table][0] for table in TABLES}
    return out


def has_snds_tables(folder: str | Path) -> bool:
    """Whether ``folder`` holds an entry named like an SNDS PMSI MCO table (``T_MCO22B.csv``…)."""
    folder = Path(folder)
    return folder.is_dir() and any(_NAME.match(entry.name) for entry in folder.iterdir())


class Workspace:
    """A private temporary folder: transcoded copies of non-UTF-8 CSV files and the staged
    (validated) tables. It holds patient-level data: put it in the secure area with
    ``input.workspace_dir`` (default: the system's temporary folder).

    It lives as long as the object (lazy frames read from it until they are collected) and is
    removed by :meth:`close` or when the object is garbage-collected. Its name carries this
    process's owner token, as a run's private workspace does (``respop-run-<pid>-…``,
    :func:`respop.fsutil.run_workspace`): when the process is killed and the folder stays, the
    next respop command removes it (:func:`respop.pipeline.remove_leftovers`).
    """

    def __init__(self, base: Path | None = None) -> None:
        self._base = base
        self._dir: tempfile.TemporaryDirectory | None = None

    def path(self) -> Path:
        if self._dir is None:
            from respop.fsutil import WORKSPACE_PREFIX, owner_token

            if self._base is not None:
                self._base.mkdir(parents=True, exist_ok=True)
            self._dir = tempfile.TemporaryDirectory(prefix=f"{WORKSPACE_PREFIX}{owner_token()}-", dir=self._base)
        return Path(self._dir.name)

    def close(self) -> None:
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None


def scan_table(
    tf: TableFile,
    separator: str = "auto",
    encoding: str = "utf-8",
    workspace: Workspace | None = None,
) -> pl.LazyFrame:
    """Open one table lazily, with upper-case column names and a 1-based ``_row`` number.

    Raises :class:`InputError` for an empty or unreadable file, a wrong encoding or separator, or
    a required column that is absent (naming the file and the columns).
    """
    if tf.format == "csv":
        lf = _scan_csv(tf.path, separator, encoding, workspace, tf.table)
    else:
        lf = scan_parquet(tf.path, snds_columns(tf.table))
    columns = lf.collect_schema().names()
    missing = [c for c in table_schema(tf.table).required_columns if c not in columns]
    if missing:
        raise InputError(
            f"required column(s) missing from {tf.label}: {', '.join(missing)} "
            f"({_columns_found([c for c in columns if c != ROW], tf.table, missing)})",
            tf.path,
            column=missing[0],
        )
    return lf


@cache
def snds_columns(table: str) -> frozenset[str]:
    """Every column the SNDS Table Schema lists for a table: the header names a message may show."""
    raw = json.loads(snds_schema_path(table).read_text(encoding="utf-8"))
    return frozenset(f["name"].upper() for f in raw["fields"])


def _columns_found(names: list[str], table: str, missing: list[str]) -> str:
    """The header's columns as a message shows them: its SNDS column names; the others are only
    counted (a header line merged with a data line would hold patient keys), except a name that
    looks like a misspelt missing column (``AGE_ANNN`` for ``AGE_ANN``): values look like no name."""
    known = [n for n in names if n in snds_columns(table)]
    others = [(i, n) for i, n in enumerate(names, start=1) if n not in snds_columns(table)]
    text = f"columns found: {', '.join(known) or 'no SNDS column of this table'}"
    if others:
        text += f"; {len(others)} other field(s) in the header line, not shown"
        typos = []
        for column in missing:
            close = difflib.get_close_matches(column, [n for _, n in others], n=1, cutoff=0.8)
            if close:
                position = next(i for i, n in others if n == close[0])
                typos.append(f"field {position} ({close[0]!r}) looks like a misspelt {column}")
        if typos:
            text += "; " + "; ".join(typos)
    return text


def _normalize_names(names: list[str], path: Path, known: frozenset[str]) -> list[str]:
    """Header names stripped (and of a byte-order mark) and upper-cased; a name given twice is an
    :class:`InputError`, naming it only when it is one of ``known`` (the table's column names: a
    header line merged with a data line would hold patient data)."""
    out = [n.strip().lstrip("\ufeff").strip().upper() for n in names]
    seen: dict[str, int] = {}
    for i, n in enumerate(out, start=1):
        if n in seen:
            if n in known:
                raise InputError(f"column {n} appears twice in the header", path, column=n)
            raise InputError(
                f"fields {seen[n]} and {i} of the header line hold the same text (not an SNDS column "
                "name, not shown): is the first line the header?",
                path,
            )
        seen[n] = i
    return out


def _scan_csv(path: Path, separator: str, encoding: str, workspace: Workspace | None, table: str) -> pl.LazyFrame:
    if path.stat().st_size == 0:
        raise InputError("empty file (no header line)", path)
    with path.open("rb") as fh:
        head = fh.read(_SNIFF_BYTES)
    if encoding == "utf-8":
        _check_utf8(head, path, complete=len(head) < _SNIFF_BYTES)
        source = path
    else:
        if workspace is None:
            raise InputError(f"reading {encoding} files needs a workspace", path)
        source = _transcode(path, encoding, workspace)
        with source.open("rb") as fh:
            head = fh.read(_SNIFF_BYTES)
    # the first line as the CSV reader sees it: up to "\n" only (splitlines() also splits at
    # form feeds, \x1c… and U+2028, which the reader keeps inside the line)
    first = head.decode("utf-8", errors="replace").lstrip("\ufeff").split("\n", 1)[0].rstrip("\r")
    if not first.strip():
        raise InputError("no header line (the first line is empty)", path)
    sep = _choose_separator(first, separator, path)
    if first.count('"') % 2:
        raise InputError(f"malformed CSV: line 1 (the header): {_UNBALANCED}", path)
    try:
        fields = next(csv.reader([first], delimiter=sep))
    except csv.Error as exc:
        raise InputError(f"line 1 (the header) cannot be read as CSV: {_csv_error(exc)}", path) from None
    names = _normalize_names(fields, path, snds_columns(table))
    try:
        lf = pl.scan_csv(
            source,
            separator=sep,
            infer_schema=False,
            row_index_name=ROW,
            row_index_offset=1,
            new_columns=names,
            truncate_ragged_lines=False,
            encoding="utf8",
        )
        lf.collect_schema()
    except InputError:
        raise
    except pl.exceptions.PolarsError as exc:
        raise read_failure(path, "csv", table, exc, separator=sep) from None
    return lf


def _check_utf8(head: bytes, path: Path, complete: bool) -> None:
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        decoder.decode(head, final=complete)
    except UnicodeDecodeError as exc:
        line = head[: exc.start].count(b"\n") + 1
        raise InputError(
            f"not UTF-8 text (byte 0x{head[exc.start]:02X} at offset {exc.start} is invalid), line {line}. "
            "If the file is in Latin-1 or Windows-1252, set encoding = \"cp1252\" under [input] "
            "in the configuration (or --encoding cp1252)",
            path,
        ) from None


def _transcode(path: Path, encoding: str, workspace: Workspace) -> Path:
    target = workspace.path() / f"{path.stem}.utf8{path.suffix}"
    try:
        with path.open("r", encoding=encoding, newline="") as src, target.open(
            "w", encoding="utf-8", newline=""
        ) as dst:
            shutil.copyfileobj(src, dst, length=_SNIFF_BYTES)
    except UnicodeDecodeError as exc:
        raise InputError(
            f"not {encoding} text: byte 0x{exc.object[exc.start]:02X} has no character in {encoding}; "
            "check the encoding under [input]",
            path,
        ) from None
    except OSError as exc:
        if is_disk_full(exc):
            raise DiskFullError(
                f"the private workspace (input.workspace_dir), copying {path.name} to UTF-8",
                "the input files and previous outputs are intact",
            ) from None
        raise
    return target


def _choose_separator(header: str, separator: str, path: Path) -> str:
    counts = {s: header.count(s) for s in _SEPARATORS}
    best = max(counts, key=lambda s: counts[s])
    if separator == "auto":
        if counts[best] == 0:
            start = header.split(maxsplit=1)[0][:32] if header.split() else ""
            shown = f" (it starts with {start!r})" if start.upper() in snds_columns_any() else ""
            raise InputError(
                "cannot find the field separator: the header line has a single column"
                f"{shown}; expected ';' or ','",
                path,
            )
        return best
    if counts.get(separator, header.count(separator)) == 0:
        hint = f"; it looks {best!r}-separated" if counts[best] else ""
        raise InputError(
            f"the header line has no {separator!r} separator{hint}. Set separator = \"auto\" or "
            "the right separator under [input]",
            path,
        )
    return separator


def snds_columns_any() -> frozenset[str]:
    """The SNDS column names of every PMSI MCO table."""
    return frozenset().union(*(snds_columns(t) for t in TABLES))


_UNBALANCED = 'a quote (") opens a quoted field that does not close on this line (an unbalanced quote?)'
_CSV_ERROR_DEFAULT = "a quote or a separator out of place"
_CSV_ERRORS = {  # the csv module's messages (they quote nothing of the line) → what to say
    "field larger than field limit": "a field longer than {limit:,} characters (a quote \" that never closes?)",
    "line contains nul": "a NUL byte (\\x00) in the line",
    "new-line character seen in unquoted field": "a carriage return (\\r) inside a field",
}


def _csv_error(exc: csv.Error) -> str:
    """What a ``csv`` module error says, in respop's words (it never quotes the line)."""
    text = str(exc).lower()
    for start, said in _CSV_ERRORS.items():
        if text.startswith(start):
            return said.format(limit=csv.field_size_limit())
    return _CSV_ERROR_DEFAULT


def _count_fields(line: bytes, sep: bytes) -> int:
    """Fields of one line as polars' CSV reader splits it: a quote anywhere in a field opens or
    closes a quoted part, and a separator inside one does not split."""
    if b'"' not in line:
        return line.count(sep) + 1
    fields, quoted = 1, False
    for i in range(len(line)):
        byte = line[i : i + 1]
        if byte == b'"':
            quoted = not quoted
        elif byte == sep and not quoted:
            fields += 1
    return fields


def locate_csv_problem(path: Path, max_lines: int | None = None, separator: str | None = None) -> str | None:
    """Find the first line of a CSV file the reader cannot read: a quote ``"`` that opens a quoted
    part not closed on its line (an unbalanced quote: the reader would run on to the next quote,
    lines or the whole file later), or a line with more fields than the header. Returns
    ``"line N …"`` (1-based, the header is line 1), or None.

    Quotes are taken as polars takes them (a quote anywhere in a field opens or closes a quoted
    part), so that the line found is the one that made polars fail. Used to explain a read
    failure (polars says neither the line nor, safely, why: its message may quote rows); streams
    the file once, line by line, and never quotes it.
    """
    with path.open("rb") as fh:
        first = fh.readline()
        sep_text = separator
        if sep_text is None:
            try:
                sep_text = _choose_separator(first.decode("utf-8", "replace").lstrip("\ufeff"), "auto", path)
            except InputError:
                return None
        sep = sep_text.encode("utf-8")
        fh.seek(0)
        header = None
        for number, raw in enumerate(fh, start=1):
            if max_lines is not None and number > max_lines:
                break
            line = raw[:-1] if raw.endswith(b"\n") else raw
            line = line[:-1] if line.endswith(b"\r") else line
            if line.count(b'"') % 2:
                return f"line {number}: {_UNBALANCED}"
            fields = _count_fields(line, sep)
            if header is None:
                header = fields
            elif line and fields > header:
                return f"line {number} has {fields} fields where the header has {header}"
    return None


def first_invalid_utf8(path: Path) -> tuple[int, int] | None:
    """(line, byte offset) of the first byte of ``path`` that is not UTF-8, or None. Streams."""
    offset, line, carry = 0, 1, b""
    with path.open("rb") as fh:
        while True:
            chunk = fh.read(_SNIFF_BYTES)
            data = carry + chunk
            try:
                data.decode("utf-8")
                good, carry = len(data), b""
            except UnicodeDecodeError as exc:
                if chunk and exc.reason == "unexpected end of data":  # a character cut by the chunk
                    good, carry = exc.start, data[exc.start :]
                else:
                    return line + data[: exc.start].count(b"\n"), offset + exc.start
            line += data[:good].count(b"\n")
            offset += good
            if not chunk:
                return None


_KINDS = (  # (text in a polars message, what respop says): the first that matches
    ("utf-8", "the file is not UTF-8 text throughout"),
    ("utf8", "the file is not UTF-8 text throughout"),
    ("new_columns", "the header line and the lines below it do not have the same number of fields"),
    ("csv malformed", "malformed CSV (a quote or a separator out of place)"),
    ("more fields", "a line has more fields than the header"),
    ("could not parse", "a value could not be read"),
    ("conversion from", "a value could not be converted to its type"),
    ("out of range", "a value is out of range for its type"),
)


def read_failure(
    path: Path, fmt: Format, table: str, exc: BaseException, separator: str | None = None
) -> InputError:
    """An :class:`InputError` for a failure reading ``path``: the kind of problem, the line when
    it can be found (CSV), the SNDS columns the reader named. The reader's own message is never
    passed on: polars quotes the values it could not parse (patient keys, dates).
    """
    message = str(exc)
    lowered = message.lower()
    if isinstance(exc, OSError):
        return InputError(f"could not be read ({exc.strerror or type(exc).__name__})", path)
    if fmt == "csv" and path.is_file():
        if "utf-8" in lowered or "utf8" in lowered:
            bad = first_invalid_utf8(path)
            if bad is not None:
                return InputError(
                    f"not UTF-8 text: line {bad[0]} (byte offset {bad[1]}) has an invalid byte. If the file "
                    'is in Latin-1 or Windows-1252, set encoding = "cp1252" in the input section',
                    path,
                )
        try:
            located = locate_csv_problem(path, separator=separator)
        except OSError:
            located = None
        if located:
            return InputError(f"malformed CSV: {located}", path)
    columns = _columns_named(message, table)
    return InputError(describe_failure(exc, table), path, column=columns[0] if columns else None)


def _columns_named(message: str, table: str | None) -> list[str]:
    """The SNDS columns of ``table`` a reader's message names (names only are taken from it)."""
    if table is None:
        return []
    return sorted(c for c in snds_columns(table) if re.search(rf"(?<![A-Z0-9_]){c}(?![A-Z0-9_])", message, re.I))


def describe_failure(exc: BaseException, table: str | None = None) -> str:
    """What kind of problem a reader's exception reports, and the SNDS columns of ``table`` it
    names; nothing else of its message (polars quotes the values it could not parse)."""
    lowered = str(exc).lower()
    kind = next((said for text, said in _KINDS if text in lowered), None)
    if kind is None:
        kind = {
            "SchemaError": "a column has an unexpected type",
            "ColumnNotFoundError": "a column is missing",
            "InvalidOperationError": "a value could not be converted",
            "ShapeError": "the columns do not have the same length",
            "ComputeError": "the data could not be parsed",
        }.get(type(exc).__name__, f"the data could not be read ({type(exc).__name__})")
    columns = _columns_named(str(exc), table)
    where = f" (column {', '.join(columns)})" if columns else ""
    return f"{kind}{where}; the reader's message is not shown (it may quote patient data)"


def scan_parquet(path: Path, known: frozenset[str]) -> pl.LazyFrame:
    """A Parquet file, or a folder of ``*.parquet`` parts, opened lazily with a 1-based ``_row``
    and its column names normalised (:func:`_normalize_names`; ``known``: the table's columns)."""
    if path.is_file() and path.stat().st_size == 0:
        raise InputError("empty file (0 bytes, not a Parquet file)", path)
    source: Path | str = path
    if path.is_dir():
        parts = sorted(path.glob("*.parquet"))
        if not parts:
            raise InputError("folder holds no .parquet parts", path)
        for part in parts:
            _parquet_schema(part)
        source = str(path / "*.parquet")
    else:
        _parquet_schema(path)
    lf = pl.scan_parquet(source, row_index_name=ROW, row_index_offset=1)
    names = lf.collect_schema().names()
    normalized = _normalize_names([n for n in names if n != ROW], path, known)
    return lf.rename(dict(zip([n for n in names if n != ROW], normalized, strict=True)))


def _parquet_schema(path: Path) -> pl.Schema:
    try:
        return pl.read_parquet_schema(path)
    except Exception as exc:  # noqa: BLE001 - pyarrow, polars and OS errors all mean the same here
        raise InputError(
            f"not a readable Parquet file (truncated or corrupt?): {type(exc).__name__} "
            "(the reader's message is not shown)",
            path,
        ) from None
