"""Disclosure control: small-cell suppression with complementary (secondary) suppression.

The one place where counts are made safe to leave the pipeline (the store, the boards). Rule of
the Health Data Hub and of the SNDS secure-access centre: no count of 1 to 10 people (or stays) is
published, and a masked cell must not be recoverable from the totals or from neighbouring cells.

A table is given with its **additive relations** (equations): a group of cells whose counts sum to
a total cell of the same table, e.g. the strata of a zone summing to its ``all`` row, or the zones
of a territory summing to the territory. :func:`suppress`:

1. **primary**: masks every cell whose count is between 1 and ``threshold - 1`` (zero counts are
   published: a zero discloses no one; ``mask_zeros=True`` masks them too);
2. **secondary**: while an equation has exactly one masked member (the total included), that
   member could be recovered by subtraction: the smallest unmasked non-zero member of the
   equation is masked too (ties: the first in the table's order), or the total when no such member
   remains. Repeated until every equation has zero or at least two masked members.

3. **audit**: "at least two per relation" rules out recovery by one subtraction, not by combining
   several relations (a masked cell on a "bridge" between two groups of masked cells is fixed by
   the others). :func:`recoverable` finds such cells exactly, by linear algebra on each connected
   group of masked cells (a cell is determined when it is zero on the null space of the relations
   restricted to the masked cells); one more cell of one of its relations is then masked (of the
   nearest relation reached through masked cells when its own are all masked), and steps 2–3
   repeat until no masked cell is determined.

Counts tied across tables (the same count published twice, or a count that is the sum of counts
of other tables) are suppressed as one system by :func:`suppress_together`.

Rates are masked wherever a count they are built on is masked (:func:`mask_rates`). The loops run
over the cells of an aggregated table and its relations (thousands), never over people.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from respop.privacy.audit import MAX_AUDIT_CELLS, Audit, Interval, audit

THRESHOLD = 11
"""Counts below this (1 to 10) are never published."""

PROTECTION_WIDTH = 3
"""Every count of 1 to 10 that is masked (or never published) keeps a feasible interval at least
this wide (``max − min``) under every relation a viewer can derive, integers and zeros included
(docs/store.md, threat model): a viewer cannot narrow it to fewer than four possible values.
Configurable: ``[disclosure] protection`` of the configuration."""


@dataclass(frozen=True)
class Relation:
    """Cells of ``parts`` (row indices) sum to the cell ``total`` (row index)."""

    total: int
    parts: tuple[int, ...]


def relations_from_keys(table: pl.DataFrame, by: Sequence[str], over: str, total_value: str) -> list[Relation]:
    """Relations of a table where, within each group of ``by``, the rows whose ``over`` is not
    ``total_value`` sum to the row whose ``over`` is ``total_value`` (e.g. strata → ``all``)."""
    indexed = table.with_row_index("_i").select("_i", *by, over)
    totals = indexed.filter(pl.col(over) == total_value).select(*by, pl.col("_i").alias("_total"))
    parts = indexed.filter(pl.col(over) != total_value).group_by(by, maintain_order=True).agg(pl.col("_i").alias("_parts"))
    joined = totals.join(parts, on=list(by), how="inner", nulls_equal=True)
    return [Relation(int(t), tuple(int(p) for p in ps)) for t, ps in joined.select("_total", "_parts").iter_rows()]


def relations_from_mapping(
    table: pl.DataFrame, child: pl.Expr, parent: pl.Expr, same: Sequence[str]
) -> list[Relation]:
    """Relations where the rows selected by ``child`` sum, per parent key and ``same`` columns, to
    the row selected by ``parent`` with that key. ``child`` and ``parent`` are expressions giving
    the parent key of a child row and the key of a parent row (null for other rows); e.g. zones
    (child: their territory id) summing to territories (parent: the territory id)."""
    indexed = table.with_row_index("_i").with_columns(child.alias("_child_of"), parent.alias("_parent_key"))
    children = (
        indexed.filter(pl.col("_child_of").is_not_null())
        .group_by("_child_of", *same, maintain_order=True)
        .agg(pl.col("_i").alias("_parts"))
    )
    parents = indexed.filter(pl.col("_parent_key").is_not_null()).select(
        pl.col("_parent_key").alias("_child_of"), *same, pl.col("_i").alias("_total")
    )
    joined = parents.join(children, on=["_child_of", *same], how="inner", nulls_equal=True)
    return [Relation(int(t), tuple(int(p) for p in ps)) for t, ps in joined.select("_total", "_parts").iter_rows()]


def suppress(
    counts: Sequence[int | None],
    relations: Sequence[Relation],
    threshold: int = THRESHOLD,
    mask_zeros: bool = False,
    forced: Sequence[bool] | None = None,
    hidden: Sequence[bool] | None = None,
    frozen: Sequence[bool] | None = None,
    protection: int | None = None,
    report: SuppressionReport | None = None,
    small_groups: Sequence[bool] | None = None,
    structural: Sequence[bool] | None = None,
    implies: Sequence[tuple[int, int]] = (),
    costs: Sequence[float] | None = None,
) -> list[bool]:
    """Which cells to mask (True) for a column of ``counts`` and its additive ``relations``.
    ``forced``: cells masked whatever their count (e.g. every measure of a group whose number of
    people is masked); complementary suppression then protects them like the small ones.
    ``hidden``: cells that are never published (a count a viewer can only reach through the
    relations, e.g. per-zone deaths): always masked, at least 0 for the audit. ``frozen``: cells
    whose state is decided already (cells of runs a viewer can already see, tied to this run's
    cells): masked when ``forced``, published otherwise, never chosen as a complement.
    ``protection``: the width every sensitive cell's feasible interval must reach
    (:data:`PROTECTION_WIDTH`). ``report``: filled with what the audit found. ``small_groups``:
    cells that describe a group of 1 to 10 people (the stays of 3 people), protected like counts
    of 1 to 10 whatever their value. ``structural``: decided cells that were masked for what they
    belong to, not for their count (the measures of a masked group): a viewer cannot tell that
    they are not zero. Hidden cells and the measures this suppression masks with their group
    (``forced``) are such cells too; every other masked cell is at least 1 for the viewer.
    ``implies``: (x, y) — whenever x is masked (for its count, as a complement), y is masked with
    it, for its group (every measure of a group whose number of people is masked).
    ``costs``: what masking each cell costs the reader (default: its count); a complementary
    suppression takes the cheapest cell that does the job, so a caller can keep the counts a board
    leads with (a territory's cases) and the cells whose masking drags others with it (a group's
    people) for last."""
    n = len(counts)
    protection = PROTECTION_WIDTH if protection is None else protection
    values = [0 if c is None else int(c) for c in counts]
    cost = [float(v) for v in values] if costs is None else [float(c) for c in costs]
    for name, flags in (("forced", forced), ("hidden", hidden), ("frozen", frozen), ("costs", costs)):
        if flags is not None and len(flags) != n:
            raise ValueError(f"{name} has {len(flags)} cells, the table {n}")
    fixed = [bool(f) for f in frozen] if frozen is not None else [False] * n
    never = [bool(h) for h in hidden] if hidden is not None else [False] * n
    masked = [(not fixed[i]) and ((1 <= v < threshold) or (mask_zeros and v == 0)) for i, v in enumerate(values)]
    if forced is not None:
        masked = [m or bool(f) for m, f in zip(masked, forced)]
    masked = [m or h for m, h in zip(masked, never)]
    # sensitive: a count of 1 to 10, or a measure of a group of 1 to 10 people (the stays of 3
    # people describe those 3 people, whatever their number); cells of visible runs when 1 to 10
    sensitive = [
        (1 <= v < threshold) or (small_groups is not None and bool(small_groups[i]) and not fixed[i] and v >= 1)
        for i, v in enumerate(values)
    ]
    # in one canonical order: the relations come from joins whose row order polars does not fix,
    # and the order steers the solver's basis and the complements (two masks for one input)
    relations = sorted(relations, key=lambda r: (r.total, r.parts))
    implies = sorted(implies)
    # every relation as one list of members, the total last
    members = [(*r.parts, r.total) for r in relations]
    for r in relations:
        if not 0 <= r.total < n or any(not 0 <= p < n for p in r.parts):
            raise ValueError(f"relation {r} refers to a row outside the table ({n} rows)")
    of_cell: list[list[int]] = [[] for _ in range(n)]
    for k, m in enumerate(members):
        for cell in m:
            of_cell[cell].append(k)
    locked = [f or h for f, h in zip(fixed, never)]
    # cells a viewer cannot know to be non-zero (lower bound 0 in the audit)
    unsigned = [
        never[i] or (forced is not None and bool(forced[i]) and not fixed[i])
        or (fixed[i] and structural is not None and bool(structural[i]))
        for i in range(n)
    ]
    # the audit uses the relations that hold exactly (one that does not cannot recover a cell, and
    # the true values would not satisfy it)
    holding = [k for k, r in enumerate(relations) if values[r.total] == sum(values[p] for p in r.parts)]
    pairs = [(relations[k].total, relations[k].parts) for k in holding]
    cache: dict = {}
    unfixable: set[int] = set()
    following = [(x, y) for x, y in implies if not fixed[y]]
    tried: Counter = Counter()
    checked: set[int] = set()

    def close() -> None:
        """No relation with one masked member, and every implication applied, until stable."""
        while True:
            _complete_pairs(masked, values, cost, members, of_cell, locked, sensitive)
            grown = False
            for x, y in following:
                if masked[x] and not unsigned[y]:
                    masked[y] = unsigned[y] = grown = True  # masked for its group: at least 0
            if not grown:
                return

    while True:
        close()
        result = audit(values, masked, pairs, [m and s for m, s in zip(masked, sensitive)], protection, unsigned, cache)
        if result.ok:
            _fill(report, result, masked)
            return masked
        failing = {i.cell for g in result.failing for i in g}
        if any(fixed):
            # cells that no mask of this run can widen (held by cells of visible runs alone): not
            # worth masking more for; reported. Checked for the cells one more suppression did
            # not widen enough (the check is an audit with every cell of the run masked)
            again = {c for c in failing if tried[c] and c not in checked}
            if again:
                unfixable |= _unfixable(again, values, masked, pairs, protection, unsigned, locked)
                checked |= again
            if failing <= unfixable:
                _fill(report, result, masked)
                return masked
        for c in failing:
            tried[c] += 1
        # one more suppression per failing cell: the cheapest published cell of the relations that
        # hold its interval (non-zero dual); else the nearest complement through masked cells
        progressed = False
        for group in result.failing:
            for interval in group:
                if interval.cell in unfixable:
                    continue
                options = [_complement(members[holding[k]], masked, values, cost, locked) for k in interval.binding]
                options = [c for c in options if c is not None]
                extra = min(options, key=lambda c: (values[c] == 0, cost[c], c)) if options else None
                if extra is None:
                    extra = _nearest_complement([interval.cell], masked, values, cost, members, of_cell, locked)
                if extra is not None and not masked[extra]:
                    masked[extra] = True
                    progressed = True
        if not progressed:  # every relation around them is masked or decided already
            _fill(report, result, masked)
            return masked


def _unfixable(failing: set[int], values, masked, pairs, protection, unsigned, locked) -> set[int]:
    """The cells of ``failing`` that stay too narrow with every cell of this run masked (only the
    decided cells of visible runs published)."""
    widest = [m or not lock for m, lock in zip(masked, locked)]
    check = audit(values, widest, pairs, [c in failing for c in range(len(values))], protection, unsigned)
    return {i.cell for g in check.failing for i in g}


@dataclass
class SuppressionReport:
    """What the suppression of a column left: sensitive cells whose interval stays too narrow
    (cells of runs already visible can make that impossible to fix in a new run), masked cells
    in groups too large for the audit, programs solved."""

    failing: list[Interval] = field(default_factory=list)
    unaudited: int = 0
    programs: int = 0
    masked: int = 0

    def add(self, other: "SuppressionReport") -> None:
        self.failing += other.failing
        self.unaudited += other.unaudited
        self.programs += other.programs
        self.masked += other.masked


def _fill(report: SuppressionReport | None, result: Audit, masked: list[bool]) -> None:
    if report is not None:
        report.failing += [i for group in result.failing for i in group]
        report.unaudited += result.unaudited
        report.programs += result.programs
        report.masked += sum(masked)


def _nearest_complement(
    group: list[int], masked: list[bool], values: list[int], cost: list[float], members: list[tuple[int, ...]], of_cell: list[list[int]],
    locked: list[bool] | None = None,
) -> int | None:
    """The cell to mask for a group of determined masked cells: the cheapest complement of their
    relations; when all their relations are masked already, of the relations reached through
    masked cells (breadth first: the first depth that has one and the next, where a cell counts
    double its cost; tiny, seed 5: a territory's 55 heart-failure people at depth 1 against a
    territory's 18 stays at depth 2). None when
    the whole connected group is masked, where only cells worth 0 can be determined (the
    equations have no published term)."""
    seen_cells, seen_relations = set(group), set()
    frontier = list(group)
    options: list[tuple] = []
    depth, first = 0, None
    while frontier and (first is None or depth <= first + 1):
        following = []
        for cell in frontier:
            for k in of_cell[cell]:
                if k in seen_relations:
                    continue
                seen_relations.add(k)
                extra = _complement(members[k], masked, values, cost, locked)
                if extra is not None:
                    # one step farther costs double: a nearer cell is likelier to widen the interval
                    options.append((values[extra] == 0, cost[extra] * 2 ** (depth - (first or depth)), extra))
                following += [c for c in members[k] if c not in seen_cells]
                seen_cells.update(members[k])
        if options and first is None:
            first = depth
        frontier = following
        depth += 1
    return min(options)[2] if options else None


Cell = tuple[int, int]
"""A cell of :func:`suppress_together`: (column, row)."""


@dataclass(frozen=True)
class CrossRelation:
    """A relation between cells of different columns (tables): ``parts`` sum to ``total``; a
    single part is the same count published twice."""

    total: Cell
    parts: tuple[Cell, ...]


@dataclass(frozen=True)
class Extension:
    """Cells outside a column that a viewer ties to it: the cells of runs already visible (the
    same zone, a territory of another build as the sum of this run's zones, a year's transitions
    as the same count). ``values``: their true values (sums of this column's cells); ``masked``:
    as their run published them (decided: never changed, never chosen as a complement);
    ``relations``: over the column's rows ``0 … n − 1`` and the extension's cells ``n …``."""

    values: tuple[int, ...]
    masked: tuple[bool, ...]
    relations: tuple[Relation, ...]
    structural: tuple[bool, ...] = ()
    """Masked for their group, not their count (a viewer cannot tell they are not zero)."""

    @staticmethod
    def empty() -> "Extension":
        return Extension((), (), ())

    def structural_flags(self) -> list[bool]:
        return list(self.structural) if self.structural else [False] * len(self.values)


def suppress_together(
    columns: Sequence[tuple],
    links: Sequence[CrossRelation],
    implies: Sequence[tuple[Cell, Cell]] = (),
    threshold: int = THRESHOLD,
    protection: int | None = None,
    report: SuppressionReport | None = None,
    costs: Sequence[Sequence[float] | None] | None = None,
) -> list[list[bool]]:
    """Masks of several count columns (each with the relations that hold in its table) whose
    counts are also tied across tables by ``links``: the cases of a unit in one table are the
    people of its ``all`` stratum in another; the people of a stratum are those followed in the
    transitions plus those who died in the year. Protected one at a time, two tables could choose
    different complementary cells, and a cell masked in one would be read in the other or
    recovered by combining both tables' relations. Here the columns form one system: every link is
    one more equation (a count published twice is masked in both or in neither) and the audit
    solves the relations of all the columns together. ``implies``: (x, y) — when x is masked, y is
    too (every measure of a group whose number of people is masked), at the moment x is masked,
    inside the one suppression pass (:func:`suppress`), y then counting as at least 0.
    A column is ``(values, relations)``, or ``(values, relations, extension, hidden)`` with the
    cells of visible runs tied to it (:class:`Extension`) and the rows never published.
    ``costs``: per column (or None: its counts), what masking each of its rows costs
    (:func:`suppress`)."""
    if costs is not None and len(costs) != len(columns):
        raise ValueError(f"costs has {len(costs)} columns, the system {len(columns)}")
    offsets, n = [], 0
    parts_of = []
    for column in columns:
        values, rels = column[0], column[1]
        ext = column[2] if len(column) > 2 and column[2] is not None else Extension.empty()
        hid = column[3] if len(column) > 3 and column[3] is not None else None
        parts_of.append((values, rels, ext, hid))
        offsets.append(n)
        n += len(values) + len(ext.values)
    counts: list[int | None] = []
    frozen: list[bool] = []
    base_forced: list[bool] = []
    hidden: list[bool] = []
    structural: list[bool] = []
    cost: list[float] = []
    for k, (values, _, ext, hid) in enumerate(parts_of):
        own = costs[k] if costs is not None and costs[k] is not None else [v or 0 for v in values]
        if len(own) != len(values):
            raise ValueError(f"costs of column {k} has {len(own)} rows, the column {len(values)}")
        cost += list(own) + [v or 0 for v in ext.values]
        structural += [False] * len(values) + ext.structural_flags()
        counts += list(values) + list(ext.values)
        frozen += [False] * len(values) + [True] * len(ext.values)
        base_forced += [False] * len(values) + list(ext.masked)
        hidden += (list(hid) if hid is not None else [False] * len(values)) + [False] * len(ext.values)

    def at(cell: Cell) -> int:
        """A cell's index; rows past a column's values are its extension's cells."""
        column, row = cell
        size = len(parts_of[column][0]) + len(parts_of[column][2].values)
        if not 0 <= row < size:
            raise ValueError(f"cell {cell} is outside its column ({size} rows with its extension)")
        return offsets[column] + row

    relations = [
        Relation(r.total + off, tuple(p + off for p in r.parts))
        for off, (_, rels, ext, _) in zip(offsets, parts_of) for r in (*rels, *ext.relations)
    ]
    for link in links:
        relation = Relation(at(link.total), tuple(at(c) for c in link.parts))
        if (counts[relation.total] or 0) != sum(counts[p] or 0 for p in relation.parts):
            raise ValueError(f"{link} does not hold: {counts[relation.total]} ≠ sum of {[counts[p] for p in relation.parts]}")
        relations.append(relation)
    pairs = [(at(x), at(y)) for x, y in implies]
    small = [False] * n
    for x, y in pairs:  # the deaths of a group of 1 to 10 people describe them
        small[y] = small[y] or 1 <= int(counts[x] or 0) < threshold
    inner = SuppressionReport()
    masked = suppress(counts, relations, threshold=threshold, forced=base_forced, hidden=hidden, frozen=frozen,
                      protection=protection, report=inner, small_groups=small, structural=structural, implies=pairs,
                      costs=cost)
    if report is not None:
        inner.masked = sum(m for m, f in zip(masked, frozen) if not f)
        report.add(inner)
    return [masked[off : off + len(values)] for off, (values, _, _, _) in zip(offsets, parts_of)]


def _complement(
    member: tuple[int, ...], masked: list[bool], values: list[int], cost: list[float], locked: list[bool] | None = None
) -> int | None:
    """The cell of a relation to mask next: its cheapest unmasked non-zero member (``cost``; on a
    tie a part before the total, then the first), else an unmasked zero part; never a ``locked``
    cell (decided already). With costs equal to the counts this is the smallest non-zero part (a
    total is never below its parts)."""
    parts, total = member[:-1], member[-1]
    free = (lambda c: not masked[c]) if locked is None else (lambda c: not masked[c] and not locked[c])
    candidates = [(cost[c], 0, c) for c in parts if free(c) and values[c] > 0]
    if free(total) and values[total] > 0:
        candidates.append((cost[total], 1, total))
    if candidates:
        return min(candidates)[2]
    if free(total):
        return total
    zeros = [c for c in parts if free(c)]
    return zeros[0] if zeros else None


def _complete_pairs(
    masked: list[bool], values: list[int], cost: list[float], members: list[tuple[int, ...]], of_cell: list[list[int]],
    locked: list[bool] | None = None, sensitive: list[bool] | None = None,
) -> None:
    """Step 2: no relation with exactly one masked member. A relation whose one masked member is
    locked (never published, or decided in a run already visible) is completed only when that
    member is sensitive (a count of 1 to 10): a never-published zone of 30 deaths alone in its
    territory needs no complement; the audit (step 3) judges every other case."""
    def lone(m: tuple[int, ...]) -> bool:
        inside = [c for c in m if masked[c]]
        if len(inside) != 1:
            return False
        c = inside[0]
        return locked is None or not locked[c] or sensitive is None or sensitive[c]

    pending = [k for k, m in enumerate(members) if lone(m)]
    while pending:
        k = pending.pop()
        m = members[k]
        if not lone(m):
            continue
        cell = _complement(m, masked, values, cost, locked)
        if cell is None:
            continue
        masked[cell] = True
        pending.extend(j for j in of_cell[cell] if lone(members[j]))


def recoverable(masked: Sequence[bool], relations: Sequence[Relation], tolerance: float = 1e-9) -> list[int]:
    """Masked cells whose value the published cells and the relations determine exactly."""
    return sorted(c for group in _exposed_groups(masked, relations, tolerance) for c in group)


def _exposed_groups(masked: Sequence[bool], relations: Sequence[Relation], tolerance: float = 1e-9) -> list[list[int]]:
    """The determined masked cells, per connected group of masked cells (groups are independent:
    a suppression in one does not change what another reveals)."""
    cells = [i for i, m in enumerate(masked) if m]
    if not cells:
        return []
    parent = {c: c for c in cells}

    def find(c: int) -> int:
        while parent[c] != c:
            parent[c] = parent[parent[c]]
            c = parent[c]
        return c

    rows = []
    for r in relations:
        row = {p: 1.0 for p in r.parts if masked[p]}
        if masked[r.total]:
            row[r.total] = row.get(r.total, 0.0) - 1.0
        row = {c: v for c, v in row.items() if v != 0.0}
        if row:
            rows.append(row)
            first = next(iter(row))
            for c in row:
                parent[find(c)] = find(first)
    groups: dict[int, list[int]] = {}
    for c in cells:
        groups.setdefault(find(c), []).append(c)
    rows_of: dict[int, list[dict]] = {}
    for row in rows:  # each relation row once, to its group (not a scan of every row per group)
        rows_of.setdefault(find(next(iter(row))), []).append(row)
    out = []
    for root, group in groups.items():
        local = rows_of.get(root)
        if not local or len(group) > _RANK_CHECK_CELLS:
            continue
        index = {c: k for k, c in enumerate(group)}
        a = np.zeros((len(local), len(group)))
        for i, row in enumerate(local):
            for c, v in row.items():
                a[i, index[c]] = v
        # null space of a: a cell is determined when every null-space vector is zero there
        _, s, vt = np.linalg.svd(a)
        rank = int((s > tolerance * max(1.0, s[0] if len(s) else 1.0)).sum())
        null = vt[rank:]
        exposed = [c for c in group if null.shape[0] == 0 or np.all(np.abs(null[:, index[c]]) < 1e-8)]
        if exposed:
            out.append(sorted(exposed))
    return out


_RANK_CHECK_CELLS = 2_000
""":func:`recoverable` (a real-valued rank check, kept for tests and quick checks) solves groups
up to this size with a dense SVD."""


def unaudited(masked: Sequence[bool], relations: Sequence[Relation]) -> int:
    """Masked cells in groups too large for the exact audit (:data:`MAX_AUDIT_CELLS`)."""
    cells = [i for i, m in enumerate(masked) if m]
    parent = {c: c for c in cells}

    def find(c: int) -> int:
        while parent[c] != c:
            parent[c] = parent[parent[c]]
            c = parent[c]
        return c

    for r in relations:
        row = [c for c in (*r.parts, r.total) if masked[c]]
        for c in row[1:]:
            parent[find(c)] = find(row[0])
    sizes: dict[int, int] = {}
    for c in cells:
        root = find(c)
        sizes[root] = sizes.get(root, 0) + 1
    return sum(n for n in sizes.values() if n > MAX_AUDIT_CELLS)


def exact_relations(values: Sequence[int | None], relations: Sequence[Relation]) -> list[Relation]:
    """The relations that hold exactly on ``values`` (a relation that does not hold cannot be used
    to recover a cell; keeping it would only mask more)."""
    vals = [0 if v is None else int(v) for v in values]
    return [r for r in relations if vals[r.total] == sum(vals[p] for p in r.parts)]


def protect(
    table: pl.DataFrame,
    counts: Sequence[str],
    relations: Sequence[Relation] = (),
    rates: dict[str, Sequence[str]] | None = None,
    whole_row: str | None = None,
    threshold: int = THRESHOLD,
    decided: dict[str, Sequence[bool]] | None = None,
    extensions: dict[str, Extension] | None = None,
    hidden: dict[str, Sequence[bool]] | None = None,
    protection: int | None = None,
    report: SuppressionReport | None = None,
) -> pl.DataFrame:
    """The table as it may be published: every column of ``counts`` suppressed (primary,
    complementary, audited) over the same row ``relations``, masked counts set to null, and every
    rate of ``rates`` (count column → rate columns built on it) null where its count is masked.
    ``whole_row``: a count column (e.g. ``people``) whose mask masks every other count and rate of
    the row (measures of a group of fewer than 11 people are not published). ``decided``: the final
    masks of some columns, chosen with other tables by :func:`suppress_together` (over these
    relations and more, with the ``whole_row`` masks applied). ``extensions``: per column, the
    cells of runs already visible tied to it (:class:`Extension`); ``hidden``: per column, rows
    never published (masked, at least 0 for the audit). ``report``: what the audits found."""
    rates = rates or {}
    decided = decided or {}
    extensions = extensions or {}
    hidden = hidden or {}
    order = ([whole_row] if whole_row else []) + [c for c in counts if c != whole_row]
    masks: dict[str, list[bool]] = {}
    n = table.height
    for column in order:
        values = table[column].to_list()
        usable = exact_relations(values, relations)
        if column in decided:  # final: chosen over these relations and more
            masks[column] = list(decided[column])
            continue
        forced = masks.get(whole_row) if whole_row and column != whole_row else None
        ext = extensions.get(column) or Extension.empty()
        hid = hidden.get(column)
        inner = SuppressionReport()
        small = [1 <= int(v or 0) < threshold for v in table[whole_row].to_list()] if whole_row and column != whole_row else None
        full = suppress(
            [*values, *ext.values], [*usable, *ext.relations], threshold=threshold,
            small_groups=[*small, *([False] * len(ext.values))] if small is not None else None,
            forced=[*(forced or [False] * n), *ext.masked],
            hidden=[*(hid or [False] * n), *([False] * len(ext.values))],
            frozen=[*([False] * n), *([True] * len(ext.values))],
            structural=[*([False] * n), *ext.structural_flags()],
            protection=protection, report=inner,
        )
        inner.masked = sum(full[:n])
        if report is not None:
            report.add(inner)
        masks[column] = full[:n]
    out = table.with_columns(
        pl.when(pl.Series(masks[c], dtype=pl.Boolean)).then(None).otherwise(pl.col(c)).alias(c) for c in order
    )
    rate_masks = {c: list(masks[c]) for c in order}
    if whole_row:
        for c in rates:
            rate_masks[c] = [a or b for a, b in zip(rate_masks.get(c, masks[whole_row]), masks[whole_row])]
    return out.with_columns(
        pl.when(pl.Series(rate_masks[c], dtype=pl.Boolean)).then(None).otherwise(pl.col(r)).alias(r)
        for c, cols in rates.items()
        for r in cols
    )


def masked_count(value: int | None, threshold: int = THRESHOLD) -> int | None:
    """A lone count as it may be published: None when missing or between 1 and ``threshold - 1``."""
    return None if value is None or 1 <= int(value) < threshold else int(value)


def protect_parts(
    parts: Sequence[int], total: int | None = None, forced: Sequence[bool] | None = None, threshold: int = THRESHOLD
) -> tuple[list[bool], bool]:
    """Masks of counts that sum to a total published elsewhere (``total``; their sum when None),
    e.g. the men and the women of a test year: 1 to 10 masked, and one more part when a single
    one is (else it would be the total minus the others). Returns the parts' masks and whether
    the total itself must be masked (only when no other part can be)."""
    total = sum(parts) if total is None else int(total)
    forced_all = [*(forced or [False] * len(parts)), False]
    masked = suppress([*parts, total], [Relation(len(parts), tuple(range(len(parts))))], threshold=threshold, forced=forced_all)
    return masked[:-1], masked[-1]


def protect_calibration(calibration: pl.DataFrame, threshold: int = THRESHOLD) -> tuple[pl.DataFrame, set[str]]:
    """A calibration table (model, bin, n, mean_predicted, observed_rate) as it may be published.
    Per model, the bins' person-years and their events (``n × observed_rate``) are counts that sum
    to the test year's: 1 to 10 masked with their complements (:func:`protect_parts`); a bin's
    observed rate is null where its events or its person-years are masked, its ``n`` where masked.
    Returns the table and the models whose total of events would have to be masked."""
    parts, hidden_totals = [], set()
    for (model,), part in calibration.group_by(["model"], maintain_order=True):
        n = [int(v) for v in part["n"].fill_null(0)]
        events = [int(round(a * b)) for a, b in zip(n, part["observed_rate"].fill_null(0.0))]
        n_masked, _ = protect_parts(n, threshold=threshold)
        events_masked, total_masked = protect_parts(events, forced=n_masked, threshold=threshold)
        if total_masked:
            hidden_totals.add(model)
        parts.append(part.with_columns(
            pl.when(pl.Series(events_masked, dtype=pl.Boolean)).then(None).otherwise(pl.col("observed_rate")).alias("observed_rate"),
            pl.when(pl.Series(n_masked, dtype=pl.Boolean)).then(None).otherwise(pl.col("n")).alias("n"),
        ))
    out = pl.concat(parts, how="vertical_relaxed") if parts else calibration
    return out, hidden_totals


def mask_rates(table: pl.DataFrame, masks: dict[str, str], rates: dict[str, Sequence[str]]) -> pl.DataFrame:
    """Null the ``rates`` columns built on a masked count: ``masks`` maps a count column to its
    boolean mask column; ``rates`` maps a count column to the rate columns built on it."""
    return table.with_columns(
        pl.when(pl.col(masks[count])).then(None).otherwise(pl.col(r)).alias(r)
        for count, cols in rates.items()
        for r in cols
    )
