"""Write a world's PMSI as the ATIH's own files: one RSA and one ANO file per hospital and exit year.

From the SNDS-shaped raw tables the generator writes (``T_MCOaaB``, ``C``, ``D``, ``UM``: strings,
SNDS column names), :func:`write_year` writes ``<FINESS>.<YYYY>.12.rsa`` and ``<FINESS>.<YYYY>.12.ano``
(the year's cumulative files as a DIM receives them in December) with every field of the year's
layout, positions taken from :mod:`respop.pmsi.layouts` only. The correspondence is that of the
reader (docs/pmsi.md; the brief of issue 21):

- one RSA line per B row: NOFINESS ← ETA_NUM, CLE_RSA ← RSA_NUM, AGEAN ← AGE_ANN, SEXE ← COD_SEX,
  CDGEO ← BDI_COD, DP ← DGN_PAL, DR ← DGN_REL, ECHPMSI ← ENT_MOD, PROV ← ENT_PRV, SCHPMSI ← SOR_MOD,
  DUREE ← SEJ_NBJ, RSACMD‖RSATYPE‖RSANUM‖RSACOMPX ← GRG_GHM (and the GHM read, GP…, the same),
  TYPESEJ ← SEJ_TYP, MOISSOR ← SOR_MOI, ANSOR ← SOR_ANN; then its variable zones: authorisations,
  radiotherapy, one medical-unit zone per UM row (NSEQRUM ← UM_ORD_NUM, DPUM ← DGN_PAL,
  DRUM ← DGN_REL), one associated-diagnosis zone per D row (all under the first medical unit:
  its NBDIAGAS is NDAS), procedures;
- one ANO line per C row: NOANON ← NIR_ANO_17, DTENT/DTSORT ← EXE_SOI_DTD/EXE_SOI_DTF (ddmmyyyy),
  CRSECU ← NIR_RET, CRDNAI ← NAI_RET, CRSEXE ← SEX_RET, CRNODA ← SEJ_RET, CRFUSHOSP ← FHO_RET,
  CRFUSPMSI ← PMS_RET, CRDTENT ← DAT_RET.

Fields with no SNDS counterpart are written empty: spaces for text, zeros for numbers. A value
with nothing in it (null) is spaces, whatever the field's kind, so that the reader finds it empty
again. The SNDS tables hold no authorisation, radiotherapy or procedure zones: a seeded random
number (0–3) of each is written, with plausible content (CCAM-like codes ``[A-Z]{4}[0-9]{3}``), to
exercise the reader's offsets; they do not enter the canonical model.

SNDS rows that no file could hold faithfully are written as a real file would show them: a B row
without a C row gives an RSA line and no ANO line; a C row without a B row an ANO line without its
RSA; D and UM rows whose stay has no B row have no line to go in (counted, not written); a value
longer than its field is cut to the field (counted). Lines are built with polars (padded strings
concatenated, each stay's zones joined after sorting), with no Python per row.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from respop.errors import RespopError
from respop.pmsi.files import discover, scan_table
from respop.pmsi.layouts import Field, Layout, format_number, layout, rsa_zones
from respop.pmsi.validate import detect_date_format, parse_sas_date

MONTH = 12
"""The files are the year's December files (M12: cumulative since January, the whole year)."""

MAX_RANDOM_ZONES = 3
"""Authorisation, radiotherapy and procedure zones per stay: 0 to this many, drawn at random."""

BATCH_STAYS = 2_000_000
""":func:`write_folder` writes the hospitals of a year in batches of about this many B rows."""

KEY = ("ETA_NUM", "RSA_NUM")

RSA_FROM_B = {
    "NOFINESS": "ETA_NUM",
    "CLE_RSA": "RSA_NUM",
    "AGEAN": "AGE_ANN",
    "SEXE": "COD_SEX",
    "CDGEO": "BDI_COD",
    "DP": "DGN_PAL",
    "DR": "DGN_REL",
    "ECHPMSI": "ENT_MOD",
    "PROV": "ENT_PRV",
    "SCHPMSI": "SOR_MOD",
    "DUREE": "SEJ_NBJ",
    "TYPESEJ": "SEJ_TYP",
    "MOISSOR": "SOR_MOI",
    "ANSOR": "SOR_ANN",
}
"""RSA fixed-part field ← column of T_MCOaaB (the GHM's four parts are split from GRG_GHM)."""

GHM_PARTS = {"CMD": (0, 2), "TYPE": (2, 1), "NUM": (3, 2), "COMPX": (5, 1)}
"""The GHM (e.g. 05M09T) as the RSA splits it: RSACMD, RSATYPE, RSANUM, RSACOMPX (and GP…)."""

RETURN_CODE_FIELDS = {
    "CRSECU": "NIR_RET",
    "CRDNAI": "NAI_RET",
    "CRSEXE": "SEX_RET",
    "CRNODA": "SEJ_RET",
    "CRFUSHOSP": "FHO_RET",
    "CRFUSPMSI": "PMS_RET",
    "CRDTENT": "DAT_RET",
}
"""ANO control return code ← column of T_MCOaaC."""

_SAFE_NAME = re.compile(r"^[0-9A-Za-z]+$")


@dataclass
class Written:
    """What :func:`write_year` (or :func:`write_folder`, summed) wrote, and what it could not."""

    files: list[Path] = field(default_factory=list)
    rsa_lines: int = 0
    ano_lines: int = 0
    rsa_without_ano: int = 0
    """B rows with no C row: RSA lines without an ANO line."""
    ano_without_rsa: int = 0
    """C rows with no B row: ANO lines without their RSA."""
    zones_without_stay: int = 0
    """D and UM rows whose stay has no B row: no line can hold them, not written."""
    truncated: dict[str, int] = field(default_factory=dict)
    """Values longer than their field, cut to it, per field."""

    def add(self, other: Written) -> None:
        self.files += other.files
        self.rsa_lines += other.rsa_lines
        self.ano_lines += other.ano_lines
        self.rsa_without_ano += other.rsa_without_ano
        self.ano_without_rsa += other.ano_without_rsa
        self.zones_without_stay += other.zones_without_stay
        for k, v in other.truncated.items():
            self.truncated[k] = self.truncated.get(k, 0) + v


def file_name(finess: str, year: int, kind: str, month: int = MONTH) -> str:
    """``<FINESS>.<YYYY>.<M>.rsa`` (or ``.ano``), as the DIMs receive them."""
    return f"{finess}.{year}.{month}.{kind}"


# --------------------------------------------------------------------------------------------
# Fields and records
# --------------------------------------------------------------------------------------------


def _blank(f: Field) -> str:
    """A field we have no value for: zeros for numbers, spaces for text."""
    return "0" * f.length if f.kind in ("i", "n") else " " * f.length


def _formatted(f: Field, value: pl.Expr) -> pl.Expr:
    """``value`` (text, possibly null) written in ``f``: numbers right-aligned and zero-padded,
    text left-aligned and space-padded, nothing (null or empty) as spaces; cut to the field."""
    v = value.cast(pl.String).str.strip_chars()
    n = f.length
    if f.kind in ("i", "n"):
        digits = v.str.contains(r"^[0-9]+$")
        body = pl.when(digits).then(v.str.zfill(n)).otherwise(v.str.pad_start(n))
    else:
        body = v.str.pad_end(n)
    return pl.when(v.is_null() | (v == "")).then(pl.lit(" " * n)).otherwise(body.str.slice(0, n))


def _too_long(f: Field, value: pl.Expr) -> pl.Expr:
    v = value.cast(pl.String).str.strip_chars()
    return (v.str.len_chars() > f.length).sum().alias(f.name)


def _record(lay: Layout, values: Mapping[str, pl.Expr]) -> pl.Expr:
    """One record of ``lay`` (its fixed part for ``rsa``): every field, in order, ``values`` where
    given, blank otherwise; a gap between two fields of the layout is spaces."""
    parts: list[pl.Expr] = []
    constant = ""
    pos = 0

    def flush() -> None:
        nonlocal constant
        if constant:
            parts.append(pl.lit(constant))
            constant = ""

    for f in lay.fields:
        if f.start > pos:
            constant += " " * (f.start - pos)
        if f.name in values:
            flush()
            parts.append(_formatted(f, values[f.name]))
        else:
            constant += _blank(f)
        pos = max(pos, f.end)
    if lay.fixed_length > pos:
        constant += " " * (lay.fixed_length - pos)
    flush()
    return pl.concat_str(parts) if len(parts) > 1 else parts[0]


def _truncations(df: pl.DataFrame, lay: Layout, values: Mapping[str, pl.Expr]) -> dict[str, int]:
    if df.is_empty() or not values:
        return {}
    row = df.select([_too_long(lay.field(name), expr) for name, expr in values.items()]).row(0, named=True)
    return {f"{lay.table}.{k}": int(v) for k, v in row.items() if v}


def _ghm_values(lay: Layout) -> dict[str, pl.Expr]:
    ghm = pl.col("GRG_GHM").cast(pl.String).str.strip_chars()
    out = {}
    for prefix in ("RSA", "GP"):
        for part, (start, length) in GHM_PARTS.items():
            if lay.has(prefix + part):
                out[prefix + part] = ghm.str.slice(start, length)
    return out


def _ddmmyyyy(column: str, dtype: pl.DataType, date_format: str | None = None) -> pl.Expr:
    """An SNDS date (SAS datetime text, another known text form, or a date) as ddmmyyyy; text
    that is no date is written as it is (cut to the field), as a file would show it.
    ``date_format``: the text's format, detected as the SNDS reader does (None tries each)."""
    raw = pl.col(column)
    if dtype == pl.Date or isinstance(dtype, pl.Datetime):
        return raw.dt.strftime("%d%m%Y")
    text = raw.cast(pl.String).str.strip_chars()
    if date_format is None:
        parsed = parse_sas_date(text)
    elif ":" in date_format:
        parsed = text.str.to_datetime(date_format, strict=False).dt.date()
    else:
        parsed = text.str.to_date(date_format, strict=False)
    return pl.coalesce(parsed.dt.strftime("%d%m%Y"), text)


def _date_format(df: pl.DataFrame, column: str) -> str | None:
    return detect_date_format(df.lazy(), column) if df.schema[column] == pl.String else None


# --------------------------------------------------------------------------------------------
# Variable zones
# --------------------------------------------------------------------------------------------


def _random_codes(rng: np.random.Generator, rows: int, spec: tuple[tuple[int, int, int], ...]) -> pl.Series:
    """``rows`` codes, each the characters drawn from the byte ranges ``(low, high, count)``."""
    if rows == 0:
        return pl.Series([], dtype=pl.String)
    cols = [rng.integers(lo, hi, (rows, k), dtype=np.uint8) for lo, hi, k in spec]
    width = sum(k for _, _, k in spec)
    chars = np.ascontiguousarray(np.concatenate(cols, axis=1))
    return pl.Series(chars.view(f"S{width}").ravel()).cast(pl.String)


_DIGITS = (48, 58)
_LETTERS = (65, 91)


def _joined(zones: pl.DataFrame, n: int) -> pl.Series:
    """Each stay's zones (``_stay``, ``z``, already in order) joined into one string, "" if none."""
    if zones.is_empty():
        return pl.repeat("", n, dtype=pl.String, eager=True)
    agg = zones.group_by("_stay", maintain_order=True).agg(pl.col("z").str.join(""))
    full = pl.DataFrame({"_stay": pl.int_range(0, n, dtype=pl.Int64, eager=True)}).join(
        agg, on="_stay", how="left", maintain_order="left"
    )
    return full["z"].fill_null("")


# --------------------------------------------------------------------------------------------
# One year
# --------------------------------------------------------------------------------------------


def _strings(df: pl.DataFrame | pl.LazyFrame, keep_dates: tuple[str, ...] = ()) -> pl.DataFrame:
    """The raw table collected, every column as text (dates of ``keep_dates`` kept as they are)."""
    df = df.lazy().collect() if isinstance(df, pl.LazyFrame) else df
    df = df.with_columns(
        pl.col(c).cast(pl.String) for c, t in df.schema.items() if c not in keep_dates and t != pl.String
    )
    # a FINESS read as an integer lost its leading zeros (the SNDS reader restores them too)
    eta = pl.col("ETA_NUM").str.strip_chars()
    return df.with_columns(pl.when(eta.str.contains(r"^[0-9]{1,8}$")).then(eta.str.zfill(9)).otherwise(eta).alias("ETA_NUM"))


def write_year(
    tables: Mapping[str, pl.DataFrame | pl.LazyFrame],
    year: int,
    folder: str | Path,
    seed: int,
    month: int = MONTH,
    batch: int = 0,
) -> Written:
    """Write the SNDS raw tables ``B``, ``C``, ``D``, ``UM`` of exit ``year`` (SNDS column names;
    text, or anything that casts to it) as one RSA and one ANO file per hospital under ``folder``,
    in the layout of ``year``. A hospital with no line of a kind has no file of that kind. Files
    already there are overwritten (a hospital split across calls would lose lines: give each
    call whole hospitals). The drawn zones come from the random stream (``seed``, ``year``,
    ``batch``)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([seed, year, batch])
    c_raw = tables["C"].lazy().collect() if isinstance(tables["C"], pl.LazyFrame) else tables["C"]
    dates = tuple(c for c in ("EXE_SOI_DTD", "EXE_SOI_DTF") if c in c_raw.columns)
    b = _strings(tables["B"]).with_row_index("_stay").with_columns(pl.col("_stay").cast(pl.Int64))
    c = _strings(c_raw, keep_dates=dates)
    d = _strings(tables["D"])
    um = _strings(tables["UM"])
    written = Written()
    n = b.height

    # stays: a key held by several B rows gets its D and UM rows on the first of them only
    stays = b.select(*KEY, "_stay").unique(subset=list(KEY), keep="first", maintain_order=True)
    d = d.with_row_index("_order").join(stays, on=list(KEY), how="left")
    um = um.with_row_index("_order").join(stays, on=list(KEY), how="left")
    written.zones_without_stay = int(d["_stay"].null_count() + um["_stay"].null_count())
    d = d.filter(pl.col("_stay").is_not_null())
    um = um.filter(pl.col("_stay").is_not_null())

    rsa = layout("rsa", year)
    lay_um = layout("rsa_um", year)
    lay_acte = layout("rsa_actes", year)
    zones = {z.name: z for z in rsa_zones(year)}

    # counts: drawn ones (authorisations, radiotherapy, procedures), counted ones (units, DAS)
    drawn = rng.integers(0, MAX_RANDOM_ZONES + 1, size=(3, n))
    n_das = np.bincount(d["_stay"].to_numpy(), minlength=n)
    n_um = np.bincount(um["_stay"].to_numpy(), minlength=n)
    counts = {"aut": drawn[0], "rdth": drawn[1], "acte": drawn[2], "um": n_um, "das": n_das}
    b = b.with_columns(
        pl.Series(zones[name].count_field, counts[name]).cast(pl.String) for name in zones
    )

    # the variable zones, each kind joined per stay in its order
    def drawn_zones(name: str, codes: pl.Series) -> pl.DataFrame:
        stay = np.repeat(np.arange(n, dtype=np.int64), counts[name])
        return pl.DataFrame({"_stay": stay, "z": codes})

    aut = drawn_zones("aut", _random_codes(rng, int(counts["aut"].sum()), ((*_DIGITS, zones["aut"].length),)))
    rdth = drawn_zones("rdth", _random_codes(rng, int(counts["rdth"].sum()), ((*_DIGITS, zones["rdth"].length),)))
    ccam = _random_codes(rng, int(counts["acte"].sum()), ((*_LETTERS, 4), (*_DIGITS, 3)))
    acte_values = {
        "CDCCAM": pl.col("z"),
        **{name: pl.lit(value) for name, value in (("PHASE", "0"), ("ACT", "1"), ("NBEXEC", "1")) if lay_acte.has(name)},
    }
    acte = drawn_zones("acte", ccam).with_columns(_record(lay_acte, acte_values).alias("z"))

    das_field = Field("DAS", 0, zones["das"].length, "c", "")
    das = d.sort("_stay", "_order").select("_stay", _formatted(das_field, pl.col("ASS_DGN")).alias("z"))
    written.truncated.update({k: v for k, v in {"das.ASS_DGN": int(
        (d["ASS_DGN"].str.strip_chars().str.len_chars() > das_field.length).sum())}.items() if v})

    um = um.with_columns(
        pl.col("UM_ORD_NUM").str.strip_chars().cast(pl.Int64, strict=False).alias("_rank")
    ).sort("_stay", "_rank", "_order", nulls_last=True)
    first_unit = pl.col("_stay").is_first_distinct()
    rank = pl.col("UM_ORD_NUM").str.strip_chars()
    um_values = {
        "NSEQRUM": pl.when(rank.str.contains(r"^[0-9]$")).then(rank.str.zfill(2)).otherwise(rank),
        "NOHOP1": pl.col("ETA_NUM"),
        "DPUM": pl.col("DGN_PAL"),
        "DRUM": pl.col("DGN_REL"),
        "NBDIAGAS": pl.when(first_unit).then(pl.col("_n_das")).otherwise(pl.lit("0")),
        "NBACTE": pl.when(first_unit).then(pl.col("_n_acte")).otherwise(pl.lit("0")),
    }
    um = um.with_columns(
        pl.Series("_n_das", n_das).gather(um["_stay"]).cast(pl.String),
        pl.Series("_n_acte", counts["acte"]).gather(um["_stay"]).cast(pl.String),
    )
    um_values = {k: v for k, v in um_values.items() if lay_um.has(k)}
    written.truncated.update(_truncations(um, lay_um, um_values))
    units = um.select("_stay", _record(lay_um, um_values).alias("z"))

    variable = {"aut": aut, "rdth": rdth, "um": units, "das": das, "acte": acte.select("_stay", "z")}
    b = b.with_columns(pl.Series(f"_zones_{name}", _joined(variable[name], n)) for name in zones)

    # the fixed part
    number = format_number("rsa", year)
    rsa_values: dict[str, pl.Expr] = {f: pl.col(col) for f, col in RSA_FROM_B.items() if rsa.has(f) and col in b.columns}
    rsa_values |= _ghm_values(rsa) if "GRG_GHM" in b.columns else {}
    rsa_values["NOVRSA"] = pl.lit(number)
    rsa_values |= {z.count_field: pl.col(z.count_field) for z in zones.values()}
    if rsa.has("NOSEQRUM"):
        rsa_values["NOSEQRUM"] = pl.when(pl.col(zones["um"].count_field) != "0").then(pl.lit("01"))
    rsa_values["CLE_RSA"] = _rsa_key(pl.col("RSA_NUM"))
    written.truncated.update(_truncations(b, rsa, {k: v for k, v in rsa_values.items() if k in RSA_FROM_B}))
    lines = b.select(
        pl.col("ETA_NUM").str.strip_chars().alias("_file"),
        pl.concat_str([_record(rsa, rsa_values), *[pl.col(f"_zones_{name}") for name in zones]]).alias("line"),
    )

    # ANO lines
    ano = layout("rsa_ano", year)
    exit_text = _ddmmyyyy("EXE_SOI_DTF", c.schema["EXE_SOI_DTF"], _date_format(c, "EXE_SOI_DTF"))
    ano_values: dict[str, pl.Expr] = {
        "NOFINESS": pl.col("ETA_NUM"),
        "NOFORMAT": pl.lit(format_number("rsa_ano", year)),
        "CLE_RSA": _rsa_key(pl.col("RSA_NUM")),
        "NOANON": pl.col("NIR_ANO_17"),
        "DTENT": _ddmmyyyy("EXE_SOI_DTD", c.schema["EXE_SOI_DTD"], _date_format(c, "EXE_SOI_DTD")),
        "DTSORT": exit_text,
        "MOISSORT": pl.when(exit_text.str.contains(r"^[0-9]{8}$")).then(exit_text.str.slice(2, 2)),
        "ANNEESORT": pl.when(exit_text.str.contains(r"^[0-9]{8}$")).then(exit_text.str.slice(4, 4)),
        **{f: pl.col(col) for f, col in RETURN_CODE_FIELDS.items() if col in c.columns},
    }
    ano_values = {k: v for k, v in ano_values.items() if ano.has(k)}
    written.truncated.update(_truncations(c, ano, ano_values))
    ano_lines = c.select(pl.col("ETA_NUM").str.strip_chars().alias("_file"), _record(ano, ano_values).alias("line"))

    linked = c.select(*KEY).unique()
    written.rsa_without_ano = b.join(linked, on=list(KEY), how="anti").height
    written.ano_without_rsa = c.join(b.select(*KEY).unique(), on=list(KEY), how="anti").height
    written.rsa_lines, written.ano_lines = lines.height, ano_lines.height
    for kind, frame in (("rsa", lines), ("ano", ano_lines)):
        for (name,), part in frame.partition_by("_file", as_dict=True, maintain_order=True).items():
            if name is None or not _SAFE_NAME.match(name):
                raise RespopError(f"ETA_NUM {name!r} cannot name an ATIH file (letters and digits only)")
            path = folder / file_name(name, year, kind, month)
            _write_lines(part["line"], path)
            written.files.append(path)
    return written


def _rsa_key(value: pl.Expr) -> pl.Expr:
    """RSA_NUM as CLE_RSA: 10 digits, zero-padded (as the SNDS reader pads it)."""
    v = value.cast(pl.String).str.strip_chars()
    return pl.when(v.str.contains(r"^[0-9]{1,10}$")).then(v.str.zfill(10)).otherwise(v)


def _write_lines(lines: pl.Series, path: Path) -> None:
    with path.open("wb") as f:
        f.write(lines.str.join("\n").item().encode("ascii", errors="replace"))
        f.write(b"\n")


# --------------------------------------------------------------------------------------------
# A folder of SNDS tables
# --------------------------------------------------------------------------------------------


def write_folder(
    snds: str | Path, out: str | Path, seed: int, years: list[int] | None = None, batch_stays: int = BATCH_STAYS
) -> dict[int, Written]:
    """Write every exit year of the SNDS tables in ``snds`` (T_MCOaaB/C/D/UM, CSV or Parquet, as
    :func:`respop.pmsi.files.discover` finds them) as ATIH files under ``out``. Hospitals are
    written in batches of about ``batch_stays`` B rows, so that memory stays bounded."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    result = {}
    for year, by_table in discover(snds, years).items():
        if year is None:
            raise RespopError(f"{snds}: T_MCOaa tables give no exit year; the ATIH layout depends on it")
        raw = {t: scan_table(tf).drop("_row") for t, tf in by_table.items()}
        eta = pl.col("ETA_NUM").cast(pl.String)
        sizes = (
            pl.concat([raw["B"].select(eta), raw["C"].select(eta)])
            .group_by("ETA_NUM").len().sort("ETA_NUM").collect()
        )
        total = Written()
        batch: list[str] = []
        rows = 0
        batches: list[list[str]] = []
        for hospital, size in sizes.iter_rows():  # a loop over hospitals, not rows
            batch.append(hospital)
            rows += size
            if rows >= batch_stays:
                batches.append(batch)
                batch, rows = [], 0
        if batch:
            batches.append(batch)
        for i, hospitals in enumerate(batches):
            chosen = {t: lf.filter(eta.is_in(hospitals)) for t, lf in raw.items()}
            total.add(write_year(chosen, year, out, seed=seed, batch=i))
        result[year] = total
    return result
