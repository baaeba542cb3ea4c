"""The canonical model (staged layer): stays and diagnoses, whatever the source format.

See docs/pmsi.md for the meaning of every column. Built lazily from the validated SNDS tables of
one exit year; years are stacked by :func:`respop.pmsi.reader.read_pmsi`.
"""

from __future__ import annotations

import polars as pl

from respop.pmsi.files import ROW
from respop.pmsi.nomenclatures import codes
from respop.pmsi.schema import RETURN_CODES
from respop.pmsi.validate import STAY_ROW, ValidatedTable

POSITIONS = ("DP", "DR", "DAS", "UM_DP", "UM_DR")
"""Diagnosis positions: stay-level principal (DP) and related (DR) diagnoses, associated
diagnoses (DAS), and the principal and related diagnoses of each medical unit (UM_DP, UM_DR)."""

Position = pl.Enum(list(POSITIONS))

STAY_SCHEMA: dict[str, pl.DataType] = {
    "stay_id": pl.Int64,
    "source_year": pl.Int16,
    "hospital_id": pl.String,
    "rsa_num": pl.String,
    "patient_key": pl.String,
    "residence_zone": pl.String,
    "residence_departement": pl.String,
    "age": pl.Int16,
    "sex": pl.Int8,
    "entry_date": pl.Date,
    "exit_date": pl.Date,
    "length_of_stay": pl.Int32,
    "entry_mode": pl.String,
    "provenance": pl.String,
    "via_emergency": pl.Boolean,
    "exit_mode": pl.String,
    "died": pl.Boolean,
    "ghm": pl.String,
    "stay_type": pl.String,
    "is_session": pl.Boolean,
    "principal_diagnosis": pl.String,
    "related_diagnosis": pl.String,
}
"""Columns and types of the canonical stays (one row per stay)."""

DIAGNOSIS_SCHEMA: dict[str, pl.DataType] = {
    "stay_id": pl.Int64,
    "code": pl.String,
    "position": Position,
    "unit_rank": pl.Int16,
}
"""Columns and types of the canonical diagnoses (one row per stay, code and position)."""

LINKAGE_COLUMNS = ("_linked", "_return_codes_ok")
"""Private columns the quality filters read, dropped from the canonical stays."""

EMERGENCY_PROVENANCE = "5"
"""ENT_PRV = 5: admitted through the hospital's emergency department."""
DEATH_EXIT_MODE = "9"
"""SOR_MOD = 9: died in hospital."""
SESSION_CMD = "28"
"""GHM of CMD 28 are séances (dialysis, chemotherapy, radiotherapy sessions…)."""


ROWS_PER_YEAR = 1_000_000_000
"""Stay ids are ``exit year × 10⁹ + row of the stay in T_MCOaaB`` (year 0 for ``aa`` files)."""


def stay_id(year: int | None, row: str) -> pl.Expr:
    """Stay id from the exit year and a B row number: compact, unique across years, and readable
    (2022000000123 is row 123 of T_MCO22B). RSA numbers alone are unique per hospital and year only."""
    return pl.lit((year or 0) * ROWS_PER_YEAR, pl.Int64) + pl.col(row).cast(pl.Int64)


def build_stays(b: ValidatedTable, c: ValidatedTable) -> pl.LazyFrame:
    """Join stays (B) and linkage (C) on (ETA_NUM, RSA_NUM); every loaded B row gives one stay.

    A stay without a loaded C row keeps null patient key and dates and ``_linked = false``, for
    the linkage filter to count.
    """
    year = b.file.year
    linkage = c.loaded.select(
        pl.col(STAY_ROW).alias(ROW),
        "NIR_ANO_17",
        "EXE_SOI_DTD",
        "EXE_SOI_DTF",
        pl.all_horizontal([pl.col(r).fill_null("0") == "0" for r in RETURN_CODES]).alias("_return_codes_ok"),
        pl.lit(True).alias("_linked"),
    )
    stays = b.loaded.join(linkage, on=ROW, how="left", maintain_order="left")
    ghm = pl.col("GRG_GHM")
    return stays.select(
        stay_id(year, ROW).alias("stay_id"),
        pl.lit(year, pl.Int16).alias("source_year"),
        pl.col("ETA_NUM").alias("hospital_id"),
        pl.col("RSA_NUM").alias("rsa_num"),
        pl.col("NIR_ANO_17").alias("patient_key"),
        pl.col("BDI_COD").str.to_uppercase().alias("residence_zone"),
        pl.col("BDI_DEP").str.to_uppercase().alias("residence_departement"),
        pl.col("AGE_ANN").cast(pl.Int16).alias("age"),
        pl.when(pl.col("COD_SEX").is_in(["1", "2"])).then(pl.col("COD_SEX").cast(pl.Int8)).alias("sex"),
        pl.col("EXE_SOI_DTD").alias("entry_date"),
        pl.col("EXE_SOI_DTF").alias("exit_date"),
        pl.col("SEJ_NBJ").cast(pl.Int32).alias("length_of_stay"),
        pl.col("ENT_MOD").alias("entry_mode"),
        pl.col("ENT_PRV").alias("provenance"),
        (pl.col("ENT_PRV") == EMERGENCY_PROVENANCE).fill_null(False).alias("via_emergency"),
        pl.col("SOR_MOD").alias("exit_mode"),
        (pl.col("SOR_MOD") == DEATH_EXIT_MODE).fill_null(False).alias("died"),
        ghm.alias("ghm"),
        pl.col("SEJ_TYP").cast(pl.String).alias("stay_type"),
        ghm.str.starts_with(SESSION_CMD).fill_null(False).alias("is_session"),
        pl.col("DGN_PAL").alias("principal_diagnosis"),
        pl.col("DGN_REL").alias("related_diagnosis"),
        pl.col("_linked").fill_null(False),
        pl.col("_return_codes_ok").fill_null(False),
    )


def build_diagnoses(b: ValidatedTable, d: ValidatedTable, um: ValidatedTable) -> pl.LazyFrame:
    """All diagnoses of the year's stays, one row per (stay, code, position).

    The same code repeated at one position of a stay (frequent for DAS in T_MCOaaD, or a unit DP
    shared by several units) is kept once, with the rank of its first medical unit.
    """
    year = b.file.year
    no_rank = pl.lit(None, pl.Int16).alias("unit_rank")

    def part(table: ValidatedTable, row: str, column: str, position: str, rank: pl.Expr) -> pl.LazyFrame:
        return table.loaded.select(
            stay_id(year, row).alias("stay_id"),
            pl.col(column).alias("code"),
            pl.lit(position).cast(Position).alias("position"),
            rank,
        )

    um_rank = pl.col("UM_ORD_NUM").cast(pl.Int16).alias("unit_rank")
    key = ["stay_id", "position", "code"]
    # DP and DR are one per stay: no de-duplication needed. DAS and unit diagnoses are
    # de-duplicated on codes cast to an Enum of the CIM-10 (every loaded code is in it), which
    # hashes much faster than strings.
    cim = pl.Enum(sorted(codes("MS_CIM_V")))

    def dedupe(lf: pl.LazyFrame) -> pl.LazyFrame:
        return (
            lf.filter(pl.col("code").is_not_null())
            .with_columns(pl.col("code").cast(cim))
            .group_by(key)
            .agg(pl.col("unit_rank").min())
            .with_columns(pl.col("code").cast(pl.String))
        )

    parts = [
        part(b, ROW, "DGN_PAL", "DP", no_rank).filter(pl.col("code").is_not_null()),
        part(b, ROW, "DGN_REL", "DR", no_rank).filter(pl.col("code").is_not_null()),
        dedupe(part(d, STAY_ROW, "ASS_DGN", "DAS", no_rank)),
        dedupe(
            pl.concat(
                [part(um, STAY_ROW, "DGN_PAL", "UM_DP", um_rank), part(um, STAY_ROW, "DGN_REL", "UM_DR", um_rank)],
                how="vertical",
            )
        ),
    ]
    return pl.concat([p.select(list(DIAGNOSIS_SCHEMA)) for p in parts], how="vertical")
