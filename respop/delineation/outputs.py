"""What a delineation leaves on disk: names, tables, polygons and a map for reports.

Under ``<folder>/territories/``:

- ``zone_territory.parquet``: zone_code, territory_id, territory_name;
- ``territories.parquet``: GeoParquet, one dissolved (Multi)Polygon per territory with its name and
  the :func:`~respop.delineation.metrics.territory_metrics` columns, in the zones' CRS;
- ``metrics.csv``: the same table without geometry (UTF-8 with a byte-order mark so that a French
  spreadsheet shows the accents, ',' separator, '.' decimals);
- ``fragile_zones.csv``: zones whose second-best territory is close to their own, to review;
- ``map.png``: the map, drawn by :func:`render_map` (also used by the boards).
"""

from __future__ import annotations

import math
from pathlib import Path

import geopandas as gpd
import numpy as np
import polars as pl
import shapely
import shapely.affinity
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patheffects import withStroke

from respop.delineation.base import FlowProblem
from respop.delineation.metrics import (
    TERRITORY_METRIC_COLUMNS,
    dissolve_territories,
    fragile_zones,
    territory_metrics,
)

_VOWELS = set("aeiouyàâäéèêëîïôöùûüÿœæ")
_ASPIRATED_H = ("haut", "ham", "houilles", "hem")
"""Towns starting with an aspirated h take "de" (de Haute-Goulaine, de Ham); other h are treated as
mute (d'Hyères, d'Hazebrouck), as usage does for most French town names."""


def _de(town: str) -> str:
    """French "de <town>" with elision and contraction: d'Aubens, d'Hyères, du Mans, des Ponts,
    de La Rochelle, de Vitry."""
    town = town.strip()
    if town.startswith("Le "):
        return "du " + town[3:]
    if town.startswith("Les "):
        return "des " + town[4:]
    low = town.lower()
    if not low:
        return "de ?"
    if low[0] in _VOWELS:
        return "d'" + town
    if low[0] == "h" and not low.startswith(_ASPIRATED_H):
        return "d'" + town
    return "de " + town


def _departement(zone_code: str | None) -> str:
    """The département of a PMSI zone code (from its postcode: 2 characters, 3 overseas)."""
    if not zone_code:
        return "?"
    return zone_code[:3] if zone_code.startswith(("97", "98")) else zone_code[:2]


def territory_names(assignment: pl.DataFrame, main_group: pl.DataFrame, problem: FlowProblem) -> pl.DataFrame:
    """territory_id, territory_name — "Territoire de <town of its main group>".

    The town is the main group's ``name`` in ``problem.groups``. Homonyms get the département of
    the main group's zone in parentheses ("Territoire de Saint-Pierre (29)"), and a number after it
    if they share the département too. A territory without a main group, or whose main group has
    no name (hospitals.parquet without a town column), is "Territoire n° <id>"."""
    ids = assignment.select(pl.col("territory_id").cast(pl.Int32)).unique().sort("territory_id")
    info = ids.join(
        main_group.select(pl.col("territory_id").cast(pl.Int32), "group"), on="territory_id", how="left"
    ).join(problem.groups.select("group", "zone_code", "name"), on="group", how="left")
    rows = info.sort("territory_id").to_dicts()
    base = []
    for r in rows:
        name = r["name"]  # None: no town in hospitals.parquet
        base.append(f"Territoire {_de(str(name))}" if name else f"Territoire n° {r['territory_id']}")
    counts: dict[str, int] = {}
    for b in base:
        counts[b] = counts.get(b, 0) + 1
    with_dep = [
        f"{b} ({_departement(r['zone_code'])})" if counts[b] > 1 else b for b, r in zip(base, rows, strict=True)
    ]
    counts = {}
    for n in with_dep:
        counts[n] = counts.get(n, 0) + 1
    seen: dict[str, int] = {}
    final = []
    for n in with_dep:
        if counts[n] > 1:
            seen[n] = seen.get(n, 0) + 1
            final.append(n if seen[n] == 1 else f"{n} {seen[n]}")
        else:
            final.append(n)
    return pl.DataFrame(
        {"territory_id": pl.Series([r["territory_id"] for r in rows], dtype=pl.Int32), "territory_name": final}
    )


# --------------------------------------------------------------------------------------------- map

PALETTE = [
    "#8dd3c7", "#fdb462", "#bebada", "#fb8072", "#80b1d3", "#b3de69",
    "#fccde5", "#ffed6f", "#bc80bd", "#ccebc5", "#d9b38c", "#a6cee3",
]
"""Qualitative, light enough for black labels (ColorBrewer Set3 with the grey replaced)."""


def _territory_colours(territories: gpd.GeoDataFrame) -> dict[int, str]:
    """A colour per territory, neighbours always different: distinct colours while the palette
    lasts, otherwise a greedy colouring of the territories' adjacency (largest degree first)."""
    ids = [int(t) for t in territories["territory_id"]]
    if len(ids) <= len(PALETTE):
        return {t: PALETTE[i] for i, t in enumerate(ids)}
    geoms = territories.geometry.values
    tree = shapely.STRtree(geoms)
    left, right = tree.query(geoms, predicate="intersects")
    neighbours: dict[int, set[int]] = {i: set() for i in range(len(ids))}
    for a, b in zip(left, right, strict=True):
        if a != b:
            neighbours[int(a)].add(int(b))
            neighbours[int(b)].add(int(a))
    order = sorted(range(len(ids)), key=lambda i: (-len(neighbours[i]), ids[i]))
    colour: dict[int, int] = {}
    for i in order:
        used = {colour[j] for j in neighbours[i] if j in colour}
        # least-used free colour keeps the palette balanced
        free = [c for c in range(len(PALETTE)) if c not in used] or list(range(len(PALETTE)))
        counts = {c: sum(1 for v in colour.values() if v == c) for c in free}
        colour[i] = min(free, key=lambda c: (counts[c], c))
    return {ids[i]: PALETTE[colour[i]] for i in range(len(ids))}


def _label_points(territories: gpd.GeoDataFrame, avoid: np.ndarray) -> list[shapely.Point]:
    """Where each territory's name goes: inside its largest part, as far as possible from its
    border and from the hospital dots (``avoid``: n × 2 coordinates). Distances are measured with
    the x axis shrunk, since a label is about three times wider than tall."""
    squeeze = 0.4
    points = []
    for geom in territories.geometry.values:
        if geom is None or geom.is_empty:
            points.append(shapely.Point())
            continue
        largest = max(shapely.get_parts(geom), key=lambda g: g.area)
        scaled = shapely.affinity.scale(largest, xfact=squeeze, yfact=1.0, origin=(0, 0))
        x0, y0, x1, y1 = scaled.bounds
        gx, gy = (a.ravel() for a in np.meshgrid(np.linspace(x0, x1, 25), np.linspace(y0, y1, 25)))
        inside = shapely.contains_xy(scaled, gx, gy)
        if not inside.any():
            points.append(largest.representative_point())
            continue
        xy = np.column_stack([gx[inside], gy[inside]])
        score = shapely.distance(scaled.boundary, shapely.points(xy))
        if len(avoid):
            dots = np.column_stack([avoid[:, 0] * squeeze, avoid[:, 1]])
            dots = dots[(dots[:, 0] >= x0) & (dots[:, 0] <= x1) & (dots[:, 1] >= y0) & (dots[:, 1] <= y1)]
            if len(dots):
                d = np.sqrt(((xy[:, None, :] - dots[None, :, :]) ** 2).sum(axis=2)).min(axis=1)
                score = np.minimum(score, 1.6 * d)
        bx, by = xy[int(np.argmax(score))]
        points.append(shapely.Point(bx / squeeze, by))
    return points


def _label_text(name: str, compact: bool) -> str:
    """'Territoire de X' on two lines ('Territoire' / 'de X'); with ``compact`` (many territories
    on one map), the town alone: 'X' ('du Mans' → 'Le Mans')."""
    if compact:
        for prefix, restore in (("Territoire d'", ""), ("Territoire de ", ""), ("Territoire du ", "Le "),
                                ("Territoire des ", "Les ")):
            if name.startswith(prefix):
                return restore + name[len(prefix):]
        return name
    if name.startswith("Territoire ") and len(name) > 18:
        return "Territoire\n" + name[len("Territoire "):]
    return name


def _nice(value: float) -> float:
    """A round number (1, 2, 5 × 10^k) not above value."""
    if value <= 0:
        return 0.0
    exp = math.floor(math.log10(value))
    for m in (5, 2, 1):
        if m * 10**exp <= value:
            return float(m * 10**exp)
    return float(10**exp)


def _fr(x: float, digits: int = 2) -> str:
    """A decimal number the French way: 0,76."""
    return f"{x:.{digits}f}".replace(".", ",")


def _fr_int(n: float) -> str:
    """An integer the French way: 300 000 (narrow no-break space)."""
    return f"{int(round(n)):,}".replace(",", "\u202f")


def render_map(
    territories: gpd.GeoDataFrame,
    zones: gpd.GeoDataFrame,
    hospitals: gpd.GeoDataFrame | None = None,
    title: str = "Territoires de santé",
    caption: str | None = None,
    label_column: str | None = "territory_name",
    figsize: tuple[float, float] = (16, 12),
    dpi: int = 100,
) -> Figure:
    """A map of territories for reports and boards; returns a matplotlib Figure (no pyplot, no
    display needed: save it with ``fig.savefig`` or hand it to ``st.pyplot``).

    ``territories``: one row per territory (territory_id, geometry, and ``label_column`` for the
    labels, if present); ``zones``: zone_code, territory_id, geometry (same CRS); ``hospitals``:
    points with a ``stays`` column (dot area proportional to it). Zones are filled with a
    qualitative palette (neighbouring territories never share a colour), territory borders are
    thick, zone borders thin; names are placed inside each territory, away from its border and
    from the dots; the legend sits under the map and ``caption`` under it. The default size is
    1600×1200 px at 100 dpi."""
    fig = Figure(figsize=figsize, dpi=dpi, facecolor="white")
    ax = fig.add_axes((0.02, 0.14, 0.96, 0.77))
    ax.set_axis_off()
    ax.set_aspect("equal")
    colours = _territory_colours(territories)
    zone_colours = [
        colours.get(int(t), "#eeeeee") if t is not None and t == t else "#eeeeee" for t in zones["territory_id"]
    ]
    zones.plot(ax=ax, color=zone_colours, edgecolor="white", linewidth=0.6, zorder=1)
    territories.boundary.plot(ax=ax, color="#2b2b2b", linewidth=2.6, zorder=3)

    n = len(territories)
    fontsize = float(np.clip(18.0 * math.sqrt(8.0 / max(n, 1)), 6.0, 18.0))
    handles: list = [Line2D([], [], color="#2b2b2b", linewidth=2.6, label="Limite de territoire")]

    xy = np.empty((0, 2))
    if hospitals is not None and len(hospitals):
        stays = hospitals["stays"].to_numpy(dtype=float) if "stays" in hospitals else np.ones(len(hospitals))
        top = max(float(stays.max()), 1.0)
        max_size = 600.0 if n <= 30 else 200.0
        xy = shapely.get_coordinates(hospitals.geometry.values)
        ax.scatter(xy[:, 0], xy[:, 1], s=20.0 + max_size * stays / top, color="#1f1f1f", edgecolor="white",
                   linewidth=1.2, alpha=0.85, zorder=4)
        for v in sorted({_nice(top), _nice(top / 5), _nice(top / 25)} - {0.0}, reverse=True):
            handles.append(Line2D([], [], linestyle="", marker="o", markersize=math.sqrt(20.0 + max_size * v / top),
                                  markerfacecolor="#1f1f1f", markeredgecolor="white", alpha=0.85,
                                  label=f"établissement, {_fr_int(v)} séjours"))

    if label_column and label_column in territories:
        halo = [withStroke(linewidth=max(2.0, fontsize / 4), foreground="white")]
        for p, name in zip(_label_points(territories, xy), territories[label_column], strict=True):
            if not p.is_empty:
                ax.text(p.x, p.y, _label_text(str(name), compact=n > 40), ha="center", va="center", fontsize=fontsize,
                        fontweight="bold", color="#111111", path_effects=halo, zorder=5, linespacing=1.1)

    _scale_bar(ax, territories)
    fig.legend(handles=handles, loc="lower center", bbox_to_anchor=(0.5, 0.06), ncol=len(handles),
               frameon=False, fontsize=14, handletextpad=0.5, columnspacing=2.5)
    fig.suptitle(title, fontsize=26, fontweight="bold", y=0.965)
    if caption:
        fig.text(0.5, 0.025, caption, fontsize=15, color="#333333", ha="center", va="bottom")
    return fig


def _scale_bar(ax, territories: gpd.GeoDataFrame) -> None:
    """A km scale bar under the bottom right corner, when the CRS is in metres."""
    crs = territories.crs
    if crs is None or crs.is_geographic or len(territories) == 0:
        return
    x0, y0, x1, y1 = territories.total_bounds
    length = _nice((x1 - x0) / 5.0)
    if length <= 0:
        return
    yb = y0 - (y1 - y0) * 0.025
    ax.plot([x1 - length, x1], [yb, yb], color="#111111", linewidth=4, solid_capstyle="butt", zorder=6)
    km = length / 1000.0
    label = f"{_fr_int(km)} km" if km >= 1 else f"{_fr_int(length)} m"
    ax.text(x1 - length / 2, yb - (y1 - y0) * 0.01, label, ha="center", va="top", fontsize=13, zorder=6)


# ----------------------------------------------------------------------------------------- outputs


def hospital_points(problem: FlowProblem, zones_gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """group, name, stays (received, within the scope), a point in the zone it is located in.

    Several groups of one zone are spread on a small circle around the zone's representative point
    so that each dot shows. Groups located outside ``zones_gdf`` are left out."""
    received = problem.flows.group_by("group").agg(pl.col("stays").sum().cast(pl.Int64))
    groups = (
        problem.groups.select("group", "zone_code", "name")
        .join(received, on="group", how="left")
        .with_columns(pl.col("stays").fill_null(0))
        .sort("zone_code", "group")
    )
    codes = zones_gdf["zone_code"].astype(str).to_numpy()
    where = {c: i for i, c in enumerate(codes)}
    points, rows = [], []
    for zone, members in groups.group_by("zone_code", maintain_order=True):
        code = zone[0]
        if code not in where:
            continue
        poly = zones_gdf.geometry.values[where[code]]
        centre = poly.representative_point()
        radius = 0.18 * math.sqrt(poly.area) if members.height > 1 else 0.0
        for k, r in enumerate(members.iter_rows(named=True)):
            angle = 2 * math.pi * k / members.height
            p = shapely.Point(centre.x + radius * math.cos(angle), centre.y + radius * math.sin(angle))
            if not poly.contains(p):
                p = centre
            points.append(p)
            rows.append(r)
    frame = pl.DataFrame(rows, schema=groups.schema) if rows else groups.clear()
    return gpd.GeoDataFrame(frame.to_pandas(), geometry=points, crs=zones_gdf.crs)


def write_outputs(
    folder: str | Path,
    assignment: pl.DataFrame,
    main_group: pl.DataFrame,
    problem: FlowProblem,
    zones_gdf: gpd.GeoDataFrame,
    method_name: str,
) -> dict[str, Path]:
    """Write the territory outputs under ``folder/territories/`` and return their paths, keyed
    zone_territory, territories, metrics, fragile_zones, map, flows."""
    out = Path(folder) / "territories"
    out.mkdir(parents=True, exist_ok=True)
    assignment = assignment.select(pl.col("zone_code").cast(pl.String), pl.col("territory_id").cast(pl.Int32))
    names = territory_names(assignment, main_group, problem)
    metrics = territory_metrics(assignment, problem, zones_gdf).join(names, on="territory_id", how="left")
    metrics = metrics.select("territory_id", "territory_name", *TERRITORY_METRIC_COLUMNS[1:])
    paths = {
        "zone_territory": out / "zone_territory.parquet",
        "territories": out / "territories.parquet",
        "metrics": out / "metrics.csv",
        "fragile_zones": out / "fragile_zones.csv",
        "map": out / "map.png",
        "flows": out / "flows.parquet",
    }

    zone_territory = assignment.join(names, on="territory_id", how="left").sort("zone_code")
    zone_territory.write_parquet(paths["zone_territory"])
    # the flows the territories were built from (zone → hospital group stay counts, aggregated):
    # the store publishes them per territory of residence, small counts masked
    problem.flows.join(
        problem.groups.select("group", pl.col("zone_code").alias("group_zone"), pl.col("name").alias("group_name")),
        on="group", how="left",
    ).select("zone_code", "group", "group_name", "group_zone", "stays").sort("zone_code", "group").write_parquet(
        paths["flows"]
    )

    dissolved = dissolve_territories(assignment, zones_gdf)
    table = metrics.to_pandas()
    territories = gpd.GeoDataFrame(
        table, geometry=dissolved.set_index("territory_id").geometry.reindex(table["territory_id"]).values,
        crs=zones_gdf.crs,
    )
    territories.to_parquet(paths["territories"], index=False)

    rounded = metrics.with_columns(
        pl.col("localization_index", "market_share_index", "compactness").round(4),
        pl.col("area_km2").round(2),
    )
    rounded.write_csv(paths["metrics"], include_bom=True)

    fragile = fragile_zones(assignment, problem).join(names, on="territory_id", how="left").join(
        names.rename({"territory_id": "second_territory_id", "territory_name": "second_territory_name"}),
        on="second_territory_id", how="left",
    )
    fragile.select(
        "zone_code", "territory_id", "territory_name", "stays", pl.col("best_share").round(4),
        "second_territory_id", "second_territory_name", pl.col("second_share").round(4), pl.col("ratio").round(4),
    ).write_csv(paths["fragile_zones"], include_bom=True)

    zones_map = zones_gdf[["zone_code", zones_gdf.geometry.name]].copy()
    mapping = dict(zip(assignment["zone_code"].to_list(), assignment["territory_id"].to_list(), strict=True))
    zones_map["territory_id"] = zones_map["zone_code"].astype(str).map(mapping)
    zones_map = zones_map[zones_map["territory_id"].notna()]
    li = metrics["localization_index"].mean()
    caption = (
        f"{len(territories)} territoires · {_fr_int(len(zones_map))} zones PMSI · "
        f"{_fr_int(metrics['population'].sum())} habitants · indice de localisation moyen "
        f"{_fr(li) if li is not None else 'n.d.'}"
    )
    fig = render_map(
        territories, zones_map, hospital_points(problem, zones_gdf),
        title=f"Territoires de santé — méthode {method_name}", caption=caption,
    )
    fig.savefig(paths["map"], dpi=100, facecolor="white")
    return paths
