"""respop.evaluation.power: the minimum detectable effect by hand, and the table from a panel."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
from scipy import stats

from respop.evaluation import power
from tests.evaluation.test_did import simulate_panel


def test_minimum_detectable_effect_by_hand():
    # 100,000 inhabitants × 0.01 events a year: s² = 1/1000; no extra variance; 101 donors of the
    # same size; 3 pre and 2 post years: Var = (1/3 + 1/2) × (0.001 + 0.001/101)
    variance = (1 / 3 + 1 / 2) * (0.001 + 0.001 / 101)
    m = (stats.t.ppf(0.975, 100) + stats.t.ppf(0.8, 100)) * math.sqrt(variance)
    mde = power.minimum_detectable_effect(100_000, 3, 2, 0.01, 0.0, 101)
    assert mde == pytest.approx(1 - math.exp(-m))
    # the extra variance adds to the pilot's and, divided by n, to the donors'
    with_extra = power.minimum_detectable_effect(100_000, 3, 2, 0.01, 0.002, 101, donor_sampling_var=0.0005)
    variance = (1 / 3 + 1 / 2) * (0.001 + 0.002 + (0.0005 + 0.002) / 101)
    assert with_extra == pytest.approx(1 - math.exp(-(stats.t.ppf(0.975, 100) + stats.t.ppf(0.8, 100)) * math.sqrt(variance)))


def test_monotone_and_refusals():
    small = power.minimum_detectable_effect(20_000, 3, 2, 0.002, 0.001, 30)
    large = power.minimum_detectable_effect(500_000, 3, 2, 0.002, 0.001, 30)
    longer = power.minimum_detectable_effect(20_000, 3, 4, 0.002, 0.001, 30)
    earlier = power.minimum_detectable_effect(20_000, 5, 2, 0.002, 0.001, 30)
    assert 0 < large < small < 1 and longer < small and earlier < small
    with pytest.raises(ValueError, match="at least 2"):
        power.minimum_detectable_effect(20_000, 1, 2, 0.002, 0.0, 30)
    with pytest.raises(ValueError, match="at least 2"):
        power.minimum_detectable_effect(20_000, 3, 2, 0.002, 0.0, 1)


def test_power_table_from_a_panel():
    panel = simulate_panel(np.random.default_rng(1), 0.0, {}, n=30)
    table = power.power_table(panel, [50_000, 100_000, 500_000], 3, [1, 2, 3], donors=list(range(3, 31)))
    assert table.columns == ["population", "years_pre", "years_post", "mde", "alpha", "power"]
    assert table.height == 9
    by_population = table.filter(pl.col("years_post") == 2).sort("population")["mde"].to_list()
    assert by_population == sorted(by_population, reverse=True)
    assert table["mde"].is_between(0, 1).all()
    # outcome per case: the rate per inhabitant comes from the inhabitants given
    inhabitants = panel.select("territory_id", "year", (pl.col("denominator") * 10).alias("population"))
    per_inhabitant = power.power_table(panel, [100_000], 3, 2, inhabitants=inhabitants)
    per_denominator = power.power_table(panel, [100_000], 3, 2)
    assert per_inhabitant["mde"][0] > per_denominator["mde"][0]
