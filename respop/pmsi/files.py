"""Finding and opening SNDS PMSI MCO files (input layer: raw tables as they come).

A folder holds one file per table and exit year, named as in the SNDS: ``T_MCO22B.parquet``,
``T_MCO22C.csv``… (``aa`` instead of the year is accepted, as in the HDH samples: year unknown).
A Parquet table may also be a folder of Parquet parts (``T_MCO22B/part-0.parquet``…).

Opening a file checks what can be checked cheaply and early (empty file, unreadable Parquet
footer, encoding, separator, missing columns) and returns a lazy frame of the raw rows with a
1-based ``_row`` number. Nothing is loaded in memory here.
"""

from __future__ import annotations

import codecs
import csv
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import polars as pl

from respop.errors import InputError
from respop.pmsi.schema import TABLES, table_schema

ROW = "_row"
"""Name of the 1-based row-number column added to every raw table."""

_NAME = re.compile(r"^T_MCO(?P<yy>\d{2}|AA)(?P<table>UM|B|C|D)(?P<ext>\.csv|\.parquet|\.pq)?$", re.I)
_SEPARATORS = (";", ",", "\t", "|")
_SNIFF_BYTES = 1 << 20

Format = Literal["csv", "parquet"]


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


class Workspace:
    """A private temporary folder: transcoded copies of non-UTF-8 CSV files and the staged
    (validated) tables. It holds patient-level data: put it in the secure area with
    ``input.workspace_dir`` (default: the system's temporary folder).

    It lives as long as the object (lazy frames read from it until they are collected) and is
    removed by :meth:`close` or when the object is garbage-collected.
    """

    def __init__(self, base: Path | None = None) -> None:
        self._base = base
        self._dir: tempfile.TemporaryDirectory | None = None

    def path(self) -> Path:
        if self._dir is None:
            if self._base is not None:
                self._base.mkdir(parents=True, exist_ok=True)
            self._dir = tempfile.TemporaryDirectory(prefix="respop-", dir=self._base)
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
        lf = _scan_csv(tf.path, separator, encoding, workspace)
    else:
        lf = _scan_parquet(tf.path)
    columns = lf.collect_schema().names()
    missing = [c for c in table_schema(tf.table).required_columns if c not in columns]
    if missing:
        raise InputError(
            f"required column(s) missing from {tf.label}: {', '.join(missing)} "
            f"(columns found: {', '.join(c for c in columns if c != ROW) or 'none'})",
            tf.path,
            column=missing[0],
        )
    return lf


def _normalize_names(names: list[str], path: Path) -> list[str]:
    out = [n.strip().lstrip("\ufeff").strip().upper() for n in names]
    seen: set[str] = set()
    for n in out:
        if n in seen:
            raise InputError(f"column {n} appears twice in the header", path, column=n)
        seen.add(n)
    return out


def _scan_csv(path: Path, separator: str, encoding: str, workspace: Workspace | None) -> pl.LazyFrame:
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
    header = head.decode("utf-8", errors="replace").lstrip("\ufeff").splitlines()
    if not header or not header[0].strip():
        raise InputError("no header line (the first line is empty)", path)
    sep = _choose_separator(header[0], separator, path)
    names = _normalize_names(next(csv.reader([header[0]], delimiter=sep)), path)
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
        raise InputError(f"unreadable CSV file: {exc}", path) from None
    return lf


def _check_utf8(head: bytes, path: Path, complete: bool) -> None:
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        decoder.decode(head, final=complete)
    except UnicodeDecodeError as exc:
        raise InputError(
            f"not UTF-8 text (byte 0x{head[exc.start]:02X} at offset {exc.start} is invalid). "
            "If the file is in Latin-1 or Windows-1252, set encoding = \"cp1252\" under [input] "
            "in the configuration (or --encoding cp1252)",
            path,
        ) from None


def _transcode(path: Path, encoding: str, workspace: Workspace) -> Path:
    target = workspace.path() / f"{path.stem}.utf8{path.suffix}"
    with path.open("r", encoding=encoding, newline="") as src, target.open(
        "w", encoding="utf-8", newline=""
    ) as dst:
        shutil.copyfileobj(src, dst, length=_SNIFF_BYTES)
    return target


def _choose_separator(header: str, separator: str, path: Path) -> str:
    counts = {s: header.count(s) for s in _SEPARATORS}
    best = max(counts, key=lambda s: counts[s])
    if separator == "auto":
        if counts[best] == 0:
            raise InputError(
                "cannot find the field separator: the header line has a single column "
                f"({header[:80]!r}); expected ';' or ','",
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


def locate_csv_problem(path: Path, max_lines: int | None = None) -> str | None:
    """Find the first CSV line whose number of fields differs from the header's.

    Used to explain a read failure (the CSV reader only says that a line had too many fields).
    Quote-aware; reads the file in Python, so it is only called after a failure.
    """
    with path.open("r", encoding="utf-8", errors="replace", newline="") as fh:
        first = fh.readline()
        try:
            sep = _choose_separator(first.lstrip("\ufeff"), "auto", path)
        except InputError:
            return None
        fh.seek(0)
        reader = csv.reader(fh, delimiter=sep)
        header = next(reader, None)
        if header is None:
            return None
        for n, fields in enumerate(reader, start=2):
            if max_lines is not None and n > max_lines:
                break
            if fields and len(fields) > len(header):
                return f"line {n} has {len(fields)} fields where the header has {len(header)}"
    return None


def _scan_parquet(path: Path) -> pl.LazyFrame:
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
    normalized = _normalize_names([n for n in names if n != ROW], path)
    return lf.rename(dict(zip([n for n in names if n != ROW], normalized, strict=True)))


def _parquet_schema(path: Path) -> pl.Schema:
    try:
        return pl.read_parquet_schema(path)
    except Exception as exc:  # noqa: BLE001 - pyarrow, polars and OS errors all mean the same here
        raise InputError(
            f"not a readable Parquet file (truncated or corrupt?): {type(exc).__name__}: {exc}",
            path,
        ) from None
