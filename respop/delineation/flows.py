"""Zone → hospital-group stay flows, and the :class:`FlowProblem` the methods are fitted on.

Flows are counted lazily from the canonical stays (``respop.pmsi``), with the filters of the
configuration: exit years, adults only, a disease (principal diagnosis prefixes) or a kind of stay
(medical, surgical). Séances are not stays (``PmsiData.stays`` keeps them apart). Hospitals can be
grouped before delineation: by establishment (FINESS), by town, or by a user table (e.g. a GHT).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import geopandas as gpd
import polars as pl
import numpy as np

from respop.delineation.base import FlowProblem
from respop.errors import InputError
from respop.pmsi.quality import residence_stays
from respop.geo import rook_pairs

Kind = Literal["all", "medical", "surgical"]


def flows(
    stays: pl.LazyFrame,
    years: Sequence[int] | None = None,
    adults_only: bool = False,
    diagnosis_prefixes: Sequence[str] | None = None,
    kind: Kind = "all",
    hospital_groups: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """Stays per (zone_code, group). ``hospital_groups`` maps hospital_id → group (default: the
    establishment itself)."""
    lf = residence_stays(stays)  # not a residence invalid or abroad, not an inter-hospital service
    if years:
        lf = lf.filter(pl.col("exit_date").dt.year().is_in(list(years)))
    if adults_only:
        lf = lf.filter(pl.col("age") >= 18)
    if diagnosis_prefixes:
        lf = lf.filter(pl.any_horizontal([pl.col("principal_diagnosis").str.starts_with(p) for p in diagnosis_prefixes]))
    if kind != "all":
        letter = "C" if kind == "surgical" else "M"
        lf = lf.filter(pl.col("ghm").str.slice(2, 1) == letter)
    lf = lf.select(pl.col("residence_zone").alias("zone_code"), "hospital_id")
    if hospital_groups is not None:
        lf = lf.join(hospital_groups.lazy().select("hospital_id", "group"), on="hospital_id", how="left").with_columns(
            pl.col("group").fill_null(pl.col("hospital_id"))
        )
    else:
        lf = lf.with_columns(pl.col("hospital_id").alias("group"))
    return (
        lf.group_by("zone_code", "group")
        .agg(pl.len().cast(pl.Int64).alias("stays"))
        .sort("zone_code", "group")
        .collect(engine="streaming")
    )


def rook_adjacency(zones: gpd.GeoDataFrame) -> pl.DataFrame:
    """zone_code, neighbour_code for zones sharing a border (both directions).

    Border lengths are measured in metres: zones in longitude/latitude are projected first."""
    if zones.crs is not None and zones.crs.is_geographic:
        zones = zones.to_crs(zones.estimate_utm_crs())
    left, right = rook_pairs(np.asarray(zones.geometry.values))
    codes = zones["zone_code"].to_numpy()
    a, b = codes[left], codes[right]
    return pl.DataFrame({"zone_code": list(a) + list(b), "neighbour_code": list(b) + list(a)}).sort(
        "zone_code", "neighbour_code"
    )


def hospital_grouping(
    hospitals: pl.DataFrame, how: Literal["establishment", "town"] | Path = "establishment"
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(hospital_id → group) and the groups' table (group, zone_code, name, and kinds when
    ``hospitals`` has a ``kind`` column: the distinct kinds of the group's hospitals, sorted).

    ``establishment``: each hospital is its own group, named by its town; ``town``: hospitals of
    one town form a group, located at the zone of its first hospital (by id); a path: a CSV or
    Parquet table with hospital_id and group, for a grouping such as the GHT."""
    mapping, groups = _grouping(hospitals, how)
    if "kind" not in hospitals.columns:
        return mapping, groups
    # a group holds every kind of its hospitals: a GHT with a CH and clinics is anchored by the CH
    kinds = (
        mapping.join(hospitals.select("hospital_id", pl.col("kind").cast(pl.String)), on="hospital_id")
        .group_by("group").agg(pl.col("kind").drop_nulls().unique().sort().alias("kinds"))
    )
    groups = groups.join(kinds, on="group", how="left").with_columns(
        pl.col("kinds").fill_null(pl.lit([], dtype=pl.List(pl.String))))
    return mapping, groups


def _grouping(
    hospitals: pl.DataFrame, how: Literal["establishment", "town"] | Path
) -> tuple[pl.DataFrame, pl.DataFrame]:
    if "town" not in hospitals.columns:
        if how == "town":
            raise InputError("hospital_grouping = \"town\" needs a town column in hospitals.parquet", None, column="town")
        # the town only names the territories: without it, a territory is named by its number
        # (establishments) or by its group (a grouping table)
        hospitals = hospitals.with_columns(pl.lit(None, dtype=pl.String).alias("town"))
    if how == "establishment":
        mapping = hospitals.select("hospital_id", pl.col("hospital_id").alias("group"))
        groups = hospitals.select(pl.col("hospital_id").alias("group"), "zone_code", pl.col("town").alias("name"))
        return mapping, groups
    if how == "town":
        mapping = hospitals.select("hospital_id", pl.col("town").alias("group"))
    else:
        path = Path(how)
        if not path.is_file():
            raise InputError("hospital grouping table not found", path)
        table = pl.read_parquet(path) if path.suffix == ".parquet" else pl.read_csv(path, infer_schema=False)
        for col in ("hospital_id", "group"):
            if col not in table.columns:
                raise InputError(f"hospital grouping table lacks the column {col}", path, column=col)
        mapping = table.select(pl.col("hospital_id").cast(pl.String), pl.col("group").cast(pl.String))
    first = hospitals.join(mapping, on="hospital_id").sort("hospital_id").group_by("group", maintain_order=True).first()
    groups = first.select("group", "zone_code", pl.col("town").fill_null(pl.col("group")).alias("name"))
    return mapping, groups


def build_problem(
    stays: pl.LazyFrame,
    zones: gpd.GeoDataFrame,
    population: pl.DataFrame,
    hospitals: pl.DataFrame,
    grouping: Literal["establishment", "town"] | Path = "establishment",
    scope: Sequence[str] | None = None,
    **flow_filters,
) -> FlowProblem:
    """Everything a method needs, for the zones of ``scope`` (all zones if None).

    ``population``: zone_code, population (summed if given by sex and age band); ``hospitals``:
    hospital_id, zone_code, town (optional), kind (optional: the groups then carry their kinds).
    Flows from residents of zones outside the scope are left out; flows to hospitals outside the
    scope stay (they lower the localization index, as they should).
    """
    if scope is not None:
        zones = zones[zones["zone_code"].isin(list(scope))]
    zones = zones.sort_values("zone_code").reset_index(drop=True)
    codes = zones["zone_code"].tolist()
    mapping, groups = hospital_grouping(hospitals, grouping)
    f = flows(stays, hospital_groups=mapping, **flow_filters).filter(pl.col("zone_code").is_in(codes))
    pop = (
        population.group_by("zone_code").agg(pl.col("population").sum().cast(pl.Int64))
        .join(pl.DataFrame({"zone_code": codes}), on="zone_code", how="right")
        .with_columns(pl.col("population").fill_null(0))
        .select("zone_code", "population")
        .sort("zone_code")
    )
    return FlowProblem(flows=f, zones=pop, adjacency=rook_adjacency(zones), groups=groups.sort("group"))
