"""Property-based tests: on random tilings (grids, Voronoi cells of random points) with random
flows, populations and hospital locations, the guarantees hold whatever the input."""

from __future__ import annotations

import numpy as np
import polars as pl
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from scipy.sparse.csgraph import connected_components

from respop.delineation.graph import (
    assign_unflowed, components, enforce_contiguity, ensure_hospital, merge_small, problem_index,
)
from respop.delineation.guarantees import violations
from respop.delineation.leiden import Leiden
from respop.delineation.plurality import Plurality
from tests.delineation.worlds import random_problem

SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def cases(draw):
    kind = draw(st.sampled_from(["grid", "voronoi"]))
    size = draw(st.integers(2, 40))
    n_groups = draw(st.integers(1, 8))
    density = draw(st.floats(0.05, 1.0))
    unflowed = draw(st.sampled_from([0.0, 0.1, 0.4]))
    seed = draw(st.integers(0, 2**32 - 1))
    p = random_problem(np.random.default_rng(seed), kind, size, n_groups, density, unflowed)
    idx = problem_index(p)
    assume(connected_components(idx.adjacency, directed=False)[0] == 1)
    total = int(p.zones["population"].sum())
    min_population = int(draw(st.sampled_from([0.0, 0.05, 0.2, 0.5])) * total)
    return p, min_population


def has_internal_flow(p) -> bool:
    """Some resident of the scope has a stay in a group located in the scope."""
    idx = problem_index(p)
    return bool(idx.flows[:, idx.located].sum() > 0)


def assert_main_groups(m, p) -> None:
    if has_internal_flow(p):
        assert m.main_group_["group"].null_count() == 0
        assert m.main_group_.height == m.assignment_["territory_id"].n_unique()


def assert_guarantees(assignment: pl.DataFrame, p, min_population: float) -> None:
    assert violations(assignment, p, min_population) == []
    assert sorted(assignment["zone_code"].to_list()) == sorted(p.zone_codes)  # every zone exactly once
    assert assignment["territory_id"].null_count() == 0
    for _, part in assignment.group_by("territory_id"):
        assert len(components(part["zone_code"].to_list(), p)) == 1  # contiguous


@SETTINGS
@given(cases())
def test_plurality_guarantees(case):
    p, min_population = case
    m = Plurality(min_population=min_population).fit(p)
    assert_guarantees(m.assignment_, p, min_population)
    assert_main_groups(m, p)


@SETTINGS
@given(cases(), st.sampled_from([0.1, 1.0, 3.0, 20.0]), st.integers(0, 3))
def test_leiden_guarantees(case, resolution, seed):
    p, min_population = case
    m = Leiden(resolution=resolution, min_population=min_population, seed=seed).fit(p)
    assert_guarantees(m.assignment_, p, min_population)
    assert_main_groups(m, p)


@SETTINGS
@given(cases(), st.integers(1, 6))
def test_leiden_target_count_guarantees(case, target):
    p, min_population = case
    m = Leiden(target_count=target, min_population=min_population).fit(p)
    assert_guarantees(m.assignment_, p, min_population)
    assert len(m.search_) <= Leiden.max_fits


@SETTINGS
@given(cases(), st.integers(1, 6), st.integers(0, 2**32 - 1))
def test_repairs_on_random_labels(case, n_labels, seed):
    p, min_population = case
    rng = np.random.default_rng(seed)
    codes = p.zone_codes
    start = pl.DataFrame({"zone_code": codes, "territory_id": rng.integers(1, n_labels + 1, len(codes))})
    filled = assign_unflowed(start, p)
    assert filled["territory_id"].null_count() == 0
    contiguous = enforce_contiguity(filled, p)
    found = {v.kind for v in violations(contiguous, p)}
    assert "contiguity" not in found and "missing" not in found
    big = merge_small(contiguous, p, min_population)
    assert {v.kind for v in violations(big, p, min_population)} <= {"hospital"}
    done = ensure_hospital(big, p, internal_flow=True)
    assert violations(done, p, min_population) == []
