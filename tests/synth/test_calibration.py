"""Generator calibration over several seeds (issue 18 item 8), and the balanced draws behind it."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from respop.synth import generate, load_profile
from respop.synth.calibration import PUBLISHED, calibration
from respop.synth.people import balanced_draw


def test_balanced_draw_keeps_each_probability_and_fixes_the_total():
    rng = np.random.default_rng(3)
    p = np.concatenate([rng.random(150) * 0.2, np.zeros(30), np.ones(20), rng.random(100)])
    strata = rng.integers(0, 4, size=len(p))
    runs = 4000
    drawn = np.zeros(len(p))
    for _ in range(runs):
        d = balanced_draw(rng, p, strata=strata)
        # the total and each stratum's count: their expected values rounded up or down
        assert abs(d.sum() - p.sum()) < 1
        for s in range(4):
            assert abs(d[strata == s].sum() - p[strata == s].sum()) < 2
        assert not d[p == 0].any() and d[p == 1].all()
        drawn += d
    # each person's chance is p (binomial standard error over the runs, 4.5 of them)
    se = np.sqrt(p * (1 - p) / runs) + 1e-9
    assert (np.abs(drawn / runs - p) <= 4.5 * se + 1e-12).all()
    # without strata, the order is random: the persons' draws are not tied to their positions
    half = np.full(1000, 0.5)
    first = np.mean([balanced_draw(rng, half)[:500].sum() for _ in range(200)])
    assert first == pytest.approx(250, abs=5)


SEEDS = (1, 2, 3, 4)


@pytest.fixture(scope="module")
def tiny_2023(tmp_path_factory):
    """``tiny`` asked for 2023 alone on four seeds (simulated from 2019, generate.CALIBRATED_YEARS;
    about two seconds each): the calibration figures of each and its adults."""
    profile = load_profile("tiny")
    figures = {}
    for seed in SEEDS:
        out = tmp_path_factory.mktemp(f"tiny_calibration_{seed}")
        generate(profile, seed, out, years=[2023])
        figures[seed] = {f.name: f for f in calibration(out, 2023)}
        figures[seed]["adults"] = (
            pl.read_parquet(out / "truth" / "residence.parquet").filter(pl.col("year") == 2023)
            .join(pl.read_parquet(out / "truth" / "persons.parquet"), on="person_key")
            .filter(2023 - pl.col("birth_year") >= 18).height
        )
    return figures


def test_heart_failure_hospitalisation_near_the_published_rate_on_every_seed(tiny_2023):
    """About 31,000 adults, so about 105 adults hospitalised for heart failure at the published
    339.3 per 100,000. Drawn independently, that count would move by one Poisson standard
    deviation (1 / sqrt(105) ≈ 9.8%) from seed to seed in the last year alone, and about one seed
    in three would be farther: with the balanced draws (respop.synth.people.balanced_draw) what is
    left is the coding noise and what the earlier years' independent draws (complications, stays
    of the other kinds) pass on, and every seed is within that one standard deviation."""
    published = PUBLISHED["hf_hospitalised_per_100k_adults"][0]
    for seed in SEEDS:
        figures = tiny_2023[seed]
        hf = figures["hf_hospitalised_per_100k_adults"]
        expected_people = published / 100_000 * figures["adults"]
        assert 90 < expected_people < 120
        tolerance = 1 / math.sqrt(expected_people)
        assert abs(hf.relative_difference) < tolerance, (seed, hf.generated)
    mean = np.mean([tiny_2023[seed]["hf_hospitalised_per_100k_adults"].generated for seed in SEEDS])
    assert mean == pytest.approx(published, rel=0.05)


def test_the_other_figures_within_ten_percent_on_every_seed(tiny_2023):
    """Stays per inhabitant and the prevalences: within the 10% of the goal on every seed (the
    COPD admissions, about 70 stays on tiny, move by 12% by chance alone: not checked here)."""
    for name in ("stays_per_inhabitant", "hf_prevalence_adults", "diabetes_prevalence", "copd_prevalence_40plus"):
        for seed in SEEDS:
            assert abs(tiny_2023[seed][name].relative_difference) < 0.10, (name, seed, tiny_2023[seed][name].generated)


def test_a_short_world_is_simulated_from_earlier_and_writes_its_years_only(tiny_2023, tmp_path):
    """A world of fewer than generate.CALIBRATED_YEARS years is the end of a longer simulation:
    its first written year already has the dynamics' deaths and moves, its reference population
    is that year's people, and nothing of the warm-up years is written."""
    from respop.synth.generate import CALIBRATED_YEARS

    out = tmp_path / "tiny"
    generate(load_profile("tiny"), 1, out, years=[2023])
    assert CALIBRATED_YEARS == 5
    residence = pl.read_parquet(out / "truth" / "residence.parquet")
    assert residence["year"].unique().to_list() == [2023]
    assert pl.read_parquet(out / "truth" / "stays.parquet")["year"].unique().to_list() == [2023]
    persons = pl.read_parquet(out / "truth" / "persons.parquet")
    assert persons.filter(pl.col("death_date").dt.year() < 2023).height > 100  # died in 2019-2022
    assert (out / "pmsi" / "T_MCO23B.parquet").is_file() and not (out / "pmsi" / "T_MCO22B.parquet").exists()
    start = pl.read_parquet(out / "reference" / "population.parquet")
    by_year = pl.read_parquet(out / "reference" / "population_by_year.parquet")
    assert by_year["year"].unique().to_list() == [2023]
    assert start["population"].sum() == residence.height == by_year["population"].sum()
