"""``leiden``: community detection on the flow network, with spatial constraints.

The network is bipartite: one node per zone and one per hospital group, an edge zone–group
weighted by the zone's residents' stays in the group. Communities maximise the
resolution-weighted modularity (``leidenalg.RBConfigurationVertexPartition``) and each zone takes
its community.

The bipartite graph is used rather than a zone–zone projection (zones weighted by the stays
they share in the same groups, ``F · diag(1/group stays) · Fᵀ``) because it keeps the flows as
they are, with as many edges as non-zero flows, and a community then holds zones *and* the hospitals
they use, which is what a health territory is. Both recover the planted territories of ``demo``
worlds exactly (adjusted Rand index 1.0 on seeds 1 to 4), but the projection is nearly complete
at national scale (31 million zone–zone edges against 0.87 million zone–group flows for 5,600
zones and 1,456 hospitals: the CHU referrals and far stays link every zone to every other).

Spatial constraints then follow the spatially constrained Louvain/Leiden literature (see
:mod:`respop.delineation.graph`): zones without stays by contiguity, every non-contiguous
community split into connected parts with the strays merged into the neighbour they send most
stays to, territories under ``min_population`` merged, and every territory with a hospital and
internal flow (some of its residents' stays in its own hospitals).

With ``target_count``, the resolution is searched (a safeguarded bisection on its logarithm,
see :meth:`Leiden._next_resolution`, at most :attr:`Leiden.max_fits` fits) so that the number of
territories *after* the constraints is the target, or else the closest below it, or else the
closest above it when no resolution tried gives as few; among equals, the resolution closest to
``resolution`` on the log scale.
"""

from __future__ import annotations

import math
import warnings

import igraph as ig
import leidenalg
import numpy as np
import polars as pl

from respop.delineation.base import Delineation, FlowProblem
from respop.delineation.graph import (
    Labels, ProblemIndex, _assign_unflowed, _enforce_contiguity, _ensure_hospital, _merge_small,
    _merge_uncontained, _refine_borders, anchored_groups, from_labels, labels_from_array, problem_index,
    repair_labels,
)


class TargetCountWarning(UserWarning):
    """``target_count`` could not be met; the message says how many territories were found and why."""


class AnchorWarning(UserWarning):
    """Some territories hold no anchor hospital (``anchor_kinds``): with ``target_count`` or
    ``resolution``, where the rule is checked but not enforced, or a territory cut off from every
    other; the message names them."""


def flow_graph(idx: ProblemIndex) -> ig.Graph:
    """Bipartite graph: zone nodes 0..n-1, group nodes n..n+m-1, edges weighted by stays."""
    coo = idx.flows.tocoo()
    graph = ig.Graph(n=idx.n + idx.flows.shape[1], edges=np.column_stack([coo.row, coo.col + idx.n]).tolist())
    graph.es["weight"] = coo.data.astype(float).tolist()
    return graph


class Leiden(Delineation):
    """Leiden communities of the zone–hospital-group flow network, spatially constrained.

    Parameters: ``resolution`` (of the modularity; the starting point of the search when
    ``target_count`` is set; None: 1.0 there), ``target_count`` (wanted number of territories),
    ``min_population``, ``min_containment`` and ``min_localization`` (the self-containment
    criterion of the automatic count), ``anchor_kinds`` (the anchor rule of the automatic count:
    every territory holds a hospital group with a hospital of one of these kinds, by default CH
    and CHU; off when empty or when the problem's groups carry no ``kinds``), ``seed`` (of
    leidenalg), ``n_iterations`` (of leidenalg; -1: until stable).

    Three ways to fit: ``target_count`` set: the resolution search for that count (a
    :class:`TargetCountWarning` says why when it is not met); ``resolution`` set without a
    target: one fit at that resolution; neither (the default): the number of territories is
    chosen from the flows (:meth:`_fit_auto`).

    Fitted attributes: ``assignment_``, ``main_group_`` (see :class:`Delineation`),
    ``resolution_`` (the resolution used), ``search_`` (the resolutions tried: resolution,
    number of territories), ``count_`` (automatic count: the territories at each step),
    ``warnings_`` (the messages warned), ``anchor_kinds_`` (the anchor kinds applied, empty when
    the rule is off), ``anchor_note_`` (why the rule is off, None when it is on or not asked for),
    ``unanchored_`` (the zones of each territory left without an anchor, when the rule is on).
    """

    name = "leiden"
    max_fits: int = 20
    """Most fits of the resolution search."""
    resolution_bounds: tuple[float, float] = (1e-4, 1e4)
    """The search does not go beyond these resolutions."""
    max_growth: int = 5
    """Automatic count: most territories added beyond the count of the service areas."""

    def __init__(self, resolution: float | None = None, target_count: int | None = None,
                 min_population: float = 0, seed: int = 0, n_iterations: int = -1,
                 min_containment: float = 1.5, min_localization: float = 0.0,
                 anchor_kinds: tuple[str, ...] | list[str] = ("CH", "CHU")):
        self.resolution = resolution
        self.target_count = target_count
        self.min_population = min_population
        self.seed = seed
        self.n_iterations = n_iterations
        self.min_containment = min_containment
        self.min_localization = min_localization
        self.anchor_kinds = anchor_kinds

    def _fit_at(self, graph: ig.Graph, idx: ProblemIndex, resolution: float) -> Labels:
        partition = leidenalg.find_partition(
            graph, leidenalg.RBConfigurationVertexPartition, weights="weight",
            resolution_parameter=resolution, seed=self.seed, n_iterations=self.n_iterations,
        )
        membership = np.asarray(partition.membership[: idx.n], dtype=np.int64)
        membership[~idx.has_flow] = -1
        labels = labels_from_array(membership, idx)
        # the repairs of repair_labels, counting the territories after each (for the warning)
        steps = [("communities", len(labels.values))]
        labels = _assign_unflowed(labels, idx)
        labels = _enforce_contiguity(labels, idx)
        steps.append(("contiguity", len(labels.values)))
        labels = _merge_small(labels, idx, self.min_population)
        steps.append(("population", len(labels.values)))
        labels = _ensure_hospital(labels, idx, True)
        steps.append(("hospital", len(labels.values)))
        self._steps[resolution] = steps
        return labels

    def _fit(self, problem: FlowProblem) -> pl.DataFrame:
        if self.resolution is not None and self.resolution <= 0:
            raise ValueError("resolution must be positive")
        if self.target_count is not None and self.target_count < 1:
            raise ValueError("target_count must be at least 1")
        if self.min_containment < 0 or not 0 <= self.min_localization <= 1:
            raise ValueError("min_containment must be at least 0 and min_localization in [0, 1]")
        if isinstance(self.anchor_kinds, str):
            raise ValueError("anchor_kinds is a list of hospital kinds, e.g. ('CH', 'CHU')")
        idx = problem_index(problem)
        graph = flow_graph(idx)
        self._steps: dict[float, list[tuple[str, int]]] = {}
        self.warnings_: list[str] = []
        self.count_: dict[str, int] = {}
        self._anchor = self._anchor_rule(problem)
        if self.target_count is None and self.resolution is None:
            labels = self._fit_auto(graph, idx)
        elif self.target_count is None:
            labels = self._fit_at(graph, idx, self.resolution)
            self.resolution_ = self.resolution
            self.search_ = [(self.resolution, len(labels.values))]
        else:
            labels = self._search(graph, idx, self.target_count)
            self._check_target(idx, labels)
        self._check_anchors(idx, labels)
        return from_labels(labels, idx)

    def _anchor_rule(self, problem: FlowProblem) -> np.ndarray | None:
        """The anchor groups (None: rule off), with ``anchor_kinds_`` and ``anchor_note_`` set."""
        kinds = tuple(dict.fromkeys(self.anchor_kinds or ()))
        self.anchor_kinds_: tuple[str, ...] = ()
        self.anchor_note_: str | None = None
        self.unanchored_: list[list[str]] = []
        if not kinds:
            return None
        anchor = anchored_groups(problem, kinds)
        if anchor is None:
            self.anchor_note_ = (f"the hospitals' table has no kind column: the anchor rule (every territory holds a "
                                 f"hospital of kind {' or '.join(kinds)}) is off")
            return None
        idx = problem_index(problem)
        if not anchor[idx.located].any():
            self.anchor_note_ = (f"no hospital of kind {' or '.join(kinds)} is located in the scope: the anchor rule "
                                 f"is off")
            return None
        self.anchor_kinds_ = kinds
        return anchor

    def _check_anchors(self, idx: ProblemIndex, labels: Labels) -> None:
        """Warn (:class:`AnchorWarning`) naming the territories without an anchor hospital. With no
        count given, only a territory cut off from every other can be left so; with
        ``target_count`` or ``resolution`` the rule is checked, not enforced."""
        if self._anchor is None:
            return
        loc = idx.located
        holder = labels.lab[idx.group_zone[loc]]
        anchored = np.unique(holder[(holder >= 0) & self._anchor[loc]])
        bare = np.setdiff1d(np.arange(len(labels.values)), anchored)
        self.unanchored_ = [sorted(idx.codes[labels.lab == t].tolist()) for t in bare]
        if not len(bare):
            return
        kinds = " or ".join(self.anchor_kinds_)
        if self.target_count is None and self.resolution is None:
            why = "cut off from every other territory, so not merged"
        else:
            why = ("the anchor rule merges such territories only when the count is chosen from the flows (no "
                   "target_count, no resolution); here it is only checked")
        # name each by the hospital groups located in it (every territory has one) and its first zone
        named = [f"{', '.join(sorted(idx.groups[loc[holder == t]].tolist())[:3])} (zone {zones[0]}…)"
                 for t, zones in zip(bare, self.unanchored_)]
        shown = "; ".join(named[:10]) + (" …" if len(bare) > 10 else "")
        message = (f"{len(bare)} territor{'y' if len(bare) == 1 else 'ies'} without a hospital of kind {kinds}, "
                   f"with the hospital groups {shown}: {why}")
        self.warnings_.append(message)
        warnings.warn(message, AnchorWarning, stacklevel=4)

    def _fit_auto(self, graph: ig.Graph, idx: ProblemIndex) -> Labels:
        """The number of territories chosen from the flows (the self-containment criterion).

        1. Count: the hospital service areas of ``plurality`` (with the repairs and
           ``min_population``), then the territories that fail the criterion merged
           (:func:`~respop.delineation.graph.merge_uncontained`; a territory without an anchor
           hospital, see ``anchor_kinds``, fails it too): the count left is the target.
        2. Shape: the Leiden resolution search for that count, the territories that fail the
           criterion merged again; then one more territory asked for, kept while the count after
           merging grows (:attr:`max_growth` asks at most; with the anchor rule, a count that does
           not grow is skipped rather than the end, up to the number of zones hosting an anchor).
        3. Borders: refined (:func:`~respop.delineation.graph.refine_borders`) and the repairs
           run again.
        """
        from respop.delineation.plurality import surviving_groups

        _, choice = surviving_groups(idx)
        hsa = repair_labels(labels_from_array(choice, idx), idx, self.min_population, internal_flow=True,
                            relabel_unflowed=False)
        counted = _merge_uncontained(hsa, idx, self.min_containment, self.min_localization, self._anchor)
        target = len(counted.values)
        labels = self._search(graph, idx, target)
        found = len(labels.values)
        labels = _merge_uncontained(labels, idx, self.min_containment, self.min_localization, self._anchor)
        # then more territories, as long as they all pass the criterion. Without the anchor rule
        # the growth stops at the first count asked for that does not give more; with it, it asks
        # for one more again (the extra pieces of a larger partition have no anchor and are merged
        # back), up to as many territories as zones hosting an anchor
        resolution, search = self.resolution_, list(self.search_)
        bound = None if self._anchor is None else len(np.unique(idx.group_zone[idx.located[self._anchor[idx.located]]]))
        asked = len(labels.values)
        for _ in range(self.max_growth):
            asked = max(asked, len(labels.values)) + 1
            if bound is not None and asked > bound:
                break
            more = self._search(graph, idx, asked)
            more = _merge_uncontained(more, idx, self.min_containment, self.min_localization, self._anchor)
            search += self.search_
            if len(more.values) > len(labels.values):
                labels, resolution = more, self.resolution_
            elif bound is None:
                break
        self.resolution_, self.search_ = resolution, sorted(set(search))
        merged = len(labels.values)
        labels = _refine_borders(labels, idx, self.min_population)
        labels = repair_labels(labels, idx, self.min_population, internal_flow=True)
        self.count_ = {"service_areas": len(hsa.values), "target": target, "leiden": found,
                       "contained": merged, "territories": len(labels.values)}
        return labels

    def _search(self, graph: ig.Graph, idx: ProblemIndex, target: int) -> Labels:
        """The resolution search for ``target`` territories (sets ``resolution_``, ``search_``)."""
        start = self.resolution or 1.0
        lo_bound, hi_bound = self.resolution_bounds
        tried: dict[float, Labels] = {}
        r = start
        while len(tried) < self.max_fits:
            tried[r] = self._fit_at(graph, idx, r)
            r = self._next_resolution({x: len(v.values) for x, v in tried.items()}, target)
            if r is None or r in tried or not lo_bound <= r <= hi_bound:
                break

        def rank(x: float) -> tuple:
            k = len(tried[x].values)
            return (k > target, abs(k - target), abs(math.log(x / start)))

        best = min(tried, key=rank)
        self.resolution_ = best
        self.search_ = sorted((x, len(v.values)) for x, v in tried.items())
        return tried[best]

    def _check_target(self, idx: ProblemIndex, labels: Labels) -> None:
        """Warn (:class:`TargetCountWarning`) when the search ended away from the target, saying why."""
        target, found = self.target_count, len(labels.values)
        if found == target:
            return
        tried = ", ".join(f"{x:.3g} → {k}" for x, k in self.search_)
        if found > target:
            why = (f"every resolution tried gives more (resolution → territories: {tried}); "
                   f"the contiguity and hospital repairs leave at least {found}")
        else:
            # the fit that gave most territories: which repair took them away
            richest = max(self._steps, key=lambda x: (self._steps[x][-1][1], self._steps[x][0][1]))
            steps = dict(self._steps[richest])
            lost_pop = steps["contiguity"] - steps["population"]
            lost_hosp = steps["population"] - steps["hospital"]
            total = float(idx.population.sum())
            reasons = []
            if self.min_population > 0 and lost_pop > 0:
                reasons.append(
                    f"the minimum population {self.min_population:,.0f} merged {lost_pop} territor"
                    f"{'y' if lost_pop == 1 else 'ies'} (the scope's {total:,.0f} inhabitants allow at most "
                    f"{int(total // self.min_population)} territories of that size, fewer where small "
                    f"territories lie between large ones)")
            if lost_hosp > 0:
                reasons.append(
                    f"{lost_hosp} territor{'y' if lost_hosp == 1 else 'ies'} without a hospital group located in "
                    f"{'it' if lost_hosp == 1 else 'them'} or without internal flow merged")
            located = len(np.unique(idx.group_zone[idx.located]))
            if located < target:
                reasons.append(f"only {located} zones host a hospital group, and every territory needs one")
            if not reasons:
                reasons.append(f"no resolution gives more (resolution → territories: {tried})")
            why = "; ".join(reasons)
        message = f"target_count {target} not met: {found} territories, because {why}"
        self.warnings_.append(message)
        warnings.warn(message, TargetCountWarning, stacklevel=4)

    @staticmethod
    def _next_resolution(counts: dict[float, int], target: int) -> float | None:
        """The next resolution to try, from the territory counts so far (None: stop).

        Bracket the target between the smallest resolution giving too many territories and the
        largest smaller one giving too few, then cut the bracket on the log scale where a power
        law through its ends reaches the target (kept within its middle half, so the bracket
        shrinks at least as fast as 3/4 per fit, like a bisection). Outside a bracket, step by
        the ratio of target to count (between 2 and 64)."""
        if target in counts.values():
            return None
        above = [x for x, k in counts.items() if k > target]
        hi = min(above) if above else None
        below = [x for x, k in counts.items() if k < target and (hi is None or x < hi)]
        lo = max(below) if below else None
        if hi is None:
            return lo * min(64.0, max(2.0, target / counts[lo]))
        if lo is None:
            return hi / min(64.0, max(2.0, counts[hi] / target))
        if hi / lo < 1.001:
            return None
        k_lo, k_hi = max(counts[lo], 1), counts[hi]
        frac = (math.log(target) - math.log(k_lo)) / (math.log(k_hi) - math.log(k_lo))
        frac = min(0.75, max(0.25, frac))
        return math.exp(math.log(lo) + frac * (math.log(hi) - math.log(lo)))
