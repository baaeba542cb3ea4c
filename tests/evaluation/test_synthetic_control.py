"""respop.evaluation.synthetic_control: exact donor, weights on the simplex, degenerate designs,
notes, simulated coverage of the pooled placebo test."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from respop.evaluation import synthetic_control as sc
from tests.evaluation.test_did import simulate_panel

YEARS = list(range(2018, 2024))


def panel_from(series: dict[int, list[float]], log_var: float = 1e-12) -> pl.DataFrame:
    rows = [(tid, year, v, log_var) for tid, vs in series.items() for year, v in zip(YEARS, vs, strict=True)]
    return pl.DataFrame(rows, schema=["territory_id", "year", "value", "log_var"], orient="row")


def test_a_donor_equal_to_the_pilot_gets_weight_one_and_the_planted_jump():
    twin = [100, 104, 98, 103, 101, 99]
    pilot = twin[:3] + [v * 0.8 for v in twin[3:]]  # −20 % from 2021
    series = {1: pilot, 2: twin, 3: [50, 60, 70, 80, 90, 100], 4: [300, 250, 200, 260, 280, 240],
              5: [10, 9, 12, 8, 11, 10], 6: [70, 60, 75, 65, 80, 72]}
    result = sc.estimate(panel_from(series), {1: 2021}, [2, 3, 4, 5, 6])
    weights = dict(zip(result.weights["donor_id"], result.weights["weight"], strict=True))
    assert weights[2] == pytest.approx(1.0, abs=1e-6)
    row = result.overall.filter(pl.col("territory_id") == 1).row(0, named=True)
    assert row["effect"] == pytest.approx(-0.2, abs=1e-6)
    assert row["pre_rmspe"] == pytest.approx(0.0, abs=1e-6)
    # counterfactual: the twin's post-period level
    assert row["counterfactual"] == pytest.approx(np.mean(twin[3:]), rel=1e-6)
    trajectory = result.trajectories.filter(pl.col("territory_id") == 1).sort("year")
    assert np.allclose(trajectory["synthetic"].to_numpy(), twin, rtol=1e-6)
    assert np.allclose(trajectory["observed"].to_numpy(), pilot)
    # 5 donors: the p-value cannot go below 1/6 > 0.05, said in French
    assert "trop peu de territoires de comparaison" in row["note"]
    assert row["p_value"] >= 1 / 6


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 100_000), t0=st.integers(2, 6), m=st.integers(1, 40), penalised=st.booleans())
def test_weights_are_on_the_simplex(seed, t0, m, penalised):
    rng = np.random.default_rng(seed)
    donors = rng.lognormal(0, 0.3, (t0, m))
    target = rng.lognormal(0, 0.3, t0)
    noise = rng.uniform(0, 0.05, m) if penalised else None
    w = sc.fit_weights(target, donors, noise)
    assert w.shape == (m,)
    assert np.all(w >= 0)
    assert w.sum() == pytest.approx(1.0, abs=1e-9)


def test_degenerate_designs():
    rng = np.random.default_rng(3)
    panel = simulate_panel(rng, 0.0, {}, n=6, years=range(2018, 2024))
    with pytest.raises(ValueError, match="at least 2"):
        sc.estimate(panel, {1: 2021}, [2])
    with pytest.raises(ValueError, match="at least 2"):
        sc.estimate(panel, {1: 2021}, [])
    with pytest.raises(ValueError, match="pilot territory 1 starts in 2018.*no year before"):
        sc.estimate(panel, {1: 2018}, [2, 3, 4])
    with pytest.raises(ValueError, match="territory 4 has no value for every covariate"):
        sc.estimate(panel, {1: 2021}, [2, 3, 4], covariates=pl.DataFrame({"territory_id": [1, 2, 3], "deprivation": [0.1, 0.2, 0.3]}))


def test_covariates_and_staggered_pilots():
    rng = np.random.default_rng(4)
    starts = {1: 2021, 2: 2022}
    panel = simulate_panel(rng, -0.15, starts, n=20)
    covariates = pl.DataFrame({"territory_id": list(range(1, 21)), "deprivation": rng.normal(size=20),
                               "old_share": rng.uniform(0.1, 0.3, 20)})
    result = sc.estimate(panel, starts, list(range(3, 21)), covariates=covariates, covariate_weight=2.0)
    sums = result.weights.group_by("territory_id").agg(pl.col("weight").sum())
    assert np.allclose(sums["weight"].to_numpy(), 1.0, atol=1e-5)
    assert result.overall.height == 3 and result.overall["territory_id"].null_count() == 1
    assert set(result.trajectories["territory_id"].unique()) == {1, 2}
    assert result.trajectories.height == 12
    pooled = result.overall.filter(pl.col("territory_id").is_null()).row(0, named=True)
    assert pooled["n_post_years"] == 5
    assert pooled["ci_lower"] <= pooled["effect"] <= pooled["ci_upper"]


def test_interval_reaching_the_grid_end_is_said():
    rng = np.random.default_rng(5)
    panel = simulate_panel(rng, 0.0, {}, n=5)
    row = sc.estimate(panel, {1: 2021}, [2, 3, 4, 5]).overall.row(0, named=True)
    # 4 donors: every δ has p ≥ 1/5 > 0.05, the set is the whole grid
    assert row["ci_lower"] == pytest.approx(-0.9) and row["ci_upper"] == pytest.approx(2.0)
    assert "non borné vers le bas" in row["note"] and "non borné vers le haut" in row["note"]


@pytest.mark.slow
def test_simulated_coverage_and_false_positives():
    """300 panels of 25 territories, 6 years, pilots 1 and 2 starting in 2021 and 2022 (see
    test_did): coverage of a planted −15 % and rejection of a null effect at 5 %, per pilot and
    pooled (measured figures: see the commit message)."""
    starts = {1: 2021, 2: 2022}
    reps = 300
    for effect in (-0.15, 0.0):
        rng = np.random.default_rng(20)
        covered = {1: 0, 2: 0, None: 0}
        rejected = {1: 0, 2: 0, None: 0}
        for _ in range(reps):
            overall = sc.estimate(simulate_panel(rng, effect, starts), starts, list(range(3, 26))).overall
            for row in overall.iter_rows(named=True):
                covered[row["territory_id"]] += (row["ci_lower"] is not None) and row["ci_lower"] <= effect <= row["ci_upper"]
                rejected[row["territory_id"]] += row["p_value"] <= 0.05
        for key in covered:
            assert 0.90 <= covered[key] / reps <= 0.99, (effect, key, covered[key] / reps)
            if effect == 0.0:
                assert rejected[key] / reps <= 0.10, (key, rejected[key] / reps)
