"""The attacker's algebra, independent of the suppression code: unknowns (atoms), linear
relations between them, and the integer feasible interval of every sensitive cell.

A :class:`System` holds

- **atoms**: non-negative integer unknowns, each with its true value (known to the judge, never
  to the attacker). An atom is identified by a key *and* its true value, so that two runs on the
  same data share an atom (the same unknown in both) and two runs on data that differ there do not;
- **cells**: counts a viewer reads (published), sees masked (NULL: a count of 1 or more, since zeros
  are published), or knows exist without a published value (hidden, e.g. deaths per zone). Each
  cell is a linear expression of atoms;
- **rows**: linear relations ``lb <= Σ coef · atom <= ub`` that a viewer can derive (a published
  value, "masked means at least 1", a count published twice, a rate published with its count...).
  A relation is kept only when it holds on the true values: the attacker is the strongest one,
  who guesses every relation that really holds, and none that does not.

:func:`solve` computes, for every *sensitive* cell (true value 1 to 10), the integer interval
[min, max] of its expression over every integer, non-negative solution of the rows, with
``scipy.optimize.milp`` (HiGHS), one problem per connected component of unknowns. A cell whose
interval is narrower than the protection width P is a finding. The truth is checked to be a
solution of the rows first (an attacker relation that the truth violates is a bug of the
attacker, never a finding).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, milp
from scipy.sparse import csr_matrix

THRESHOLD = 11
"""Counts 1 to THRESHOLD - 1 must not be determined (the rule of the SNDS, restated here: the
attacker does not import the suppression code)."""

BIG = 10**8
"""Upper bound of every atom in the integer programs (no count of the tiny or demo worlds comes
near it); a bound can only narrow an interval, so it never hides a finding."""

MAX_COMPONENT_ATOMS = 60_000
"""Components of unknowns larger than this are not solved: they are reported as unsolved (a test
fails with their number), never skipped silently."""

TOLERANCE = 1e-6

WITNESS_ROUNDS = 100
"""At most this many random directions per component before each open cell is solved alone."""

WITNESS_MIN_CLOSED = 2
"""A random direction that closed fewer open cells than this ends the random directions. Only the
number of programs depends on it: a cell passes only with two integer solutions ``width`` apart,
and a cell left open is solved exactly, so the findings are the same whatever these two are."""


class AttackerError(AssertionError):
    """The attacker itself is inconsistent (a relation the truth violates, a published value that
    differs from the private one...): a bug of the attacker or of its reading of the outputs."""


Expr = dict[int, float]
"""A linear expression: atom index → coefficient."""


@dataclass
class Row:
    coefs: Expr
    lb: float
    ub: float
    origin: str


@dataclass
class Cell:
    """A count a viewer knows of: its expression over atoms, its true value and what was shown."""

    run_id: int | None
    table: str
    column: str
    key: tuple
    expr: Expr
    truth: int
    status: str  # "published", "masked", "hidden"
    value: int | None = None

    @property
    def sensitive(self) -> bool:
        return 1 <= self.truth < THRESHOLD

    def describe(self) -> str:
        key = ", ".join(f"{k[0]}={k[1]}" if len(k) == 2 else "/".join(map(str, k)) for k in self.key)
        return f"run {self.run_id} {self.table}.{self.column} [{key}] ({self.status})"


@dataclass(frozen=True)
class Interval:
    lo: float
    hi: float

    @property
    def width(self) -> float:
        return self.hi - self.lo


@dataclass
class Finding:
    cell: Cell
    interval: Interval | None  # None: not solved (component too large, solver limit)
    reason: str = ""

    def __str__(self) -> str:
        if self.interval is None:
            return f"{self.cell.describe()}: true {self.cell.truth}, NOT SOLVED ({self.reason})"
        lo, hi = self.interval.lo, self.interval.hi
        hi_text = "inf" if math.isinf(hi) else str(int(hi))
        return f"{self.cell.describe()}: true {self.cell.truth}, interval [{int(lo)}, {hi_text}]"


@dataclass
class Result:
    """What :func:`solve` found: the sensitive cells narrower than ``width`` (``findings``), the
    cells it could not solve (``unsolved``), and counts for the report."""

    width: int
    sensitive: int
    findings: list[Finding]
    unsolved: list[Finding]
    components: int
    largest_component: int
    solves: int
    intervals: dict[int, Interval] = field(default_factory=dict, repr=False)
    """Exact intervals computed, by index in ``System.cells`` (failing cells, and every cell when
    ``exact=True``)."""

    def counts(self) -> Counter:
        """Findings per table.column."""
        return Counter(f"{f.cell.table}.{f.cell.column}" for f in self.findings)

    def summary(self, limit: int = 40) -> str:
        lines = [
            f"{len(self.findings)} of {self.sensitive} sensitive cells (true value 1 to {THRESHOLD - 1}) have an "
            f"interval narrower than {self.width}; {len(self.unsolved)} not solved; {self.components} components "
            f"(largest {self.largest_component} unknowns), {self.solves} integer programs",
            "per table.column: " + ", ".join(f"{k} {v}" for k, v in sorted(self.counts().items())),
        ]
        lines += [f"  {f}" for f in self.unsolved[:limit]]
        lines += [f"  {f}" for f in self.findings[:limit]]
        if len(self.findings) > limit:
            lines.append(f"  ... {len(self.findings) - limit} more")
        return "\n".join(lines)


class System:
    """Atoms, cells and relations of everything a viewer sees (see the module docstring)."""

    def __init__(self) -> None:
        self._atoms: dict[tuple, int] = {}
        self.atom_keys: list[tuple] = []
        self.truth: list[int] = []
        self.rows: list[Row] = []
        self.cells: list[Cell] = []
        self.kept: Counter = Counter()
        self.dropped: Counter = Counter()
        """Relations (by origin) not added because they do not hold on the true values."""

    # -- atoms and expressions ------------------------------------------------------------------

    def atom(self, key: tuple, truth: int) -> Expr:
        """The expression of one atom; the same key and true value give the same atom."""
        truth = int(truth)
        if truth < 0:
            raise AttackerError(f"negative count for {key}: {truth}")
        full = (key, truth)
        index = self._atoms.get(full)
        if index is None:
            index = self._atoms[full] = len(self.truth)
            self.atom_keys.append(key)
            self.truth.append(truth)
        return {index: 1.0}

    def value(self, expr: Expr) -> float:
        return sum(c * self.truth[a] for a, c in expr.items())

    @staticmethod
    def add(*exprs: Expr, scale: Sequence[float] | None = None) -> Expr:
        out: dict[int, float] = defaultdict(float)
        for k, e in enumerate(exprs):
            s = 1.0 if scale is None else scale[k]
            for a, c in e.items():
                out[a] += s * c
        return {a: c for a, c in out.items() if c != 0.0}

    # -- relations ------------------------------------------------------------------------------

    def constrain(self, expr: Expr, lb: float, ub: float, origin: str, tolerance: float = TOLERANCE) -> bool:
        """Add ``lb <= expr <= ub`` when it holds on the true values (else count it as dropped)."""
        v = self.value(expr)
        if not (lb - tolerance <= v <= ub + tolerance):
            self.dropped[origin] += 1
            return False
        expr = {a: c for a, c in expr.items() if c != 0.0}
        if not expr:
            return True
        self.rows.append(Row(expr, lb, ub, origin))
        self.kept[origin] += 1
        return True

    def equal(self, left: Expr, right: Expr, origin: str, tolerance: float = TOLERANCE) -> bool:
        """``left = right`` when it holds on the true values."""
        return self.constrain(self.add(left, right, scale=[1.0, -1.0]), 0.0, 0.0, origin, tolerance)

    def at_most(self, left: Expr, right: Expr, origin: str) -> bool:
        """``left <= right`` when it holds on the true values."""
        return self.constrain(self.add(left, right, scale=[1.0, -1.0]), -math.inf, 0.0, origin)

    def rate(self, numerator: Expr, denominator: Expr, rate: float, scale: float, origin: str,
             numerator_value: int | None = None, denominator_value: int | None = None) -> bool:
        """A published rate ``scale · numerator / denominator``. When one side is published, the
        other follows as an integer (an equality on integers, exact); when neither is, the rate is
        one linear relation with a real coefficient. Added when it holds on the true values."""
        if denominator_value is not None:
            wanted = rate * denominator_value / scale
            if abs(wanted - round(wanted)) > 1e-6 * max(1.0, abs(wanted)):
                self.dropped[origin] += 1
                return False
            return self.constrain(numerator, round(wanted), round(wanted), origin)
        if numerator_value is not None:
            if rate == 0.0:
                return self.constrain(numerator, 0, 0, origin)
            wanted = scale * numerator_value / rate
            if abs(wanted - round(wanted)) > 1e-6 * max(1.0, abs(wanted)):
                self.dropped[origin] += 1
                return False
            return self.constrain(denominator, round(wanted), round(wanted), origin)
        return self.constrain(self.add(numerator, denominator, scale=[scale, -rate]), -1e-7, 1e-7, origin, tolerance=1e-7)

    # -- cells ----------------------------------------------------------------------------------

    def cell(
        self,
        run_id: int | None,
        table: str,
        column: str,
        key: Iterable[tuple[str, object]],
        candidates: Sequence[Expr],
        truth: int,
        status: str,
        value: int | None = None,
        fallback: tuple | None = None,
        floor: int | None = None,
    ) -> Cell:
        """A cell: the first of ``candidates`` (structural expressions, e.g. a territory as the sum
        of its zones) that gives its true value, else an atom of its own (``fallback`` key, else
        one of the run). Then the relation its status gives: published → expr = value (which must
        be the true value), masked → expr >= 1 (zeros are published; ``floor=0`` where the viewer
        knows a masked cell may be 0, e.g. every measure of a group whose people are masked; a
        masked cell whose true value is 0 gets no bound), hidden → none (atoms are non-negative)."""
        key = tuple(key)
        truth = int(truth)
        expr = None
        for candidate in candidates:
            if candidate is None:
                continue
            if abs(self.value(candidate) - truth) <= TOLERANCE:
                expr = candidate
                break
            self.dropped[f"{table}.{column} structure"] += 1
        if expr is None:
            expr = self.atom(fallback if fallback is not None else ("cell", run_id, table, column, key), truth)
        if status == "published":
            if value is None or int(value) != truth:
                raise AttackerError(f"{table}.{column} {key} run {run_id}: published {value}, private value {truth}")
            self.constrain(expr, truth, truth, f"{table}.{column} published")
        elif status == "masked":
            floor = min(1 if floor is None else floor, truth)
            self.constrain(expr, floor, math.inf, f"{table}.{column} masked")
        elif status != "hidden":
            raise ValueError(status)
        c = Cell(run_id, table, column, key, expr, truth, status, None if status != "published" else int(value))
        self.cells.append(c)
        return c


# ---------------------------------------------------------------------------------------------
# solving


def _check_truth(system: System) -> None:
    for row in system.rows:
        v = system.value(row.coefs)
        if not (row.lb - TOLERANCE <= v <= row.ub + TOLERANCE):
            raise AttackerError(f"the truth violates {row.origin}: {v} not in [{row.lb}, {row.ub}]")


def _propagate(system: System) -> dict[int, int]:
    """Atoms fixed by the equalities alone: a relation with one unknown left fixes it; a relation
    whose unknowns all have positive coefficients and sum to 0 fixes them at 0. Exact (equalities
    on integers); it only makes the components smaller."""
    rows = system.rows
    fixed: dict[int, int] = {}
    rows_of: dict[int, list[int]] = defaultdict(list)
    for i, r in enumerate(rows):
        for a in r.coefs:
            rows_of[a].append(i)
    pending = [i for i, r in enumerate(rows) if r.lb == r.ub]
    queued = set(pending)
    while pending:
        i = pending.pop()
        queued.discard(i)
        r = rows[i]
        rest = r.lb
        free = []
        for a, c in r.coefs.items():
            if a in fixed:
                rest -= c * fixed[a]
            else:
                free.append((a, c))
        newly: list[tuple[int, int]] = []
        if len(free) == 1:
            a, c = free[0]
            v = rest / c
            if abs(v - round(v)) > 1e-6 or round(v) < 0:
                raise AttackerError(f"{r.origin} fixes an atom at {v}")
            newly.append((a, int(round(v))))
        elif free and abs(rest) <= 1e-9 and all(c > 0 for _, c in free):
            newly = [(a, 0) for a, _ in free]
        for a, v in newly:
            if v != system.truth[a]:
                raise AttackerError(f"{r.origin} fixes {system.atom_keys[a]} at {v}, true value {system.truth[a]}")
            fixed[a] = v
            for j in rows_of[a]:
                if j not in queued and rows[j].lb == rows[j].ub:
                    pending.append(j)
                    queued.add(j)
    return fixed


class _UnionFind:
    def __init__(self) -> None:
        self.parent: dict[int, int] = {}

    def find(self, a: int) -> int:
        self.parent.setdefault(a, a)
        while self.parent[a] != a:
            self.parent[a] = self.parent[self.parent[a]]
            a = self.parent[a]
        return a

    def union(self, items: Iterable[int]) -> None:
        items = list(items)
        if not items:
            return
        root = self.find(items[0])
        for b in items[1:]:
            rb = self.find(b)
            if rb != root:
                self.parent[rb] = root


def solve(system: System, width: int = 1, exact: bool = False, time_limit: float = 120.0, seed: int = 0) -> Result:
    """The sensitive cells of ``system`` whose integer feasible interval is narrower than ``width``.

    Exact: an interval is computed by integer programs (HiGHS, no optimality gap); a cell passes
    only with two integer solutions (the truth is one) ``width`` or more apart. To save programs,
    solutions found for one objective count as witnesses for every cell of their component.
    ``exact``: compute the interval of every sensitive cell (the solver's tests), not only of the
    failing ones."""
    _check_truth(system)
    fixed = _propagate(system)
    truth = np.asarray(system.truth, dtype=float)

    # sensitive cells, one problem per distinct expression
    by_expr: dict[tuple, list[int]] = defaultdict(list)
    for k, c in enumerate(system.cells):
        if c.sensitive:
            by_expr[tuple(sorted(c.expr.items()))].append(k)
    sensitive = sum(len(v) for v in by_expr.values())

    # rows over the unknowns left
    uf = _UnionFind()
    live_rows: list[tuple[dict[int, float], float, float]] = []
    for r in system.rows:
        shift = sum(c * fixed[a] for a, c in r.coefs.items() if a in fixed)
        free = {a: c for a, c in r.coefs.items() if a not in fixed}
        if not free:
            continue
        live_rows.append((free, r.lb - shift, r.ub - shift))
        uf.union(free)
    targets: list[tuple[tuple, float, dict[int, float]]] = []
    for expr_key, _ in by_expr.items():
        const = sum(c * fixed[a] for a, c in expr_key if a in fixed)
        free = {a: c for a, c in expr_key if a not in fixed}
        uf.union(free)
        targets.append((expr_key, const, free))

    components: dict[int, list[int]] = defaultdict(list)
    for a in list(uf.parent):
        components[uf.find(a)].append(a)
    rows_of_component: dict[int, list[int]] = defaultdict(list)
    for i, (free, _, _) in enumerate(live_rows):
        rows_of_component[uf.find(next(iter(free)))].append(i)
    targets_of_component: dict[int, list[int]] = defaultdict(list)
    intervals: dict[tuple, Interval] = {}
    unsolved: dict[tuple, str] = {}
    for t, (expr_key, const, free) in enumerate(targets):
        if not free:
            intervals[expr_key] = Interval(const, const)
        else:
            targets_of_component[uf.find(next(iter(free)))].append(t)

    rng = np.random.default_rng(seed)
    solves = 0
    largest = 0
    for root, ts in targets_of_component.items():
        atoms = sorted(components[root])
        largest = max(largest, len(atoms))
        if len(atoms) > MAX_COMPONENT_ATOMS:
            for t in ts:
                unsolved[targets[t][0]] = f"component of {len(atoms)} unknowns (limit {MAX_COMPONENT_ATOMS})"
            continue
        col = {a: j for j, a in enumerate(atoms)}
        rows = rows_of_component.get(root, [])
        data, ri, ci, lbs, ubs = [], [], [], [], []
        for k, i in enumerate(rows):
            free, lb, ub = live_rows[i]
            for a, c in free.items():
                data.append(c)
                ri.append(k)
                ci.append(col[a])
            lbs.append(lb)
            ubs.append(ub)
        n = len(atoms)
        a_matrix = csr_matrix((data, (ri, ci)), shape=(len(rows), n))
        lbs_a, ubs_a = np.asarray(lbs, dtype=float), np.asarray(ubs, dtype=float)
        constraints = [LinearConstraint(a_matrix, lbs_a, ubs_a)] if rows else []
        bounds = Bounds(np.zeros(n), np.full(n, float(BIG)))
        x_truth = truth[atoms]
        vectors = []
        for t in ts:
            _, const, free = targets[t]
            v = np.zeros(n)
            for a, c in free.items():
                v[col[a]] = c
            vectors.append((const, v))
        low = [const + v @ x_truth for const, v in vectors]
        high = list(low)
        exact_lo: dict[int, float] = {}
        exact_hi: dict[int, float] = {}

        def feasible(x: np.ndarray) -> np.ndarray | None:
            xr = np.round(x)
            if np.any(np.abs(x - xr) > 1e-5) or np.any(xr < 0):
                return None
            if rows:
                ax = a_matrix @ xr
                if np.any(ax < lbs_a - 1e-6) or np.any(ax > ubs_a + 1e-6):
                    return None
            return xr

        def witness(x: np.ndarray) -> None:
            xr = feasible(x)
            if xr is None:
                return
            for k, (const, v) in enumerate(vectors):
                val = const + v @ xr
                low[k] = min(low[k], val)
                high[k] = max(high[k], val)

        def run(c: np.ndarray, gap: float = 0.0):
            nonlocal solves
            solves += 1
            return milp(c, constraints=constraints, bounds=bounds, integrality=np.ones(n),
                        options={"time_limit": time_limit, "mip_rel_gap": gap, "presolve": True})

        def open_cells() -> list[int]:
            return [k for k in range(len(vectors)) if exact or high[k] - low[k] < width]

        # witnesses: random directions over the cells still open (not needed to be optimal), as
        # long as one closes at least WITNESS_MIN_CLOSED cells (each closes about a quarter of the
        # open cells of a large component; a cell solved alone costs one or two programs)
        previous = None
        for _ in range(WITNESS_ROUNDS):
            todo = open_cells()
            if not todo or exact or (previous is not None and previous - len(todo) < WITNESS_MIN_CLOSED):
                break
            previous = len(todo)
            c = np.zeros(n)
            for k in todo:
                c += rng.choice([-1.0, 1.0]) * vectors[k][1]
            if not c.any():
                break
            res = run(c, gap=0.05)
            if res.x is not None:
                witness(res.x)
        # then each open cell: its maximum, and its minimum when still needed
        for k in open_cells():
            const, v = vectors[k]
            for sense in (-1.0, 1.0):  # maximise, then minimise
                if not exact and high[k] - low[k] >= width:
                    break
                res = run(sense * v)
                if res.status == 3:  # unbounded (not with BIG bounds, kept for safety)
                    if sense < 0:
                        high[k] = math.inf
                        exact_hi[k] = math.inf
                    continue
                if res.status != 0 or res.x is None:
                    unsolved[targets[ts[k]][0]] = f"HiGHS status {res.status}: {res.message}"
                    break
                bound = round(const + sense * res.fun)  # max = const - min(-v.x); min = const + min(v.x)
                if sense < 0:
                    exact_hi[k] = bound
                    high[k] = max(high[k], bound)
                else:
                    exact_lo[k] = bound
                    low[k] = min(low[k], bound)
                witness(res.x)
        for k, t in enumerate(ts):
            expr_key = targets[t][0]
            if expr_key in unsolved:
                continue
            if k in exact_lo and k in exact_hi:
                intervals[expr_key] = Interval(exact_lo[k], exact_hi[k])
            elif high[k] - low[k] >= width:
                intervals[expr_key] = Interval(low[k], high[k])  # witnesses: a sub-interval, wide enough
            else:  # pragma: no cover - every open cell is solved above
                unsolved[expr_key] = "not solved"

    findings, not_solved = [], []
    exact_intervals: dict[int, Interval] = {}
    for expr_key, cells in by_expr.items():
        for k in cells:
            cell = system.cells[k]
            if expr_key in unsolved:
                not_solved.append(Finding(cell, None, unsolved[expr_key]))
                continue
            interval = intervals[expr_key]
            exact_intervals[k] = interval
            if interval.width < width:
                findings.append(Finding(cell, interval))
    findings.sort(key=lambda f: (f.cell.table, f.cell.column, f.cell.run_id or 0, str(f.cell.key)))
    return Result(width, sensitive, findings, not_solved, len(targets_of_component), largest, solves, exact_intervals)
