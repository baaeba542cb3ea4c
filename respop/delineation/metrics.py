"""Quality of a delineation: per territory, overall, and the zones whose assignment is fragile.

The standard measures of a hospital-service-area delineation (Dartmouth Atlas; Hu, Wang & Xierali
2018; Wang & Wang 2021):

- **localization index** (LI) of a territory: share of its residents' stays that take place in
  hospital groups located in the territory (1 = its residents never leave it);
- **market share index** (MSI): share of the stays of the groups located in the territory that come
  from its own residents (1 = its hospitals only treat its residents);
- **compactness**: perimeter / (3.54 · √area) of the dissolved polygon — about 1 for a disc, 1.13
  for a square, larger for elongated or ragged shapes;
- **modularity** of the partition on the zone–group flow graph.

Every function takes an assignment (zone_code, territory_id), the :class:`FlowProblem` it was
fitted on and, for shapes, the zones' GeoDataFrame (zone_code, geometry, in a projected CRS in
metres; a geographic CRS is projected to its UTM zone for measuring).
"""

from __future__ import annotations

import math

import geopandas as gpd
import igraph as ig
import polars as pl
import shapely

from respop.delineation.base import FlowProblem

COMPACTNESS_FACTOR = 3.54
"""perimeter / (3.54·√area): 2·√π ≈ 3.545, so a disc scores 1."""

TERRITORY_METRIC_COLUMNS = [
    "territory_id", "population", "zones", "hospitals", "stays_residents",
    "localization_index", "market_share_index", "compactness", "area_km2",
]


def _assignment(assignment: pl.DataFrame) -> pl.DataFrame:
    return assignment.select(pl.col("zone_code").cast(pl.String), pl.col("territory_id").cast(pl.Int32))


def _group_territory(assignment: pl.DataFrame, problem: FlowProblem) -> pl.DataFrame:
    """group → territory_id of the zone it is located in (null when that zone is out of scope)."""
    return problem.groups.select("group", "zone_code").join(
        assignment, on="zone_code", how="left"
    ).select("group", pl.col("territory_id").alias("group_territory"))


def _flows_with_territories(assignment: pl.DataFrame, problem: FlowProblem) -> pl.DataFrame:
    """Flows with the residents' territory and the group's territory (null: outside every
    territory — a group located outside the scope, or unknown to ``problem.groups``)."""
    return (
        problem.flows.select("zone_code", "group", "stays")
        .join(assignment, on="zone_code", how="inner")
        .join(_group_territory(assignment, problem), on="group", how="left")
    )


def _measured(zones_gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """The zones in a CRS where lengths and areas are in metres."""
    if zones_gdf.crs is not None and zones_gdf.crs.is_geographic:
        return zones_gdf.to_crs(zones_gdf.estimate_utm_crs())
    return zones_gdf


def dissolve_territories(assignment: pl.DataFrame, zones_gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """One (Multi)Polygon per territory: territory_id, geometry, in the CRS of ``zones_gdf``.

    Zones of the assignment missing from ``zones_gdf`` are ignored (the territory keeps the shapes
    it has); a territory with no shape gets an empty geometry."""
    assignment = _assignment(assignment)
    mapping = dict(zip(assignment["zone_code"].to_list(), assignment["territory_id"].to_list(), strict=True))
    codes = zones_gdf["zone_code"].astype(str)
    keep = codes.isin(list(mapping)).to_numpy()
    geoms = zones_gdf.geometry.values[keep]
    terr = [mapping[c] for c in codes[keep]]
    by_terr: dict[int, list] = {}
    for t, g in zip(terr, geoms, strict=True):
        by_terr.setdefault(t, []).append(g)
    ids = sorted(set(mapping.values()))
    merged = []
    for t in ids:
        parts = by_terr.get(t)
        if not parts:
            merged.append(shapely.Polygon())
            continue
        union = shapely.union_all(shapely.make_valid(list(parts)))
        # keep surfaces only (make_valid / union can leave stray lines or points)
        if union.geom_type == "GeometryCollection":
            polys = [g for g in shapely.get_parts(union) if g.geom_type in ("Polygon", "MultiPolygon")]
            union = shapely.union_all(polys) if polys else shapely.Polygon()
        merged.append(union)
    return gpd.GeoDataFrame({"territory_id": ids}, geometry=merged, crs=zones_gdf.crs)


def _shape_metrics(dissolved: gpd.GeoDataFrame) -> pl.DataFrame:
    measured = _measured(dissolved)
    area = measured.geometry.area.to_numpy()
    perimeter = measured.geometry.length.to_numpy()
    compactness = [
        float(p / (COMPACTNESS_FACTOR * math.sqrt(a))) if a > 0 else None
        for p, a in zip(perimeter, area, strict=True)
    ]
    return pl.DataFrame(
        {
            "territory_id": pl.Series(dissolved["territory_id"].to_list(), dtype=pl.Int32),
            "compactness": pl.Series(compactness, dtype=pl.Float64),
            "area_km2": pl.Series(area / 1e6, dtype=pl.Float64),
        }
    )


def territory_metrics(
    assignment: pl.DataFrame, problem: FlowProblem, zones_gdf: gpd.GeoDataFrame
) -> pl.DataFrame:
    """One row per territory (sorted by territory_id):

    - ``territory_id``, ``population`` (sum over its zones), ``zones`` (count);
    - ``hospitals``: number of hospital groups located in it (``problem.groups``);
    - ``stays_residents``: stays of its residents, wherever they take place;
    - ``localization_index``: share of those stays that take place in groups located in the
      territory (null when its residents have no stay);
    - ``market_share_index``: share of the stays of its groups that come from its own residents.
      The flows only hold the residents of the problem's scope, so the MSI is computed within the
      scope: patients from outside it are not counted, and the MSI of a border territory whose
      hospitals also treat outsiders is higher than it would be on national flows. Null for a
      territory without a hospital group, or whose groups receive no stay;
    - ``compactness``: perimeter / (3.54 · √area) of the dissolved polygon (1 ≈ a disc, larger =
      less compact); ``area_km2``.
    """
    assignment = _assignment(assignment)
    base = (
        assignment.join(problem.zones.select("zone_code", "population"), on="zone_code", how="left")
        .group_by("territory_id")
        .agg(
            pl.col("population").fill_null(0).sum().cast(pl.Int64),
            pl.len().cast(pl.Int64).alias("zones"),
        )
    )
    hospitals = (
        _group_territory(assignment, problem)
        .drop_nulls("group_territory")
        .group_by("group_territory")
        .agg(pl.len().cast(pl.Int64).alias("hospitals"))
        .rename({"group_territory": "territory_id"})
    )
    f = _flows_with_territories(assignment, problem)
    internal = pl.col("territory_id") == pl.col("group_territory")
    residents = f.group_by("territory_id").agg(
        pl.col("stays").sum().cast(pl.Int64).alias("stays_residents"),
        pl.col("stays").filter(internal).sum().cast(pl.Int64).alias("_internal"),
    )
    received = (
        f.drop_nulls("group_territory")
        .group_by("group_territory")
        .agg(
            pl.col("stays").sum().cast(pl.Int64).alias("_received"),
            pl.col("stays").filter(internal).sum().cast(pl.Int64).alias("_received_own"),
        )
        .rename({"group_territory": "territory_id"})
    )
    shapes = _shape_metrics(dissolve_territories(assignment, zones_gdf))
    out = (
        base.join(hospitals, on="territory_id", how="left")
        .join(residents, on="territory_id", how="left")
        .join(received, on="territory_id", how="left")
        .join(shapes, on="territory_id", how="left")
        .with_columns(
            pl.col("hospitals", "stays_residents", "_internal").fill_null(0),
        )
        .with_columns(
            pl.when(pl.col("stays_residents") > 0)
            .then(pl.col("_internal") / pl.col("stays_residents"))
            .otherwise(None)
            .alias("localization_index"),
            pl.when(pl.col("_received") > 0)
            .then(pl.col("_received_own") / pl.col("_received"))
            .otherwise(None)
            .alias("market_share_index"),
        )
    )
    return out.select(TERRITORY_METRIC_COLUMNS).sort("territory_id")


def modularity(assignment: pl.DataFrame, problem: FlowProblem, resolution: float = 1.0) -> float:
    """Newman modularity of the partition on the weighted bipartite zone–group flow graph.

    Vertices: every zone of the assignment and every group that receives stays; edges: zone–group,
    weighted by stays. Each group takes the territory of the zone it is located in; a group located
    outside the scope (or unknown to ``problem.groups``) is a community of its own. Computed by
    igraph's ``Graph.modularity`` with the weights (the unipartite formula, as in the flow-network
    delineation literature). NaN when there is no flow."""
    assignment = _assignment(assignment)
    f = _flows_with_territories(assignment, problem)
    if f.is_empty():
        return float("nan")
    zones = assignment["zone_code"].to_list()
    zone_terr = assignment["territory_id"].to_list()
    groups = f.select("group", "group_territory").unique("group").sort("group")
    n_z = len(zones)
    zone_index = {z: i for i, z in enumerate(zones)}
    group_index = {g: n_z + i for i, g in enumerate(groups["group"].to_list())}
    membership = list(zone_terr)
    next_label = max(zone_terr) + 1
    for t in groups["group_territory"].to_list():
        if t is None:
            membership.append(next_label)
            next_label += 1
        else:
            membership.append(t)
    # igraph wants membership labels 0..k-1
    relabel = {lab: i for i, lab in enumerate(sorted(set(membership)))}
    membership = [relabel[m] for m in membership]
    edges = [
        (zone_index[z], group_index[g]) for z, g in zip(f["zone_code"].to_list(), f["group"].to_list(), strict=True)
    ]
    graph = ig.Graph(n=n_z + len(group_index), edges=edges, directed=False)
    return float(graph.modularity(membership, weights=f["stays"].cast(pl.Float64).to_list(), resolution=resolution))


def overall_metrics(assignment: pl.DataFrame, problem: FlowProblem, zones_gdf: gpd.GeoDataFrame) -> dict:
    """One summary of a delineation, as a dict:

    ``territories`` (count), ``mean_li``, ``min_li``, ``weighted_li`` (population-weighted mean
    LI), ``mean_msi``, ``mean_compactness``, ``modularity`` (see :func:`modularity`),
    ``min_population``. Means skip territories where the index is undefined (no stay, no group).
    """
    per = territory_metrics(assignment, problem, zones_gdf)
    li = per.drop_nulls("localization_index")
    weight = li["population"].sum()

    def _f(value) -> float:
        return float(value) if value is not None else float("nan")

    return {
        "territories": per.height,
        "mean_li": _f(li["localization_index"].mean()),
        "min_li": _f(li["localization_index"].min()),
        "weighted_li": _f((li["localization_index"] * li["population"]).sum() / weight) if weight > 0 else float("nan"),
        "mean_msi": _f(per["market_share_index"].mean()),
        "mean_compactness": _f(per["compactness"].mean()),
        "modularity": modularity(assignment, problem),
        "min_population": int(per["population"].min()) if per.height else 0,
    }


def zone_territory_shares(assignment: pl.DataFrame, problem: FlowProblem) -> pl.DataFrame:
    """zone_code, territory_id (of the groups), share of the zone's stays (all its stays, including
    those in groups outside every territory), for every territory that receives some."""
    assignment = _assignment(assignment)
    f = _flows_with_territories(assignment, problem)
    totals = f.group_by("zone_code").agg(pl.col("stays").sum().alias("zone_stays"))
    return (
        f.drop_nulls("group_territory")
        .group_by("zone_code", "group_territory")
        .agg(pl.col("stays").sum())
        .join(totals, on="zone_code")
        .select(
            "zone_code",
            pl.col("group_territory").alias("territory_id"),
            (pl.col("stays") / pl.col("zone_stays")).alias("share"),
        )
        .sort("zone_code", "territory_id")
    )


def fragile_zones(assignment: pl.DataFrame, problem: FlowProblem, threshold: float = 0.8) -> pl.DataFrame:
    """Zones whose assignment is fragile: another territory draws nearly as many (or more) of their
    residents' stays than the territory they are in — the list for experts to review by hand.

    For each zone, the share of its stays going to groups of each territory. Columns:

    - ``zone_code``, ``territory_id`` (the zone's territory), ``stays`` (all its residents' stays);
    - ``best_share``: share of its stays in its own territory's groups (the best choice according
      to the assignment);
    - ``second_territory_id``, ``second_share``: the other territory with the largest share;
    - ``ratio`` = second_share / best_share. Above 1 the zone is drawn more to another territory
      than to its own (the assignment followed contiguity or a merge, not the flows); infinite
      when none of its stays goes to its own territory.

    Only zones with ``ratio ≥ threshold`` are returned, by ratio descending (then zone code).
    Zones without stays in any territory are never fragile."""
    assignment = _assignment(assignment)
    shares = zone_territory_shares(assignment, problem)
    own = (
        assignment.join(shares, on=["zone_code", "territory_id"], how="left")
        .with_columns(pl.col("share").fill_null(0.0).alias("best_share"))
        .select("zone_code", "territory_id", "best_share")
    )
    others = (
        shares.join(assignment.rename({"territory_id": "own"}), on="zone_code")
        .filter(pl.col("territory_id") != pl.col("own"))
        .sort(["zone_code", "share", "territory_id"], descending=[False, True, False])
        .group_by("zone_code", maintain_order=True)
        .first()
        .select("zone_code", pl.col("territory_id").alias("second_territory_id"), pl.col("share").alias("second_share"))
    )
    stays = problem.flows.group_by("zone_code").agg(pl.col("stays").sum().cast(pl.Int64))
    out = (
        own.join(others, on="zone_code", how="inner")
        .join(stays, on="zone_code", how="left")
        .with_columns(
            pl.when(pl.col("best_share") > 0)
            .then(pl.col("second_share") / pl.col("best_share"))
            .otherwise(float("inf"))
            .alias("ratio")
        )
        .filter(pl.col("second_share") > 0, pl.col("ratio") >= threshold)
        .select(
            "zone_code", "territory_id", pl.col("stays").fill_null(0), "best_share",
            "second_territory_id", "second_share", "ratio",
        )
        .sort(["ratio", "zone_code"], descending=[True, False])
    )
    return out


def adjusted_rand(assignment: pl.DataFrame, truth: pl.DataFrame) -> float:
    """Adjusted Rand index between an assignment and a reference partition (both zone_code,
    territory_id), on the assignment's zones. Raises ValueError when the truth lacks some of
    them."""
    from sklearn.metrics import adjusted_rand_score

    a = _assignment(assignment)
    t = truth.select(pl.col("zone_code").cast(pl.String), pl.col("territory_id").alias("truth_id"))
    joined = a.join(t, on="zone_code", how="left")
    missing = joined.filter(pl.col("truth_id").is_null())["zone_code"].to_list()
    if missing:
        shown = ", ".join(missing[:20]) + (" …" if len(missing) > 20 else "")
        raise ValueError(f"{len(missing)} zones of the assignment are not in the truth: {shown}")
    return float(adjusted_rand_score(joined["truth_id"].to_list(), joined["territory_id"].to_list()))
