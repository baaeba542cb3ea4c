"""The guarantees every delineation keeps, checked in code after every method.

1. Coverage and exclusivity: every zone of the scope in exactly one territory, no other zone.
2. Contiguity: every territory is connected under the rook adjacency.
3. Population: every territory has at least the minimum population.
4. Hospital: at least one hospital group is located in every territory.

:func:`violations` lists what is broken; :func:`check` raises a
:class:`~respop.delineation.base.DelineationError` naming the zones concerned.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from respop.delineation.problem import DelineationError, FlowProblem
from respop.delineation.graph import kept_parts, part_components, problem_index


@dataclass(frozen=True)
class Violation:
    """One broken guarantee: ``kind`` (missing, duplicated, outside, contiguity, population,
    hospital), a message, and the zones concerned."""

    kind: str
    message: str
    zones: tuple[str, ...]


def violations(assignment: pl.DataFrame, problem: FlowProblem, min_population: float = 0) -> list[Violation]:
    """Every broken guarantee of ``assignment`` (zone_code, territory_id) on ``problem``."""
    idx = problem_index(problem)
    df = assignment.select(pl.col("zone_code").cast(pl.String), pl.col("territory_id").cast(pl.Int64))
    out: list[Violation] = []

    def add(kind: str, message: str, zones) -> None:
        zones = tuple(sorted(set(zones)))
        if zones:
            out.append(Violation(kind, message, zones))

    scope = idx.zone_frame
    known = df.filter(pl.col("territory_id").is_not_null())
    add("missing", "zones of the scope without a territory",
        scope.join(known, on="zone_code", how="anti")["zone_code"].to_list())
    add("duplicated", "zones in more than one territory (or listed twice)",
        df.filter(pl.col("zone_code").is_duplicated())["zone_code"].to_list())
    add("outside", "zones not in the scope", df.join(scope, on="zone_code", how="anti")["zone_code"].to_list())

    first = known.unique("zone_code", keep="first", maintain_order=True).join(scope, on="zone_code")
    values, inverse = np.unique(first["territory_id"].to_numpy(), return_inverse=True)
    lab = np.full(idx.n, -1, dtype=np.int64)
    lab[first["pos"].to_numpy()] = inverse
    if len(values) == 0:
        return out
    codes = idx.codes

    comp = part_components(lab, idx)
    comp_label, kept, _ = kept_parts(lab, comp, idx)
    stray = (comp_label >= 0) & ~kept
    if stray.any():
        zones_stray = np.flatnonzero(stray[comp] & (lab >= 0))
        bad = np.unique(lab[zones_stray])
        add("contiguity",
            f"{len(bad)} territor{'y' if len(bad) == 1 else 'ies'} not contiguous "
            f"({', '.join(str(v) for v in values[bad][:10])}); zones of the smaller parts",
            codes[zones_stray].tolist())

    assigned = lab >= 0
    pop = np.bincount(lab[assigned], weights=idx.population[assigned], minlength=len(values))
    small = np.flatnonzero(pop < min_population)
    if len(small):
        add("population",
            f"{len(small)} territor{'y' if len(small) == 1 else 'ies'} under the minimum population "
            f"{min_population:g} ({', '.join(f'{values[t]}: {pop[t]:.0f}' for t in small[:10])})",
            codes[np.isin(lab, small)].tolist())

    loc_lab = lab[idx.group_zone[idx.located]]
    n_hosp = np.bincount(loc_lab[loc_lab >= 0], minlength=len(values))
    bare = np.flatnonzero(n_hosp == 0)
    if len(bare):
        add("hospital",
            f"{len(bare)} territor{'y' if len(bare) == 1 else 'ies'} without a hospital group located "
            f"in {'it' if len(bare) == 1 else 'them'} ({', '.join(str(v) for v in values[bare][:10])})",
            codes[np.isin(lab, bare)].tolist())
    return out


def check(assignment: pl.DataFrame, problem: FlowProblem, min_population: float = 0) -> None:
    """Raise :class:`DelineationError` if ``assignment`` breaks a guarantee. The message lists
    every broken guarantee; ``error.zones`` holds all zones concerned and ``error.violations``
    the :class:`Violation` list."""
    found = violations(assignment, problem, min_population)
    if not found:
        return
    message = "; ".join(f"{v.message} ({len(v.zones)} zone{'s' if len(v.zones) > 1 else ''}: "
                        f"{', '.join(v.zones[:10])}{' …' if len(v.zones) > 10 else ''})" for v in found)
    zones = sorted({z for v in found for z in v.zones})
    error = DelineationError(f"the delineation breaks its guarantees: {message}", zones)
    error.violations = found
    raise error
