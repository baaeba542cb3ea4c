"""The ATIH MCO file layouts (RSA and ANO "out" files), as data.

Read from the tables shipped in ``respop/data/atih`` (see its README.md): one row per field per
layout year, the RSA's variable zones, and the format numbers that select a layout. A new year or
a corrected position is a new row there, not new code. Positions here are 0-based (the tables'
``position`` is 1-based), ready for ``str.slice``.

>>> rsa = layout("rsa", 2023)
>>> rsa.field("CDGEO")                      # Field(name='CDGEO', start=74, length=5, ...)
>>> rsa.fixed_length                         # 262: the variable part starts here
>>> [z.name for z in rsa_zones(2023)]        # ['aut', 'rdth', 'um', 'das', 'acte']
>>> layout_year("rsa", "228")                # 2024 (2023 and 2024 carry 228: same layout)
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import cache

from respop.resources import data_path

ATTRIBUTION = "Formats des fichiers PMSI : ATIH ; compilation formats_pmeasyr"

TABLES = ("rsa", "rsa_um", "rsa_actes", "rsa_ano")
"""Record kinds respop reads: RSA fixed part, one medical-unit zone, one procedure zone, ANO line."""

START_OF_VARIABLE_PART = "ZA"
"""Name of the pseudo-field where an RSA's variable part starts (no length in the tables)."""

FORMAT_FIELD = {"rsa": "NOVRSA", "rsa_ano": "NOFORMAT"}
"""The field of each record kind that carries its format number."""


@dataclass(frozen=True)
class Field:
    """One fixed-width field: 0-based ``start``, ``length`` in characters, ATIH ``kind``
    (``c`` text, ``i`` integer, ``n`` amount, ``trim`` text to trim) and French label."""

    name: str
    start: int
    length: int
    kind: str
    label: str

    @property
    def end(self) -> int:
        return self.start + self.length


@dataclass(frozen=True)
class Layout:
    """The layout of one record kind for one year (``year`` as 2019, not 19)."""

    table: str
    year: int
    fields: tuple[Field, ...]
    fixed_length: int
    """Characters of the fixed part: the whole record for ``rsa_ano``, ``rsa_um`` and
    ``rsa_actes``; for ``rsa``, where the variable part (``ZA``) starts."""

    def field(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"no field {name} in the {self.table} layout of {self.year}")

    def has(self, name: str) -> bool:
        return any(f.name == name for f in self.fields)


@dataclass(frozen=True)
class Zone:
    """One kind of variable zone of an RSA: ``count_field`` of the fixed part says how many
    follow, each ``length`` characters; zones come in the order of :func:`rsa_zones`."""

    name: str
    count_field: str
    length: int


def _year(an: str | int) -> int:
    an = int(an)
    return an + 2000 if an < 100 else an


@cache
def _rows() -> tuple[dict[str, str], ...]:
    with data_path("atih", "mco_formats.csv").open(encoding="utf-8", newline="") as f:
        return tuple(csv.DictReader(f))


@cache
def years() -> tuple[int, ...]:
    """Layout years shipped (every record kind has each)."""
    return tuple(sorted({_year(r["an"]) for r in _rows() if r["table"] == "rsa"}))


@cache
def layout(table: str, year: int) -> Layout:
    """The layout of ``table`` (one of :data:`TABLES`) for exit ``year``; KeyError if not shipped."""
    if table not in TABLES:
        raise KeyError(f"unknown ATIH record kind {table!r} (known: {', '.join(TABLES)})")
    year = _year(year)
    fields = []
    variable_start = None
    for r in _rows():
        if r["table"] != table or _year(r["an"]) != year:
            continue
        start = int(r["position"]) - 1
        if r["nom"] == START_OF_VARIABLE_PART:
            variable_start = start
            continue
        fields.append(Field(r["nom"].strip(), start, int(r["longueur"]), r["type"], r["libelle"]))
    if not fields:
        raise KeyError(f"no {table} layout for {year} (layouts shipped: {', '.join(map(str, years()))})")
    fields.sort(key=lambda f: f.start)
    length = variable_start if variable_start is not None else max(f.end for f in fields)
    return Layout(table, year, tuple(fields), length)


@cache
def rsa_zones(year: int) -> tuple[Zone, ...]:
    """The variable zones of an RSA record of ``year``, in the order they follow the fixed part."""
    year = _year(year)
    with data_path("atih", "rsa_zones.csv").open(encoding="utf-8", newline="") as f:
        rows = [r for r in csv.DictReader(f) if _year(r["an"]) == year]
    if not rows:
        raise KeyError(f"no RSA variable zones for {year}")
    rows.sort(key=lambda r: int(r["order"]))
    return tuple(Zone(r["zone"], r["count_field"], int(r["length"])) for r in rows)


@cache
def _format_rows(table: str) -> tuple[tuple[str, int], ...]:
    with data_path("atih", "format_numbers.csv").open(encoding="utf-8", newline="") as f:
        return tuple((r["format"].strip(), _year(r["an"])) for r in csv.DictReader(f) if r["table"] == table)


@cache
def format_numbers(table: str) -> dict[str, int]:
    """Format number (as written in the record) → layout year, for ``rsa`` or ``rsa_ano``. A number
    the ATIH kept for several years (its layout unchanged) selects the latest of them: their
    layouts are the same (tests/pmsi/test_atih.py checks it)."""
    out: dict[str, int] = {}
    for number, year in _format_rows(table):
        out[number] = max(year, out.get(number, year))
    return out


def layout_year(table: str, number: str) -> int | None:
    """The layout year a format number selects, or None when the number is unknown."""
    return format_numbers(table).get(number.strip())


def format_number(table: str, year: int) -> str:
    """The format number records of ``year`` carry (the writer's side of :func:`layout_year`)."""
    year = _year(year)
    for number, y in _format_rows(table):
        if y == year:
            return number
    raise KeyError(f"no {table} format number for {year}")
