"""Runs a viewer can already see, tied to the run being published (docs/store.md, threat model).

The store keeps every run and the boards let any viewer pick one. Two runs on the same data that
differ by their geography (a pinned zone, a minimum population, a method, an added year that
changes the flows) publish territory totals whose difference is the moved zones' counts: on
``tiny``, one pinned zone gave 31 of 35 masked indicator cells away, and per-zone deaths that are
never published. A run is therefore protected **together with every run already visible**:

- the cells of the visible runs are *decided*: their masks cannot change (they are public);
- each of their count cells is tied to the cells of the run being published: the same unit (the
  same set of zones) is the same count; a territory of another build is the sum of this run's
  zones; a zone's count is this run's zone count; a transition is the same transition; the start
  of a survival curve is the sum, over that run's years, of the stratum's transitions row totals;
- suppression and the interval audit then work on this run's cells and those ties together, so
  that no combination of the runs narrows a count of 1 to 10 below the protection width.

Ties are made only where they hold exactly: the publisher knows the true values of this run's
cells, and a visible run's slice (one column, disease and year) is tied only when every count it
published equals the sum the tie gives (then its masked counts are those sums too). A slice that
differs (a corrected file, other algorithms) is not the same data and is not tied: a viewer cannot
subtract counts of different data exactly. Cells that need zones this run does not have (a wider
scope) are not tied either (their other zones are unknown to this run).
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field

import polars as pl

from respop.privacy.disclosure import Extension, Relation

GEOGRAPHIC_TABLES = {"indicators": "subtype", "care_use": "stratum"}


@dataclass
class VisibleRun:
    """A succeeded run of the store, as any viewer sees it: its zone → territory map and the
    published tables that carry counts tied to a new run."""

    run_id: int
    zone_territory: dict[str, str]
    tables: dict[str, pl.DataFrame] = field(repr=False)


def visible_runs(store) -> list[VisibleRun]:
    """Every run of the store that succeeded (any configuration: a viewer of one board may read
    another), oldest first."""
    runs = [r for r in store.runs() if r["status"] == "succeeded"]
    out = []
    for run in sorted(runs, key=lambda r: r["run_id"]):
        run_id = run["run_id"]
        zones = store.read("zones", run_id)
        mapping = {
            str(z): str(t) for z, t in zones.select("zone_code", "territory_id").iter_rows() if t is not None
        }
        tables = {name: store.read(name, run_id) for name in ("indicators", "care_use", "transitions", "survival_curves", "model_cards", "flows")}
        out.append(VisibleRun(run_id, mapping, tables))
    return out


def _zone_sets(mapping: dict[str, str]) -> dict[tuple[str, str], frozenset[str]]:
    """(level, unit) → the zones it covers, for territory and area units."""
    by_territory: dict[str, set[str]] = defaultdict(set)
    for zone, territory in mapping.items():
        by_territory[territory].add(zone)
    sets = {("territory", t): frozenset(z) for t, z in by_territory.items()}
    sets[("area", None)] = frozenset(mapping)
    return sets


def _units(level: str, unit: str, sets: dict) -> frozenset[str] | None:
    if level == "zone":
        return frozenset([str(unit)])
    if level == "territory":
        return sets.get(("territory", str(unit)))
    if level == "area":
        return sets[("area", None)] or None
    return None


def geographic_extension(
    table: pl.DataFrame,
    name: str,
    column: str,
    zone_territory: pl.DataFrame | None,
    visible: list[VisibleRun],
    hidden_levels: tuple[str, ...] = (),
    group: str | None = None,
) -> tuple[Extension, bool]:
    """The cells of ``column`` in the visible runs' table ``name`` (indicators or care use), tied
    to ``table`` (this run's private table, rows in the order it is protected in). Returns the
    extension and whether a tie needs this run's zone cells (a territory of another build): then
    counts never published per zone (deaths) must enter the system as hidden cells.
    ``hidden_levels``: levels where the column is never published (its nulls there say nothing);
    ``group``: the column whose null masks the whole row (``people``): the row's other counts are
    then masked for their group, and a viewer cannot tell they are not zero."""
    if not visible or zone_territory is None:
        return Extension.empty(), False
    category = GEOGRAPHIC_TABLES[name]
    mapping = {str(z): str(t) for z, t in zone_territory.select("zone_code", "territory_id").iter_rows()}
    sets = _zone_sets(mapping)
    known = frozenset(mapping)
    rows = table.select("disease", pl.col("year").cast(pl.Int64), "level", "unit", category, column)
    values = [0 if v is None else int(v) for v in rows[column].to_list()]
    same_unit: dict[tuple, int] = {}
    zone_row: dict[tuple, int] = {}
    for i, (disease, year, level, unit, cat, _) in enumerate(rows.iter_rows()):
        zones = _units(level, unit, sets)
        if zones is None:
            continue
        same_unit.setdefault((disease, year, cat, zones), i)
        if level == "zone":
            zone_row[(disease, year, cat, str(unit))] = i
    n = table.height
    cells: list[tuple[tuple, tuple[int, ...], int, bool, bool]] = []  # slice, parts, value, masked, structural
    inconsistent: set[tuple] = set()
    needs_zones = False
    for run in visible:
        theirs = run.tables.get(name)
        if theirs is None or theirs.is_empty() or column not in theirs.columns:
            continue
        their_sets = _zone_sets(run.zone_territory)
        grouped = (pl.col(group).is_null() if group and group != column else pl.lit(False)).alias("_grouped")
        for disease, year, level, unit, cat, published, grouped_null in theirs.select(
            "disease", pl.col("year").cast(pl.Int64), "level", "unit", category, column, grouped
        ).iter_rows():
            if level in hidden_levels:
                continue
            zones = _units(level, unit, their_sets)
            if not zones:
                continue
            key = (run.run_id, disease, year)
            same = same_unit.get((disease, year, cat, zones))
            if same is not None:
                parts: tuple[int, ...] = (same,)
            else:
                if not zones <= known:  # a zone this run does not cover: not the same data
                    continue
                # a zone of this run without a row has nobody in the group: 0, left out of the sum
                # (skipping the tie there left the sparse strata untied: tiny, BPCO, a pinned
                # zone of 1 person given away by two territory totals)
                parts = tuple(p for p in (zone_row.get((disease, year, cat, z)) for z in sorted(zones)) if p is not None)
                if not parts:
                    continue
                needs_zones = True
            value = sum(values[p] for p in parts)
            if published is not None and int(published) != value:
                inconsistent.add(key)
                continue
            cells.append((key, parts, value, published is None, published is None and bool(grouped_null)))
    kept = [c for c in cells if c[0] not in inconsistent]
    relations = tuple(Relation(n + k, c[1]) for k, c in enumerate(kept))
    extension = Extension(tuple(c[2] for c in kept), tuple(c[3] for c in kept), relations, tuple(c[4] for c in kept))
    return extension, needs_zones and bool(kept)


def flows_extension(table: pl.DataFrame, zone_cells: pl.DataFrame, zone_territory: pl.DataFrame, visible: list[VisibleRun]) -> tuple[Extension, bool]:
    """The visible runs' flows (stays of a territory's residents per hospital group, and the
    territory's total), tied to this run's: the same set of zones is the same cell of ``table``
    (this run's territory rows, :func:`respop.store.publish.flows_table`); another territory is the
    sum of this run's zone cells (``zone_cells``: zone_code, group, stays; rows ``table.height …``
    of the column, never published). Returns the extension and whether a tie needs the zone cells.
    Only where the sum equals what the run published (the same data)."""
    if not visible:
        return Extension.empty(), False
    mapping = {str(z): str(t) for z, t in zone_territory.select("zone_code", "territory_id").iter_rows()}
    ours = {k: v for k, v in _zone_sets(mapping).items() if k[0] == "territory"}
    same: dict[tuple[frozenset, str], int] = {}
    for i, (territory, group) in enumerate(table.select(pl.col("territory_id").cast(pl.String), "hospital_group").iter_rows()):
        zones = ours.get(("territory", territory))
        if zones:
            same[(zones, group)] = i
    n = table.height
    values = [int(v) for v in table["stays"].to_list()] + [int(v) for v in zone_cells["stays"].to_list()]
    by_zone: dict[tuple[str, str], int] = {}
    by_zone_all: dict[str, list[int]] = defaultdict(list)
    for k, (zone, group) in enumerate(zone_cells.select(pl.col("zone_code").cast(pl.String), pl.col("group").cast(pl.String)).iter_rows()):
        by_zone[(zone, group)] = n + k
        by_zone_all[zone].append(n + k)
    cells: list[tuple[int, tuple[int, ...], int, bool]] = []
    inconsistent: set[int] = set()
    needs_zones = False
    for run in visible:
        theirs = run.tables.get("flows")
        if theirs is None or theirs.is_empty():
            continue
        their_sets = _zone_sets(run.zone_territory)
        for territory, group, published in theirs.select(pl.col("territory_id").cast(pl.String), "hospital_group", "stays").iter_rows():
            zones = their_sets.get(("territory", territory))
            if not zones:
                continue
            row = same.get((zones, group))
            if row is not None:
                parts: tuple[int, ...] = (row,)
            elif not zones <= frozenset(mapping):  # a zone this run does not cover
                continue
            else:
                if group == "all":
                    parts = tuple(c for z in sorted(zones) for c in by_zone_all.get(z, []))
                else:
                    parts = tuple(by_zone[(z, group)] for z in sorted(zones) if (z, group) in by_zone)
                if not parts:
                    continue
                needs_zones = True
            value = sum(values[p] for p in parts)
            if published is not None and int(published) != value:
                inconsistent.add(run.run_id)
                continue
            cells.append((run.run_id, parts, value, published is None))
    kept = [c for c in cells if c[0] not in inconsistent]
    linked = needs_zones and bool(kept)
    offset = n + (zone_cells.height if linked else 0)  # the zone cells enter the column only when linked
    relations = tuple(Relation(offset + k, c[1]) for k, c in enumerate(kept))
    return Extension(tuple(c[2] for c in kept), tuple(c[3] for c in kept), relations), linked


def transitions_extension(table: pl.DataFrame, visible: list[VisibleRun]) -> Extension:
    """The visible runs' transitions (the same disease, year, origin and destination: the same
    count) and the starts of their survival curves (the sum of a stratum's row totals over that
    run's years; masked where the run published no curve), tied to this run's ``table``
    (:func:`respop.store.publish.read_transitions`)."""
    if not visible:
        return Extension.empty()
    rows = table.select("disease", pl.col("year").cast(pl.Int64), "from_stratum", "to_stratum", "count")
    values = [int(v) for v in rows["count"].to_list()]
    index = {(d, y, f, t): i for i, (d, y, f, t, _) in enumerate(rows.iter_rows())}
    n = table.height
    cells: list[tuple[tuple, tuple[int, ...], int, bool]] = []
    inconsistent: set[tuple] = set()
    for run in visible:
        theirs = run.tables.get("transitions")
        if theirs is None or theirs.is_empty():
            continue
        years: dict[tuple[str, str], set[int]] = defaultdict(set)  # the years a stratum has a row
        for disease, year, origin, destination, published in theirs.select(
            "disease", pl.col("year").cast(pl.Int64), "from_stratum", "to_stratum", "count"
        ).iter_rows():
            years[(disease, origin)].add(year)
            i = index.get((disease, year, origin, destination))
            if i is None:
                continue
            key = (run.run_id, disease, year)
            if published is not None and int(published) != values[i]:
                inconsistent.add(key)
                continue
            cells.append((key, (i,), values[i], published is None))
        curves = run.tables.get("survival_curves")
        shown = set()
        if curves is not None and not curves.is_empty():
            shown = set(curves.filter(pl.col("time") == 0).select("disease", "stratum").iter_rows())
        for (disease, stratum), run_years in years.items():
            parts = tuple(index[(disease, y, stratum, "all")] for y in sorted(run_years) if (disease, y, stratum, "all") in index)
            if not parts or len(parts) != len(run_years) or any((run.run_id, disease, y) in inconsistent for y in run_years):
                continue
            cells.append(((run.run_id, disease, "survival"), parts, sum(values[p] for p in parts), (disease, stratum) not in shown))
    kept = [c for c in cells if c[0] not in inconsistent]
    relations = tuple(Relation(n + k, parts) for k, (_, parts, _, _) in enumerate(kept))
    return Extension(tuple(v for _, _, v, _ in kept), tuple(m for _, _, _, m in kept), relations)


def followed_elsewhere(care_use: pl.DataFrame, transitions: pl.DataFrame | None, visible: list[VisibleRun]) -> list[tuple]:
    """The people a visible run followed from a stratum into N + 1 (its transitions row total)
    for the years this run has no transitions of (its last year, when a visible run covers one
    more): in that run, the stratum's people in the area = those followed + its deaths, a tie
    this run's own tables do not make. Returns (people row, deaths row, followed, masked, key)
    over ``care_use`` rows, key = (run id, disease, year, stratum); masked when the visible run
    masked the total and some of its destinations.
    Only where the visible run's published total equals this run's people − deaths."""
    if not visible:
        return []
    own = set()
    if transitions is not None:
        own = set(transitions.filter(pl.col("to_stratum") == "all").select(
            "disease", pl.col("year").cast(pl.Int64), "from_stratum").iter_rows())
    area = care_use.with_row_index("_row").filter((pl.col("level") == "area") & (pl.col("stratum") != "all"))
    rows = {(d, int(y), st): (int(r), int(p or 0), int(x or 0)) for r, d, y, st, p, x in
            area.select("_row", "disease", "year", "stratum", "people", "deaths").iter_rows()}
    out = []
    for run in visible:
        theirs = run.tables.get("transitions")
        if theirs is None or theirs.is_empty():
            continue
        theirs = theirs.with_columns(pl.col("year").cast(pl.Int64))
        hidden_parts = {
            (d, y, f): n for d, y, f, n in theirs.filter(pl.col("to_stratum") != "all").group_by("disease", "year", "from_stratum")
            .agg(pl.col("count").null_count()).iter_rows()
        }
        for disease, year, origin, published in theirs.filter(pl.col("to_stratum") == "all").select(
            "disease", "year", "from_stratum", "count"
        ).iter_rows():
            key = (disease, year, origin)
            if key in own or key not in rows:
                continue
            r, people, deaths = rows[key]
            value = people - deaths
            if value < 0 or (published is not None and int(published) != value):
                continue
            out.append((r, r, value, published is None and hidden_parts.get(key, 0) > 0, (run.run_id, *key)))
    return out


def starts_elsewhere(transitions: pl.DataFrame | None, elsewhere: list[tuple], visible: list[VisibleRun]) -> list[tuple]:
    """The starts of a visible run's survival curves that need years this run has no transitions
    of: the sum of the stratum's row totals over that run's years, some of them this run's
    transitions (rows of ``transitions``), the others followed elsewhere (indices into
    ``elsewhere``). Returns (value, masked, transitions rows, elsewhere indices)."""
    if not visible or not elsewhere:
        return []
    own = {}
    values = []
    if transitions is not None:
        for i, (d, y, f, t, c) in enumerate(transitions.select(
                "disease", pl.col("year").cast(pl.Int64), "from_stratum", "to_stratum", "count").iter_rows()):
            values.append(int(c))
            if t == "all":
                own[(d, y, f)] = i
    other = {e[4]: k for k, e in enumerate(elsewhere)}
    out = []
    for run in visible:
        theirs = run.tables.get("transitions")
        if theirs is None or theirs.is_empty():
            continue
        years: dict[tuple[str, str], set[int]] = defaultdict(set)  # the years a stratum has a row
        strata: dict[str, set[str]] = defaultdict(set)
        for d, y, f in theirs.select("disease", pl.col("year").cast(pl.Int64), "from_stratum").unique().iter_rows():
            years[(d, f)].add(y)
            strata[d].add(f)
        curves = run.tables.get("survival_curves")
        shown = set()
        if curves is not None and not curves.is_empty():
            shown = set(curves.filter(pl.col("time") == 0).select("disease", "stratum").iter_rows())
        for disease in strata:
            for stratum in strata[disease]:
                rows, others, total = [], [], 0
                for y in sorted(years[(disease, stratum)]):
                    if (disease, y, stratum) in own:
                        rows.append(own[(disease, y, stratum)])
                        total += values[rows[-1]]
                    elif (run.run_id, disease, y, stratum) in other:
                        others.append(other[(run.run_id, disease, y, stratum)])
                        total += elsewhere[others[-1]][2]
                    else:
                        break
                else:
                    if others:
                        out.append((total, (disease, stratum) not in shown, tuple(rows), tuple(others)))
    return out


_TEST_PERSON_YEARS = re.compile(r"([0-9][0-9\u202f]*) personnes-années de test")


def card_test_total(card: str) -> int | None:
    """The test year's person-years a model card prints (None when masked or absent)."""
    found = _TEST_PERSON_YEARS.search(card or "")
    return int(found.group(1).replace("\u202f", "")) if found else None


def test_totals(
    transitions: pl.DataFrame | None, elsewhere: list[tuple], visible: list[VisibleRun],
    own_totals: dict[str, tuple[int, int]] | None = None,
) -> list[tuple]:
    """The model cards' test-year person-years (those seen in N + 1: the test year's transitions
    except ``non_revu``), as sums of cells this publication protects. For this run
    (``own_totals``: disease → (test year, person-years)) over its transitions; for a visible
    run whose test year this run has no transitions of, over the followed elsewhere minus its
    published ``non_revu`` (skipped when one is masked). Returns (value, transitions rows,
    elsewhere indices): the value is the sum of those cells (for a visible run, its total plus its
    ``non_revu``), where it holds exactly; it is published (a card prints the total).""" 
    out = []
    values, rows_of = [], defaultdict(list)
    if transitions is not None:
        for i, (d, y, t, c) in enumerate(transitions.select(
                "disease", pl.col("year").cast(pl.Int64), "to_stratum", "count").iter_rows()):
            values.append(int(c))
            if t not in ("all", "non_revu"):
                rows_of[(d, y)].append(i)
    for disease, (year, total) in (own_totals or {}).items():
        rows = rows_of.get((disease, int(year)))
        if rows and total is not None and sum(values[r] for r in rows) == int(total):
            out.append((int(total), tuple(rows), ()))
    other = {e[4]: k for k, e in enumerate(elsewhere)}
    for run in visible:
        theirs, cards = run.tables.get("transitions"), run.tables.get("model_cards")
        if theirs is None or theirs.is_empty() or cards is None or cards.is_empty():
            continue
        theirs = theirs.with_columns(pl.col("year").cast(pl.Int64))
        for disease, card in cards.select("disease", "markdown").iter_rows():
            total = card_test_total(card)
            mine = theirs.filter(pl.col("disease") == disease)
            if total is None or mine.is_empty():
                continue
            year = int(mine["year"].max())
            last = mine.filter(pl.col("year") == year)
            strata = last["from_stratum"].unique().to_list()
            keys = [(run.run_id, disease, year, st) for st in strata]
            if any(k not in other for k in keys):
                continue
            unseen = last.filter(pl.col("to_stratum") == "non_revu")["count"]
            if unseen.null_count():
                continue
            value = sum(elsewhere[other[k]][2] for k in keys) - int(unseen.sum())
            if value != total:
                continue
            out.append((value + int(unseen.sum()), (), tuple(other[k] for k in keys)))
    return out
