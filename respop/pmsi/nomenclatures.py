"""SNDS nomenclatures shipped with respop: the French ICD-10 (CIM-10), exit modes, provenances.

Schéma et nomenclatures SNDS : Health Data Hub / DREES, Licence Ouverte 2.0.
"""

from __future__ import annotations

from functools import cache

import polars as pl

from respop.resources import nomenclature_path

_CODE_COLUMN = {"MS_CIM_V": "CIM_COD", "MS_SOR_V": "SOR_MOD_COD", "MS_PRV_V": "PRV_COD"}


def normalize_icd10(expr: pl.Expr) -> pl.Expr:
    """ICD-10 codes as the PMSI stores them: trimmed, upper case, without dots (``E11.9`` → ``E119``).

    Empty strings become null.
    """
    code = expr.str.strip_chars().str.to_uppercase().str.replace_all(".", "", literal=True)
    return pl.when(code.str.len_chars() > 0).then(code)


@cache
def cim10() -> pl.DataFrame:
    """The French CIM-10 as used in the PMSI: ``code``, ``short_label``, ``label`` (French)."""
    df = pl.read_csv(
        nomenclature_path("MS_CIM_V"),
        separator=";",
        infer_schema=False,
        encoding="utf8",
    )
    return df.select(
        pl.col("CIM_COD").alias("code"),
        pl.col("CIM_LIC").alias("short_label"),
        pl.col("CIM_LIL").alias("label"),
    )


@cache
def codes(name: str) -> frozenset[str]:
    """The valid codes of a nomenclature: ``MS_CIM_V``, ``MS_SOR_V`` or ``MS_PRV_V``."""
    if name == "MS_CIM_V":
        return frozenset(cim10()["code"].to_list())
    df = pl.read_csv(nomenclature_path(name), separator=";", infer_schema=False)
    return frozenset(df[_CODE_COLUMN[name]].to_list())


def icd10_label(code: str, short: bool = False) -> str | None:
    """French label of an ICD-10 code (with or without a dot), or None if it is not in the CIM-10."""
    key = code.strip().upper().replace(".", "")
    labels = _labels(short)
    return labels.get(key)


@cache
def _labels(short: bool) -> dict[str, str]:
    df = cim10()
    return dict(zip(df["code"], df["short_label" if short else "label"], strict=True))


def is_icd10(code: str) -> bool:
    """Whether a code (with or without a dot) is in the French CIM-10."""
    return code.strip().upper().replace(".", "") in codes("MS_CIM_V")
