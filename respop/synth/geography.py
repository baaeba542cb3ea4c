"""Geography of the synthetic world and the hospital-choice (gravity) model.

:func:`make_world` builds, from a :class:`~respop.synth.profiles.GeographyProfile` and a random
generator, a rectangular region of Lambert-93 coordinates tiled by PMSI-like geographic zones
(Voronoi cells of jittered points, denser around towns), grouped in contiguous départements,
with a population by sex and five-year age band, hospitals with FINESS-like numbers and
*planted* health territories: one hub hospital per territory placed in a large town, every zone
attached to the hub that is nearest along the contiguity graph, so that each territory is
contiguous and contains its hub.

:func:`hospital_choice` gives, for a resident of each zone, the probability that a stay takes
place in each hospital: a gravity model (attractiveness, distance decay, loyalty to the hospitals
of the zone's own planted territory), plus referrals to the CHU(s) and a share of stays far from
home. The flows carry the planted territories without making them trivial, which is what the
territory-recovery stage of the pipeline is benchmarked on.

:func:`write_reference` writes what the pipeline may read (zones, population, hospitals, towns);
:func:`write_truth` writes what only tests and benchmarks read (the planted territories).

Everything is deterministic for a profile and a seeded generator. Loops run over territories,
hospitals or zones only, never over persons or stays.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import polars as pl
import shapely
from scipy import sparse
from scipy.sparse.csgraph import dijkstra

from respop.geo import rook_pairs
from respop.resources import data_path
from respop.synth.profiles import AGE_BANDS, GeographyProfile

# ---------------------------------------------------------------------------------------------
# Constants (parameters of the world that the profile does not carry)
# ---------------------------------------------------------------------------------------------

CRS = "EPSG:2154"
"""Coordinate reference system of the zones and hospitals: RGF93 / Lambert-93, in metres."""

CENTRE_X = 700_000.0
"""Lambert-93 x (metres) of the centre of the region's rectangle (inside France at every size)."""

CENTRE_Y = 6_600_000.0
"""Lambert-93 y (metres) of the centre of the region's rectangle (national: y 6,125 to 7,075 km)."""

SKIPPED_DEPARTEMENTS: frozenset[int] = frozenset({20})
"""Département numbers never used: 20 (Corsica, coded 2A/2B)."""

MAX_DEPARTEMENT = 95
"""Highest département number of metropolitan France."""

URBAN_PEAK = 60.0
"""Population weight of the core of the largest town relative to a rural zone (before noise);
the smallest towns peak at a quarter of it."""

URBAN_CORE_RADIUS = 0.35
"""Radius (standard deviation, in typical zone sides) of the population peak of a town's core."""

URBAN_SUBURB_WEIGHT = 0.25
"""Height of a town's broader suburban population bump, relative to its core peak."""

ZONE_POPULATION_SIGMA = 0.5
"""Standard deviation of the log-normal noise on zone population weights."""

URBAN_CONTRACTION = (0.3, 0.3)
"""Zone seeds are pulled towards each town by ``a + b * size`` (size in (0, 1]), so that urban
zones are smaller (denser) than rural ones."""

ATTRACTIVENESS: dict[str, float] = {"CHU": 6.0, "CH": 3.0, "private": 1.5, "local": 0.7}
"""Mean attractiveness of each kind of hospital in the gravity model."""

ATTRACTIVENESS_NOISE = 0.3
"""Attractiveness is multiplied by a uniform factor in [1 - noise, 1 + noise]."""

EMERGENCY_PROBABILITY: dict[str, float] = {"CHU": 1.0, "CH": 1.0, "local": 0.75, "private": 0.3}
"""Probability that a hospital of each kind has an emergency department."""

CHU_REFERRAL_DECAY_FACTOR = 4.0
"""Referrals to a CHU decay with distance on a scale this many times ``distance_decay_km``."""

KINDS: tuple[str, ...] = ("CHU", "CH", "local", "private")
"""Kinds of hospitals."""

# Population of metropolitan France by sex and five-year age band (thousands, INSEE-like, about
# 2023), in AGE_BANDS order. About 18% are under 15 and 21% aged 65 or more.
_PYRAMID_MALE = (1850, 2070, 2230, 2120, 1960, 1870, 1960, 2080, 2060, 2150, 2220, 2170, 2030,
                 1860, 1700, 1220, 830, 730)
_PYRAMID_FEMALE = (1770, 1980, 2130, 2030, 1900, 1900, 2030, 2160, 2100, 2180, 2280, 2290, 2170,
                   2050, 1950, 1470, 1110, 1460)
BASE_PYRAMID = np.array([_PYRAMID_MALE, _PYRAMID_FEMALE], dtype=float).T / (
    sum(_PYRAMID_MALE) + sum(_PYRAMID_FEMALE))
"""Shares of the population by age band (rows, AGE_BANDS order) and sex (columns: male, female)."""

AGE_TILT_URBAN = 0.12
"""How much younger urban zones are: the age pyramid is tilted by exp(-this * urbanness * age score)."""

AGE_TILT_NOISE = 0.06
"""Zone-level random tilt of the age pyramid (standard deviation)."""

AGE_CELL_NOISE = 0.04
"""Random noise of each zone x band x sex share (standard deviation of the log factor)."""

# ---------------------------------------------------------------------------------------------
# French names
# ---------------------------------------------------------------------------------------------

_ROOTS = (
    "Beau", "Mont", "Roche", "Font", "Bois", "Val", "Clair", "Belle", "Champ", "Pont", "Mar",
    "Sau", "Ver", "Bour", "Neuf", "Aub", "Cour", "Lav", "Mor", "Cha", "Ber", "Ros", "Tour", "Gre",
    "Lu", "Vi", "Bri", "Cler", "Dam", "Esp", "Fla", "Gan", "Hau", "Join", "Lan", "Mer", "Nan",
    "Or", "Pra", "Quin", "Ri", "Sen", "Ter", "Vau", "Vil", "Cor", "Sa", "Mé", "Bel", "Brion",
    "Cam", "Dou", "Ger", "Jus", "Lor", "Mau", "Noir", "Pé", "Ro", "Sé", "Tor", "Vier", "Al",
    "Ar", "Au", "Ai", "Char", "Cro", "Mon", "Pier", "Rou", "Sar", "Tri", "Val", "Ven",
)
_SUFFIXES = (
    "ville", "court", "ac", "an", "ay", "y", "ières", "eux", "ange", "ois", "ard", "oux", "igny",
    "euil", "mont", "fort", "bourg", "lieu", "val", "ette", "on", "ol", "in", "ès", "at", "ieu",
    "é", "argues", "ens", "ouse", "ogne", "ainville", "ancourt", "ecourt", "iers", "oles", "un",
    "ure", "enay", "elles", "ey", "ian", "oire", "ade",
)
_PLURAL_SUFFIXES = frozenset({"ières", "argues", "oles", "elles", "iers", "ens"})
_SAINTS = (
    "Saint-Martin", "Saint-Germain", "Saint-Pierre", "Saint-Jean", "Saint-Laurent", "Saint-Denis",
    "Saint-Étienne", "Saint-Georges", "Saint-Julien", "Saint-Florentin", "Saint-Amand",
    "Saint-Aubin", "Saint-Rémy", "Saint-Hilaire", "Saint-Vincent", "Saint-Sauveur", "Saint-Loup",
    "Saint-Léger", "Saint-Médard", "Saint-Cyr", "Sainte-Marie", "Sainte-Colombe",
    "Sainte-Geneviève", "Sainte-Foy", "Sainte-Croix", "Sainte-Anne", "Sainte-Marguerite",
)
_RIVERS = (
    "Loire", "Marne", "Saône", "Seine", "Yonne", "Aube", "Vienne", "Cher", "Indre", "Allier",
    "Oise", "Meuse", "Orne", "Dordogne", "Lot", "Tarn", "Rhône", "Isère", "Durance", "Garonne",
    "Vire", "Sarthe", "Mayenne", "Creuse", "Ource", "Armançon", "Serein", "Cure", "Ain", "Doubs",
)
_PAYS = ("Bresse", "Auxois", "Othe", "Brie", "Champagne", "Gâtinais", "Morvan", "Argonne",
         "Forez", "Vexin", "Perche", "Bocage")
_QUALIFIERS = ("-le-Château", "-la-Forêt", "-les-Bains", "-le-Vieux", "-le-Grand",
               "-la-Rivière", "-aux-Bois", "-sous-Bois", "-les-Vignes", "-la-Ville")
_CLINICS = (
    "Saint-Joseph", "Sainte-Marie", "Saint-Vincent", "Pasteur", "Sainte-Anne", "Saint-Martin",
    "du Parc", "des Cèdres", "Saint-Jean", "Saint-Augustin", "Sainte-Thérèse", "Jeanne-d'Arc",
    "Ambroise-Paré", "Claude-Bernard", "des Lilas", "du Val", "Saint-Roch", "Saint-Louis",
    "Bon-Secours", "des Tilleuls", "de l'Europe", "Saint-Charles", "Sainte-Odile",
    "des Peupliers", "Saint-Côme", "Montplaisir", "des Cigognes", "de la Source",
)
_VOWELS = set("AEIOUYÂÊÎÔÛÉÈËÏaeiouyâêîôûéèëï")


def _de(town: str) -> str:
    """French "de <town>" with elision and contraction: d'Aubrac, du Mans, des Ponts, de Vitry."""
    if town.startswith("Le "):
        return "du " + town[3:]
    if town.startswith("Les "):
        return "des " + town[4:]
    if town[0] in _VOWELS:
        return "d'" + town
    return "de " + town


def _town_name(rng: np.random.Generator) -> str:
    """One French-sounding town name (Beaurac, Montville-sur-Loire, Saint-Loup-en-Brie, Le Valois)."""
    if rng.random() < 0.12:
        base = _SAINTS[rng.integers(len(_SAINTS))]
    else:
        root = _ROOTS[rng.integers(len(_ROOTS))]
        suffix = _SUFFIXES[rng.integers(len(_SUFFIXES))]
        if root[-1] in _VOWELS and suffix[0] in _VOWELS:
            root += "rlns"[rng.integers(4)]
        elif root[-1] == suffix[0]:
            suffix = suffix[1:] or suffix
        base = root + suffix
        if rng.random() < 0.04:
            base = ("Les " if suffix in _PLURAL_SUFFIXES else "Le ") + base
    u = rng.random()
    if u < 0.12:
        base += "-sur-" + _RIVERS[rng.integers(len(_RIVERS))]
    elif u < 0.17:
        base += "-en-" + _PAYS[rng.integers(len(_PAYS))]
    elif u < 0.25:
        base += _QUALIFIERS[rng.integers(len(_QUALIFIERS))]
    return base


def _town_names(n: int, rng: np.random.Generator) -> list[str]:
    """``n`` distinct town names."""
    names: list[str] = []
    seen: set[str] = set()
    while len(names) < n:
        name = _town_name(rng)
        if name not in seen:
            seen.add(name)
            names.append(name)
    return names


# ---------------------------------------------------------------------------------------------
# The world
# ---------------------------------------------------------------------------------------------


@dataclass
class World:
    """The synthetic region: zones, population, contiguity, hospitals and planted territories.

    Attributes:
        zones: one row per zone, sorted by ``zone_code``: zone_code (5 characters: 2-digit
            département + 3 digits), departement (2 characters), territory_id (the planted true
            territory, 1..T), x, y (centroid, Lambert-93 metres), population (total), geometry
            (Polygon); CRS EPSG:2154.
        population: zone_code, sex (Int8: 1 male, 2 female), age_band (AGE_BANDS labels),
            population (Int64), summing to each zone's total.
        adjacency: zone_code, neighbour_code, both directions, rook contiguity.
        hospitals: hospital_id (9-character FINESS-like), name, town, zone_code, kind (CHU, CH,
            local, private), has_emergency, territory_id (planted), attractiveness, x, y;
            sorted by hospital_id.
        territories: territory_id, name, hub_hospital_id.
        towns: zone_code, town (one distinct town name per zone).
    """

    zones: gpd.GeoDataFrame
    population: pl.DataFrame
    adjacency: pl.DataFrame
    hospitals: pl.DataFrame
    territories: pl.DataFrame
    towns: pl.DataFrame


def _departement_codes(profile: GeographyProfile) -> list[str]:
    """Consecutive département codes from ``first_departement``, skipping 20 (Corsica)."""
    codes: list[str] = []
    number = profile.first_departement
    while len(codes) < profile.departements:
        if number > MAX_DEPARTEMENT:
            raise ValueError(
                f"{profile.departements} départements from {profile.first_departement:02d} "
                f"(skipping 20) go past {MAX_DEPARTEMENT}"
            )
        if number not in SKIPPED_DEPARTEMENTS:
            codes.append(f"{number:02d}")
        number += 1
    return codes


def _kmeans(points: np.ndarray, k: int, rng: np.random.Generator,
            weights: np.ndarray | None = None, iterations: int = 40) -> np.ndarray:
    """Deterministic weighted Lloyd k-means (numpy only); returns the ``k`` centres."""
    w = np.ones(len(points)) if weights is None else weights
    centres = points[rng.choice(len(points), size=k, replace=False)].copy()
    for _ in range(iterations):
        d2 = ((points[:, None, :] - centres[None, :, :]) ** 2).sum(axis=2)
        label = d2.argmin(axis=1)
        mass = np.bincount(label, weights=w, minlength=k)
        sx = np.bincount(label, weights=w * points[:, 0], minlength=k)
        sy = np.bincount(label, weights=w * points[:, 1], minlength=k)
        filled = mass > 0
        new = centres.copy()
        new[filled, 0] = sx[filled] / mass[filled]
        new[filled, 1] = sy[filled] / mass[filled]
        if np.allclose(new, centres):
            break
        centres = new
    return centres


def _jittered_grid(n: int, width: float, height: float, rng: np.random.Generator) -> np.ndarray:
    """``n`` well-spread points in [0, width] x [0, height]: jittered centres of grid cells."""
    nx = max(1, math.ceil(math.sqrt(n * width / height)))
    ny = math.ceil(n / nx)
    cells = np.sort(rng.choice(nx * ny, size=n, replace=False))
    ix, iy = cells % nx, cells // nx
    jitter = rng.uniform(-0.4, 0.4, size=(n, 2))
    return np.column_stack([(ix + 0.5 + jitter[:, 0]) * width / nx,
                            (iy + 0.5 + jitter[:, 1]) * height / ny])


def _reading_order(x: np.ndarray, y: np.ndarray, row_height: float) -> np.ndarray:
    """Indices sorting points by rows from north to south, then west to east in each row."""
    row = np.floor((y.max() - y) / row_height).astype(np.int64)
    return np.lexsort((x, row))


def _grow_regions(graph: sparse.csr_matrix, seeds: np.ndarray,
                  handicap: np.ndarray | None = None) -> np.ndarray:
    """Label every node with the index (in ``seeds``) of its nearest seed along the graph.

    Multi-source Dijkstra; labels follow the shortest-path forest, so each region is connected
    and contains its seed (even with ties). ``handicap``: a distance added to every path from
    each seed (additively weighted regions: a larger handicap, a smaller region); each must be
    below the seed's graph distance to every other seed so that it keeps its own node.
    """
    if handicap is not None:
        n = graph.shape[0]
        k = len(seeds)
        coo = graph.tocoo()
        rows = np.r_[coo.row, np.full(k, n)]
        cols = np.r_[coo.col, seeds]
        data = np.r_[coo.data, np.maximum(handicap, 0.0) + 1e-9]  # a zero weight would be no edge
        extended = sparse.coo_matrix((data, (rows, cols)), shape=(n + 1, n + 1)).tocsr()
        _, pred = dijkstra(extended, directed=True, indices=n, return_predecessors=True)
        node = np.arange(n)
        while True:
            up = pred[node]
            climb = up != n
            if not climb.any():
                break
            node = np.where(climb, up, node)
        label = np.full(n, -1, dtype=np.int64)
        label[seeds] = np.arange(k)
        out = label[node]
        if (out < 0).any():
            raise RuntimeError("a seed lost its own node: handicap too large")
        return out
    _, predecessors, _ = dijkstra(graph, directed=False, indices=seeds, min_only=True,
                                  return_predecessors=True)
    root = np.arange(graph.shape[0])
    parent = predecessors.copy()
    while True:
        has_parent = parent[root] >= 0
        if not has_parent.any():
            break
        root = np.where(has_parent, parent[root], root)
    label = np.full(graph.shape[0], -1, dtype=np.int64)
    label[seeds] = np.arange(len(seeds))
    out = label[root]
    if (out < 0).any():
        raise RuntimeError("the contiguity graph is not connected")
    return out


def _luhn_digit(digits: str) -> str:
    """Check digit (Luhn) that makes ``digits`` + it valid, as FINESS numbers carry."""
    total = 0
    for i, c in enumerate(reversed(digits)):
        d = int(c)
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return str((10 - total % 10) % 10)


def _forbidden_finess() -> frozenset[str]:
    """FINESS numbers of AP-HP, AP-HM and HCL listed in the shipped reference (never generated)."""
    df = pl.read_csv(data_path("snds", "finess_legal_duplicates.csv"), separator=";",
                     infer_schema=False)
    return frozenset(df["eta_num"].to_list())


def _sample_count(mean: float, rng: np.random.Generator) -> int:
    """floor(mean), plus one with probability frac(mean): an integer of expectation ``mean``."""
    base = math.floor(mean)
    return base + int(rng.random() < mean - base)


def make_world(profile: GeographyProfile, rng: np.random.Generator) -> World:
    """Build the synthetic region described by ``profile``.

    Steps: one town per territory, centres spread over the rectangle (k-means of random
    points), sizes Zipf-like; zone seeds on a jittered grid, one at each town centre, pulled
    towards towns, Voronoi cells clipped to the rectangle; rook adjacency from shared borders;
    zone populations ``min_zone_population`` plus a share of the rest, log-normal and peaking at
    towns, summing exactly to ``population``; départements grown over the adjacency graph from
    area-balanced k-means seeds; one hub per town in its core zone, the ``chu`` most populous
    hub towns having the CHUs (at most one per territory); planted territories grown over the
    adjacency graph from the hubs; local hospitals and private clinics in populated zones of
    each territory; age-sex populations from a French pyramid tilted by zone.

    Shapes (profile keys, off by default; when on they draw from a generator of their own):
    ``coast`` puts every town on the northern edge; ``small_territories`` moves the smallest
    towns to the nearest edge and grows their territories with a handicap (45% of the distance
    to the nearest other hub), so they stay small; ``metropole_chu`` adds CHUs in the hub's
    most populous neighbouring zones of the largest town's territory; ``border_hospitals``
    adds CH just beyond the eastern edge, in a département outside the world (territory 0:
    outside every planted territory).

    The caller's generator is used once (to seed an internal one), so later draws from ``rng``
    do not depend on how the world is built.
    """
    rng = np.random.default_rng(rng.integers(2**63))  # decouple from the caller's later draws
    n = profile.zones
    n_terr = profile.territories
    width, height = profile.width_km * 1000.0, profile.height_km * 1000.0
    x0, y0 = CENTRE_X - width / 2, CENTRE_Y - height / 2
    dep_codes = _departement_codes(profile)
    spacing = math.sqrt(width * height / n)  # typical zone side

    # Towns: centres spread across the region, Zipf-like sizes in (0, 1].
    centres = _kmeans(rng.uniform(0, 1, size=(30 * n_terr, 2)) * [width, height], n_terr, rng)
    size = (1.0 + rng.permutation(n_terr)) ** -0.8
    shaped = profile.coast or profile.small_territories or profile.metropole_chu or profile.border_hospitals
    # the shapes draw from their own generator, and only when asked: the plain world is unchanged
    shape_rng = np.random.default_rng(rng.integers(2**63)) if shaped else None
    if profile.coast:
        # every town on the northern coast, spread along it; the hinterland is rural
        order = np.argsort(centres[:, 0], kind="stable")
        centres[order, 0] = (np.arange(n_terr) + 0.5 + shape_rng.uniform(-0.25, 0.25, n_terr)) * width / n_terr
        centres[:, 1] = height * (1.0 - shape_rng.uniform(0.03, 0.10, n_terr))
    small = np.argsort(size, kind="stable")[: profile.small_territories]
    for k in small:
        # a small town on the nearest edge of the region (not the coast), just inside it
        inset = 0.6 * math.sqrt(width * height / n)
        gaps = np.array([centres[k, 0], width - centres[k, 0], centres[k, 1],
                         np.inf if profile.coast else height - centres[k, 1]])
        side = int(np.argmin(gaps))
        if side < 2:
            centres[k, 0] = inset if side == 0 else width - inset
        else:
            centres[k, 1] = inset if side == 2 else height - inset

    # Zone seeds on a jittered grid; the seed nearest each town moves to the town centre (that
    # zone is the town's core, where its hub hospital sits); then every seed is pulled towards
    # the towns (radial contraction), so that urban zones are smaller than rural ones.
    pts = _jittered_grid(n, width, height, rng)
    town_zone = np.full(n_terr, -1, dtype=np.int64)
    free = np.ones(n, dtype=bool)
    for k in np.argsort(-size, kind="stable"):
        candidates = np.flatnonzero(free)
        town_zone[k] = candidates[np.argmin(((pts[candidates] - centres[k]) ** 2).sum(axis=1))]
        free[town_zone[k]] = False
        pts[town_zone[k]] = centres[k]
    a, b = URBAN_CONTRACTION
    for k in range(n_terr):
        sigma = spacing * (0.8 + 1.2 * size[k])
        delta = centres[k] - pts
        pull = (a + b * size[k]) * np.exp(-(delta**2).sum(axis=1) / (2 * sigma**2))
        pts += pull[:, None] * delta
    centres = pts[town_zone].copy()
    rect = shapely.box(x0, y0, x0 + width, y0 + height)
    seeds = shapely.multipoints(pts + [x0, y0])
    cells = shapely.get_parts(shapely.voronoi_polygons(seeds, extend_to=rect, ordered=True))
    cells = shapely.intersection(cells, rect)
    if len(cells) != n or not all(shapely.get_type_id(cells) == 3):
        raise RuntimeError("Voronoi tiling failed to give one polygon per zone")
    centroid = shapely.get_coordinates(shapely.centroid(cells))
    area = shapely.area(cells)

    # Rook contiguity: pairs of cells sharing a border of positive length.
    left, right = rook_pairs(cells)
    length_km = np.hypot(*(centroid[left] - centroid[right]).T) / 1000.0
    graph = sparse.coo_matrix((length_km, (left, right)), shape=(n, n)).tocsr()
    graph = (graph + graph.T).tocsr()

    # Zone populations: minimum plus a log-normal share peaking at towns.
    rel = pts[:, None, :] - centres[None, :, :]  # from the zone seeds
    d2 = (rel**2).sum(axis=2)  # (zones, towns), m²
    peak = URBAN_PEAK * (0.25 + 0.75 * size)
    core = np.exp(-d2 / (2 * (URBAN_CORE_RADIUS * spacing) ** 2))
    suburbs = np.exp(-d2 / (2 * (spacing * (0.6 + 0.8 * size[None, :])) ** 2))
    bump = (peak[None, :] * (core + URBAN_SUBURB_WEIGHT * suburbs)).sum(axis=1)
    noise = rng.lognormal(0.0, ZONE_POPULATION_SIGMA, size=n)
    noise[town_zone] = 1.0  # a town's core zone stays its most populous
    weight = noise * (1.0 + bump)
    extra = profile.population - n * profile.min_zone_population
    raw = extra * weight / weight.sum()
    alloc = np.floor(raw).astype(np.int64)
    short = extra - int(alloc.sum())
    alloc[np.argsort(-(raw - alloc), kind="stable")[:short]] += 1
    zone_pop = profile.min_zone_population + alloc

    # Hubs: the core zone of each town.
    hub_zone = town_zone

    # Départements: grown over the graph from area-balanced k-means seeds.
    n_dep = profile.departements
    dep_centres = _kmeans(centroid, n_dep, rng, weights=area)
    dep_seed = np.full(n_dep, -1, dtype=np.int64)
    used = np.zeros(n, dtype=bool)
    for k in range(n_dep):
        order = np.argsort(((centroid - dep_centres[k]) ** 2).sum(axis=1), kind="stable")
        dep_seed[k] = order[~used[order]][0]
        used[dep_seed[k]] = True
    dep_label = _grow_regions(graph, dep_seed)
    dep_count = np.bincount(dep_label, minlength=n_dep)
    dep_x = np.bincount(dep_label, weights=centroid[:, 0], minlength=n_dep) / dep_count
    dep_y = np.bincount(dep_label, weights=centroid[:, 1], minlength=n_dep) / dep_count
    dep_rank = np.empty(n_dep, dtype=np.int64)
    dep_rank[_reading_order(dep_x, dep_y, math.sqrt(width * height / n_dep))] = np.arange(n_dep)

    # Zone codes "<dd><ddd>", numbered in reading order within each département.
    zone_dep = dep_rank[dep_label]
    within = np.empty(n, dtype=np.int64)
    for d in range(n_dep):
        members = np.flatnonzero(zone_dep == d)
        if len(members) > 998:  # codes <dd>999 are kept free
            raise ValueError(f"département {dep_codes[d]} would hold more than 998 zones")
        within[members[_reading_order(centroid[members, 0], centroid[members, 1], spacing)]] = (
            np.arange(len(members)) + 1)
    perm = np.lexsort((within, zone_dep))  # new position -> old index
    inv = np.empty(n, dtype=np.int64)
    inv[perm] = np.arange(n)
    zone_code = np.array([f"{dep_codes[d]}{w:03d}" for d, w in zip(zone_dep[perm], within[perm])])
    zone_dep_code = np.array([dep_codes[d] for d in zone_dep[perm]])
    cells, centroid, area, zone_pop = cells[perm], centroid[perm], area[perm], zone_pop[perm]
    hub_zone = inv[hub_zone]
    left, right = inv[left], inv[right]
    graph = sparse.coo_matrix((length_km, (left, right)), shape=(n, n)).tocsr()
    graph = (graph + graph.T).tocsr()
    town_is_chu = np.zeros(n_terr, dtype=bool)
    town_is_chu[np.argsort(-zone_pop[hub_zone], kind="stable")[: min(profile.chu, n_terr)]] = True

    # Planted territories, numbered by their hub's zone code.
    terr_order = np.argsort(hub_zone, kind="stable")
    hub_zone, town_is_chu = hub_zone[terr_order], town_is_chu[terr_order]
    if profile.small_territories:
        # small towns reach less far: each region starts with a handicap of 45% of the distance
        # from its hub to the nearest other hub (so the hub keeps its own zone)
        hub_dist = dijkstra(graph, directed=False, indices=hub_zone)[:, hub_zone]
        np.fill_diagonal(hub_dist, np.inf)
        is_small = np.isin(terr_order, small)
        handicap = np.where(is_small, 0.45 * hub_dist.min(axis=1), 0.0)
        zone_terr = _grow_regions(graph, hub_zone, handicap) + 1
    else:
        zone_terr = _grow_regions(graph, hub_zone) + 1  # territory_id 1..T

    towns = _town_names(n, rng)

    # Hospitals.
    forbidden = _forbidden_finess()
    ids_used: set[str] = set()
    names_used: set[str] = set()
    rows: list[dict] = []

    def finess(dep: str) -> str:
        while True:
            body = dep + f"{rng.integers(10**6):06d}"
            fid = body + _luhn_digit(body)
            if fid not in forbidden and fid not in ids_used:
                ids_used.add(fid)
                return fid

    def add(kind: str, zone: int, terr: int) -> str:
        town = towns[zone]
        if kind == "private":
            prefix = "Polyclinique" if rng.random() < 0.25 else "Clinique"
            free = [c for c in _CLINICS if f"{prefix} {c} {_de(town)}" not in names_used]
            name = f"{prefix} {free[rng.integers(len(free))]} {_de(town)}" if free else (
                f"{prefix} {_de(town)} n° {len(rows) + 1}")
        else:
            label = {"CHU": "CHU", "CH": "CH", "local": "Hôpital local"}[kind]
            name = f"{label} {_de(town)}"
            site = 2
            while name in names_used:
                name, site = f"{label} {_de(town)} (site {site})", site + 1
        names_used.add(name)
        poly = cells[zone]
        vertices = shapely.get_coordinates(poly)[:-1]
        toward = vertices[rng.integers(len(vertices))]
        u = rng.uniform(0.0, 0.5)  # convex cell: a point between centroid and a vertex is inside
        hx, hy = centroid[zone] + u * (toward - centroid[zone])
        attract = ATTRACTIVENESS[kind] * rng.uniform(1.0 - ATTRACTIVENESS_NOISE,
                                                     1.0 + ATTRACTIVENESS_NOISE)
        fid = finess(zone_dep_code[zone])
        rows.append(dict(hospital_id=fid, name=name, town=town, zone_code=zone_code[zone], kind=kind,
                         has_emergency=bool(rng.random() < EMERGENCY_PROBABILITY[kind]),
                         territory_id=terr, attractiveness=float(attract), x=float(hx), y=float(hy)))
        return fid

    decay = profile.distance_decay_km
    metropole = int(np.argmax(size[terr_order]))  # the territory of the largest town
    territory_rows = []
    for t in range(n_terr):
        terr = t + 1
        hub = int(hub_zone[t])
        members = np.flatnonzero(zone_terr == terr)
        hub_id = add("CHU" if town_is_chu[t] else "CH", hub, terr)
        territory_rows.append(dict(territory_id=terr, name=f"Territoire {_de(towns[hub])}",
                                   hub_hospital_id=hub_id))
        # Local hospitals: populated zones away from the hub, distinct zones when possible.
        n_local = _sample_count(profile.local_hospitals_per_territory, rng)
        d_hub = np.hypot(*(centroid[members] - centroid[hub]).T) / 1000.0
        w_local = zone_pop[members] * (1.0 - np.exp(-d_hub / decay))
        if w_local.sum() <= 0:
            w_local = zone_pop[members].astype(float)
        n_distinct = min(n_local, int((w_local > 0).sum()))
        picks = list(rng.choice(members, size=n_distinct, replace=False, p=w_local / w_local.sum()))
        picks += list(rng.choice(members, size=n_local - n_distinct, p=w_local / w_local.sum()))
        for z in picks:
            add("local", int(z), terr)
        # Private clinics: the most populous zones, several clinics per town allowed.
        n_private = _sample_count(profile.private_clinics_per_territory, rng)
        w_private = zone_pop[members].astype(float) ** 1.5
        for z in rng.choice(members, size=n_private, p=w_private / w_private.sum()):
            add("private", int(z), terr)
        if profile.metropole_chu and t == metropole:
            # more university hospitals in the metropole: its hub's most populous neighbours
            near = graph[hub].indices
            near = near[zone_terr[near] == terr]
            near = near[np.argsort(-zone_pop[near], kind="stable")]
            sites = [int(z) for z in near[: profile.metropole_chu]]
            sites += [hub] * (profile.metropole_chu - len(sites))
            for z in sites:
                add("CHU", z, terr)
    if profile.border_hospitals:
        # hospitals of the neighbouring region, just beyond the eastern edge (outside every zone)
        last = int(dep_codes[-1]) + 1
        border_dep = f"{last + (last in SKIPPED_DEPARTEMENTS):02d}"
        taken = set(towns)
        names = [t for t in _town_names(len(taken) + 4 * profile.border_hospitals, shape_rng) if t not in taken]
        for b in range(profile.border_hospitals):
            town = names[b]
            body = border_dep + f"{shape_rng.integers(10**6):06d}"
            fid = body + _luhn_digit(body)
            while fid in ids_used or fid in forbidden:
                body = border_dep + f"{shape_rng.integers(10**6):06d}"
                fid = body + _luhn_digit(body)
            ids_used.add(fid)
            rows.append(dict(
                hospital_id=fid, name=f"CH {_de(town)}", town=town, zone_code=f"{border_dep}{b + 1:03d}", kind="CH",
                has_emergency=True, territory_id=0,
                attractiveness=float(ATTRACTIVENESS["CH"] * shape_rng.uniform(1 - ATTRACTIVENESS_NOISE, 1 + ATTRACTIVENESS_NOISE)),
                x=float(x0 + width + shape_rng.uniform(5_000, 15_000)),
                y=float(y0 + height * (b + 0.5 + shape_rng.uniform(-0.2, 0.2)) / profile.border_hospitals)))

    hospitals = pl.DataFrame(rows, schema={
        "hospital_id": pl.String, "name": pl.String, "town": pl.String, "zone_code": pl.String,
        "kind": pl.String, "has_emergency": pl.Boolean, "territory_id": pl.Int64,
        "attractiveness": pl.Float64, "x": pl.Float64, "y": pl.Float64,
    }).sort("hospital_id")
    territories = pl.DataFrame(territory_rows, schema={
        "territory_id": pl.Int64, "name": pl.String, "hub_hospital_id": pl.String})

    # Population by sex and age band: the French pyramid tilted younger in towns, plus noise.
    density = np.log(zone_pop / area)
    urban = (density - np.average(density, weights=zone_pop)) / max(float(density.std()), 1e-9)
    mids = np.array([2.5 + 5 * i for i in range(len(AGE_BANDS))])
    age_score = (mids - 42.0) / 25.0
    tilt = -AGE_TILT_URBAN * urban + rng.normal(0.0, AGE_TILT_NOISE, size=n)
    log_p = (np.log(BASE_PYRAMID)[None, :, :] + tilt[:, None, None] * age_score[None, :, None]
             + rng.normal(0.0, AGE_CELL_NOISE, size=(n, len(AGE_BANDS), 2)))
    p = np.exp(log_p).transpose(0, 2, 1).reshape(n, -1)  # (zone, sex-major then band)
    p /= p.sum(axis=1, keepdims=True)
    counts = rng.multinomial(zone_pop, p)
    n_cells = 2 * len(AGE_BANDS)
    population = pl.DataFrame({
        "zone_code": np.repeat(zone_code, n_cells),
        "sex": np.tile(np.repeat(np.array([1, 2], dtype=np.int8), len(AGE_BANDS)), n),
        "age_band": np.tile(np.array(AGE_BANDS * 2), n),
        "population": counts.reshape(-1).astype(np.int64),
    }, schema={"zone_code": pl.String, "sex": pl.Int8, "age_band": pl.String, "population": pl.Int64})

    zones = gpd.GeoDataFrame({
        "zone_code": zone_code.astype(object),
        "departement": zone_dep_code.astype(object),
        "territory_id": zone_terr.astype(np.int64),
        "x": centroid[:, 0],
        "y": centroid[:, 1],
        "population": zone_pop.astype(np.int64),
    }, geometry=gpd.GeoSeries(cells, crs=CRS), crs=CRS)

    pair_a = np.concatenate([left, right])
    pair_b = np.concatenate([right, left])
    adjacency = pl.DataFrame({"zone_code": zone_code[pair_a], "neighbour_code": zone_code[pair_b]},
                             schema={"zone_code": pl.String, "neighbour_code": pl.String}
                             ).sort("zone_code", "neighbour_code")
    towns_df = pl.DataFrame({"zone_code": zone_code, "town": towns},
                            schema={"zone_code": pl.String, "town": pl.String})
    return World(zones=zones, population=population, adjacency=adjacency, hospitals=hospitals,
                 territories=territories, towns=towns_df)


def hospital_choice(world: World, profile: GeographyProfile) -> np.ndarray:
    """Probability that a stay of a resident of each zone takes place in each hospital.

    Returns a float64 array of shape (zones, hospitals), rows in ``world.zones`` order, columns in
    ``world.hospitals`` order, each row summing to 1::

        P_ij = (1 - chu_referral_share - far_stay_share) * gravity_ij
             + chu_referral_share * referral_ij
             + far_stay_share * attractiveness_j / sum(attractiveness)

    with ``gravity_ij`` proportional to ``attractiveness_j * exp(-d_ij / distance_decay_km)``,
    times ``territory_loyalty`` when hospital j is in zone i's planted territory, and
    ``referral_ij`` spread over the CHUs in proportion to ``exp(-d_ij / (4 * distance_decay_km))``
    (all of it to the single CHU if there is one). Distances run from the zone centroid to the
    hospital, in km. A world without any CHU gives the referral share to the gravity term.
    """
    share_chu, share_far = profile.chu_referral_share, profile.far_stay_share
    if share_chu + share_far > 1:
        raise ValueError("chu_referral_share + far_stay_share exceeds 1")
    zones, hosp = world.zones, world.hospitals
    zx = zones["x"].to_numpy(dtype=float) / 1000.0
    zy = zones["y"].to_numpy(dtype=float) / 1000.0
    hx = hosp["x"].to_numpy() / 1000.0
    hy = hosp["y"].to_numpy() / 1000.0
    attract = hosp["attractiveness"].to_numpy()
    same = zones["territory_id"].to_numpy()[:, None] == hosp["territory_id"].to_numpy()[None, :]
    is_chu = (hosp["kind"] == "CHU").to_numpy()
    decay = profile.distance_decay_km

    dist = np.hypot(zx[:, None] - hx[None, :], zy[:, None] - hy[None, :])

    def row_softmax(log_w: np.ndarray) -> np.ndarray:
        log_w -= log_w.max(axis=1, keepdims=True)
        np.exp(log_w, out=log_w)
        log_w /= log_w.sum(axis=1, keepdims=True)
        return log_w

    far = attract / attract.sum()
    if not is_chu.any():
        share_chu = 0.0
    prob = row_softmax(np.log(attract)[None, :] - dist / decay + math.log(profile.territory_loyalty) * same)
    prob *= 1.0 - share_chu - share_far
    if share_chu > 0:
        referral = row_softmax(-dist[:, is_chu] / (CHU_REFERRAL_DECAY_FACTOR * decay))
        prob[:, is_chu] += share_chu * referral
    prob += share_far * far[None, :]
    return prob


def write_reference(world: World, folder: Path) -> None:
    """Write what the pipeline may read: zones (GeoParquet), population, hospitals, towns.

    ``zones.parquet`` holds zone_code, departement and geometry only, and ``hospitals.parquet``
    hospital_id, name, town, zone_code, kind and has_emergency: the planted territories and the
    attractiveness are truth (see :func:`write_truth`).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    world.zones[["zone_code", "departement", "geometry"]].to_parquet(folder / "zones.parquet", index=False)
    world.population.write_parquet(folder / "population.parquet")
    world.hospitals.select("hospital_id", "name", "town", "zone_code", "kind", "has_emergency"
                           ).write_parquet(folder / "hospitals.parquet")
    world.towns.write_parquet(folder / "towns.parquet")


def write_truth(world: World, folder: Path) -> None:
    """Write the planted territories: ``zone_territory.parquet`` and ``territories.parquet``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    zone_territory = pl.DataFrame({
        "zone_code": world.zones["zone_code"].to_numpy().astype(str),
        "territory_id": world.zones["territory_id"].to_numpy().astype(np.int64),
    }, schema={"zone_code": pl.String, "territory_id": pl.Int64}).join(
        world.territories.select("territory_id", pl.col("name").alias("territory_name")),
        on="territory_id", how="left", maintain_order="left")
    zone_territory.write_parquet(folder / "zone_territory.parquet")
    world.territories.write_parquet(folder / "territories.parquet")
