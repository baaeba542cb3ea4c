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

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

THRESHOLD = 11
"""Counts below this (1 to 10) are never published."""

MAX_AUDIT_CELLS = 2_000
"""The exact audit (step 3) solves each connected group of masked cells with a dense SVD; a group
larger than this (on national tables, masked territory cells can join thousands of zone cells) is
not audited: it keeps the guarantee of steps 1-2 only (no relation with a single masked member),
and :func:`unaudited` reports its cells."""


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
) -> list[bool]:
    """Which cells to mask (True) for a column of ``counts`` and its additive ``relations``.
    ``forced``: cells masked whatever their count (e.g. every measure of a group whose number of
    people is masked); complementary suppression then protects them like the small ones."""
    n = len(counts)
    values = [0 if c is None else int(c) for c in counts]
    masked = [(1 <= v < threshold) or (mask_zeros and v == 0) for v in values]
    if forced is not None:
        if len(forced) != n:
            raise ValueError(f"forced has {len(forced)} cells, the table {n}")
        masked = [m or bool(f) for m, f in zip(masked, forced)]
    # every relation as one list of members, the total last
    members = [(*r.parts, r.total) for r in relations]
    for r in relations:
        if not 0 <= r.total < n or any(not 0 <= p < n for p in r.parts):
            raise ValueError(f"relation {r} refers to a row outside the table ({n} rows)")
    of_cell: list[list[int]] = [[] for _ in range(n)]
    for k, m in enumerate(members):
        for cell in m:
            of_cell[cell].append(k)
    while True:
        _complete_pairs(masked, values, members, of_cell)
        exposed = _exposed_groups(masked, relations)
        if not exposed:
            return masked
        # one more suppression per exposed group of masked cells (the groups are independent, so
        # fixing them in the same pass masks no more than fixing them one after the other)
        progressed = False
        for group in exposed:
            extra = _nearest_complement(group, masked, values, members, of_cell)
            if extra is not None:
                masked[extra] = True
                progressed = True
        if not progressed:  # every relation around them is masked: only zeros can still be determined
            return masked


def _nearest_complement(
    group: list[int], masked: list[bool], values: list[int], members: list[tuple[int, ...]], of_cell: list[list[int]]
) -> int | None:
    """The cell to mask for a group of determined masked cells: the complement of one of their
    relations; when all their relations are masked already, of the nearest relation reached
    through masked cells (breadth first). None when the whole connected group is masked, where
    only cells worth 0 can be determined (the equations have no published term)."""
    seen_cells, seen_relations = set(group), set()
    frontier = list(group)
    while frontier:
        following = []
        for cell in frontier:
            for k in of_cell[cell]:
                if k in seen_relations:
                    continue
                seen_relations.add(k)
                extra = _complement(members[k], masked, values)
                if extra is not None:
                    return extra
                following += [c for c in members[k] if c not in seen_cells]
                seen_cells.update(members[k])
        frontier = following
    return None


Cell = tuple[int, int]
"""A cell of :func:`suppress_together`: (column, row)."""


@dataclass(frozen=True)
class CrossRelation:
    """A relation between cells of different columns (tables): ``parts`` sum to ``total``; a
    single part is the same count published twice."""

    total: Cell
    parts: tuple[Cell, ...]


def suppress_together(
    columns: Sequence[tuple[Sequence[int | None], Sequence[Relation]]],
    links: Sequence[CrossRelation],
    implies: Sequence[tuple[Cell, Cell]] = (),
    threshold: int = THRESHOLD,
) -> list[list[bool]]:
    """Masks of several count columns (each with the relations that hold in its table) whose
    counts are also tied across tables by ``links``: the cases of a unit in one table are the
    people of its ``all`` stratum in another; the people of a stratum are those followed in the
    transitions plus those who died in the year. Protected one at a time, two tables could choose
    different complementary cells, and a cell masked in one would be read in the other or
    recovered by combining both tables' relations. Here the columns form one system: every link is
    one more equation (a count published twice is masked in both or in neither) and the audit
    solves the relations of all the columns together. ``implies``: (x, y) — when x is masked, y is
    too (every measure of a group whose number of people is masked); applied until stable."""
    offsets, n = [], 0
    for values, _ in columns:
        offsets.append(n)
        n += len(values)
    counts = [v for values, _ in columns for v in values]

    def at(cell: Cell) -> int:
        column, row = cell
        if not 0 <= row < len(columns[column][0]):
            raise ValueError(f"cell {cell} is outside its column ({len(columns[column][0])} rows)")
        return offsets[column] + row

    relations = [
        Relation(r.total + off, tuple(p + off for p in r.parts)) for off, (_, rels) in zip(offsets, columns) for r in rels
    ]
    for link in links:
        relation = Relation(at(link.total), tuple(at(c) for c in link.parts))
        if (counts[relation.total] or 0) != sum(counts[p] or 0 for p in relation.parts):
            raise ValueError(f"{link} does not hold: {counts[relation.total]} ≠ sum of {[counts[p] for p in relation.parts]}")
        relations.append(relation)
    pairs = [(at(x), at(y)) for x, y in implies]
    forced = [False] * n
    while True:
        masked = suppress(counts, relations, threshold=threshold, forced=forced)
        grown = False
        for x, y in pairs:
            if masked[x] and not forced[y]:
                forced[y] = grown = True
        if not grown:
            return [masked[off : off + len(values)] for off, (values, _) in zip(offsets, columns)]


def _complement(member: tuple[int, ...], masked: list[bool], values: list[int]) -> int | None:
    """The cell of a relation to mask next: its smallest unmasked non-zero part, else its total,
    else an unmasked zero part."""
    parts, total = member[:-1], member[-1]
    candidates = [c for c in parts if not masked[c] and values[c] > 0]
    if candidates:
        return min(candidates, key=lambda c: (values[c], c))
    if not masked[total]:
        return total
    zeros = [c for c in parts if not masked[c]]
    return zeros[0] if zeros else None


def _complete_pairs(masked: list[bool], values: list[int], members: list[tuple[int, ...]], of_cell: list[list[int]]) -> None:
    """Step 2: no relation with exactly one masked member."""
    pending = [k for k, m in enumerate(members) if sum(masked[c] for c in m) == 1]
    while pending:
        k = pending.pop()
        m = members[k]
        if sum(masked[c] for c in m) != 1:
            continue
        cell = _complement(m, masked, values)
        if cell is None:
            continue
        masked[cell] = True
        pending.extend(j for j in of_cell[cell] if sum(masked[c] for c in members[j]) == 1)


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
        if not local or len(group) > MAX_AUDIT_CELLS:
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
) -> pl.DataFrame:
    """The table as it may be published: every column of ``counts`` suppressed (primary,
    complementary, audited) over the same row ``relations``, masked counts set to null, and every
    rate of ``rates`` (count column → rate columns built on it) null where its count is masked.
    ``whole_row``: a count column (e.g. ``people``) whose mask masks every other count and rate of
    the row (measures of a group of fewer than 11 people are not published). ``decided``: the final
    masks of some columns, chosen with other tables by :func:`suppress_together` (over these
    relations and more, with the ``whole_row`` masks applied)."""
    rates = rates or {}
    decided = decided or {}
    order = ([whole_row] if whole_row else []) + [c for c in counts if c != whole_row]
    masks: dict[str, list[bool]] = {}
    for column in order:
        values = table[column].to_list()
        usable = exact_relations(values, relations)
        if column in decided:  # final: chosen over these relations and more
            masks[column] = list(decided[column])
            continue
        forced = masks.get(whole_row) if whole_row and column != whole_row else None
        masks[column] = suppress(values, usable, threshold=threshold, forced=forced)
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
