"""Moving frames between polars and Spark (Arrow both ways), with respop's column types."""

from __future__ import annotations

from collections.abc import Mapping

import polars as pl

_SPARK_TYPES = {
    pl.String: "string",
    pl.Boolean: "boolean",
    pl.Int8: "tinyint",
    pl.Int16: "smallint",
    pl.Int32: "int",
    pl.Int64: "bigint",
    pl.Float32: "float",
    pl.Float64: "double",
    pl.Date: "date",
}


def spark_type(dtype: pl.DataType) -> str:
    """The Spark SQL type name of a polars type (those respop's schemas use)."""
    for polars_type, name in _SPARK_TYPES.items():
        if dtype == polars_type:
            return name
    raise TypeError(f"no Spark type for {dtype}")


def cast(sdf, schema: Mapping[str, pl.DataType]):
    """``sdf`` with the columns of ``schema``, in its order, cast to its types."""
    from pyspark.sql import functions as F

    return sdf.select(*[F.col(name).cast(spark_type(dtype)).alias(name) for name, dtype in schema.items()])


def to_polars(sdf, schema: Mapping[str, pl.DataType] | None = None) -> pl.DataFrame:
    """Collect a Spark frame to polars (Arrow), cast to ``schema`` when given."""
    table = sdf.toArrow()
    out = pl.from_arrow(table)
    assert isinstance(out, pl.DataFrame)
    if schema is not None:
        out = out.select(list(schema)).cast(dict(schema))
    return out


def from_polars(spark, df: pl.DataFrame | pl.LazyFrame):
    """A Spark frame holding ``df`` (for small tables: reference tables, tests)."""
    if isinstance(df, pl.LazyFrame):
        df = df.collect()
    # Arrow's large_string/large types are accepted by Spark 4; views are not
    return spark.createDataFrame(df.to_arrow(compat_level=pl.CompatLevel.oldest()))
