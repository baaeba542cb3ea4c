"""Graph helpers on a :class:`~respop.delineation.base.FlowProblem`, and the repair operations
every method shares.

A method first labels zones from the flows alone, then makes its labels satisfy the guarantees
with, in this order (see :func:`repair`):

1. :func:`assign_unflowed`: zones without stays (or without a label) take the territory most
   common among their labelled neighbours, round after round;
2. :func:`enforce_contiguity`: every territory is split into connected parts; the part holding
   most of its population keeps the territory, each other part (island, enclave) joins the
   adjacent territory that its residents' stays go to most;
3. :func:`merge_small`: the smallest territory under the minimum population joins the adjacent
   territory that its residents' stays go to most, until none is left under the minimum;
4. :func:`ensure_hospital`: likewise for territories without a hospital group located in them
   (and, optionally, without internal flow: none of their residents' stays in their hospitals).

Merging two adjacent contiguous territories keeps them contiguous and only raises population,
hospital count and internal flow, so steps 3 and 4 never undo each other or step 2.

"Strongest flow" from a set of zones P to a territory T is the number of stays of P's residents in
hospital groups located in T's zones; ties go to the territory sharing most borders with P (count
of adjacent zone pairs), then to the smallest territory label.

Labels are ``pl.DataFrame`` (zone_code, territory_id): any integers, null or absent for a zone
without a territory. The operations return every zone of the scope, in the problem's zone order,
with ``territory_id`` Int64 (null for zones still without a territory). A territory keeps its
label when others are merged into it; a part that cannot join any territory (a piece of the scope
cut off from every other territory, such as an island) gets a new label. Infeasible inputs (a cut
off piece with no hospital, a scope whose population is under the minimum) are left as they are:
:func:`respop.delineation.guarantees.check` reports them. Everything terminates: every round
either merges or creates a territory from a finite set of parts.
"""

from __future__ import annotations

import heapq
import math
import weakref
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl
from scipy import sparse
from scipy.sparse.csgraph import connected_components

from respop.delineation.problem import DelineationError, FlowProblem

LABELS_SCHEMA = {"zone_code": pl.String, "territory_id": pl.Int64}


# ---------------------------------------------------------------------------------------------
# Index of a problem: zones, groups, adjacency and flows as arrays
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProblemIndex:
    """A :class:`FlowProblem` as arrays, zones in the order of ``problem.zones``.

    ``adjacency``: n × n symmetric 0/1 CSR matrix; ``flows``: n × m CSR matrix of stays, columns
    in ``groups`` order (the groups of the groups' table, then groups only seen in the flows);
    ``group_zone``: the zone index where each group is located, -1 when it is outside the scope
    or unknown; ``has_flow``: zones with at least one stay.
    """

    codes: np.ndarray
    zone_frame: pl.DataFrame
    population: np.ndarray
    adjacency: sparse.csr_matrix
    groups: np.ndarray
    group_zone: np.ndarray
    flows: sparse.csr_matrix
    has_flow: np.ndarray

    @property
    def n(self) -> int:
        return len(self.codes)

    @property
    def located(self) -> np.ndarray:
        """Indices of the groups located in the scope."""
        return np.flatnonzero(self.group_zone >= 0)


_CACHE: dict[int, tuple[weakref.ref, ProblemIndex]] = {}


def problem_index(problem: FlowProblem) -> ProblemIndex:
    """The arrays of ``problem`` (built once per problem object, then cached)."""
    key = id(problem)
    hit = _CACHE.get(key)
    if hit is not None and hit[0]() is problem:
        return hit[1]
    built = _build_index(problem)
    _CACHE[key] = (weakref.ref(problem, lambda _ref, k=key: _CACHE.pop(k, None)), built)
    return built


def _build_index(problem: FlowProblem) -> ProblemIndex:
    zone_frame = problem.zones.select(pl.col("zone_code").cast(pl.String)).with_row_index("pos")
    if zone_frame["zone_code"].is_duplicated().any():
        dup = zone_frame.filter(pl.col("zone_code").is_duplicated())["zone_code"].unique().to_list()
        raise DelineationError("zones listed twice in the problem", dup)
    n = zone_frame.height
    codes = zone_frame["zone_code"].to_numpy().astype(object)
    population = problem.zones["population"].fill_null(0).cast(pl.Float64).to_numpy().copy()

    adj = problem.adjacency.join(zone_frame.rename({"pos": "a"}), on="zone_code").join(
        zone_frame.rename({"zone_code": "neighbour_code", "pos": "b"}), on="neighbour_code"
    ).filter(pl.col("a") != pl.col("b"))
    a, b = adj["a"].to_numpy().astype(np.int64), adj["b"].to_numpy().astype(np.int64)
    ones = np.ones(2 * len(a), dtype=np.int32)
    m_adj = sparse.coo_matrix((ones, (np.r_[a, b], np.r_[b, a])), shape=(n, n)).tocsr()
    m_adj.data[:] = 1  # symmetric, duplicates collapsed
    m_adj.eliminate_zeros()

    table = problem.groups.select(pl.col("group").cast(pl.String), pl.col("zone_code").cast(pl.String)).unique(
        "group", keep="first", maintain_order=True
    )
    extra = (
        problem.flows.select(pl.col("group").cast(pl.String)).unique().join(table, on="group", how="anti").sort("group")
    )
    groups = pl.concat([table.select("group"), extra]).with_row_index("g")
    located = table.join(zone_frame, on="zone_code", how="left")
    group_zone = np.full(groups.height, -1, dtype=np.int64)
    gz = groups.join(located.select("group", "pos"), on="group", how="left")
    has_pos = gz["pos"].is_not_null().to_numpy()
    group_zone[gz["g"].to_numpy()[has_pos]] = gz["pos"].to_numpy()[has_pos]

    f = problem.flows.select(
        pl.col("zone_code").cast(pl.String), pl.col("group").cast(pl.String), pl.col("stays").cast(pl.Float64)
    ).join(zone_frame, on="zone_code").join(groups, on="group").filter(pl.col("stays") > 0)
    m_flows = sparse.coo_matrix(
        (f["stays"].to_numpy(), (f["pos"].to_numpy().astype(np.int64), f["g"].to_numpy().astype(np.int64))),
        shape=(n, groups.height),
    ).tocsr()
    m_flows.sum_duplicates()
    has_flow = np.diff(m_flows.indptr) > 0
    return ProblemIndex(
        codes=codes,
        zone_frame=zone_frame.with_columns(pl.col("pos").cast(pl.Int64)),
        population=population,
        adjacency=m_adj,
        groups=groups["group"].to_numpy().astype(object),
        group_zone=group_zone,
        flows=m_flows,
        has_flow=has_flow,
    )


# ---------------------------------------------------------------------------------------------
# Labels as arrays
# ---------------------------------------------------------------------------------------------


@dataclass
class Labels:
    """Dense labels: ``lab[i]`` in 0..K-1 (-1: no territory) and ``values[k]`` the label shown."""

    lab: np.ndarray
    values: np.ndarray

    def new_label(self) -> int:
        """Add a fresh territory label; return its dense index."""
        fresh = int(self.values.max()) + 1 if len(self.values) else 1
        self.values = np.append(self.values, fresh)
        return len(self.values) - 1


def to_labels(labels: pl.DataFrame, idx: ProblemIndex) -> Labels:
    """Check and convert a labels frame (zones of the scope, once each) to dense arrays."""
    df = labels.select(pl.col("zone_code").cast(pl.String), pl.col("territory_id").cast(pl.Int64))
    dup = df.filter(pl.col("zone_code").is_duplicated())["zone_code"].unique().to_list()
    if dup:
        raise DelineationError("zones labelled twice", dup)
    joined = df.join(idx.zone_frame, on="zone_code", how="left")
    outside = joined.filter(pl.col("pos").is_null())["zone_code"].to_list()
    if outside:
        raise DelineationError("labelled zones not in the scope", outside)
    joined = joined.filter(pl.col("territory_id").is_not_null())
    values, inverse = np.unique(joined["territory_id"].to_numpy(), return_inverse=True)
    lab = np.full(idx.n, -1, dtype=np.int64)
    lab[joined["pos"].to_numpy()] = inverse
    return Labels(lab=lab, values=values.astype(np.int64))


def from_labels(labels: Labels, idx: ProblemIndex) -> pl.DataFrame:
    """Every zone of the scope with its label (null: none), in the problem's zone order."""
    assigned = labels.lab >= 0
    out = np.zeros(idx.n, dtype=np.int64)
    out[assigned] = labels.values[labels.lab[assigned]]
    series = pl.Series("territory_id", out, dtype=pl.Int64)
    return pl.DataFrame({"zone_code": pl.Series(idx.codes, dtype=pl.String)}).with_columns(
        pl.when(pl.Series(assigned)).then(series).otherwise(None).alias("territory_id")
    )


def labels_from_array(lab: np.ndarray, idx: ProblemIndex) -> Labels:
    """Dense :class:`Labels` from any integer array (negative: no territory)."""
    lab = np.asarray(lab, dtype=np.int64)
    assigned = lab >= 0
    values, inverse = np.unique(lab[assigned], return_inverse=True)
    dense = np.full(idx.n, -1, dtype=np.int64)
    dense[assigned] = inverse
    return Labels(lab=dense, values=values.astype(np.int64))


# ---------------------------------------------------------------------------------------------
# Connected components
# ---------------------------------------------------------------------------------------------


def components(zones: Sequence[str], problem: FlowProblem) -> list[list[str]]:
    """Connected parts of a set of zones under the rook adjacency (within the set), largest
    population first (then most zones, then smallest zone code); zone codes sorted."""
    idx = problem_index(problem)
    pos = pl.DataFrame({"zone_code": list(zones)}, schema={"zone_code": pl.String}).join(
        idx.zone_frame, on="zone_code", how="left"
    )
    outside = pos.filter(pl.col("pos").is_null())["zone_code"].to_list()
    if outside:
        raise DelineationError("zones not in the scope", outside)
    lab = np.full(idx.n, -1, dtype=np.int64)
    lab[pos["pos"].to_numpy()] = 0
    comp = part_components(lab, idx)
    members = np.flatnonzero(lab >= 0)
    parts: dict[int, list[int]] = {}
    for i in members:
        parts.setdefault(int(comp[i]), []).append(int(i))
    ordered = sorted(parts.values(), key=lambda p: (-idx.population[p].sum(), -len(p), min(idx.codes[p])))
    return [sorted(idx.codes[p].tolist()) for p in ordered]


def part_components(lab: np.ndarray, idx: ProblemIndex) -> np.ndarray:
    """Component id of every zone in the graph keeping only edges between zones of one label
    (unlabelled zones are singletons)."""
    adj = idx.adjacency.tocoo()
    keep = (lab[adj.row] == lab[adj.col]) & (lab[adj.row] >= 0)
    graph = sparse.coo_matrix(
        (np.ones(int(keep.sum()), dtype=np.int8), (adj.row[keep], adj.col[keep])), shape=(idx.n, idx.n)
    ).tocsr()
    _, comp = connected_components(graph, directed=False)
    return comp.astype(np.int64)


def kept_parts(lab: np.ndarray, comp: np.ndarray, idx: ProblemIndex) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For the parts of the labelled zones: (part label, kept, part population), indexed by part.

    The kept part of a territory holds most of its population (then most zones, then the
    smallest zone index); the others are its strays."""
    n_comp = int(comp.max()) + 1 if len(comp) else 0
    assigned = lab >= 0
    comp_label = np.full(n_comp, -1, dtype=np.int64)
    comp_label[comp[assigned]] = lab[assigned]
    comp_pop = np.bincount(comp, weights=idx.population, minlength=n_comp)
    comp_size = np.bincount(comp, minlength=n_comp)
    first = np.full(n_comp, idx.n, dtype=np.int64)
    np.minimum.at(first, comp, np.arange(idx.n))
    order = np.lexsort((first, -comp_size, -comp_pop, comp_label))
    labelled = order[comp_label[order] >= 0]
    kept = np.zeros(n_comp, dtype=bool)
    if len(labelled):
        lead = np.r_[True, comp_label[labelled][1:] != comp_label[labelled][:-1]]
        kept[labelled[lead]] = True
    return comp_label, kept, comp_pop


# ---------------------------------------------------------------------------------------------
# (a) zones without stays
# ---------------------------------------------------------------------------------------------


def _assign_unflowed(labels: Labels, idx: ProblemIndex, relabel_unflowed: bool = True) -> Labels:
    lab = labels.lab.copy()
    if relabel_unflowed:
        lab[~idx.has_flow] = -1
    if (lab < 0).all():
        raise DelineationError("no zone has a territory to spread from (no stays in the scope?)",
                               idx.codes.tolist())
    n_lab = len(labels.values)
    while True:
        todo = np.flatnonzero(lab < 0)
        if len(todo) == 0:
            break
        done = np.flatnonzero(lab >= 0)
        onehot = sparse.csr_matrix(
            (np.ones(len(done)), (done, lab[done])), shape=(idx.n, n_lab)
        )
        counts = (idx.adjacency[todo] @ onehot).tocsr()
        counts.sort_indices()
        has = np.diff(counts.indptr) > 0
        if not has.any():
            raise DelineationError(
                "zones without stays (or without a label) and cut off from every territory (no labelled "
                "zone reachable through neighbours)", idx.codes[todo].tolist())
        # most common label among assigned neighbours; ties: smallest label (first max column)
        best = np.asarray(counts[has].argmax(axis=1)).ravel()
        lab[todo[has]] = best
    return Labels(lab=lab, values=labels.values.copy())


def assign_unflowed(labels: pl.DataFrame, problem: FlowProblem, relabel_unflowed: bool = True) -> pl.DataFrame:
    """Zones without stays (absent from the flows), or without a label, take the territory most
    common among their labelled neighbours (ties: the smallest label), round after round until
    every zone has one. A label given to a zone without stays is ignored, unless
    ``relabel_unflowed`` is false. Raises :class:`DelineationError` naming the zones with no
    labelled zone reachable."""
    idx = problem_index(problem)
    return from_labels(_assign_unflowed(to_labels(labels, idx), idx, relabel_unflowed), idx)


# ---------------------------------------------------------------------------------------------
# Flows from a set of parts into territories
# ---------------------------------------------------------------------------------------------


def _part_flows(zone_part: np.ndarray, n_parts: int, lab: np.ndarray, n_lab: int,
                idx: ProblemIndex) -> sparse.csr_matrix:
    """n_parts × n_lab matrix: stays of each part's residents in groups located in each territory.
    ``zone_part``: the part of each zone, -1 for none."""
    inpart = np.flatnonzero(zone_part >= 0)
    loc = idx.located
    gl = lab[idx.group_zone[loc]]
    ok = gl >= 0
    loc, gl = loc[ok], gl[ok]
    p = sparse.csr_matrix((np.ones(len(inpart)), (zone_part[inpart], inpart)), shape=(n_parts, idx.n))
    g = sparse.csr_matrix((np.ones(len(loc)), (loc, gl)), shape=(idx.flows.shape[1], n_lab))
    return (p @ idx.flows @ g).tocsr()


def _part_borders(zone_part: np.ndarray, n_parts: int, lab: np.ndarray, n_lab: int,
                  idx: ProblemIndex) -> sparse.csr_matrix:
    """n_parts × n_lab matrix: adjacent zone pairs between each part and each territory (pairs
    inside the part excluded)."""
    adj = idx.adjacency.tocoo()
    keep = (zone_part[adj.row] >= 0) & (lab[adj.col] >= 0) & (zone_part[adj.col] != zone_part[adj.row])
    return sparse.coo_matrix(
        (np.ones(int(keep.sum())), (zone_part[adj.row[keep]], lab[adj.col[keep]])), shape=(n_parts, n_lab)
    ).tocsr()


def _choose(candidates: pl.DataFrame) -> pl.DataFrame:
    """part, target, flow, border → the best target per part (flow, then border, then label)."""
    return (
        candidates.sort(["part", "flow", "border", "target"], descending=[False, True, True, False])
        .group_by("part", maintain_order=True)
        .first()
    )


# ---------------------------------------------------------------------------------------------
# (b) contiguity
# ---------------------------------------------------------------------------------------------


def _enforce_contiguity(labels: Labels, idx: ProblemIndex) -> Labels:
    labels = Labels(lab=labels.lab.copy(), values=labels.values.copy())
    while True:
        lab = labels.lab
        comp = part_components(lab, idx)
        comp_label, kept, comp_pop = kept_parts(lab, comp, idx)
        stray = (comp_label >= 0) & ~kept
        if not stray.any():
            return labels
        stray_ids = np.flatnonzero(stray)
        part_of_comp = np.full(len(comp_label), -1, dtype=np.int64)
        part_of_comp[stray_ids] = np.arange(len(stray_ids))
        zone_part = part_of_comp[comp]
        n_lab = len(labels.values)
        # candidates: territories whose kept part touches the stray (then the union is connected)
        kept_lab = np.where(kept[comp], lab, -1)
        border = _part_borders(zone_part, len(stray_ids), kept_lab, n_lab, idx).tocoo()
        if border.nnz == 0:
            # strays cut off from every kept part: the most populous becomes a territory
            best = stray_ids[np.lexsort((stray_ids, -comp_pop[stray_ids]))[0]]
            lab[comp == best] = labels.new_label()
            continue
        flow = _part_flows(zone_part, len(stray_ids), lab, n_lab, idx)
        cand = pl.DataFrame({
            "part": border.row.astype(np.int64),
            "target": border.col.astype(np.int64),
            "border": border.data,
            "flow": np.asarray(flow[border.row, border.col]).ravel(),
        })
        chosen = _choose(cand)
        target_of_part = np.full(len(stray_ids), -1, dtype=np.int64)
        target_of_part[chosen["part"].to_numpy()] = chosen["target"].to_numpy()
        move = zone_part >= 0
        move &= target_of_part[np.maximum(zone_part, 0)] >= 0
        lab[move] = target_of_part[zone_part[move]]


def enforce_contiguity(labels: pl.DataFrame, problem: FlowProblem) -> pl.DataFrame:
    """Split every non-contiguous territory into connected parts; the part with most of the
    territory's population keeps it; each other part joins the adjacent territory with the
    strongest flow from it (among territories whose kept part it touches, so that the result is
    connected), round after round until every territory is contiguous. Unlabelled zones are left
    as they are."""
    idx = problem_index(problem)
    return from_labels(_enforce_contiguity(to_labels(labels, idx), idx), idx)


# ---------------------------------------------------------------------------------------------
# (c), (d) merging whole territories
# ---------------------------------------------------------------------------------------------


def anchored_groups(problem: FlowProblem, kinds: Sequence[str]) -> np.ndarray | None:
    """Which groups of the problem's index (``problem_index(problem).groups``) can anchor a
    territory: those holding a hospital of one of ``kinds`` (a boolean array). None when the rule
    cannot apply: no kinds asked, or a groups' table without a ``kinds`` column."""
    if not kinds or "kinds" not in problem.groups.columns:
        return None
    idx = problem_index(problem)
    wanted = set(kinds)
    table = problem.groups.select(pl.col("group").cast(pl.String), "kinds").unique("group", keep="first")
    anchored = {g for g, ks in table.iter_rows() if ks is not None and wanted.intersection(ks)}
    return np.array([g in anchored for g in idx.groups], dtype=bool)


class _Merger:
    """Territories merged one at a time into an adjacent one, with cheap incremental updates.

    ``anchor``: which groups anchor a territory (see :func:`anchored_groups`); ``n_anchor[t]``
    counts the anchor groups located in territory t (all its hospital groups without it)."""

    def __init__(self, labels: Labels, idx: ProblemIndex, anchor: np.ndarray | None = None):
        self.idx = idx
        self.values = labels.values.copy()
        self.lab = labels.lab.copy()
        k = len(self.values)
        self.k = k
        assigned = np.flatnonzero(self.lab >= 0)
        order = assigned[np.argsort(self.lab[assigned], kind="stable")]
        bounds = np.searchsorted(self.lab[order], np.arange(k + 1))
        self.members: list[list[int]] = [order[bounds[t]:bounds[t + 1]].tolist() for t in range(k)]
        self.pop = np.bincount(self.lab[assigned], weights=idx.population[assigned], minlength=k)
        self.alive = np.array([len(m) > 0 for m in self.members], dtype=bool)
        loc = idx.located
        self.loc = loc
        self.loc_zone = idx.group_zone[loc]
        gl = self.lab[self.loc_zone]
        self.n_hosp = np.bincount(gl[gl >= 0], minlength=k)
        is_anchor = np.ones(len(loc), dtype=bool) if anchor is None else anchor[loc]
        self.n_anchor = np.bincount(gl[(gl >= 0) & is_anchor], minlength=k)

    def flows_from(self, t: int) -> np.ndarray:
        """Stays of t's residents in groups located in each territory (length k)."""
        rows = self.idx.flows[self.members[t]]
        by_group = np.asarray(rows.sum(axis=0)).ravel()[self.loc]
        gl = self.lab[self.loc_zone]
        ok = gl >= 0
        return np.bincount(gl[ok], weights=by_group[ok], minlength=self.k)

    def target(self, t: int) -> int | None:
        """The adjacent territory with the strongest flow from t (None: no adjacent territory)."""
        adj = self.idx.adjacency[self.members[t]]
        neigh = self.lab[adj.indices]
        neigh = neigh[(neigh >= 0) & (neigh != t)]
        if len(neigh) == 0:
            return None
        cand, border = np.unique(neigh, return_counts=True)
        flow = self.flows_from(t)[cand]
        best = np.lexsort((cand, -border, -flow))[0]  # flow, then border, then smallest label
        return int(cand[best])

    def merge(self, a: int, b: int) -> None:
        self.lab[self.members[a]] = b
        self.members[b].extend(self.members[a])
        self.members[a] = []
        self.pop[b] += self.pop[a]
        self.pop[a] = 0
        self.n_hosp[b] += self.n_hosp[a]
        self.n_hosp[a] = 0
        self.n_anchor[b] += self.n_anchor[a]
        self.n_anchor[a] = 0
        self.alive[a] = False

    def internal_flow(self, t: int) -> float:
        return float(self.flows_from(t)[t])

    def run(self, deficient) -> None:
        """Merge, smallest population first, every territory for which ``deficient(t)`` holds."""
        heap = [(self.pop[t], self.values[t], t) for t in np.flatnonzero(self.alive) if deficient(int(t))]
        heapq.heapify(heap)
        while heap:
            p, _, t = heapq.heappop(heap)
            t = int(t)
            if not self.alive[t] or self.pop[t] != p or not deficient(t):
                continue
            b = self.target(t)
            if b is None:
                continue  # cut off from every other territory: left to the guarantees check
            self.merge(t, b)
            if deficient(b):
                heapq.heappush(heap, (self.pop[b], self.values[b], b))

    def labels(self) -> Labels:
        return labels_from_values(self.lab, self.values)


def labels_from_values(lab: np.ndarray, values: np.ndarray) -> Labels:
    """Dense :class:`Labels` keeping only the labels still in use."""
    assigned = lab >= 0
    used, inverse = np.unique(lab[assigned], return_inverse=True)
    dense = np.full(len(lab), -1, dtype=np.int64)
    dense[assigned] = inverse
    return Labels(lab=dense, values=values[used])


def _merge_small(labels: Labels, idx: ProblemIndex, min_population: float) -> Labels:
    if min_population <= 0:
        return labels
    merger = _Merger(labels, idx)
    merger.run(lambda t: merger.pop[t] < min_population)
    return merger.labels()


def merge_small(labels: pl.DataFrame, problem: FlowProblem, min_population: float) -> pl.DataFrame:
    """Repeatedly merge the smallest territory under ``min_population`` into the adjacent
    territory with the strongest flow from it, until none is under the minimum (or the one left
    has no adjacent territory)."""
    idx = problem_index(problem)
    return from_labels(_merge_small(to_labels(labels, idx), idx, min_population), idx)


def _ensure_hospital(labels: Labels, idx: ProblemIndex, internal_flow: bool = False) -> Labels:
    merger = _Merger(labels, idx)

    def deficient(t: int) -> bool:
        if merger.n_hosp[t] == 0:
            return True
        return internal_flow and merger.internal_flow(t) <= 0

    merger.run(deficient)
    return merger.labels()


def ensure_hospital(labels: pl.DataFrame, problem: FlowProblem, internal_flow: bool = False) -> pl.DataFrame:
    """Merge, smallest first, every territory without a hospital group located in it into the
    adjacent territory with the strongest flow from it. With ``internal_flow``, a territory none
    of whose residents' stays take place in its own hospitals is merged too."""
    idx = problem_index(problem)
    return from_labels(_ensure_hospital(to_labels(labels, idx), idx, internal_flow), idx)


# ---------------------------------------------------------------------------------------------
# All of it
# ---------------------------------------------------------------------------------------------


def repair_labels(labels: Labels, idx: ProblemIndex, min_population: float = 0,
                  internal_flow: bool = False, relabel_unflowed: bool = True) -> Labels:
    """:func:`assign_unflowed`, :func:`enforce_contiguity`, :func:`merge_small`,
    :func:`ensure_hospital`, on dense labels."""
    labels = _assign_unflowed(labels, idx, relabel_unflowed)
    labels = _enforce_contiguity(labels, idx)
    labels = _merge_small(labels, idx, min_population)
    return _ensure_hospital(labels, idx, internal_flow)


def repair(labels: pl.DataFrame, problem: FlowProblem, min_population: float = 0,
           internal_flow: bool = False, relabel_unflowed: bool = True) -> pl.DataFrame:
    """The four repair operations in order; the labels then meet the guarantees whenever the
    input allows it (a connected scope with a hospital located in it, at least one zone with
    stays or a label, and a population over the minimum)."""
    idx = problem_index(problem)
    return from_labels(
        repair_labels(to_labels(labels, idx), idx, min_population, internal_flow, relabel_unflowed), idx)


# ---------------------------------------------------------------------------------------------
# Self-containment: the criterion that chooses the number of territories
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Containment:
    """How self-contained a territory is: ``li`` (localization index: the share of its residents'
    stays in its own hospital groups), ``ratio`` (its residents' stays in its own groups divided
    by their stays in the groups of the adjacent territory they use most; infinite without an
    adjacent territory), ``neighbour`` (that territory's dense index, -1: none)."""

    li: float
    ratio: float
    neighbour: int


def _containment(merger: _Merger, t: int, zone_stays: np.ndarray) -> Containment:
    flows = merger.flows_from(t)
    total = zone_stays[merger.members[t]].sum()
    li = float(flows[t] / total) if total > 0 else 1.0
    adj = merger.idx.adjacency[merger.members[t]]
    neigh = np.unique(merger.lab[adj.indices])
    neigh = neigh[(neigh >= 0) & (neigh != t)]
    if len(neigh) == 0:
        return Containment(li, math.inf, -1)
    best = neigh[np.lexsort((neigh, -flows[neigh]))[0]]
    other = float(flows[best])
    ratio = math.inf if other <= 0 else float(flows[t]) / other
    return Containment(li, ratio, int(best))


def _merge_uncontained(labels: Labels, idx: ProblemIndex, min_ratio: float, min_li: float = 0.0,
                       anchor: np.ndarray | None = None) -> Labels:
    merger = _Merger(labels, idx, anchor)
    zone_stays = np.asarray(idx.flows.sum(axis=1)).ravel()
    score = {int(t): _containment(merger, int(t), zone_stays) for t in np.flatnonzero(merger.alive)}
    cut_off: set[int] = set()

    def failing(t: int, c: Containment) -> bool:
        if t in cut_off:
            return False
        return c.ratio < min_ratio or c.li < min_li or merger.n_anchor[t] == 0

    while True:
        # territories without an anchor first (a rule, not a degree), then the least
        # self-contained: lowest ratio (then LI, then label)
        bad = [(bool(merger.n_anchor[t]), c.ratio, c.li, merger.values[t], t) for t, c in score.items()
               if failing(t, c)]
        if not bad or len(score) <= 1:
            break
        t = min(bad)[-1]
        b = merger.target(t)
        if b is None:
            cut_off.add(t)  # cut off: nothing to merge with
            continue
        touched = set(np.unique(merger.lab[idx.adjacency[merger.members[t]].indices]).tolist())
        merger.merge(t, b)
        del score[t]
        touched |= set(np.unique(merger.lab[idx.adjacency[merger.members[b]].indices]).tolist())
        for u in touched | {b}:
            if u >= 0 and merger.alive[u]:
                score[u] = _containment(merger, u, zone_stays)
                cut_off.discard(u)
    return merger.labels()


def merge_uncontained(labels: pl.DataFrame, problem: FlowProblem, min_ratio: float,
                      min_li: float = 0.0, anchor_kinds: Sequence[str] = ()) -> pl.DataFrame:
    """Merge, least self-contained first, every territory whose residents do not use their own
    hospital groups at least ``min_ratio`` times as much as those of the adjacent territory they
    use most (or whose localization index is under ``min_li``), into the adjacent territory with
    the strongest flow from it, until every territory passes (or one is left). This is the
    plurality rule of the Dartmouth hospital service areas applied to whole territories, and,
    with ``min_li``, the minimum localization index of HSAr (Wang and Hu).

    With ``anchor_kinds`` (e.g. CH, CHU) and groups that carry their kinds, a territory without a
    group holding a hospital of one of these kinds located in it fails too, and is merged before
    the others (the rule of :func:`anchored_groups`; without a ``kinds`` column it is off)."""
    idx = problem_index(problem)
    anchor = anchored_groups(problem, anchor_kinds)
    return from_labels(_merge_uncontained(to_labels(labels, idx), idx, min_ratio, min_li, anchor), idx)


def _refine_borders(labels: Labels, idx: ProblemIndex, min_population: float = 0,
                    max_rounds: int = 100) -> Labels:
    lab = labels.lab.copy()
    n_lab = len(labels.values)
    loc = idx.located
    hosts = np.zeros(idx.n, dtype=bool)
    hosts[idx.group_zone[loc]] = True
    # stays of each zone in the groups located in each territory: fixed, since the zones that
    # host a group never move
    g = sparse.csr_matrix((np.ones(len(loc)), (loc, lab[idx.group_zone[loc]])), shape=(idx.flows.shape[1], n_lab))
    shares = (idx.flows @ g).toarray()
    pop = np.bincount(lab[lab >= 0], weights=idx.population[lab >= 0], minlength=n_lab)
    adj = idx.adjacency
    for _ in range(max_rounds):
        best = shares.argmax(axis=1)
        gain = shares[np.arange(idx.n), best] - np.where(lab >= 0, shares[np.arange(idx.n), np.maximum(lab, 0)], 0)
        movers = np.flatnonzero((lab >= 0) & ~hosts & idx.has_flow & (best != lab) & (gain > 0))
        moved = 0
        for z in movers[np.argsort(-gain[movers], kind="stable")]:
            src, dst = lab[z], best[z]
            neigh = adj.indices[adj.indptr[z]:adj.indptr[z + 1]]
            if not (lab[neigh] == dst).any():
                continue
            if pop[src] - idx.population[z] < min_population:
                continue
            rest = np.flatnonzero(lab == src)
            rest = rest[rest != z]
            if len(rest) == 0 or not _connected(rest, adj):
                continue
            lab[z] = dst
            pop[src] -= idx.population[z]
            pop[dst] += idx.population[z]
            moved += 1
        if moved == 0:
            break
    return labels_from_values(lab, labels.values)


def _connected(nodes: np.ndarray, adjacency: sparse.csr_matrix) -> bool:
    sub = adjacency[nodes][:, nodes]
    n_comp, _ = connected_components(sub, directed=False)
    return n_comp == 1


def refine_borders(labels: pl.DataFrame, problem: FlowProblem, min_population: float = 0) -> pl.DataFrame:
    """Move each zone to the adjacent territory whose hospital groups receive most of its
    residents' stays, when that is more than its own territory receives, round after round,
    largest gain first. A zone hosting a hospital group, a zone without stays, or a move that
    would leave its territory in pieces or under ``min_population`` stays put. Every move raises
    the moved zone's share of stays in its own territory, which the moves of other zones do not
    change, so the rounds end."""
    idx = problem_index(problem)
    return from_labels(_refine_borders(to_labels(labels, idx), idx, min_population), idx)
