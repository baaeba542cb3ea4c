"""Acceptance on the ``demo`` world, with the truth held aside: ``leiden`` recovers the planted
territories (adjusted Rand index >= 0.85) and its mean localization index is at least the
``plurality`` baseline's at an equal or smaller number of territories; no method breaks a
guarantee."""

from __future__ import annotations

import geopandas as gpd
import polars as pl
import pytest
from sklearn.metrics import adjusted_rand_score

from respop.delineation.flows import build_problem
from respop.delineation.guarantees import violations
from respop.delineation.leiden import Leiden
from respop.delineation.plurality import Plurality
from respop.pmsi import read_pmsi


@pytest.fixture(scope="module")
def demo(demo_2023):
    out = demo_2023  # demo, seed 1, 2023 (tests/delineation/conftest.py)
    ref = out / "reference"
    problem = build_problem(
        read_pmsi(out / "pmsi").stays,
        gpd.read_parquet(ref / "zones.parquet"),
        pl.read_parquet(ref / "population.parquet"),
        pl.read_parquet(ref / "hospitals.parquet"),
        years=[2023],
    )
    truth = pl.read_parquet(out / "truth" / "zone_territory.parquet")
    n_planted = pl.read_parquet(out / "truth" / "territories.parquet").height
    return problem, truth, n_planted


def localization_index(assignment: pl.DataFrame, problem) -> float:
    """Mean over territories of the share of their residents' stays in groups located in them."""
    where = problem.groups.select("group", pl.col("zone_code").alias("group_zone")).join(
        assignment.select(pl.col("zone_code").alias("group_zone"), pl.col("territory_id").alias("group_territory")),
        on="group_zone",
    )
    stays = problem.flows.join(assignment, on="zone_code").join(where, on="group", how="left")
    per = stays.group_by("territory_id").agg(
        (pl.col("stays").filter(pl.col("group_territory") == pl.col("territory_id")).sum() / pl.col("stays").sum())
        .alias("li")
    )
    assert per.height == assignment["territory_id"].n_unique()
    return float(per["li"].mean())


def ari(assignment: pl.DataFrame, truth: pl.DataFrame) -> float:
    both = truth.join(assignment, on="zone_code", suffix="_fitted")
    assert both.height == truth.height
    return adjusted_rand_score(both["territory_id"].to_numpy(), both["territory_id_fitted"].to_numpy())


def test_leiden_recovers_the_planted_territories(demo):
    problem, truth, n_planted = demo
    leiden = Leiden(target_count=n_planted).fit(problem)
    plurality = Plurality().fit(problem)
    k_leiden = leiden.assignment_["territory_id"].n_unique()
    k_plurality = plurality.assignment_["territory_id"].n_unique()

    assert ari(leiden.assignment_, truth) >= 0.85
    assert k_leiden <= n_planted
    for method in (leiden, plurality):
        assert violations(method.assignment_, problem, method.min_population) == []
        assert method.assignment_.height == problem.zones.height
    assert k_leiden <= k_plurality
    assert localization_index(leiden.assignment_, problem) >= localization_index(plurality.assignment_, problem)


def test_minimum_population_on_demo(demo):
    problem, _, _ = demo
    for method in (Leiden(min_population=50_000), Plurality(min_population=50_000)):
        assignment = method.fit(problem).assignment_
        assert violations(assignment, problem, 50_000) == []
        pops = assignment.join(problem.zones, on="zone_code").group_by("territory_id").agg(pl.col("population").sum())
        assert pops["population"].min() >= 50_000
