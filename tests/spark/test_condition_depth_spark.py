"""The deepest condition the nesting limit allows (respop.strata.conditions.MAX_DEPTH) compiles
to Spark and gives what the polars target gives (tests/strata/test_condition_depth.py)."""

from __future__ import annotations

import polars as pl
import pytest

pytest.importorskip("pyspark", reason="Spark tests skipped: pyspark is not installed (pip install 'respop[spark]')")

from respop.spark.frames import from_polars  # noqa: E402
from respop.spec.conditions import MAX_DEPTH, nesting, parse  # noqa: E402
from respop.strata.conditions import to_polars  # noqa: E402
from respop.spark.conditions import to_spark  # noqa: E402


def test_the_deepest_allowed_condition_compiles_to_spark(spark):
    allowed = "ckd"
    while nesting(f"(age >= 75 or (ckd and not {allowed}))") <= MAX_DEPTH:
        allowed = f"(age >= 75 or (ckd and not {allowed}))"
    shallow = "not " * (MAX_DEPTH - 1) + "(age >= 75)"
    frame = pl.DataFrame({"row": [0, 1, 2, 3, 4], "age": [70, 80, 70, 80, None], "ckd": [True, False, False, True, None]})
    for text in (allowed, shallow):
        node = parse(text)
        expected = frame.select(to_polars(node).alias("x"))["x"].to_list()
        rows = from_polars(spark, frame).select("row", to_spark(node).alias("x")).orderBy("row").collect()
        assert [r["x"] for r in rows] == expected, text[:80]
