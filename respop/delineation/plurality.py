"""``plurality``: the Dartmouth Atlas baseline (hospital service areas).

1. Every zone goes to the hospital group (located in the scope) that receives the plurality of
   its residents' stays; ties go to the group listed first in ``problem.groups`` (by id with
   :func:`~respop.delineation.flows.build_problem`). A zone whose residents have no stay in a
   candidate group but that hosts candidate groups goes to the one of them with most stays
   overall.
2. A group whose own zone (where it is located) does not send its plurality to it disappears,
   and the zones that chose it go to their next-best surviving group; this is repeated until
   every remaining group keeps its own zone. Groups whose own zone chose a group that keeps its
   own zone are dropped first, all at once; when only circular cases remain (the zone of A
   prefers B, the zone of B prefers A), the group with fewest stays is dropped alone, so that at
   least one group always survives.
3. The repairs of :mod:`respop.delineation.graph`: zones without stays (or whose stays all go
   outside the scope) by contiguity, islands and enclaves merged into the surrounding territory
   they send most stays to, territories under ``min_population`` merged, every territory with a
   hospital and internal flow (some of its residents' stays in its own hospitals, so that it has
   a main group; only a group hosted by a zone without stays to it can lack it).
"""

from __future__ import annotations

import numpy as np
import polars as pl
from scipy import sparse

from respop.delineation.base import Delineation, FlowProblem
from respop.delineation.graph import ProblemIndex, from_labels, labels_from_array, problem_index, repair_labels


def plurality_choice(idx: ProblemIndex, alive: np.ndarray, total: np.ndarray) -> np.ndarray:
    """Column index of the alive group each zone chooses (-1: none)."""
    cols = np.flatnonzero(alive)
    choice = np.full(idx.n, -1, dtype=np.int64)
    if len(cols) == 0:
        return choice
    sub = sparse.csr_matrix(idx.flows[:, cols])
    sub.eliminate_zeros()
    sub.sort_indices()
    has = np.diff(sub.indptr) > 0
    if has.any():
        choice[has] = cols[np.asarray(sub[has].argmax(axis=1)).ravel()]
    # zones without stays in alive groups but hosting some: their most used hosted group
    hosted = cols[~has[idx.group_zone[cols]]]
    if len(hosted):
        zone = idx.group_zone[hosted]
        order = np.lexsort((hosted, -total[hosted], zone))
        zone, hosted = zone[order], hosted[order]
        lead = np.r_[True, zone[1:] != zone[:-1]]
        choice[zone[lead]] = hosted[lead]
    return choice


def surviving_groups(idx: ProblemIndex) -> tuple[np.ndarray, np.ndarray]:
    """(alive groups mask, each zone's chosen group) once every alive group keeps its own zone."""
    total = np.asarray(idx.flows.sum(axis=0)).ravel()
    alive = idx.group_zone >= 0
    while True:
        choice = plurality_choice(idx, alive, total)
        cols = np.flatnonzero(alive)
        own = choice[idx.group_zone[cols]]
        keeps = own == cols
        if keeps.all():
            return alive, choice
        survivor = np.zeros(len(alive), dtype=bool)
        survivor[cols[keeps]] = True
        losers = cols[~keeps]
        lost = losers[survivor[choice[idx.group_zone[losers]]]]
        if len(lost) == 0:  # circular preferences only: drop the weakest group
            lost = losers[np.lexsort((-losers, total[losers]))[:1]]
        alive[lost] = False


class Plurality(Delineation):
    """The Dartmouth Atlas baseline (see the module docstring).

    Fitted attributes: ``assignment_``, ``main_group_`` (see :class:`Delineation`) and
    ``surviving_groups_`` (the groups that kept their own zone, before the repairs).
    """

    name = "plurality"

    def __init__(self, min_population: float = 0):
        self.min_population = min_population

    def _fit(self, problem: FlowProblem) -> pl.DataFrame:
        idx = problem_index(problem)
        alive, choice = surviving_groups(idx)
        self.surviving_groups_ = sorted(idx.groups[alive].tolist())
        labels = repair_labels(labels_from_array(choice, idx), idx, self.min_population, internal_flow=True,
                               relabel_unflowed=False)  # a zone without stays keeps the group it hosts
        return from_labels(labels, idx)
