"""Reading the ATIH's own MCO files (RSA and ANO "out" files) into the SNDS-shaped raw tables.

A DIM receives, each month, ``<FINESS>.<YYYY>.<M>.rsa`` and ``<FINESS>.<YYYY>.<M>.ano`` (optionally
followed by ``.txt``, any case): M1…M12 are cumulative since January, so for one hospital and year
the latest month wins and the earlier files are listed in the report as superseded. A national
user holds many hospitals and years in one folder.

Every line carries its format number (``NOVRSA`` of an RSA, ``NOFORMAT`` of an ANO line), which
selects its layout in :mod:`respop.pmsi.layouts` (positions come from there only: no position
literal here). An ANO line's format field is not at the same place every year: the layouts whose
length is the line's are the candidates, and the number at their format field must select one of
them. An RSA is a fixed part followed by variable zones (authorisations, radiotherapy, medical
units, associated diagnoses, procedures) whose counts are in the fixed part: zone ``i`` of a kind
starts at ``fixed_length + Σ(previous kinds' count × length) + i × length``.

The parse is vectorised and done once per exit year, the year's files in batches, into Parquet
parts of the private workspace: the four SNDS-shaped raw tables (string columns with SNDS names,
the 1-based ``_row`` the validation expects, and ``_file`` / ``_line``: where each row comes from)
that :func:`respop.pmsi.reader.read_pmsi` then validates, filters and reports exactly as SNDS
tables. A file whose bytes are all ASCII and whose lines all fit one layout (files as the ATIH's
tools write them) goes the byte path: fields gathered at byte offsets, zones gathered per (line,
rank) at offsets from the counts; any other file goes through the polars plans (string slicing of
each line with every layout, lengths in characters, zones exploded with integer ranges), which
read each line with its own layout or quarantine it. No Python per line either way. Lines that
cannot be sliced (wrong length, unknown format number, zone counts that do not fit the line) are
quarantined here with their file and line; everything else (a stay without its ANO line, an ANO
line without its stay, return codes not all 0) is counted by the same checks and filters as the
SNDS tables.

Messages name the file and the line, never quote a line's content (it holds patient keys and
dates); the one exception is a format number made of digits, shown so that a DIM can add it to
``respop/data/atih/format_numbers.csv``.
"""

from __future__ import annotations

import re
import shutil
import threading
from collections import deque
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa

from respop.errors import InputError
from respop.pmsi import layouts
from respop.pmsi.files import ROW
from respop.pmsi.report import AtihFileCount

FILE = "_file"
"""Name of the ATIH file a row of the SNDS-shaped tables (or a quarantined line) comes from."""
LINE = "_line"
"""1-based line number in that file."""
TEXT = "_text"
"""The line as read (kept in the quarantine only)."""
REASON = "_reason"
"""Why an ATIH line was quarantined before becoming a row of the SNDS-shaped tables."""
STATUS = "_status"
YEAR = "_layout_year"

_NAME = re.compile(
    r"^(?P<finess>[0-9A-Za-z]{9})\.(?P<year>\d{4})\.(?P<month>\d{1,2})\.(?P<kind>rsa|ano)(?:\.txt)?$", re.I
)

OK, BAD_LENGTH, UNKNOWN_FORMAT, BAD_COUNTS = 0, 1, 2, 3
REASONS = {
    BAD_LENGTH: "line length does not match its layout",
    UNKNOWN_FORMAT: "unknown format number",
    BAD_COUNTS: "the zone counts do not fit the line",
}
"""The ATIH-level quarantine reasons (an unknown format number is followed by the number found)."""

CORRESPONDENCE_B = {
    "ETA_NUM": "NOFINESS",
    "RSA_NUM": "CLE_RSA",
    "AGE_ANN": "AGEAN",
    "COD_SEX": "SEXE",
    "BDI_COD": "CDGEO",
    "DGN_PAL": "DP",
    "DGN_REL": "DR",
    "ENT_MOD": "ECHPMSI",
    "ENT_PRV": "PROV",
    "SOR_MOD": "SCHPMSI",
    "SEJ_NBJ": "DUREE",
    "SEJ_TYP": "TYPESEJ",
}
"""SNDS column of T_MCOaaB ← field of the RSA's fixed part (GRG_GHM and BDI_DEP are derived)."""
GHM_PARTS = ("RSACMD", "RSATYPE", "RSANUM", "RSACOMPX")
"""GRG_GHM is these four fields of the RSA, concatenated (e.g. 05 M 09 T)."""
CORRESPONDENCE_C = {
    "ETA_NUM": "NOFINESS",
    "RSA_NUM": "CLE_RSA",
    "NIR_ANO_17": "NOANON",
    "EXE_SOI_DTD": "DTENT",
    "EXE_SOI_DTF": "DTSORT",
    "NIR_RET": "CRSECU",
    "NAI_RET": "CRDNAI",
    "SEX_RET": "CRSEXE",
    "SEJ_RET": "CRNODA",
    "FHO_RET": "CRFUSHOSP",
    "PMS_RET": "CRFUSPMSI",
    "DAT_RET": "CRDTENT",
}
"""SNDS column of T_MCOaaC ← field of the ANO line (dates ``ddmmyyyy``)."""
CORRESPONDENCE_UM = {"DGN_PAL": "DPUM", "DGN_REL": "DRUM", "UM_ORD_NUM": "NSEQRUM"}
"""SNDS column of T_MCOaaUM ← field of one medical-unit zone (table ``rsa_um``)."""
DAS_COLUMN = "ASS_DGN"
"""T_MCOaaD's column: one associated-diagnosis zone (6 characters, trimmed)."""

# --- files -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class AtihFile:
    """One ATIH file: hospital (FINESS of the name), exit year, month (1–12, cumulative), kind."""

    finess: str
    year: int
    month: int
    kind: str  # "rsa" or "ano"
    path: Path

    @property
    def name(self) -> str:
        return self.path.name


@dataclass(frozen=True)
class AtihSelection:
    """The files read per exit year (one RSA and one ANO per hospital: the latest month) and the
    earlier months they supersede."""

    years: dict[int, list[tuple[AtihFile, AtihFile]]]
    superseded: list[AtihFile]


def atih_files(folder: Path) -> list[AtihFile]:
    """The RSA and ANO files of ``folder`` (not its sub-folders), by name."""
    if not folder.is_dir():
        return []
    out = []
    for entry in sorted(folder.iterdir()):
        m = _NAME.match(entry.name)
        if not m or not entry.is_file():
            continue
        month = int(m["month"])
        if not 1 <= month <= 12:
            continue
        out.append(AtihFile(m["finess"].upper(), int(m["year"]), month, m["kind"].lower(), entry))
    return out


def select_files(folder: str | Path, years: list[int] | None = None) -> AtihSelection:
    """The files to read: per (FINESS, year) the latest month's RSA and ANO (M1…M12 are cumulative).

    Raises :class:`InputError` when the folder has no ATIH file, an asked year has none, a month
    is present twice (``.rsa`` and ``.rsa.txt``), or the latest month lacks its RSA or its ANO.
    """
    folder = Path(folder)
    found = atih_files(folder)
    if not found:
        raise InputError(
            "no ATIH MCO files found: expected files named like 750712184.2023.12.rsa and "
            "750712184.2023.12.ano",
            folder,
        )
    present = sorted({f.year for f in found})
    if years is not None:
        absent = [y for y in years if y not in present]
        if absent:
            raise InputError(
                f"no ATIH files for year(s) {absent} (years present: {', '.join(map(str, present))})", folder
            )
        found = [f for f in found if f.year in years]
    by_key: dict[tuple[str, int], dict[int, dict[str, AtihFile]]] = {}
    for f in found:
        months = by_key.setdefault((f.finess, f.year), {})
        kinds = months.setdefault(f.month, {})
        if f.kind in kinds:
            raise InputError(
                f"the {f.kind.upper()} file of {f.finess}, {f.year}, month {f.month} is present twice "
                f"({kinds[f.kind].name}, {f.name}); keep one",
                folder,
            )
        kinds[f.kind] = f
    chosen: dict[int, list[tuple[AtihFile, AtihFile]]] = {}
    superseded: list[AtihFile] = []
    for (finess, year), months in sorted(by_key.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        latest = max(months)
        kinds = months[latest]
        for kind in ("rsa", "ano"):
            if kind not in kinds:
                other = "rsa" if kind == "ano" else "ano"
                raise InputError(
                    f"{kinds[other].name} has no {kind.upper()} file of the same month: expected "
                    f"{finess}.{year}.{latest}.{kind} (months M1…M12 are cumulative: the latest month of a "
                    "hospital and year is read, its RSA and ANO together)",
                    folder,
                )
        chosen.setdefault(year, []).append((kinds["rsa"], kinds["ano"]))
        for month in sorted(months):
            if month != latest:
                superseded.extend(months[month][k] for k in sorted(months[month]))
    return AtihSelection(dict(sorted(chosen.items())), superseded)


# --- layouts as expressions --------------------------------------------------------------------


Years = tuple[int, ...] | None
"""The layout years a plan considers, as :func:`respop.pmsi.layouts.layout_year` gives them (None:
every year shipped). A plan for the years a file's first line shows slices at literal positions;
lines of other layouts then come out quarantined, and the year is parsed again with every layout
(:func:`parse_year`)."""


def _years(years: Years) -> tuple[int, ...]:
    return tuple(years) if years else layouts.years()


def _by_position(table: str, name: str, years: Years = None) -> dict[tuple[int, int], list[int]]:
    """(start, length) of field ``name`` of ``table`` → the layout years that have it there."""
    out: dict[tuple[int, int], list[int]] = {}
    for year in _years(years):
        lay = layouts.layout(table, year)
        if lay.has(name):
            f = lay.field(name)
            out.setdefault((f.start, f.length), []).append(year)
    if not out:
        raise KeyError(f"no field {name} in any {table} layout")
    return out


def _per_year(values: dict[int, int], year: pl.Expr) -> pl.Expr:
    """An integer that depends on the layout year: a literal when every year has the same."""
    distinct = set(values.values())
    if len(distinct) == 1:
        return pl.lit(distinct.pop(), pl.Int64)
    return year.replace_strict(values, default=None, return_dtype=pl.Int64)


def field_expr(
    table: str, name: str, year: pl.Expr, text: pl.Expr | None = None, base: pl.Expr | None = None, years: Years = None
) -> pl.Expr:
    """Field ``name`` of ``table`` sliced from ``text`` (the line) for each line's layout year;
    ``base``: the offset of the record inside the line (a variable zone), else 0."""
    text = pl.col(TEXT) if text is None else text
    groups = _by_position(table, name, years)

    def cut(start: int, length: int) -> pl.Expr:
        return text.str.slice(start if base is None else base + start, length)

    items = list(groups.items())
    if len(items) == 1:
        (start, length), _ = items[0]
        return cut(start, length)
    expr = pl.when(year.is_in(items[0][1])).then(cut(*items[0][0]))
    for (start, length), years in items[1:]:
        expr = expr.when(year.is_in(years)).then(cut(start, length))
    return expr


def _layout_year(table: str, text: pl.Expr, length: pl.Expr, years: Years = None) -> tuple[pl.Expr, pl.Expr]:
    """(layout year, status) of each line: the year its format number selects, among the layouts
    whose format field is where the number was read (and, for ANO lines, whose length is the
    line's); the status says why there is none."""
    format_field = layouts.FORMAT_FIELD[table]
    numbers = layouts.format_numbers(table)
    candidates = []
    for (start, width), group in _by_position(table, format_field, years).items():
        mapping = {n: y for n, y in numbers.items() if y in group}
        number = text.str.slice(start, width)
        if len(mapping) == 1:  # the plan of one layout: a comparison (replace_strict costs twice as much)
            (only, only_year), = mapping.items()
            y = pl.when(number == only).then(pl.lit(only_year, pl.Int16))
        else:
            y = number.replace_strict(mapping, default=None, return_dtype=pl.Int16)
        if table == "rsa_ano":
            fixed = {yr: layouts.layout(table, yr).fixed_length for yr in group}
            y = pl.when(length == _per_year(fixed, y)).then(y)
        candidates.append(y)
    year = pl.coalesce(candidates) if len(candidates) > 1 else candidates[0]
    if table == "rsa_ano":
        lengths = sorted({layouts.layout(table, yr).fixed_length for yr in layouts.years()})
        why = pl.when(length.is_in(lengths)).then(pl.lit(UNKNOWN_FORMAT, pl.Int8)).otherwise(pl.lit(BAD_LENGTH, pl.Int8))
    else:  # a line shorter than every fixed part cannot even hold its format number
        shortest = min(layouts.layout(table, yr).fixed_length for yr in layouts.years())
        why = pl.when(length < shortest).then(pl.lit(BAD_LENGTH, pl.Int8)).otherwise(pl.lit(UNKNOWN_FORMAT, pl.Int8))
    status = pl.when(year.is_null()).then(why).otherwise(pl.lit(OK, pl.Int8))
    return year, status


def _format_number_text(table: str, text: pl.Expr, length: pl.Expr) -> pl.Expr:
    """The format number of an ANO or RSA line whose number is unknown, as the reason shows it:
    only when it is 3 digits (a number says nothing of a patient), read at the format field of the
    layouts of the line's length (ANO) or at the format field (RSA)."""
    groups = _by_position(table, layouts.FORMAT_FIELD[table])
    parts = []
    for (start, width), years in groups.items():
        raw = text.str.slice(start, width)
        if table == "rsa_ano":
            fixed = sorted({layouts.layout(table, y).fixed_length for y in years})
            raw = pl.when(length.is_in(fixed)).then(raw)
        parts.append(raw)
    number = pl.coalesce(parts) if len(parts) > 1 else parts[0]
    return pl.when(number.str.contains(r"^[0-9]+$")).then(number)


def zone_plan(year: pl.Expr, years: Years = None) -> list[tuple[layouts.Zone, pl.Expr, pl.Expr]]:
    """For each RSA zone kind in order: (zone, count, length of one zone) as expressions of the
    line (``year``: its layout year; the count read from the fixed part as an integer, null when
    it is not a number)."""
    zones = {y: layouts.rsa_zones(y) for y in _years(years)}
    first = next(iter(zones.values()))
    order = [z.name for z in first]
    for y, zs in zones.items():
        if [z.name for z in zs] != order:
            raise ValueError(f"the RSA zones of {y} are not in the order of the other years")
    out = []
    for i, name in enumerate(order):
        count_fields = {zs[i].count_field for zs in zones.values()}
        if len(count_fields) != 1:
            raise ValueError(f"the count of the RSA zones {name} changes field from year to year")
        digits = field_expr("rsa", count_fields.pop(), year, years=years).str.strip_chars(" ")
        # a field with nothing in it is spaces: no zone of that kind
        count = pl.when(digits == "").then(pl.lit(0, pl.Int64)).otherwise(digits.cast(pl.Int64, strict=False))
        length = _per_year({y: zs[i].length for y, zs in zones.items()}, year)
        out.append((first[i], count, length))
    return out


# --- parsing ---------------------------------------------------------------------------------


def _scan(paths: list[Path], **options) -> pl.LazyFrame:
    """The files as one text column ``_text``, in order (one scan for all: a plan of one union of
    scans per file took 10 times as long on 1,500 hospitals' files)."""
    return pl.scan_csv(
        paths,
        has_header=False,
        separator="\x00",
        quote_char=None,
        schema={TEXT: pl.String},
        truncate_ragged_lines=True,
        encoding="utf8-lossy",
        **options,
    )


def scan_lines(files: Iterable[Path]) -> pl.LazyFrame:
    """The lines of ``files`` (in order), one row each: ``_file`` (name), ``_line`` (1-based), ``_text``.

    Read as a one-column CSV whose separator (NUL) and quote never occur in these files; a NUL
    byte would cut the line there, which then has the wrong length. Bytes that are not UTF-8
    (Latin-1 accents) become one replacement character each, keeping the positions. Several files
    are one scan: its row index runs over all of them, so each file's lines are counted first
    (one read that parses nothing) to number its lines from 1.
    """
    paths = list(files)
    if len(paths) == 1:
        return _scan(paths, row_index_name=LINE, row_index_offset=1).select(
            pl.lit(paths[0].name).alias(FILE), pl.col(LINE), pl.col(TEXT).fill_null("")
        )
    source = "_path"
    counts = dict(
        _scan(paths, include_file_paths=source).group_by(source).agg(pl.len()).collect(engine="streaming").iter_rows()
    )
    by_name = {Path(key).name: key for key in counts}  # the files of one folder: names are unique
    names, first = {}, {}
    start = 0
    for path in paths:
        key = by_name.get(path.name)
        if key is None:
            continue  # an empty file: no line
        names[key], first[key] = path.name, start
        start += counts[key]
    index = "_index"
    path_col = pl.col(source)
    return _scan(paths, include_file_paths=source, row_index_name=index).select(
        # an Enum of the names: carried and written as small integers
        path_col.replace_strict(names, return_dtype=pl.Enum(sorted(set(names.values())))).alias(FILE),
        (pl.col(index).cast(pl.Int64) - path_col.replace_strict(first, return_dtype=pl.Int64) + 1).cast(pl.UInt32).alias(LINE),
        pl.col(TEXT).fill_null(""),
    )


def _line_length(text: pl.Expr, years: Years) -> pl.Expr:
    """A line's length in characters, the unit of the layouts' positions. The plan of one file's
    layouts counts bytes (ten times cheaper): the same for an ASCII line, and a line with any
    other character then has more bytes than characters, does not fit and sends the year to the
    plan of every layout, which counts characters."""
    return (text.str.len_bytes() if years else text.str.len_chars()).cast(pl.Int64)


def parse_rsa(lines: pl.LazyFrame, years: Years = None) -> pl.LazyFrame:
    """Every RSA line with its layout year, status, zone counts and starts, and the T_MCOaaB
    columns (strings): a lazy plan, one row per line (``years``: the layouts considered)."""
    text = pl.col(TEXT)
    length = pl.col("_length")
    year_expr, status = _layout_year("rsa", text, length, years)
    year = pl.col(YEAR)
    plan = zone_plan(year, years)
    steps = lines.with_columns(_line_length(text, years).alias("_length"))
    steps = steps.with_columns(year_expr.alias(YEAR), status.alias(STATUS))
    steps = steps.with_columns(count.alias(f"_n_{zone.name}") for zone, count, _ in plan)
    starts = []
    fixed = _per_year({y: layouts.layout("rsa", y).fixed_length for y in _years(years)}, year)
    start = fixed
    for zone, _count, zlength in plan:
        starts.append(start.alias(f"_start_{zone.name}"))
        start = start + pl.col(f"_n_{zone.name}") * zlength
    end = start
    steps = steps.with_columns(starts)
    counts_ok = pl.all_horizontal([pl.col(f"_n_{z.name}") >= 0 for z, *_ in plan]).fill_null(False)
    status_expr = (
        pl.when(pl.col(STATUS) != OK)
        .then(pl.col(STATUS))
        .when(length < fixed)
        .then(pl.lit(BAD_LENGTH, pl.Int8))
        .when(~counts_ok | (end != length))
        .then(pl.lit(BAD_COUNTS, pl.Int8))
        .otherwise(pl.lit(OK, pl.Int8))
    )
    steps = steps.with_columns(status_expr.alias(STATUS))
    b_columns = [field_expr("rsa", atih, year, years=years).alias(snds) for snds, atih in CORRESPONDENCE_B.items()]
    ghm = _joined("rsa", GHM_PARTS, year, years)
    return steps.with_columns(
        *b_columns,
        ghm.alias("GRG_GHM"),
    ).with_columns(
        pl.col("DGN_REL").str.strip_chars(" "),
        departement(pl.col("BDI_COD")).alias("BDI_DEP"),
    )


def _joined(table: str, names: tuple[str, ...], year: pl.Expr, years: Years) -> pl.Expr:
    """Fields ``names`` concatenated: one slice when they follow each other in every layout."""
    contiguous = True
    for y in _years(years):
        fields = [layouts.layout(table, y).field(n) for n in names]
        contiguous &= all(a.end == b.start for a, b in zip(fields, fields[1:]))
    if not contiguous:
        return pl.concat_str([field_expr(table, n, year, years=years) for n in names])
    groups: dict[tuple[int, int], list[int]] = {}
    for y in _years(years):
        fields = [layouts.layout(table, y).field(n) for n in names]
        groups.setdefault((fields[0].start, fields[-1].end - fields[0].start), []).append(y)
    items = list(groups.items())
    text = pl.col(TEXT)
    if len(items) == 1:
        return text.str.slice(*items[0][0])
    expr = pl.when(year.is_in(items[0][1])).then(text.str.slice(*items[0][0]))
    for position, ys in items[1:]:
        expr = expr.when(year.is_in(ys)).then(text.str.slice(*position))
    return expr


def departement(geo: pl.Expr) -> pl.Expr:
    """BDI_DEP from the PMSI geographic code: its first two characters, as the SNDS column is (its
    schema limits it to 2 characters: overseas codes 97x give 97) and as the generator writes it;
    empty when the code is empty."""
    return geo.str.strip_chars(" ").str.slice(0, 2)


def explode_zone(parsed: pl.LazyFrame, zone: str, keep: Iterable[str] = (), years: Years = None) -> pl.LazyFrame:
    """One row per zone of kind ``zone`` (``aut``, ``rdth``, ``um``, ``das``, ``acte``) of the
    valid lines of :func:`parse_rsa`: the columns ``keep``, ``_rank`` (0-based rank among the
    line's zones of that kind), ``_zone_start`` (offset in the line) and ``_zone`` (its text)."""
    zlen = _zone_length(zone, pl.col(YEAR), years)
    n, start = pl.col(f"_n_{zone}"), pl.col(f"_start_{zone}")
    return (
        parsed.filter((pl.col(STATUS) == OK) & (n > 0))
        .select(*keep, YEAR, TEXT, start.alias("_zone_start"), pl.int_ranges(0, n, dtype=pl.Int64).alias("_rank"))
        .explode("_rank")
        .with_columns((pl.col("_zone_start") + pl.col("_rank") * zlen).alias("_zone_start"))
        .with_columns(pl.col(TEXT).str.slice(pl.col("_zone_start"), zlen).alias("_zone"))
    )


def _zone_length(zone: str, year: pl.Expr, years: Years = None) -> pl.Expr:
    lengths = {}
    for y in _years(years):
        for z in layouts.rsa_zones(y):
            if z.name == zone:
                lengths[y] = z.length
    if not lengths:
        raise KeyError(f"no RSA zone {zone!r}")
    return _per_year(lengths, year)


def parse_ano(lines: pl.LazyFrame, years: Years = None) -> pl.LazyFrame:
    """Every ANO line with its layout year, status and the T_MCOaaC columns (strings)."""
    text = pl.col(TEXT)
    length = pl.col("_length")
    year_expr, status = _layout_year("rsa_ano", text, length, years)
    year = pl.col(YEAR)
    return (
        lines.with_columns(_line_length(text, years).alias("_length"))
        .with_columns(year_expr.alias(YEAR), status.alias(STATUS))
        .with_columns(
            field_expr("rsa_ano", atih, year, years=years).alias(snds) for snds, atih in CORRESPONDENCE_C.items()
        )
    )


def _reason(table: str) -> pl.Expr:
    number = _format_number_text(table, pl.col(TEXT), pl.col("_length"))
    unknown = pl.concat_str(
        pl.lit(REASONS[UNKNOWN_FORMAT] + " "),
        pl.coalesce(number, pl.lit("(not a number)")),
    )
    return (
        pl.when(pl.col(STATUS) == UNKNOWN_FORMAT)
        .then(unknown)
        .otherwise(pl.col(STATUS).replace_strict(REASONS, default=None, return_dtype=pl.String))
    )


# --- one year --------------------------------------------------------------------------------

B_COLUMNS = (*CORRESPONDENCE_B, "GRG_GHM", "BDI_DEP")
C_COLUMNS = tuple(CORRESPONDENCE_C)
D_COLUMNS = ("ETA_NUM", "RSA_NUM", DAS_COLUMN)
UM_COLUMNS = ("ETA_NUM", "RSA_NUM", *CORRESPONDENCE_UM)


@dataclass
class AtihYear:
    """The parsed files of one exit year: the SNDS-shaped tables (Parquet paths, in the workspace),
    the quarantined lines, and the counts per file."""

    year: int
    rsa: list[AtihFile]
    ano: list[AtihFile]
    tables: dict[str, Path]
    quarantine: tuple[Path, ...]
    """Parquet files of the quarantined RSA and ANO lines (``_file``, ``_line``, ``_reason``, ``_text``)."""
    counts: list[AtihFileCount]


# --- the byte path: lines as fixed-width byte gathers ------------------------------------------

BATCH_BYTES = 48 << 20
"""Bytes of files read and parsed together, then written as one part of each table: the memory of
the parse is bounded by a batch (and the largest file), whatever the number of files of a year,
and the cost of a call is shared by the files of a batch (a national year is 7,680 files)."""
PART_COMPRESSION = "lz4"
"""The workspace tables are written once and read a few times: lz4 writes them faster than the
default zstd (1 million RSA: 4.0 s against 4.8 s for B, D and UM, measured on a loaded machine),
and without column statistics (a quarter of the time of writing B; the tables are read whole)."""

_NL, _CR, _SPACE, _ZERO, _NINE = 10, 13, 32, 48, 57
_PAD = 4096
"""Zero bytes after a batch's files, so that a gather at a short line's offsets stays inside the
buffer (such a line is never read from: it does not fit its layout)."""


def _newlines(buf: np.ndarray) -> np.ndarray:
    """Positions of the line feeds of ``buf``: the bytes compared at once, then only the 8-byte
    words holding one looked at byte by byte (a plain ``flatnonzero`` visits every byte)."""
    is_nl = buf == _NL
    whole = buf.size - buf.size % 8
    words = np.flatnonzero(is_nl[:whole].view(np.uint64))
    rows, cols = np.nonzero(is_nl[:whole].reshape(-1, 8)[words])
    tail = np.flatnonzero(is_nl[whole:]) + whole
    return np.concatenate((words[rows] * 8 + cols, tail))


@dataclass
class _Batch:
    """The bytes of some files of one kind, each ending with a line feed (one is added to a file
    whose last line has none), then :data:`_PAD` zeros; and their lines, split as the polars scan
    of the slow path splits them: at line feeds, one carriage return before a line feed removed,
    an empty line kept."""

    files: list[AtihFile]
    buf: np.ndarray
    starts: np.ndarray
    lengths: np.ndarray
    """Bytes of each line, without its line end."""
    file: np.ndarray
    """Index (in ``files``) of the file of each line."""
    line: np.ndarray
    """1-based line number of each line in its file."""
    ascii: np.ndarray
    """Per file: no byte outside 1–127 (no NUL, nothing that is not ASCII: bytes are characters)."""


def _fixed_lines(buf: np.ndarray, start: int, end: int) -> tuple[np.ndarray, np.ndarray] | None:
    """The lines of the file at ``buf[start:end]`` when they all have the first line's length and
    line end, and only bytes 32–127 (an ANO file): found by a check of the predicted line ends
    and of the range of bytes, without looking for line feeds. None otherwise."""
    head = buf[start : min(end, start + 8192)]
    first = np.flatnonzero(head == _NL)
    if not first.size:
        return None
    stride = int(first[0]) + 1
    eol = 2 if stride > 1 and head[stride - 2] == _CR else 1
    if (end - start) % stride or stride <= eol:
        return None
    lines = buf[start:end].reshape(-1, stride)
    content = lines[:, : stride - eol]
    if not (lines[:, -1] == _NL).all() or (eol == 2 and not (lines[:, -2] == _CR).all()):
        return None
    if int(content.min()) < _SPACE or int(content.max()) >= 128:
        return None
    n = lines.shape[0]
    return start + np.arange(n, dtype=np.int64) * stride, np.full(n, stride - eol, np.int64)


def _split_lines(buf: np.ndarray, start: int, end: int) -> tuple[np.ndarray, np.ndarray]:
    """The lines of the file at ``buf[start:end]`` (ending with a line feed), found by its line feeds."""
    ends = _newlines(buf[start:end]) + start
    starts = np.concatenate((np.array([start], np.int64), ends[:-1] + 1)) if ends.size else ends
    lengths = ends - starts
    lengths -= (lengths > 0) & (buf[np.maximum(ends - 1, 0)] == _CR)
    return starts, lengths


_BUFFERS = threading.local()


def _buffer(size: int) -> np.ndarray:
    """A buffer of ``size`` bytes, the same one for each batch a thread reads (a new one costs a
    page fault per 4 kB written); past the files it holds earlier bytes, which no field is read
    from."""
    buf = getattr(_BUFFERS, "buf", None)
    if buf is None or buf.size < size:
        buf = _BUFFERS.buf = np.zeros(max(size, BATCH_BYTES + _PAD), np.uint8)
    return buf[:size]


def read_batch(files: list[AtihFile]) -> _Batch:
    """Read ``files`` into one buffer and split their lines."""
    sizes = [f.path.stat().st_size for f in files]
    buf = _buffer(sum(sizes) + len(files) + _PAD)
    offsets, pos = [], 0
    view = memoryview(buf)
    for f, size in zip(files, sizes):
        offsets.append(pos)
        with f.path.open("rb") as fh:
            pos += fh.readinto(view[pos : pos + size])
        if pos > offsets[-1] and buf[pos - 1] != _NL:
            buf[pos] = _NL
            pos += 1
    offsets.append(pos)
    ascii = np.ones(len(files), bool)
    starts, lengths = [], []
    for i in range(len(files)):
        a, b = offsets[i], offsets[i + 1]
        lines = _fixed_lines(buf, a, b) if b > a else None
        if lines is None:
            lines = _split_lines(buf, a, b)
            part = buf[a:b]
            ascii[i] = not part.size or (int(part.max()) < 128 and int(part.min()) > 0)
        starts.append(lines[0])
        lengths.append(lines[1])
    counts = np.array([s.size for s in starts], np.int64)
    file = np.repeat(np.arange(len(files)), counts)
    line = (np.arange(file.size) - np.repeat(np.cumsum(counts) - counts, counts) + 1).astype(np.uint32)
    starts = np.concatenate(starts) if starts else np.zeros(0, np.int64)
    lengths = np.concatenate(lengths) if lengths else np.zeros(0, np.int64)
    return _Batch(files, buf, starts, lengths, file, line, ascii)


def _bytes_at(buf: np.ndarray, at: np.ndarray, width: int) -> np.ndarray:
    """The ``width`` bytes at each offset ``at``: an (n, width) array (offsets inside ``buf``).
    One gather of ``width``-byte items, an item starting at every byte of ``buf`` (a view): twice
    as fast as a gather of rows of a sliding window."""
    if at.size == 0 or buf.size < width:
        return np.zeros((at.size, width), np.uint8)
    items = np.lib.stride_tricks.as_strided(
        buf[: buf.size - buf.size % width].view(f"V{width}"), shape=(buf.size - width + 1,), strides=(1,), writeable=False
    )
    return items[at].view(np.uint8).reshape(at.size, width)


def _strings(block: np.ndarray) -> pl.Series:
    """An (n, width) array of ASCII bytes as n strings of ``width`` characters, handed to polars as
    Arrow string views built here (a field of at most 12 bytes is held in its view), else as one
    Arrow buffer."""
    n, width = block.shape
    if n == 0:
        return pl.Series(values=[], dtype=pl.String)
    if width <= 12:
        views = np.zeros(n, dtype=[("length", "<i4"), ("data", "V12")])
        views["length"] = width
        np.ndarray((n,), f"V{width}", views, 4, (16,))[...] = np.ascontiguousarray(block).view(f"V{width}").reshape(-1)
        return pl.Series(pa.Array.from_buffers(pa.string_view(), n, [None, pa.py_buffer(views.view(np.uint8))]))
    offsets = np.arange(0, (n + 1) * width, width, dtype=np.int64)
    data = np.ascontiguousarray(block).reshape(-1)
    return pl.Series(pa.Array.from_buffers(pa.large_string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(data)]))


def line_years(table: str, buf: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The layout year of each line (-1 when none), as :func:`_layout_year` chooses it on an ASCII
    line: the number at each position of the format field selects a year of the layouts that have
    it there (and, for ANO lines, whose length is the line's); the first position that selects one
    wins."""
    numbers = layouts.format_numbers(table)
    out = np.full(starts.size, -1, np.int32)
    for (start, width), group in _by_position(table, layouts.FORMAT_FIELD[table]).items():
        fits = lengths >= start + width
        code = _bytes_at(buf, starts + start, width).astype(np.int64) @ (256 ** np.arange(width - 1, -1, -1, dtype=np.int64))
        found = np.full(starts.size, -1, np.int32)
        for number, year in numbers.items():
            if year in group and len(number) == width and number.isascii():
                found[fits & (code == int.from_bytes(number.encode(), "big"))] = year
        if table == "rsa_ano":
            for year in group:
                found[(found == year) & (lengths != layouts.layout(table, year).fixed_length)] = -1
        out = np.where(out < 0, found, out)
    return out


def _main_year(years: np.ndarray) -> int | None:
    """The layout year of most lines (the byte path reads those; files with another go slow)."""
    known = years[years >= 0]
    if not known.size:
        return None
    values, counts = np.unique(known, return_counts=True)
    return int(values[np.argmax(counts)])


_GAP = 32
"""Fields at most this many bytes apart are gathered together (one gather of the span, then each
field a strided copy: a gather costs per line, a copy per byte)."""


class _Block:
    """The fields ``fields`` of the records at offsets ``starts`` of ``buf``: the spans of nearby
    fields each gathered once, each field then a strided copy from its span."""

    def __init__(self, buf: np.ndarray, starts: np.ndarray, fields: Iterable[layouts.Field]):
        spans: list[list[int]] = []
        for f in sorted(fields, key=lambda f: f.start):
            if spans and f.start - spans[-1][1] <= _GAP:
                spans[-1][1] = max(spans[-1][1], f.end)
            else:
                spans.append([f.start, f.end])
        self.n = starts.size
        self.spans = [(lo, hi, _bytes_at(buf, starts + lo, hi - lo)) for lo, hi in spans]

    def raw(self, field: layouts.Field) -> np.ndarray:
        if not self.n:
            return np.zeros((0, field.length), np.uint8)
        for lo, hi, block in self.spans:
            if lo <= field.start and field.end <= hi:
                width = hi - lo
                items = np.ndarray((self.n,), f"V{field.length}", block, field.start - lo, (width,))
                return items.copy().view(np.uint8).reshape(self.n, field.length)
        raise KeyError(field.name)

    def strings(self, field: layouts.Field) -> pl.Series:
        return _strings(self.raw(field))


def _count(block: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A count field as integers, and whether it reads as one: digits, or spaces (0 zones). A line
    whose count is anything else goes to the slow path, which says what."""
    digits = (block >= _ZERO) & (block <= _NINE)
    number, blank = digits.all(axis=1), (block == _SPACE).all(axis=1)
    weights = 10 ** np.arange(block.shape[1] - 1, -1, -1, dtype=np.int64)
    return np.where(number, (block.astype(np.int64) - _ZERO) @ weights, 0), number | blank


def _zone_offsets(counts: np.ndarray, first: np.ndarray, length: int) -> tuple[np.ndarray, np.ndarray]:
    """(line index, offset in the buffer) of every zone of one kind: zone ``i`` of line ``k`` is at
    ``first[k] + i × length``, in line order then rank (a gather per (line, rank), no explode)."""
    line = np.repeat(np.arange(counts.size), counts)
    before = np.cumsum(counts) - counts
    rank = np.arange(line.size) - before[line]
    return line, first[line] + rank * length


def _where(batch: _Batch, at: np.ndarray, enum: pl.Enum) -> list[pl.Series]:
    """``_file`` (the file's name) and ``_line`` of the lines ``at``, and ``_order`` (the file's
    rank in the batch: a slow file's rows are put back in their place by it)."""
    names = pl.Series(FILE, [f.name for f in batch.files], dtype=enum)
    return [names.gather(batch.file[at]), pl.Series(LINE, batch.line[at]), pl.Series(ORDER, batch.file[at].astype(np.uint32))]


ORDER = "_order"


def _rsa_bytes(batch: _Batch, enum: pl.Enum) -> tuple[dict[str, pl.DataFrame], np.ndarray]:
    """B, D and UM of the RSA files of ``batch`` whose every line is ASCII and fits the batch's main
    layout (wrong length, unknown format, counts that do not fit, another layout: the file goes to
    the slow path, which reads or quarantines each line), and which files those are."""
    years = line_years("rsa", batch.buf, batch.starts, batch.lengths)
    year = _main_year(years)
    if year is None:
        return _empty(("B", "D", "UM"), enum), np.zeros(len(batch.files), bool)
    lay = layouts.layout("rsa", year)
    zones = layouts.rsa_zones(year)
    count_fields = [lay.field(z.count_field) for z in zones]
    block = _Block(batch.buf, batch.starts, count_fields)
    good = (years == year) & (batch.lengths >= lay.fixed_length)
    end = np.full(batch.starts.size, lay.fixed_length, np.int64)
    counts, first = {}, {}
    for zone, field in zip(zones, count_fields):
        n, readable = _count(block.raw(field))
        good &= readable
        counts[zone.name], first[zone.name] = n, batch.starts + end
        end += n * zone.length
    good &= end == batch.lengths
    fast = _fast_files(batch, good)
    at = np.flatnonzero(fast[batch.file])
    b_fields = [lay.field(name) for name in (*CORRESPONDENCE_B.values(), *GHM_PARTS)]
    block = _Block(batch.buf, batch.starts[at], b_fields)
    where = _where(batch, at, enum)
    b = pl.DataFrame([block.strings(lay.field(atih)).alias(snds) for snds, atih in CORRESPONDENCE_B.items()])
    b = b.with_columns(
        pl.col("DGN_REL").str.strip_chars(" "),
        _ghm(block, lay).alias("GRG_GHM"),
        departement(pl.col("BDI_COD")).alias("BDI_DEP"),
        *where,
    ).select(*B_COLUMNS, FILE, LINE, ORDER)
    keys = b.select("ETA_NUM", "RSA_NUM", FILE, LINE, ORDER)
    by_name = {z.name: z for z in zones}

    def zone_rows(name: str) -> tuple[pl.DataFrame, np.ndarray]:
        line, offsets = _zone_offsets(counts[name][at], first[name][at], by_name[name].length)
        return keys[line], offsets

    das, offsets = zone_rows("das")
    d = das.with_columns(
        _strings(_bytes_at(batch.buf, offsets, by_name["das"].length)).str.strip_chars(" ").alias(DAS_COLUMN)
    ).select(*D_COLUMNS, FILE, LINE, ORDER)
    units, offsets = zone_rows("um")
    unit = layouts.layout("rsa_um", year)
    fields = {snds: unit.field(atih) for snds, atih in CORRESPONDENCE_UM.items()}
    zone = _Block(batch.buf, offsets, fields.values())
    um = units.with_columns(
        zone.strings(field).str.strip_chars(" ").alias(snds) for snds, field in fields.items()
    ).select(*UM_COLUMNS, FILE, LINE, ORDER)
    return {"B": b, "D": d, "UM": um}, fast


def _ano_bytes(batch: _Batch, enum: pl.Enum) -> tuple[dict[str, pl.DataFrame], np.ndarray]:
    """C of the ANO files of ``batch`` whose every line is ASCII and of the batch's main layout."""
    years = line_years("rsa_ano", batch.buf, batch.starts, batch.lengths)
    year = _main_year(years)
    if year is None:
        return _empty(("C",), enum), np.zeros(len(batch.files), bool)
    lay = layouts.layout("rsa_ano", year)
    fast = _fast_files(batch, years == year)
    at = np.flatnonzero(fast[batch.file])
    block = _Block(batch.buf, batch.starts[at], [lay.field(atih) for atih in CORRESPONDENCE_C.values()])
    c = pl.DataFrame([block.strings(lay.field(atih)).alias(snds) for snds, atih in CORRESPONDENCE_C.items()])
    return {"C": c.with_columns(_where(batch, at, enum))}, fast


def _ghm(block: _Block, lay: layouts.Layout) -> pl.Expr:
    """GRG_GHM: its parts in one gather when they follow each other (they do in every layout)."""
    parts = [lay.field(part) for part in GHM_PARTS]
    if all(a.end == b.start for a, b in zip(parts, parts[1:])):
        whole = layouts.Field("GRG_GHM", parts[0].start, parts[-1].end - parts[0].start, "c", "")
        return pl.lit(block.strings(whole))
    return pl.concat_str([pl.lit(block.strings(part)) for part in parts])


def _fast_files(batch: _Batch, good: np.ndarray) -> np.ndarray:
    """Per file: every line good, and the file ASCII."""
    bad = np.bincount(batch.file[~good], minlength=len(batch.files)) > 0
    return batch.ascii & ~bad


def _empty(tables: tuple[str, ...], enum: pl.Enum) -> dict[str, pl.DataFrame]:
    return {t: pl.DataFrame(schema=_schemas(enum)[t] | {ORDER: pl.UInt32}) for t in tables}


# --- the slow path: a file with a line the byte path does not read ------------------------------


def _rsa_plans(lines: pl.LazyFrame, years: Years = None) -> dict[str, pl.LazyFrame]:
    """B, D, UM and the quarantined RSA lines of ``lines`` (polars slicing, every layout, lengths
    in characters): each line with its own layout, or quarantined with its reason."""
    ok = pl.col(STATUS) == OK
    rsa = parse_rsa(lines, years)
    b = rsa.filter(ok).select(*B_COLUMNS, FILE, LINE)
    das = explode_zone(rsa, "das", keep=("ETA_NUM", "RSA_NUM", FILE, LINE), years=years).select(
        "ETA_NUM", "RSA_NUM", pl.col("_zone").str.strip_chars(" ").alias(DAS_COLUMN), FILE, LINE
    )
    um_year, um_text, um_base = pl.col(YEAR), pl.col(TEXT), pl.col("_zone_start")
    um = explode_zone(rsa, "um", keep=("ETA_NUM", "RSA_NUM", FILE, LINE), years=years).select(
        "ETA_NUM",
        "RSA_NUM",
        *[
            field_expr("rsa_um", atih, um_year, um_text, um_base, years).str.strip_chars(" ").alias(snds)
            for snds, atih in CORRESPONDENCE_UM.items()
        ],
        FILE,
        LINE,
    )
    bad = rsa.filter(~ok).select(pl.col(FILE).cast(pl.String), LINE, _reason("rsa").alias(REASON), TEXT)
    return {"B": b, "D": das, "UM": um, "rsa": bad}


def _ano_plans(lines: pl.LazyFrame, years: Years = None) -> dict[str, pl.LazyFrame]:
    """C and the quarantined ANO lines of ``lines``."""
    ok = pl.col(STATUS) == OK
    ano = parse_ano(lines, years)
    c = ano.filter(ok).select(*C_COLUMNS, FILE, LINE)
    bad = ano.filter(~ok).select(pl.col(FILE).cast(pl.String), LINE, _reason("rsa_ano").alias(REASON), TEXT)
    return {"C": c, "ano": bad}


def _slow(path: Path, plans) -> dict[str, pl.DataFrame]:
    """One file through the polars plans of every layout (characters, replacement characters for
    bytes that are not UTF-8): its frames, in memory (one file)."""
    frames = plans(scan_lines([path]))
    return dict(zip(frames, pl.collect_all(list(frames.values()))))


# --- one year --------------------------------------------------------------------------------


def _schemas(file_type: pl.DataType) -> dict[str, dict[str, pl.DataType]]:
    """The columns of each table written (``_row`` added when written), ``_file`` of ``file_type``."""
    where = {FILE: file_type, LINE: pl.UInt32}
    quarantine = {FILE: pl.String, LINE: pl.UInt32, REASON: pl.String, TEXT: pl.String}
    return {
        "B": dict.fromkeys(B_COLUMNS, pl.String) | where,
        "C": dict.fromkeys(C_COLUMNS, pl.String) | where,
        "D": dict.fromkeys(D_COLUMNS, pl.String) | where,
        "UM": dict.fromkeys(UM_COLUMNS, pl.String) | where,
        "rsa": quarantine,
        "ano": quarantine,
    }


QUARANTINES = ("rsa", "ano")


class _Parts:
    """The tables of one kind of file (RSA: B, D, UM and the quarantine; ANO: C and the
    quarantine), each a folder of numbered Parquet parts, one part per batch of files; ``_row``
    numbers a table's rows over all its parts (the files of the year, in order)."""

    def __init__(self, folder: Path, tables: tuple[str, ...], enum: pl.Enum):
        self.schemas = {t: s for t, s in _schemas(enum).items() if t in tables}
        self.paths = {t: folder / t for t in tables}
        for path in self.paths.values():
            if path.exists():
                shutil.rmtree(path)
            path.mkdir(parents=True)
        self.rows = dict.fromkeys(tables, 0)
        self.parts = 0

    def write(self, frames: dict[str, list[pl.DataFrame]], reorder: bool) -> None:
        """Write one batch: per table its frames (the byte path's, then the slow files'), put back
        in file and line order when some files went the slow way."""
        for table, schema in self.schemas.items():
            columns = [pl.col(c).cast(d) for c, d in schema.items()]
            parts = [f.select(*columns, pl.col(ORDER).cast(pl.UInt32)) for f in frames.get(table, [])]
            frame = pl.concat(parts) if parts else pl.DataFrame(schema=schema | {ORDER: pl.UInt32})
            if reorder:
                frame = frame.sort(ORDER, LINE, maintain_order=True)
            frame = frame.drop(ORDER)
            if table not in QUARANTINES:
                frame = frame.with_row_index(ROW, offset=self.rows[table] + 1)
            self.rows[table] += frame.height
            frame.write_parquet(
                self.paths[table] / f"part-{self.parts:05d}.parquet", compression=PART_COMPRESSION, statistics=False
            )
        self.parts += 1


def _batches(files: list[AtihFile]) -> Iterable[list[AtihFile]]:
    """Consecutive files of about :data:`BATCH_BYTES` (a larger file alone)."""
    batch, size = [], 0
    for f in files:
        batch.append(f)
        size += f.path.stat().st_size
        if size >= BATCH_BYTES:
            yield batch
            batch, size = [], 0
    if batch or not files:
        yield batch


@dataclass(frozen=True)
class _Kind:
    """How the files of one kind are read: the tables they give, the table of their parsed lines,
    the byte path and the polars plans of the slow path."""

    kind: str
    tables: tuple[str, ...]
    parsed: str
    read: object
    plans: object


_KINDS = (
    _Kind("rsa", ("B", "D", "UM", "rsa"), "B", _rsa_bytes, _rsa_plans),
    _Kind("ano", ("C", "ano"), "C", _ano_bytes, _ano_plans),
)
WORKERS = 2
"""Batches parsed at once (threads: numpy and polars work without the interpreter lock), while
the batch before them is written."""


def _parse_batch(kind: _Kind, group: list[AtihFile], enum: pl.Enum) -> tuple[dict, list[AtihFileCount], bool]:
    """One batch of files of one kind: its frames per table, the counts of its files, and whether
    some file went the slow way (its rows are then put back in order when written)."""
    batch = read_batch(group)
    fast_frames, fast = kind.read(batch, enum)
    lines = np.bincount(batch.file, minlength=len(group))
    del batch
    frames = {t: [f] for t, f in fast_frames.items()}
    counts = []
    for i, f in enumerate(group):
        if fast[i]:
            n = int(lines[i])
            counts.append(AtihFileCount(kind.kind, f.name, str(f.path), f.finess, f.year, f.month, n, n, 0, {}))
            continue
        slow = _slow(f.path, kind.plans)
        for table, frame in slow.items():
            frames.setdefault(table, []).append(frame.with_columns(pl.lit(i, pl.UInt32).alias(ORDER)))
        bad = slow[kind.kind]
        why = dict(bad.group_by(REASON).len().sort("len", REASON, descending=[True, False]).iter_rows())
        ok = slow[kind.parsed].height
        counts.append(
            AtihFileCount(kind.kind, f.name, str(f.path), f.finess, f.year, f.month, ok + bad.height, ok, bad.height, why)
        )
    return frames, counts, not fast.all()


def parse_year(year: int, pairs: list[tuple[AtihFile, AtihFile]], folder: Path) -> AtihYear:
    """Parse the RSA and ANO files of one exit year into ``folder``: the tables ``B``, ``C``, ``D``,
    ``UM`` and the quarantined lines (``rsa``, ``ano``), each a folder of Parquet parts.

    The files are read in batches of about :data:`BATCH_BYTES`, each batch's bytes in one buffer
    and written as one part of each table: memory is bounded by the batches in hand, not by the
    year. The files whose every line is ASCII and fits the layout of most lines of the batch
    (files as the ATIH's tools write them) go the byte path: each field is a gather of
    fixed-width bytes at the lines' offsets (byte offsets are character offsets in ASCII), each
    zone a gather at offsets computed from the counts, per (line, rank); no line becomes a
    string. Any other file is parsed by the polars plans of every layout (lengths in characters,
    a byte that is not UTF-8 one replacement character), which read each line with its own layout
    and quarantine the others with their reason; its rows are put back in file and line order.
    :data:`WORKERS` batches are parsed at once and written in order. Each file's lines are counted
    as they are parsed (a line is a row of B or C, or a quarantined line)."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {"rsa": [r for r, _ in pairs], "ano": [a for _, a in pairs]}
    enums = {k: pl.Enum(sorted({f.name for f in fs})) for k, fs in files.items()}
    parts = {k.kind: _Parts(folder, k.tables, enums[k.kind]) for k in _KINDS}
    counts: list[AtihFileCount] = []
    with ThreadPoolExecutor(WORKERS) as pool:
        pending: deque = deque()

        def write_first() -> None:
            kind, future = pending.popleft()
            frames, batch_counts, reorder = future.result()
            counts.extend(batch_counts)
            parts[kind].write(frames, reorder)

        for kind in _KINDS:
            for group in _batches(files[kind.kind]):
                pending.append((kind.kind, pool.submit(_parse_batch, kind, group, enums[kind.kind])))
                if len(pending) > WORKERS:
                    write_first()
        while pending:
            write_first()
    paths = {t: p for part in parts.values() for t, p in part.paths.items()}
    tables = {t: paths[t] for t in ("B", "C", "D", "UM")}
    return AtihYear(year, files["rsa"], files["ano"], tables, (paths["rsa"], paths["ano"]), counts)


@dataclass
class AtihInput:
    """The ATIH files of a folder as read: per exit year, the parsed tables and quarantined lines."""

    folder: Path
    years: dict[int, AtihYear]
    superseded: list[AtihFile]

    @property
    def counts(self) -> list[AtihFileCount]:
        return [c for y in self.years.values() for c in y.counts]

    def quarantine(self, name: str | None = None) -> pl.LazyFrame:
        """The quarantined lines (of one file ``name``, or all): ``_source`` (the file's name),
        ``_line``, ``_reasons`` (a list, as the other quarantines), ``_text`` (the line as read)."""
        frames = [pl.scan_parquet(path) for y in self.years.values() for path in y.quarantine]
        lf = pl.concat(frames) if frames else pl.LazyFrame(schema=QUARANTINE_SCHEMA)
        if name is not None:
            lf = lf.filter(pl.col(FILE) == name)
        return lf.select(
            pl.col(FILE).alias("_source"), LINE, pl.concat_list(pl.col(REASON)).alias("_reasons"), TEXT
        )


QUARANTINE_SCHEMA = {FILE: pl.String, LINE: pl.UInt32, REASON: pl.String, TEXT: pl.String}


def parse_folder(folder: str | Path, workspace: Path, years: list[int] | None = None) -> AtihInput:
    """Select and parse the ATIH files of ``folder`` (see :func:`select_files`) into ``workspace``."""
    selection = select_files(folder, years)
    parsed = {
        year: parse_year(year, pairs, workspace / "atih" / str(year)) for year, pairs in selection.years.items()
    }
    return AtihInput(Path(folder), parsed, selection.superseded)
