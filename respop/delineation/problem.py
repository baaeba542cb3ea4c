"""The input of every delineation method (:class:`FlowProblem`) and the error a delineation that
breaks a guarantee raises (:class:`DelineationError`). Below the methods (:mod:`respop.delineation.base`),
the graph helpers and the guarantees, which all use them.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from respop.errors import RespopError


class DelineationError(RespopError):
    """A delineation breaks a guarantee (coverage, exclusivity, contiguity, population, hospital).

    ``zones`` lists the zone codes concerned.
    """

    def __init__(self, message: str, zones: list[str] | None = None):
        self.zones = sorted(zones or [])
        shown = ", ".join(self.zones[:20]) + (" …" if len(self.zones) > 20 else "")
        super().__init__(f"{message}" + (f": {shown}" if self.zones else ""))


@dataclass(frozen=True)
class FlowProblem:
    """The input of every method.

    ``flows``: zone_code (str), group (str: a hospital group id), stays (Int64 > 0) — residents of
    the zone hospitalised in the group's hospitals.
    ``zones``: zone_code, population (Int64) — every zone of the scope, with or without stays.
    ``adjacency``: zone_code, neighbour_code — rook contiguity, both directions, within the scope.
    ``groups``: group, zone_code (where the group's main hospital is), name (a readable French
    label, e.g. the town), and optionally kinds (list of strings: the kinds of the group's
    hospitals, CHU, CH, local, private; absent when the hospitals' table has no ``kind`` column).
    """

    flows: pl.DataFrame
    zones: pl.DataFrame
    adjacency: pl.DataFrame
    groups: pl.DataFrame

    @property
    def zone_codes(self) -> list[str]:
        return self.zones["zone_code"].to_list()
