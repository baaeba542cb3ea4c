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

The parse is vectorised (polars string slicing over whole files, zones exploded with integer
ranges and sliced at expression offsets; no Python per line) and done once per exit year, the
year's files in one pass, into Parquet files of the private workspace: the four SNDS-shaped raw
tables (string columns with SNDS names, the 1-based ``_row`` the validation expects, and
``_file`` / ``_line``: where each row comes from) that :func:`respop.pmsi.reader.read_pmsi` then
validates, filters and reports exactly as SNDS tables. Lines that cannot be sliced (wrong length,
unknown format number, zone counts that do not fit the line) are quarantined here with their file
and line; everything else (a stay without its ANO line, an ANO line without its stay, return codes
not all 0) is counted by the same checks and filters as the SNDS tables.

Messages name the file and the line, never quote a line's content (it holds patient keys and
dates); the one exception is a format number made of digits, shown so that a DIM can add it to
``respop/data/atih/format_numbers.csv``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import polars as pl

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


def first_line_year(path: Path, table: str) -> int | None:
    """The layout year of the first line of ``path`` (Python on one line: it chooses the plan)."""
    with path.open("rb") as fh:
        line = fh.readline().rstrip(b"\r\n").decode("utf-8", errors="replace")
    for year in layouts.years():
        lay = layouts.layout(table, year)
        f = lay.field(layouts.FORMAT_FIELD[table])
        if table == "rsa_ano" and len(line) != lay.fixed_length:
            continue
        if len(line) >= f.end and layouts.layout_year(table, line[f.start : f.end]) == year:
            return year
    return None


SINK = {"lazy": True, "compression": "lz4"}
"""The workspace tables are written once and read a few times: lz4 writes them faster than the
default zstd (1 million RSA: 4.0 s against 4.8 s for B, D and UM, measured on a loaded machine)."""


def _rsa_plans(files: list[Path], out: dict[str, Path], years: Years) -> None:
    """Write B, D, UM and the quarantined RSA lines of ``files`` (one streaming pass)."""
    ok = pl.col(STATUS) == OK
    rsa = parse_rsa(scan_lines(files), years)
    b = rsa.filter(ok).select(*B_COLUMNS, FILE, LINE).with_row_index(ROW, offset=1)
    das = explode_zone(rsa, "das", keep=("ETA_NUM", "RSA_NUM", FILE, LINE), years=years).select(
        "ETA_NUM", "RSA_NUM", pl.col("_zone").str.strip_chars(" ").alias(DAS_COLUMN), FILE, LINE
    ).with_row_index(ROW, offset=1)
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
    ).with_row_index(ROW, offset=1)
    bad = rsa.filter(~ok).select(pl.col(FILE).cast(pl.String), LINE, _reason("rsa").alias(REASON), TEXT)
    pl.collect_all(
        [
            b.sink_parquet(out["B"], **SINK),
            das.sink_parquet(out["D"], **SINK),
            um.sink_parquet(out["UM"], **SINK),
            bad.sink_parquet(out["rsa"], **SINK),
        ],
        engine="streaming",
    )


def _ano_plans(files: list[Path], out: dict[str, Path], years: Years) -> None:
    """Write C and the quarantined ANO lines of ``files`` (one streaming pass)."""
    ok = pl.col(STATUS) == OK
    ano = parse_ano(scan_lines(files), years)
    c = ano.filter(ok).select(*C_COLUMNS, FILE, LINE).with_row_index(ROW, offset=1)
    bad = ano.filter(~ok).select(pl.col(FILE).cast(pl.String), LINE, _reason("rsa_ano").alias(REASON), TEXT)
    pl.collect_all([c.sink_parquet(out["C"], **SINK), bad.sink_parquet(out["ano"], **SINK)], engine="streaming")


def parse_year(year: int, pairs: list[tuple[AtihFile, AtihFile]], folder: Path) -> AtihYear:
    """Parse the RSA and ANO files of one exit year into ``folder``: ``B.parquet``, ``C.parquet``,
    ``D.parquet``, ``UM.parquet`` and the quarantined lines.

    The year's RSA files are read in one streaming pass for B, D, UM and their quarantine (a common
    subplan of the sinks, run together), and so are its ANO files (C and quarantine). The plan
    slices at the positions of the layouts the files' first lines show; if a line is quarantined
    under that plan (another layout, or a line that is wrong), the kind is parsed again with every
    layout, so that a line of another shipped layout is read with its own and a reason is exact.
    Each file's lines are counted from what was written: the rows of B (C) it gave, and its
    quarantined lines (a line is one or the other: a filter and its negation of one plan)."""
    folder.mkdir(parents=True, exist_ok=True)
    rsa_files = [r for r, _ in pairs]
    ano_files = [a for _, a in pairs]
    out = {t: folder / f"{t}.parquet" for t in ("B", "C", "D", "UM")}
    out |= {"rsa": folder / "quarantine_rsa.parquet", "ano": folder / "quarantine_ano.parquet"}

    for kind, table, files, plans in (("rsa", "rsa", rsa_files, _rsa_plans), ("ano", "rsa_ano", ano_files, _ano_plans)):
        paths = [f.path for f in files]
        seen = {first_line_year(p, table) for p in paths}
        years = tuple(sorted(y for y in seen if y is not None)) if None not in seen else None
        plans(paths, out, years)
        if years is not None and pl.scan_parquet(out[kind]).select(pl.len()).collect().item():
            plans(paths, out, None)

    counts = []
    for kind, files, parsed_table in (("rsa", rsa_files, "B"), ("ano", ano_files, "C")):
        parsed = dict(pl.scan_parquet(out[parsed_table]).group_by(FILE).agg(pl.len()).collect().iter_rows())
        reasons = pl.scan_parquet(out[kind]).group_by(FILE, REASON).agg(pl.len()).collect()
        for f in files:
            mine = reasons.filter(pl.col(FILE) == f.name).sort("len", REASON, descending=[True, False])
            why = {r: int(n) for _, r, n in mine.iter_rows()}
            ok, bad = int(parsed.get(f.name, 0)), sum(why.values())
            counts.append(AtihFileCount(kind, f.name, str(f.path), f.finess, f.year, f.month, ok + bad, ok, bad, why))
    tables = {t: out[t] for t in ("B", "C", "D", "UM")}
    return AtihYear(year, rsa_files, ano_files, tables, (out["rsa"], out["ano"]), counts)


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
