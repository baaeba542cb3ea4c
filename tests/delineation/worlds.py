"""Small hand-made and random flow problems for the delineation tests."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import polars as pl
import shapely

from respop.delineation.base import FlowProblem
from respop.delineation.flows import rook_adjacency

SIDE = 1000.0
"""Side of a grid cell, in metres (rook neighbours share 1,000 m of border)."""


def code(r: int, c: int) -> str:
    return f"z{r}{c}"


def grid(rows: int, cols: int) -> gpd.GeoDataFrame:
    """Square zones z{row}{col}, row 0 at the top."""
    codes, geoms = [], []
    for r in range(rows):
        for c in range(cols):
            codes.append(code(r, c))
            geoms.append(shapely.box(c * SIDE, -(r + 1) * SIDE, (c + 1) * SIDE, -r * SIDE))
    return gpd.GeoDataFrame({"zone_code": codes}, geometry=geoms, crs="EPSG:2154")


def problem(
    zones: gpd.GeoDataFrame,
    flows: dict[tuple[str, str], int],
    hospitals: dict[str, str],
    population: dict[str, int] | None = None,
    default_population: int = 1000,
) -> FlowProblem:
    """A :class:`FlowProblem` from zone polygons, {(zone, group): stays}, {group: zone} and
    populations (``default_population`` for zones not listed)."""
    zones = zones.sort_values("zone_code").reset_index(drop=True)
    population = population or {}
    codes = zones["zone_code"].tolist()
    return FlowProblem(
        flows=pl.DataFrame(
            [(z, g, s) for (z, g), s in sorted(flows.items())],
            schema={"zone_code": pl.String, "group": pl.String, "stays": pl.Int64}, orient="row",
        ),
        zones=pl.DataFrame({"zone_code": codes, "population": [population.get(z, default_population) for z in codes]},
                           schema={"zone_code": pl.String, "population": pl.Int64}),
        adjacency=rook_adjacency(zones),
        groups=pl.DataFrame({"group": list(hospitals), "zone_code": list(hospitals.values()),
                             "name": list(hospitals)}, schema={"group": pl.String, "zone_code": pl.String,
                                                               "name": pl.String}).sort("group"),
    )


def labels(mapping: dict[str, int | None]) -> pl.DataFrame:
    return pl.DataFrame({"zone_code": list(mapping), "territory_id": list(mapping.values())},
                        schema={"zone_code": pl.String, "territory_id": pl.Int64})


def as_dict(df: pl.DataFrame) -> dict[str, int | None]:
    return dict(zip(df["zone_code"].to_list(), df["territory_id"].to_list()))


def from_rows(rows: list[str]) -> dict[str, int | None]:
    """Labels drawn as text: one string per grid row, one character per zone ('.': none)."""
    out: dict[str, int | None] = {}
    for r, line in enumerate(rows):
        for c, ch in enumerate(line.split()):
            out[code(r, c)] = None if ch == "." else int(ch)
    return out


def random_problem(rng: np.random.Generator, kind: str, size: int, n_groups: int, density: float,
                   unflowed_share: float) -> FlowProblem:
    """A random tiling (``grid``: about ``size`` squares; ``voronoi``: ``size`` random points),
    random positive flows, populations and hospital locations (at least one in the scope)."""
    if kind == "grid":
        rows = max(1, int(np.sqrt(size)))
        zones = grid(rows, max(1, size // rows))
    else:
        extent = 10_000.0
        pts = rng.uniform(0, extent, size=(size, 2))
        frame = shapely.box(0, 0, extent, extent)
        cells = shapely.voronoi_polygons(shapely.multipoints(pts), extend_to=frame)
        geoms = [g.intersection(frame) for g in shapely.get_parts(cells)]
        geoms = [g for g in geoms if g.area > 0]
        zones = gpd.GeoDataFrame({"zone_code": [f"v{i:03d}" for i in range(len(geoms))]}, geometry=geoms,
                                 crs="EPSG:2154")
    codes = sorted(zones["zone_code"])
    n = len(codes)
    groups = [f"g{j:02d}" for j in range(n_groups)]
    hospitals = {g: codes[rng.integers(n)] for g in groups}
    if n_groups > 1:  # some groups located outside the scope
        for g in groups[1:]:
            if rng.random() < 0.15:
                hospitals[g] = "outside"
    flowed = rng.random(n) >= unflowed_share
    flowed[rng.integers(n)] = True
    flows: dict[tuple[str, str], int] = {}
    targets = groups + ["unknown"]
    for i, z in enumerate(codes):
        if not flowed[i]:
            continue
        for g in targets:
            if rng.random() < density:
                flows[(z, g)] = int(rng.integers(1, 500))
        if not any(k[0] == z for k in flows):
            flows[(z, targets[rng.integers(len(targets))])] = int(rng.integers(1, 500))
    population = {z: int(rng.integers(0, 5000)) for z in codes}
    return problem(zones, flows, hospitals, population)
