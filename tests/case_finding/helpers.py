"""Run the engine and the reference on the same inputs and compare them row for row."""

from __future__ import annotations

import polars as pl
from polars.testing import assert_frame_equal

from respop.spec.algorithm import AlgorithmSpec
from tests.case_finding.reference import (
    CASE_SCHEMA,
    RESIDENCE_SCHEMA,
    reference_cases,
    reference_residence,
    to_polars,
)

KEYS = ["patient_key", "disease", "index_year"]
LOOSE_TYPES = {"disease", "subtype", "residence_zone", "territory_name"}
"""Text columns the engine may hold as Categorical or Enum: compared as strings."""


def _normalise(df: pl.DataFrame, schema: dict[str, pl.DataType]) -> pl.DataFrame:
    return df.select([pl.col(c).cast(pl.String) if c in LOOSE_TYPES else pl.col(c) for c in schema]).sort(KEYS)


def assert_same(got: pl.DataFrame, expected: pl.DataFrame, schema: dict[str, pl.DataType], what: str = "") -> None:
    """Same columns with the documented types, same rows once sorted by patient, disease, year."""
    missing = [c for c in schema if c not in got.columns]
    assert not missing, f"{what}: engine lacks columns {missing} (has {got.columns})"
    wrong = {
        c: (str(got.schema[c]), str(t))
        for c, t in schema.items()
        if c not in LOOSE_TYPES and got.schema[c] != t
    }
    assert not wrong, f"{what}: column types differ from the documented ones (got, expected): {wrong}"
    loose = {c: got.schema[c] for c in LOOSE_TYPES & set(schema)}
    assert all(t in (pl.String, pl.Categorical) or isinstance(t, (pl.Enum, pl.Categorical)) for t in loose.values()), loose
    g, e = _normalise(got, schema), _normalise(expected, schema)
    dups = g.filter(pl.struct(KEYS).is_duplicated())
    assert dups.is_empty(), f"{what}: engine gives several rows for one (patient, disease, year):\n{dups}"
    if g.height != e.height or not g.equals(e):
        only_g = g.join(e.select(KEYS), on=KEYS, how="anti")
        only_e = e.join(g.select(KEYS), on=KEYS, how="anti")
        both = g.join(e, on=KEYS, how="inner", suffix="_ref")
        differ = {}
        for c in schema:
            if c in KEYS:
                continue
            a, b = pl.col(c), pl.col(f"{c}_ref")
            if schema[c] == pl.Float64:
                same = ((a - b).abs() <= 1e-9) | (a.is_null() & b.is_null())
            else:
                same = a.eq_missing(b)
            bad = both.filter(~same.fill_null(False)).select(*KEYS, c, f"{c}_ref")
            if bad.height:
                differ[c] = bad
        if only_g.height or only_e.height or differ:
            lines = [f"{what}: engine and reference differ ({g.height} vs {e.height} rows)"]
            if only_g.height:
                lines.append(f"rows only in the engine ({only_g.height}):\n{only_g.head(8)}")
            if only_e.height:
                lines.append(f"rows only in the reference ({only_e.height}):\n{only_e.head(8)}")
            for c, bad in differ.items():
                lines.append(f"column {c}: {bad.height} rows differ (engine, then reference):\n{bad.head(8)}")
            raise AssertionError("\n".join(lines))
    assert_frame_equal(g, e, check_exact=False, rel_tol=1e-9, abs_tol=1e-12)


def check_cases(
    spec: AlgorithmSpec,
    stays: pl.DataFrame,
    diagnoses: pl.DataFrame,
    index_years: list[int],
    first_year: int | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Engine vs reference for ``find_cases``; returns (engine rows, reference rows as polars)."""
    from respop.case_finding.engine import find_cases

    got = find_cases(spec, stays.lazy(), diagnoses.lazy(), index_years, first_year=first_year).collect()
    ref_pd = reference_cases(spec, stays.to_pandas(), diagnoses.to_pandas(), index_years, first_year)
    expected = to_polars(ref_pd, CASE_SCHEMA)
    assert_same(got, expected, CASE_SCHEMA, f"find_cases({spec.disease}, {index_years}, first_year={first_year})")
    return got, expected


def check_residence(
    cases: pl.DataFrame,
    expected_cases: pl.DataFrame,
    stays: pl.DataFrame,
    lookback_years: int,
    method: str,
    zone_territory: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """Engine vs reference for ``attach_residence``: the engine on its own cases, the reference on
    its own (already shown equal); returns the engine's rows."""
    from respop.case_finding.engine import attach_residence

    got = attach_residence(cases.lazy(), stays.lazy(), lookback_years, method=method, zone_territory=zone_territory).collect()
    ref_pd = reference_residence(
        expected_cases.to_pandas(),
        stays.to_pandas(),
        lookback_years,
        method,
        None if zone_territory is None else zone_territory.to_pandas(),
    )
    schema = {**CASE_SCHEMA, **RESIDENCE_SCHEMA}
    expected = to_polars(ref_pd, schema)
    assert_same(got, expected, schema, f"attach_residence(lookback={lookback_years}, method={method})")
    return got
