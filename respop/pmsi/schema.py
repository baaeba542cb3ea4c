"""The SNDS PMSI MCO tables as respop reads them.

Column names, types and constraints come from the SNDS Table Schema files shipped in
``respop/data/snds/schemas`` (Health Data Hub / DREES). respop reads only the columns it uses
(:data:`USED_COLUMNS`), and corrects a few schema constraints that real PMSI data contradict; each
correction is listed in :data:`OVERRIDES` with its reason, and in docs/pmsi.md.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from functools import cache
from typing import Literal

from respop.resources import snds_schema_path

TABLES: tuple[str, ...] = ("B", "C", "D", "UM")
"""PMSI MCO tables read by respop: stays, linkage and dates, associated diagnoses, medical units."""

TABLE_TITLES = {
    "B": "stays (Description du séjour)",
    "C": "patient linkage and dates (NIR patient et dates de soins)",
    "D": "associated diagnoses (Diagnostics associés)",
    "UM": "medical units (Unités médicales)",
}

KEY = ("ETA_NUM", "RSA_NUM")
"""Join key of the four tables within one year."""

Kind = Literal[
    "integer", "string", "date", "year", "month", "finess", "rsa", "return_code", "icd10"
]

RETURN_CODES = ("NIR_RET", "NAI_RET", "SEX_RET", "SEJ_RET", "FHO_RET", "PMS_RET", "DAT_RET")
"""Linkage return codes of T_MCOaaC; a stay whose codes are not all 0 has an unusable patient key."""


@dataclass(frozen=True)
class ColumnRule:
    """How one SNDS column is parsed and checked.

    ``required_column``: the file must have the column (else an error naming file and column).
    ``required_value``: a row with an empty value is quarantined.
    """

    name: str
    kind: Kind
    required_column: bool = True
    required_value: bool = False
    minimum: int | None = None
    maximum: int | None = None
    min_length: int | None = None
    max_length: int | None = None
    enum: tuple[str, ...] | None = None
    pattern: str | None = None
    pattern_label: str | None = None
    nomenclature: str | None = None
    extra_codes: tuple[str, ...] = field(default=())
    description: str = ""


# (name, required_column, required_value) of the columns respop uses, per table.
USED_COLUMNS: dict[str, tuple[tuple[str, bool, bool], ...]] = {
    "B": (
        ("ETA_NUM", True, True),
        ("RSA_NUM", True, True),
        ("AGE_ANN", True, True),
        ("COD_SEX", True, True),
        ("BDI_COD", True, False),
        ("BDI_DEP", False, False),
        ("DGN_PAL", True, True),
        ("DGN_REL", True, False),
        ("ENT_MOD", True, False),
        ("ENT_PRV", True, False),
        ("SOR_MOD", True, False),
        ("SEJ_NBJ", True, False),
        ("GRG_GHM", True, True),
        ("SEJ_TYP", False, False),
    ),
    "C": (
        ("ETA_NUM", True, True),
        ("RSA_NUM", True, True),
        ("NIR_ANO_17", True, False),
        ("EXE_SOI_DTD", True, True),
        ("EXE_SOI_DTF", True, True),
        *((code, False, False) for code in RETURN_CODES),
    ),
    "D": (
        ("ETA_NUM", True, True),
        ("RSA_NUM", True, True),
        ("ASS_DGN", True, True),
    ),
    "UM": (
        ("ETA_NUM", True, True),
        ("RSA_NUM", True, True),
        ("DGN_PAL", True, False),
        ("DGN_REL", True, False),
        ("UM_ORD_NUM", False, False),
    ),
}

_FINESS = dict(
    kind="finess",
    pattern=r"^(?:[0-9]{9}|2[AB][0-9]{7})$",
    pattern_label="not a 9-character FINESS number",
    minimum=None,
    maximum=None,
    max_length=None,
)
_RSA = dict(
    kind="rsa",
    pattern=r"^[0-9]{1,10}$",
    pattern_label="not an RSA index (1 to 10 digits)",
    minimum=None,
    maximum=None,
    max_length=None,
)
_RETURN_CODE = dict(
    kind="return_code",
    enum=None,
    pattern=r"^[0-9]$",
    pattern_label="not a one-digit return code",
)

OVERRIDES: dict[tuple[str, str], tuple[dict, str]] = {
    **{
        (t, "ETA_NUM"): (
            _FINESS,
            "The schema types ETA_NUM as an integer in B and C and a string in D and UM. It is "
            "a 9-character FINESS number: those of Corsica contain 2A/2B and those of "
            "départements 01-09 start with 0, which an integer loses. respop reads it as text, "
            "restores the leading zeros of numbers read as integers, and checks the pattern.",
        )
        for t in TABLES
    },
    **{
        (t, "RSA_NUM"): (
            _RSA,
            "Integer in B and C, string in D and UM: read as text of 1 to 10 digits, zero-padded "
            "to 10 so that the four tables join.",
        )
        for t in TABLES
    },
    ("B", "AGE_ANN"): (
        {"minimum": 0},
        "The schema's minimum is 1, but the PMSI codes children under one year with AGE_ANN = 0 "
        "(their age is in AGE_JOU).",
    ),
    **{
        ("C", code): (
            _RETURN_CODE,
            "Return codes are one digit; a non-zero code is not a type error but an unusable "
            "patient key, counted by the 'linkage' quality filter.",
        )
        for code in RETURN_CODES
    },
    ("B", "ENT_MOD"): (
        {"nomenclature": None, "enum": ("0", "6", "7", "8", "N")},
        "The schema points ENT_MOD at the exit-mode list MS_SOR_V; PMSI entry modes are 0 "
        "(provisional transfer), 6 (mutation), 7 (transfer), 8 (home) and N (birth).",
    ),
    ("B", "SOR_MOD"): (
        {"max_length": None},
        "The schema's 1-character limit would reject the codes -1 (unknown) and -2 (not "
        "applicable) of its own nomenclature MS_SOR_V; the nomenclature check is kept.",
    ),
    ("B", "ENT_PRV"): (
        {"extra_codes": ("R",)},
        "Provenance also takes R (return after a provisional transfer) since 2017.",
    ),
    ("B", "GRG_GHM"): (
        {
            "pattern": r"^[0-9]{2}[A-Z][0-9]{2}[A-Z0-9]$",
            "pattern_label": "not a GHM code (2 digits, a letter, 2 digits, a level)",
        },
        "The schema only fixes the length (6); respop also checks the GHM pattern, e.g. 05M09T.",
    ),
    **{
        (t, c): (
            {"kind": "icd10", "nomenclature": "MS_CIM_V", "max_length": None},
            "Diagnosis codes are normalised (trimmed, upper case, dots removed) then checked "
            "against the French CIM-10 (MS_CIM_V).",
        )
        for t, c in (("B", "DGN_PAL"), ("B", "DGN_REL"), ("D", "ASS_DGN"), ("UM", "DGN_PAL"), ("UM", "DGN_REL"))
    },
}
"""Corrections to the SNDS schema constraints, keyed by (table, column), with their reason."""


@dataclass(frozen=True)
class TableSchema:
    table: str
    title: str
    rules: tuple[ColumnRule, ...]
    primary_key: tuple[str, ...] | None

    @property
    def required_columns(self) -> list[str]:
        return [r.name for r in self.rules if r.required_column]

    def rule(self, name: str) -> ColumnRule:
        return next(r for r in self.rules if r.name == name)


@cache
def table_schema(table: str) -> TableSchema:
    """The rules respop applies to one PMSI MCO table (``"B"``, ``"C"``, ``"D"`` or ``"UM"``)."""
    raw = json.loads(snds_schema_path(table).read_text(encoding="utf-8"))
    fields = {f["name"]: f for f in raw["fields"]}
    fks = _foreign_keys(raw)
    rules = []
    for name, req_col, req_val in USED_COLUMNS[table]:
        f = fields[name]
        cons = f.get("constraints") or {}
        enum = cons.get("enum")
        rule = ColumnRule(
            name=name,
            kind=_kind(f),
            required_column=req_col,
            required_value=req_val,
            minimum=cons.get("minimum"),
            maximum=cons.get("maximum"),
            min_length=cons.get("minLength"),
            max_length=cons.get("maxLength"),
            enum=tuple(e for e in enum if e != "") if enum else None,
            nomenclature=fks.get(name),
            description=f.get("description", ""),
        )
        override = OVERRIDES.get((table, name))
        if override:
            rule = replace(rule, **override[0])
        rules.append(rule)
    pk = raw.get("primaryKey")
    return TableSchema(
        table=table,
        title=raw.get("title", table),
        rules=tuple(rules),
        primary_key=tuple(pk) if pk else None,
    )


def _kind(f: dict) -> Kind:
    t, fmt = f["type"], f.get("format")
    if t == "integer":
        return "integer"
    if t == "datetime" or (t == "date" and fmt != "%m"):
        return "date"
    if t == "date" and fmt == "%m":
        return "month"
    if t == "year":
        return "year"
    return "string"


def _foreign_keys(raw: dict) -> dict[str, str]:
    out = {}
    for fk in raw.get("foreignKeys", []):
        fields = fk["fields"]
        fields = [fields] if isinstance(fields, str) else fields
        resource = fk["reference"]["resource"]
        if resource.startswith("MS_") and len(fields) == 1:
            out[fields[0]] = resource
    return out
