"""Fixtures shared by several test folders."""

from __future__ import annotations

import polars as pl
import pytest

from respop.pmsi import read_pmsi
from respop.synth import generate, load_profile

TINY_YEARS = [2021, 2022, 2023]
"""The years of the tiny profile."""


@pytest.fixture(scope="session")
def tiny_canonical(tmp_path_factory):
    """``tiny`` (seed 7) read by respop.pmsi: collected stays and diagnoses, and the planted
    zone → territory table; generated once per test session (per worker)."""
    out = tmp_path_factory.mktemp("tiny_seed7")
    result = generate(load_profile("tiny"), seed=7, out=out)
    assert result.years == TINY_YEARS
    data = read_pmsi(out / "pmsi").staged()
    stays = data.stays.collect()
    diagnoses = data.diagnoses.collect()
    zone_territory = pl.read_parquet(out / "truth" / "zone_territory.parquet")
    yield stays, diagnoses, zone_territory
    data.close()
