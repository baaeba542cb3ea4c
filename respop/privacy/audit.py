"""The exact interval audit of disclosure control: how far a viewer can narrow each masked count.

A viewer of the store knows the published cells, the additive relations between cells (strata of a
unit summing to its ``all`` row, zones to their territory, a count published in two tables, the
same zone in two runs...), that counts are integers, and that zeros are published: a masked cell
is at least 1, a count that is never published (per-zone deaths) at least 0. For every masked cell
whose true value is 1 to 10 (a *sensitive* cell), :func:`audit` computes the smallest and the
largest value it can take under all of that — an integer linear program per cell — and reports
the cells whose feasible interval is narrower than the protection width (``max − min``; τ-Argus's
protection intervals and GaussSuppression's ``rangeMin`` in absolute terms). A cell determined
exactly is the case ``max == min``.

Each connected group of masked cells (cells linked by a relation with at least two masked
members) is one program: the relations restricted to its masked cells, the published cells moved
to the right-hand side. The programs are solved by HiGHS (highspy): the linear relaxation
first; when its optimum is not an integer point, the mixed-integer program. Feasible integer
points found on the way (the true values to start with) are witnesses: a cell whose witnesses are
already ``protection`` apart needs no program of its own. A group held by a single relation
(masked parts of a published total, the most common shape: a zone's flows to a thousand
hospitals) has its exact intervals in closed form, without a program (:func:`_audit_one_equation`;
``Audit.programs`` counts the programs solved, so these count none). A group of more than
:data:`MAX_AUDIT_CELLS` masked cells is not solved: it is reported (``Audit.unaudited``), never
skipped silently.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import os
import sys

import numpy as np

MAX_AUDIT_CELLS = 20_000
"""Masked cells in one connected group above which the group is reported instead of solved."""


@dataclass(frozen=True)
class Interval:
    """A sensitive cell's feasible interval: ``low`` and ``high`` (``inf`` when unbounded)."""

    cell: int
    value: int
    low: float
    high: float
    binding: tuple[int, ...] = ()
    """Relations (indices into the audit's ``relations``) that hold the interval in: the equations
    with a non-zero dual value at the linear optimum; masking one of their published cells widens
    the interval (what the suppression tries first)."""

    @property
    def width(self) -> float:
        return self.high - self.low


@dataclass
class Audit:
    """What :func:`audit` found: the sensitive cells whose interval is too narrow, grouped by
    connected group; the masked cells of groups too large to solve; programs solved."""

    failing: list[list[Interval]] = field(default_factory=list)
    unaudited: int = 0
    programs: int = 0

    @property
    def ok(self) -> bool:
        return not self.failing


def groups(masked: Sequence[bool], relations: Sequence[tuple[int, tuple[int, ...]]],
           flat: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[dict[int, list[int]], dict[int, list[int]]]:
    """Connected groups of masked cells: {root: cells}, {root: indices of the relations that
    touch the group}, the groups in the order of their smallest cell, their cells and relations
    in increasing order. ``relations``: (total, parts) pairs; ``flat``: their members as
    :func:`flatten` gives them (computed here when not given: the suppression, which audits the
    same relations again and again, keeps it). Vectorised: the masked members of each relation
    chained as the edges of a graph whose connected components are the groups."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    is_masked = np.asarray(masked, dtype=bool)
    n = len(is_masked)
    if not is_masked.any():
        return {}, {}
    cells_flat, rows_flat = flat if flat is not None else flatten(relations)
    keep = is_masked[cells_flat] if len(cells_flat) else np.zeros(0, dtype=bool)
    cells_m, rows_m = cells_flat[keep], rows_flat[keep]
    same = rows_m[1:] == rows_m[:-1]  # consecutive masked members of one relation: an edge
    graph = coo_matrix((np.ones(int(same.sum()), dtype=np.int8), (cells_m[:-1][same], cells_m[1:][same])), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    masked_cells = np.flatnonzero(is_masked)
    # each group keyed by its smallest cell (the root), in the order of the roots
    first = np.full(n, n, dtype=np.int64)
    np.minimum.at(first, labels[masked_cells], masked_cells)
    root_of = first[labels]
    order = np.argsort(root_of[masked_cells], kind="stable")
    sorted_cells = masked_cells[order]
    roots, starts = np.unique(root_of[sorted_cells], return_index=True)
    cells = _split(roots, sorted_cells, starts)
    # every relation with a masked member, under the root of its group, in increasing order
    touching, at = np.unique(rows_m, return_index=True)
    touching_roots = root_of[cells_m[at]]
    order = np.argsort(touching_roots, kind="stable")
    rows_sorted, roots_sorted = touching[order], touching_roots[order]
    keys, starts = np.unique(roots_sorted, return_index=True)
    rows = _split(keys, rows_sorted, starts)
    return cells, rows


def _split(keys: np.ndarray, values: np.ndarray, starts: np.ndarray) -> dict[int, list[int]]:
    """{key: its run of ``values``}, the runs starting at ``starts`` (list slices: np.split makes
    an array per group, slow for the national tables' 80,000 groups)."""
    flat, bounds = values.tolist(), [*starts.tolist(), len(values)]
    return {k: flat[a:b] for k, a, b in zip(keys.tolist(), bounds[:-1], bounds[1:])}


def flatten(relations: Sequence[tuple[int, tuple[int, ...]]]) -> tuple[np.ndarray, np.ndarray]:
    """The members of every relation (its parts, then its total) as two arrays: cells, and the
    index of their relation."""
    sizes = np.fromiter((len(parts) + 1 for _, parts in relations), dtype=np.int64, count=len(relations))
    cells = np.fromiter((c for total, parts in relations for c in (*parts, total)), dtype=np.int64, count=int(sizes.sum()))
    return cells, np.repeat(np.arange(len(relations), dtype=np.int64), sizes)


def _highs():
    """A silent HiGHS instance. highspy prints a banner on stdout (at the C level) the first time
    one is made in a process: that one is made with stdout pointed at /dev/null."""
    import highspy

    global _BANNER_SHOWN
    if _BANNER_SHOWN:
        h = highspy.Highs()
    else:
        sys.stdout.flush()
        saved = os.dup(1)
        try:
            with open(os.devnull, "w") as sink:
                os.dup2(sink.fileno(), 1)
                h = highspy.Highs()
        finally:
            os.dup2(saved, 1)
            os.close(saved)
        _BANNER_SHOWN = True
    h.setOptionValue("output_flag", False)
    h.setOptionValue("threads", 1)  # the same masks at every run (several threads: not always)
    h.setOptionValue("mip_rel_gap", 0.0)  # integer optima exact
    return h


_BANNER_SHOWN = False


class _Program:
    """The integer program of one connected group of masked cells, built once as a HiGHS model:
    every extreme of the group changes the objective only, and the simplex restarts from the last
    basis (hundreds of objectives per group; building a fresh program each time cost 20 ms on the
    groups of the tiny world)."""

    def __init__(self, cells: list[int], rows: list[int], relations, values, masked, lower):
        import highspy

        self.cells = cells
        self.index = {c: k for k, c in enumerate(cells)}
        n = len(cells)
        starts, indices, coefs, rhs = [0], [], [], []
        self.row_relation: list[int] = []
        for k in rows:
            total, parts = relations[k]
            coef: dict[int, float] = {}
            constant = 0.0
            for p in parts:
                if masked[p]:
                    coef[p] = coef.get(p, 0.0) + 1.0
                else:
                    constant += values[p]
            if masked[total]:
                coef[total] = coef.get(total, 0.0) - 1.0
            else:
                constant -= values[total]
            coef = {c: v for c, v in coef.items() if v != 0.0}
            if not coef:
                continue
            for c, v in coef.items():
                indices.append(self.index[c])
                coefs.append(v)
            starts.append(len(indices))
            rhs.append(-constant)
            self.row_relation.append(k)
        self.lower = np.asarray([lower[c] for c in cells], dtype=float)
        self.rows = len(rhs)
        self.programs = 0
        self.optimum = None
        self._row_relation = np.asarray(self.row_relation, dtype=np.int64)
        self._hs = highspy
        self._costs: dict[int, np.ndarray] = {}  # per model: the columns of the current objective
        self._mip = None
        if not self.rows:
            self.lp = None
            return
        self._model = (np.asarray(starts[:-1], dtype=np.int32), np.asarray(indices, dtype=np.int32),
                       np.asarray(coefs, dtype=float), np.asarray(rhs, dtype=float))
        self.lp = self._build()
        self.lp.setOptionValue("presolve", "off")  # keep the basis between objectives

    def _build(self):
        h = _highs()
        n = len(self.cells)
        inf = h.getInfinity()
        h.addVars(n, self.lower, np.full(n, inf))
        row_starts, indices, coefs, rhs = self._model
        h.addRows(self.rows, rhs, rhs, len(indices), row_starts, indices, coefs)
        return h

    def _objective(self, h, cells: list[int], maximise: bool, weights: np.ndarray | None = None) -> None:
        """Set the objective of ``h`` to the (weighted) sum of ``cells``, maximised or minimised."""
        ks = np.asarray([self.index[c] for c in cells], dtype=np.int32)
        old = self._costs.get(id(h))
        if old is not None and len(old):
            h.changeColsCost(len(old), old, np.zeros(len(old)))
        h.changeColsCost(len(ks), ks, np.ones(len(ks)) if weights is None else np.asarray(weights, dtype=float))
        h.changeObjectiveSense(self._hs.ObjSense.kMaximize if maximise else self._hs.ObjSense.kMinimize)
        self._costs[id(h)] = ks

    def _solve(self, h) -> str:
        self.programs += 1
        h.run()
        status = h.getModelStatus()
        kinds = self._hs.HighsModelStatus
        if status not in (kinds.kOptimal, kinds.kUnbounded, kinds.kUnboundedOrInfeasible, kinds.kInfeasible):
            # the restart from the previous basis can end undecided (kUnknown): solve from scratch
            h.clearSolver()
            h.run()
            status = h.getModelStatus()
        if status == kinds.kOptimal:
            return "optimal"
        if status in (kinds.kUnbounded, kinds.kUnboundedOrInfeasible):
            return "unbounded"  # the true values are feasible: never infeasible
        return str(status)

    def extreme_sum(self, cells: list[int], maximise: bool, weights: np.ndarray | None = None) -> np.ndarray | None:
        """An integer point maximising (or minimising) the (weighted) sum of ``cells``, or None
        (unbounded, or the linear optimum is not an integer point): a witness for many cells at
        once."""
        if self.lp is None:
            return None
        self._objective(self.lp, cells, maximise, weights)
        if self._solve(self.lp) != "optimal":
            return None
        x = np.asarray(self.lp.getSolution().col_value)
        return np.round(x) if np.all(np.abs(x - np.round(x)) < 1e-6) else None

    def extreme(self, cell: int, maximise: bool) -> tuple[float, np.ndarray | None]:
        """The linear optimum of ``cell`` (largest when ``maximise``) and, when it is an integer
        point, that point (None otherwise, and when unbounded: ``inf``). The integer optimum is
        at most (at least) the linear one. ``self.optimum`` is then that linear optimum (None
        when unbounded or without valid duals), whose relations :meth:`binding` gives."""
        k = self.index[cell]
        self.optimum = None
        if self.lp is None:  # no equation: from the lower bound to infinity
            return (np.inf, None) if maximise else (self.lower[k], None)
        self._objective(self.lp, [cell], maximise)
        status = self._solve(self.lp)
        if status == "unbounded":
            return np.inf, None
        if status != "optimal":
            raise RuntimeError(f"the interval audit's linear program failed: {status}")
        solution = self.lp.getSolution()
        self.optimum = solution if solution.dual_valid else None
        x = np.asarray(solution.col_value)
        if np.all(np.abs(x - np.round(x)) < 1e-6):
            return float(np.round(x[k])), np.round(x)
        return float(x[k]), None

    def binding(self, optimum) -> tuple[int, ...]:
        """The relations holding a linear optimum (:attr:`optimum` after :meth:`extreme`): the
        equations with a non-zero dual value, the largest first. Computed only for the cells that
        fail (reading the duals of a large group at every optimum cost more than the solves)."""
        if optimum is None:
            return ()
        duals = np.asarray(optimum.row_dual)
        order = np.argsort(-np.abs(duals))
        return tuple(self._row_relation[order[np.abs(duals[order]) > 1e-9]].tolist())

    def _integer_model(self):
        if self._mip is None:
            self._mip = self._build()
            n = len(self.cells)
            self._mip.changeColsIntegrality(n, np.arange(n, dtype=np.int32), np.full(n, 1, dtype=np.uint8))
        return self._mip

    def integer_max(self, cell: int) -> np.ndarray:
        """An integer point where ``cell`` is largest (the group is bounded above for it)."""
        mip = self._integer_model()
        self._objective(mip, [cell], True)
        try:
            status = self._solve(mip)
        finally:
            self._objective(mip, [], False)
        if status != "optimal":
            raise RuntimeError(f"the interval audit's integer program failed: {status}")
        return np.round(np.asarray(mip.getSolution().col_value))

    def reach(self, cell: int, target: float, up: bool) -> np.ndarray | None:
        """An integer point where ``cell`` is at least (``up``) or at most ``target``, or None
        when there is none: a feasibility program, which stops at the first such point."""
        self._integer_model()
        k = self.index[cell]
        inf = self._mip.getInfinity()
        low, high = (target, inf) if up else (self.lower[k], target)
        if low > high:
            return None
        self._mip.changeColBounds(k, low, high)
        try:
            status = self._solve(self._mip)
        finally:
            self._mip.changeColBounds(k, self.lower[k], inf)
        if status == "optimal":
            return np.round(np.asarray(self._mip.getSolution().col_value))
        if status == str(self._hs.HighsModelStatus.kInfeasible):
            return None
        raise RuntimeError(f"the interval audit's integer program failed: {status}")


def audit(
    values: Sequence[int],
    masked: Sequence[bool],
    relations: Sequence[tuple[int, tuple[int, ...]]],
    sensitive: Sequence[bool],
    protection: int,
    hidden: Sequence[bool] | None = None,
    cache: dict | None = None,
) -> Audit:
    """The sensitive masked cells whose feasible interval is narrower than ``protection``
    (module docstring). ``hidden``: cells a viewer cannot know to be non-zero — never published,
    or masked with their group rather than for their count (lower bound 0 instead of 1).
    ``cache``: a dict kept between calls on the same cells while more cells get masked (the
    suppression loop re-audits after each added suppression). Masking a cell only widens every
    interval (a published cell becomes an unknown that may keep its value), so a cell that passed
    stays passed and a feasible point stays feasible: only the cells that failed are solved again,
    starting from the witnesses already found."""
    lower = [0 if (hidden is not None and hidden[c]) or values[c] <= 0 else 1 for c in range(len(values))]
    state = cache if cache is not None else {}
    passed: set[int] = state.setdefault("passed", set())
    seen: dict[int, list[float]] = state.setdefault("seen", {})
    if "flat" not in state or state.get("relations") is not relations:
        state["flat"], state["relations"] = flatten(relations), relations
    cells_of, rows_of = groups(masked, relations, state["flat"])
    out = Audit()
    for root, cells in cells_of.items():
        targets = [c for c in cells if sensitive[c] and c not in passed]
        if not targets:
            continue
        if protection <= 0:
            passed.update(targets)
            continue
        if len(cells) > MAX_AUDIT_CELLS:
            out.unaudited += len(cells)
            continue
        failing = _audit_group(cells, rows_of.get(root, []), targets, relations, values, masked, lower, protection, out, passed, seen)
        if failing:
            out.failing.append(failing)
    return out


def _one_equation(cells, rows, relations, values, masked) -> tuple[dict[int, float], float] | None:
    """A group held by one relation whose masked members each appear once: its equation
    ``sum(coef[c] * x[c]) = rhs`` (``coef`` ±1, published members moved to the right-hand side),
    or None (another shape: the programs of :class:`_Program`)."""
    if len(rows) != 1:
        return None
    total, parts = relations[rows[0]]
    members = [p for p in parts if masked[p]] + ([total] if masked[total] else [])
    if len(set(members)) != len(members) or sorted(members) != sorted(cells):
        return None
    rhs = float(values[total] if not masked[total] else 0) - sum(float(values[p]) for p in parts if not masked[p])
    coef = {p: 1.0 for p in parts if masked[p]}
    if masked[total]:
        coef[total] = -1.0
    return coef, rhs


def _audit_one_equation(equation, row: int, targets, values, lower, protection, passed: set, seen: dict) -> list[Interval]:
    """The exact intervals of a group held by one equation with ±1 coefficients, in closed form
    (the same intervals the programs give: the linear program of such a group has integer
    vertices). Members of both signs: every cell can grow without bound with one of the other
    sign. One sign (masked parts of a published total, the common case): ``x[c] + (the others) =
    rhs``, so ``x[c]`` runs from its lower bound (``rhs`` when it is alone) to ``rhs`` minus the
    others' lower bounds. The relation holding a narrow interval is the equation itself."""
    coef, rhs = equation
    cells = list(coef)
    if len(set(coef.values())) == 2:
        passed.update(targets)
        return []
    sign = next(iter(coef.values()))
    budget = sign * rhs - sum(lower[c] for c in cells)  # what the cells hold above their lower bounds
    failing = []
    alone = len(cells) == 1  # its value is the right-hand side; else the others can take the rest
    for c in cells:
        seen[c] = (float(lower[c] + budget if alone else lower[c]), float(lower[c] + budget))
    for c in targets:
        low, high = seen[c]
        if high - low >= protection:
            passed.add(c)
        else:
            failing.append(Interval(c, int(values[c]), low, high, (row,)))
    return failing


def _audit_group(cells, rows, targets, relations, values, masked, lower, protection, out: Audit, passed: set, seen: dict) -> list[Interval]:
    if not rows:  # no relation holds these cells: each can take any value from its lower bound up
        passed.update(targets)
        return []
    equation = _one_equation(cells, rows, relations, values, masked)
    if equation is not None:
        return _audit_one_equation(equation, rows[0], targets, values, lower, protection, passed, seen)
    program = _Program(cells, rows, relations, values, masked, lower)
    # witnesses: feasible integer points (the true values to start with), kept between calls
    low = np.asarray([seen.get(c, (values[c], values[c]))[0] for c in cells], dtype=float)
    high = np.asarray([seen.get(c, (values[c], values[c]))[1] for c in cells], dtype=float)

    def witness(x: np.ndarray | None) -> None:
        if x is not None:
            np.minimum(low, x, out=low)
            np.maximum(high, x, out=high)

    def done(c: int) -> bool:
        k = program.index[c]
        return high[k] - low[k] >= protection

    failing = []
    open_targets = [c for c in targets if not done(c)]
    if len(open_targets) > 4:  # two programs that move many cells at once
        for maximise in (True, False):
            witness(program.extreme_sum(open_targets, maximise))
    for c in open_targets:
        if done(c):
            passed.add(c)
            continue
        k = program.index[c]
        # the largest value: the linear optimum bounds it; when that is not an integer point,
        # a feasibility program tells whether an integer point reaches ``protection`` above the
        # smallest value seen (then the cell passes), else the bound drops below it
        top, x = program.extreme(c, maximise=True)
        at_top = program.optimum
        witness(x)
        if x is None and np.isfinite(top):
            top = float(np.floor(top + 1e-6))
            if top - low[k] >= protection:
                witness(program.reach(c, low[k] + protection, up=True))
                if not done(c):
                    top = low[k] + protection - 1
        if done(c) or top - low[k] >= protection:  # (an unbounded top, or reached)
            passed.add(c)
            continue
        # ``top`` is now a proven bound on the largest value; the smallest value the same way
        bottom, x = program.extreme(c, maximise=False)
        witness(x)
        if x is None:
            bottom = float(np.ceil(bottom - 1e-6))
        if top - bottom >= protection:
            if high[k] < top:  # the bound is not reached by a known point: the exact largest value
                witness(program.integer_max(c))
                top = high[k]
            if top - bottom >= protection:
                witness(program.reach(c, top - protection, up=False))
                if done(c):
                    passed.add(c)
                    continue
                bottom = top - protection + 1  # no integer point that far below
        # too narrow: widen where it is narrowest first, the side closer to the true value
        binding, at_bottom = program.binding(at_top), program.binding(program.optimum)
        first, second = (binding, at_bottom) if top - values[c] <= values[c] - bottom else (at_bottom, binding)
        failing.append(Interval(c, int(values[c]), bottom, top, tuple(dict.fromkeys((*first, *second)))))
    for c in targets:
        if c not in passed and done(c):
            passed.add(c)
    for k, c in enumerate(cells):
        seen[c] = (low[k], high[k])
    out.programs += program.programs
    return failing
