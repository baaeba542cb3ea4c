"""Spark in local mode for the parity tests (Spark engine == polars engine).

The tests skip, saying why, where pyspark or Java is absent (.ci/run and ``make test`` install
both). One local session per test process (pytest-xdist worker), two cores, few shuffle
partitions: the tiny data make Spark's start-up, not its work, the cost.
"""

from __future__ import annotations

import pytest

from respop.spark.session import unavailable


@pytest.fixture(scope="session")
def spark():
    reason = unavailable()
    if reason:
        pytest.skip(f"Spark parity tests skipped: {reason}")
    from respop.spark.session import session

    s = session("local[2]", {"spark.sql.shuffle.partitions": "4", "spark.driver.memory": "2g"})
    yield s


@pytest.fixture(scope="session")
def tiny_spark(spark, tiny_canonical):
    """The tiny canonical stays and diagnoses as Spark frames (and the zone → territory table)."""
    from respop.spark.frames import from_polars

    stays, diagnoses, zone_territory = tiny_canonical
    return from_polars(spark, stays).cache(), from_polars(spark, diagnoses).cache(), zone_territory
