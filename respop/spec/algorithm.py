"""Case-finding algorithm specs (``algorithms/<disease>.toml``): the parsed, validated rules.

A spec is data, not code: :func:`respop.spec.loaders.load_spec` reads and checks a TOML file into
an :class:`AlgorithmSpec`; compilers turn it into an engine's expressions (``respop.case_finding.
engine`` for polars, ``respop.spark.cases`` for Spark). Nothing here knows about an engine: the
French CIM-10 the codes are checked against is read with the ``csv`` module.

Semantics (docs/case_finding.md gives the long version):

- A **criterion** holds on a stay when one of the stay's diagnoses, at one of ``positions``,
  starts with one of ``codes`` and with none of ``exclude``.
- A **branch** holds on a stay when all its ``all`` criteria hold and none of its ``unless``.
- A stay **qualifies** when the patient's age at the stay is within ``population``, at least one
  branch holds, and no ``exclude_stays`` criterion holds.
- For an **index year** N, the window is the calendar years N − ``window.lookback_years`` … N
  (exit dates). A patient alive at the start of N (no in-hospital death recorded before) with at
  least one qualifying stay in the window gets a row; it is a **case** when the window holds at
  least ``window.min_stays`` qualifying stays. A case is **incident** when none of its qualifying
  stays falls before N (first detection over the look-back).
- **Sub-types**: ``by = "timing"``: the type whose ``when`` is ``index_year`` if a qualifying stay
  exits in N, otherwise the ``before_index_year`` one. ``by = "codes"``: the type whose codes are
  found on most qualifying stays of the window (ties: the type found on the most recent stay, then
  the first listed); a case where none is found takes ``default``.
"""

from __future__ import annotations

import csv
import datetime as dt
from functools import cache, cached_property
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from respop.spec.strata import StrataSpec

POSITIONS = ("DP", "DR", "DAS", "UM_DP", "UM_DR")
"""Diagnosis positions of the canonical diagnoses (see respop.pmsi.canonical)."""

Position = Literal["DP", "DR", "DAS", "UM_DP", "UM_DR"]

DISEASE_ID = r"^[a-z][a-z0-9_]*$"
"""A disease identifier: the name of its spec file (``<id>.toml``), lower case."""

MAX_LOOKBACK_YEARS = 20


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


@cache
def _cim10_prefixes() -> frozenset[str]:
    """Every code of the shipped French CIM-10 (MS_CIM_V) and every start of one."""
    from respop.resources import nomenclature_path

    with nomenclature_path("MS_CIM_V").open(encoding="utf-8", newline="") as f:
        codes = {row["CIM_COD"].strip() for row in csv.DictReader(f, delimiter=";") if row.get("CIM_COD")}
    return frozenset(c[:n] for c in codes if c for n in range(1, len(c) + 1))


def _check_prefixes(values: list[str], what: str) -> list[str]:
    prefixes = _cim10_prefixes()
    out = []
    for raw in values:
        code = raw.strip().upper().replace(".", "")
        if not code:
            raise ValueError(f"empty {what} code")
        if code not in prefixes:
            raise ValueError(f"{raw!r} is not a code (or the start of a code) of the French CIM-10")
        out.append(code)
    if len(set(out)) != len(out):
        raise ValueError(f"{what} codes listed twice: {sorted({c for c in out if out.count(c) > 1})}")
    return out


class Criterion(_Model):
    """A diagnosis condition on one stay."""

    codes: list[str] = Field(min_length=1, description="ICD-10 prefixes, without dots (E11, I50, I110)")
    exclude: list[str] = Field(default_factory=list, description="prefixes that do not count even if they match codes")
    positions: list[Position] = Field(["DP", "DR", "DAS"], min_length=1)
    label: str = ""

    @field_validator("codes")
    @classmethod
    def _codes(cls, v: list[str]) -> list[str]:
        return _check_prefixes(v, "included")

    @field_validator("exclude")
    @classmethod
    def _exclude(cls, v: list[str]) -> list[str]:
        return _check_prefixes(v, "excluded")

    @field_validator("positions")
    @classmethod
    def _positions(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError("a position is listed twice")
        return v

    @model_validator(mode="after")
    def _exclusions_inside(self) -> Criterion:
        useless = [e for e in self.exclude if not any(e.startswith(c) for c in self.codes)]
        if useless:
            raise ValueError(f"excluded codes {useless} are not inside the included codes {self.codes}")
        return self

    @property
    def key(self) -> tuple:
        """Identity of the condition (two equal criteria are computed once)."""
        return (tuple(sorted(self.codes)), tuple(sorted(self.exclude)), tuple(sorted(self.positions)))


class NamedCriterion(Criterion):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")


class Branch(_Model):
    """One way for a stay to qualify: all of ``all`` and none of ``unless``."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$", description="identifier, reported for each case")
    label: str = Field(min_length=1, description="what the branch means, in French")
    source: str = ""
    all: list[Criterion] = Field(min_length=1)
    unless: list[Criterion] = Field(default_factory=list)


class Population(_Model):
    min_age: int | None = Field(None, ge=0, le=120, description="age at the stay, years (inclusive)")
    max_age: int | None = Field(None, ge=0, le=120, description="age at the stay, years (inclusive)")

    @model_validator(mode="after")
    def _range(self) -> Population:
        if self.min_age is not None and self.max_age is not None and self.max_age < self.min_age:
            raise ValueError(f"max_age {self.max_age} is below min_age {self.min_age}")
        return self


class Window(_Model):
    lookback_years: int = Field(
        ge=0, le=MAX_LOOKBACK_YEARS, description="calendar years before the index year that count (0: the index year only)"
    )
    min_stays: int = Field(1, ge=1, le=50, description="qualifying stays needed in the window")


class Subtype(_Model):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    label: str = Field(min_length=1, description="French name shown on the boards")
    description: str = ""
    codes: list[str] | None = None
    when: Literal["index_year", "before_index_year"] | None = None

    @field_validator("codes")
    @classmethod
    def _codes(cls, v: list[str] | None) -> list[str] | None:
        return None if v is None else _check_prefixes(v, "sub-type")


class Subtypes(_Model):
    by: Literal["timing", "codes"]
    positions: list[Position] = Field(["DP", "DR", "DAS"], min_length=1, description="by codes: positions searched")
    default: str | None = Field(None, description="by codes: the type of a case where no type's codes are found")
    types: list[Subtype] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> Subtypes:
        names = [t.name for t in self.types]
        if len(set(names)) != len(names):
            raise ValueError(f"sub-type names must be unique, got {names}")
        if self.by == "timing":
            whens = sorted(t.when or "" for t in self.types)
            if whens != ["before_index_year", "index_year"]:
                raise ValueError(
                    'by = "timing" needs exactly two types, one with when = "index_year" and one with '
                    f'when = "before_index_year" (got {[t.when for t in self.types]})'
                )
            if any(t.codes for t in self.types) or self.default:
                raise ValueError('by = "timing": types take "when", not "codes" or a default')
        else:
            if any(t.when for t in self.types):
                raise ValueError('by = "codes": types take "codes", not "when"')
            if self.default is None or self.default not in names:
                raise ValueError(f'by = "codes" needs default = one of {names} (got {self.default!r})')
            if any(not t.codes for t in self.types if t.name != self.default):
                raise ValueError("by = \"codes\": every type but the default lists codes")
        return self

    def get(self, name: str) -> Subtype:
        return next(t for t in self.types if t.name == name)


class Algorithm(_Model):
    id: str = Field(pattern=DISEASE_ID, description="the disease's identifier, the spec file's name")
    name: str = Field(min_length=1, description="French name of the disease")
    version: str = Field(pattern=r"^\d+\.\d+(\.\d+)?$")
    date: dt.date
    description: str = ""
    sources: list[str] = Field(min_length=1)
    published_rate_per_100k_adults: float | None = Field(
        None,
        gt=0,
        description="published adults hospitalised for the disease per 100,000 adults (its source among "
        "`sources`): `respop cases validate` shows it beside the detected adults of the index year's type",
    )


class AlgorithmSpec(_Model):
    """A parsed and validated case-finding algorithm."""

    algorithm: Algorithm
    population: Population = Population()
    window: Window
    branches: list[Branch] = Field(min_length=1)
    exclude_stays: list[NamedCriterion] = Field(default_factory=list)
    subtypes: Subtypes
    strata: StrataSpec | None = Field(None, description="risk strata (docs/strata.md)")

    @field_validator("branches", "exclude_stays")
    @classmethod
    def _unique_names(cls, items: list) -> list:
        names = [item.name for item in items]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"names must be unique; listed more than once: {twice}")
        return items

    @property
    def disease(self) -> str:
        return self.algorithm.id

    @cached_property
    def criteria(self) -> list[Criterion]:
        """Every distinct criterion of the spec (branches, exclusions, sub-type codes), in order."""
        seen: dict[tuple, Criterion] = {}
        for c in self.all_criteria():
            seen.setdefault(c.key, c)
        return list(seen.values())

    def all_criteria(self) -> list[Criterion]:
        out: list[Criterion] = []
        for b in self.branches:
            out += [*b.all, *b.unless]
        out += [Criterion(codes=e.codes, exclude=e.exclude, positions=e.positions) for e in self.exclude_stays]
        out += [c for _, c in self.subtype_criteria()]
        return out

    def subtype_criteria(self) -> list[tuple[str, Criterion]]:
        """(type name, criterion) of the code-based sub-types that list codes."""
        if self.subtypes.by != "codes":
            return []
        return [
            (t.name, Criterion(codes=t.codes, positions=self.subtypes.positions))
            for t in self.subtypes.types
            if t.codes
        ]

    def criterion_index(self, criterion: Criterion) -> int:
        return next(i for i, c in enumerate(self.criteria) if c.key == criterion.key)


def prefixes_by_length(prefixes) -> list[tuple[int, list[str]]]:
    """Prefixes grouped by length, each group sorted: a code starts with one of them when its first
    *n* characters are in the group of length *n* (how every engine compiles a prefix test)."""
    groups: dict[int, set[str]] = {}
    for p in prefixes:
        groups.setdefault(len(p), set()).add(p)
    return [(n, sorted(ps)) for n, ps in sorted(groups.items())]
