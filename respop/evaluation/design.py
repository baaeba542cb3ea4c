"""The design of an evaluation, checked against the territory build and the data's years.

``[evaluation]`` names the pilots by territory id or name, each with the year its intervention
started; :func:`resolve_design` turns it into territory ids, checks that each pilot is a territory
of the build, that its start year is in the data with at least ``min_pre_years`` years before it,
and chooses the donor pool (every other territory by default, the listed ones otherwise, without
the pilots' neighbours when ``exclude_neighbours`` is set). Every problem is a
:class:`~respop.errors.ConfigError` that names the key, the value and what the build holds.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from respop.config import EvaluationConfig
from respop.errors import ConfigError


@dataclass(frozen=True)
class Design:
    """A checked design: ``pilots`` territory id → start year; ``donors`` the comparison pool;
    ``excluded`` territories left out of the pool, with the reason (French); ``years`` the data's
    years; ``outcomes`` (disease, outcome) pairs."""

    pilots: dict[int, int]
    donors: list[int]
    names: dict[int, str]
    years: list[int]
    outcomes: list[tuple[str, str]]
    excluded: dict[int, str] = field(default_factory=dict)

    def pre_years(self, territory: int) -> list[int]:
        return [y for y in self.years if y < self.pilots[territory]]

    def to_dict(self, min_pre_years: int, confidence: float, deprivation: bool) -> dict:
        return {
            "pilots": [
                {"territory_id": t, "territory_name": self.names[t], "start_year": s, "pre_years": len(self.pre_years(t))}
                for t, s in sorted(self.pilots.items())
            ],
            "donors": [{"territory_id": t, "territory_name": self.names[t]} for t in self.donors],
            "excluded": [{"territory_id": t, "territory_name": self.names[t], "reason": r} for t, r in sorted(self.excluded.items())],
            "outcomes": [{"disease": d, "outcome": o} for d, o in self.outcomes],
            "years": self.years,
            "min_pre_years": min_pre_years,
            "confidence": confidence,
            "deprivation": deprivation,
        }


def _territory(value: str, names: Mapping[int, str], key: str) -> int:
    """A territory named by its id or by its exact name."""
    by_name = {n: t for t, n in names.items()}
    text = value.strip()
    if text.lstrip("-").isdigit() and int(text) in names:
        return int(text)
    if text in by_name:
        return by_name[text]
    known = ", ".join(f"{t} ({names[t]})" for t in sorted(names))
    raise ConfigError(f"[evaluation] {key}: {value!r} is not a territory of the build; its territories: {known}")


def resolve_design(
    evaluation: EvaluationConfig,
    names: Mapping[int, str],
    years: Iterable[int],
    available: Mapping[str, list[str]],
    adjacency: Iterable[tuple[int, int]] = (),
) -> Design:
    """Check ``evaluation`` against the build (``names``: territory id → name), the data's years,
    the outcomes ``available`` per disease and the territories' adjacency (pairs of ids), and
    choose the donors (module docstring)."""
    years = sorted(set(years))
    if not years:
        raise ConfigError("[evaluation]: the run holds no year of cases to evaluate")
    if len(names) < 2:
        raise ConfigError("[evaluation]: the build has a single territory; an evaluation compares pilots with other territories")
    pilots: dict[int, int] = {}
    for key, start in evaluation.pilots.items():
        territory = _territory(key, names, f"pilots key {key!r}")
        if territory in pilots:
            raise ConfigError(f"[evaluation] pilots: territory {territory} ({names[territory]}) is named twice")
        if not years[0] < start <= years[-1]:
            raise ConfigError(
                f"[evaluation] pilots: the start year {start} of {key!r} is outside the data ({years[0]}–{years[-1]}): "
                "it must be after the first year and at most the last"
            )
        pre = [y for y in years if y < start]
        if len(pre) < evaluation.min_pre_years:
            raise ConfigError(
                f"[evaluation] pilots: {key!r} starts in {start}, with {len(pre)} year(s) of data before it "
                f"({', '.join(map(str, pre)) or 'none'}); min_pre_years = {evaluation.min_pre_years}: "
                "start later, add earlier years of data, or lower min_pre_years (docs/evaluation.md says why not below 3)"
            )
        pilots[territory] = start
    excluded: dict[int, str] = {}
    if evaluation.donors is not None:
        donors = []
        for value in evaluation.donors:
            territory = _territory(value, names, "donors")
            if territory in pilots:
                raise ConfigError(f"[evaluation] donors: {value!r} is a pilot; a pilot cannot be its own comparison")
            if territory not in donors:
                donors.append(territory)
    else:
        donors = [t for t in sorted(names) if t not in pilots]
    if evaluation.exclude_neighbours:
        neighbours = {b for a, b in adjacency if a in pilots} | {a for a, b in adjacency if b in pilots}
        for t in [d for d in donors if d in neighbours]:
            excluded[t] = "voisin d'un territoire pilote (effet de diffusion possible)"
        donors = [d for d in donors if d not in neighbours]
    if not donors:
        raise ConfigError(
            "[evaluation]: no comparison territory is left"
            + (" once the pilots' neighbours are left out (exclude_neighbours = true)" if evaluation.exclude_neighbours else "")
        )
    outcomes: list[tuple[str, str]] = []
    if evaluation.outcomes is None:
        outcomes = [(d, o) for d, names_ in available.items() for o in names_]
    else:
        for item in evaluation.outcomes:
            disease, outcome = item.split(".", 1)
            if disease not in available:
                raise ConfigError(f"[evaluation] outcomes: {item!r}: {disease!r} is not a disease of this run ({', '.join(available)})")
            if outcome not in available[disease]:
                raise ConfigError(
                    f"[evaluation] outcomes: {item!r}: no outcome {outcome!r} for {disease}; its outcomes: {', '.join(available[disease])}"
                )
            outcomes.append((disease, outcome))
    return Design(pilots=pilots, donors=sorted(donors), names=dict(names), years=years, outcomes=outcomes, excluded=excluded)
