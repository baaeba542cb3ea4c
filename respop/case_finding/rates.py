"""Rates and their confidence intervals: age bands, exact Poisson limits, directly standardised rates.

- **Age bands** are labels ``"00-04"``, ``"5-9"``, ``"85+"`` (bounds inclusive, ``+`` for the open
  last band). A set of bands must tile the ages 0, 1, 2, … without gap or overlap.
- **Crude rates**: exact (Garwood) limits of a Poisson count, from the chi-square distribution.
- **Directly standardised rates** (DSR): the weighted sum of the stratum rates, weighted by the
  reference population's shares, with the gamma confidence interval of Fay & Feuer (1997),
  *Confidence intervals for directly standardized rates: a method based on the gamma
  distribution*, Statistics in Medicine 16:791–801. It is exact for a single stratum and
  conservative otherwise (the method of ``epitools::ageadjust.direct`` in R).
- **Reference populations**: the study population itself, the 2013 European Standard Population
  shipped in ``respop/data/reference_populations/``, or a CSV file; always returned as weights in
  the study population's age bands × sex.

Rates are per person (events / population); callers scale them (per 100,000…).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import polars as pl
from scipy import stats

from respop.errors import ConfigError, InputError
from respop.resources import data_path

SEXES = (1, 2)
"""Sex codes of the strata: 1 male, 2 female."""

REFERENCE_COLUMNS = ["age_band", "sex", "weight"]
"""Columns of :func:`reference_population` (and of the ``reference`` argument of the indicators)."""

_CLOSED_BAND = re.compile(r"^\s*(\d{1,3})\s*-\s*(\d{1,3})\s*$")
_OPEN_BAND = re.compile(r"^\s*(\d{1,3})\s*\+\s*$")


# ---------------------------------------------------------------------------------------------
# Age bands


def parse_age_band(label: str) -> tuple[int, int | None]:
    """``"00-04"`` → (0, 4), ``"85+"`` / ``"95 +"`` → (85, None): the inclusive bounds of a band.

    Raises ValueError on anything else (a reversed band such as ``"9-5"`` included)."""
    if not isinstance(label, str):
        raise ValueError(f"age band {label!r} is not a label such as '00-04' or '85+'")
    closed = _CLOSED_BAND.match(label)
    if closed:
        low, high = int(closed.group(1)), int(closed.group(2))
        if high < low:
            raise ValueError(f"age band {label!r}: the upper bound {high} is below the lower bound {low}")
        return low, high
    open_ = _OPEN_BAND.match(label)
    if open_:
        return int(open_.group(1)), None
    raise ValueError(f"age band {label!r} is not a label such as '00-04' or '85+'")


def check_bands(bands: Sequence[str]) -> list[tuple[str, int, int | None]]:
    """The bands as (label, low, high) sorted by age, checked to tile 0, 1, 2, … exactly.

    Raises ValueError naming the problem: a bad label, a repeated label, a first band that does not
    start at 0, a gap, an overlap, or no open last band (such as ``"85+"``)."""
    labels = list(bands)
    if not labels:
        raise ValueError("no age bands given")
    seen: set[str] = set()
    for label in labels:
        if label in seen:
            raise ValueError(f"age band {label!r} is given twice")
        seen.add(label)
    parsed = sorted(
        ((label, *parse_age_band(label)) for label in labels),
        key=lambda b: (b[1], b[2] if b[2] is not None else 10**9),
    )
    if parsed[0][1] != 0:
        raise ValueError(f"the age bands start at {parsed[0][1]} ({parsed[0][0]!r}), not at 0")
    for (label, _low, high), (next_label, next_low, _next_high) in zip(parsed, parsed[1:], strict=False):
        if high is None:
            raise ValueError(f"age bands {label!r} and {next_label!r} overlap (an open band must be the last)")
        if next_low <= high:
            raise ValueError(f"age bands {label!r} and {next_label!r} overlap")
        if next_low > high + 1:
            ages = f"age {high + 1}" if next_low == high + 2 else f"ages {high + 1}–{next_low - 1}"
            raise ValueError(f"gap between the age bands {label!r} and {next_label!r}: {ages} in none")
    if parsed[-1][2] is not None:
        last, _, high = parsed[-1]
        raise ValueError(f"the last age band {last!r} is closed: add an open band such as '{high + 1}+'")
    return parsed


def band_of_age(age: pl.Expr, bands: Sequence[str]) -> pl.Expr:
    """The label (String) of the band of ``bands`` containing the integer ``age``; null for a null
    or negative age. ``bands`` must tile 0…∞ (see :func:`check_bands`)."""
    parsed = check_bands(bands)
    *closed, (open_label, open_low, _) = parsed
    expr: pl.Expr = pl.when(age >= open_low).then(pl.lit(open_label, dtype=pl.String))
    for label, low, high in closed:
        expr = expr.when(age.is_between(low, high)).then(pl.lit(label, dtype=pl.String))
    return expr.otherwise(pl.lit(None, dtype=pl.String))


# ---------------------------------------------------------------------------------------------
# Denominators

OPEN_BAND_YEARS = 15
"""Width assumed for the open last band (``85+``: 85 to 99) when an age limit falls inside it."""


def band_shares(bands: Sequence[str], min_age: int | None = None, max_age: int | None = None) -> dict[str, float]:
    """The share of each band's people whose age is within ``[min_age, max_age]`` (inclusive;
    None: no limit), ages spread evenly within a band (the open last band taken as
    :data:`OPEN_BAND_YEARS` wide): 1 inside, 0 outside, the share of its years for a band a limit
    cuts (``15-19`` with ``min_age = 18``: 2/5)."""
    shares = {}
    for label, low, high in check_bands(bands):
        top = high if high is not None else low + OPEN_BAND_YEARS - 1
        first = max(low, min_age) if min_age is not None else low
        last = min(top, max_age) if max_age is not None else top
        shares[label] = max(0, last - first + 1) / (top - low + 1)
    return shares


def denominator(
    population: pl.DataFrame, min_age: int | None = None, max_age: int | None = None, by: Sequence[str] = ("year",)
) -> pl.DataFrame:
    """**The denominator of a disease's rates**: the population whose age is within the disease's
    ages (its spec's ``[population]``: ``min_age``, ``max_age``), summed by ``by`` (Float64
    column ``population``; a band a limit cuts counts pro rata of its years: :func:`band_shares`).

    One definition for the indicators (respop.case_finding.indicators, per unit and year) and
    ``respop cases validate`` (the area, per year): their rates are the same figure.
    ``population``: age_band, population and the ``by`` columns."""
    _require(population, ["age_band", "population", *by], "the population table")
    shares = band_shares(population.get_column("age_band").cast(pl.String).unique().to_list(), min_age, max_age)
    share = pl.col("age_band").cast(pl.String).replace_strict(shares, return_dtype=pl.Float64)
    total = (pl.col("population").cast(pl.Float64) * share).sum().alias("population")
    if not by:
        return population.select(total)
    return population.group_by(list(by)).agg(total).sort(list(by))


# ---------------------------------------------------------------------------------------------
# Confidence intervals


def _alpha(confidence: float) -> float:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1 (exclusive), got {confidence}")
    return 1.0 - confidence


def poisson_ci(
    counts: npt.ArrayLike, confidence: float = 0.95
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Exact (Garwood) confidence limits of the mean of Poisson counts: (low, high) arrays.

    low = χ²(α/2; 2k) / 2 (0 when k = 0), high = χ²(1 − α/2; 2k + 2) / 2. NaN stays NaN."""
    alpha = _alpha(confidence)
    k = np.asarray(counts, dtype=np.float64)
    if np.any(k < 0):
        raise ValueError("Poisson counts cannot be negative")
    with np.errstate(invalid="ignore"):
        low = np.where(k > 0, stats.chi2.ppf(alpha / 2, 2 * np.maximum(k, 1e-300)) / 2, 0.0)
        high = stats.chi2.ppf(1 - alpha / 2, 2 * k + 2) / 2
    low = np.where(np.isnan(k), np.nan, low)
    return np.asarray(low, dtype=np.float64), np.asarray(high, dtype=np.float64)


def fay_feuer_interval(
    rate: npt.ArrayLike, variance: npt.ArrayLike, max_weight: npt.ArrayLike, confidence: float = 0.95
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Fay & Feuer gamma limits (low, high) of directly standardised rates y = Σ w_i d_i, from
    y, v = Σ w_i² d_i and w_M = max w_i (arrays; NaN in → NaN out):

    - low = Gamma⁻¹(α/2; shape y²/v, scale v/y), 0 when y = 0;
    - high = Gamma⁻¹(1 − α/2; shape (y + w_M)²/(v + w_M²), scale (v + w_M²)/(y + w_M)).
    """
    alpha = _alpha(confidence)
    y = np.asarray(rate, dtype=np.float64)
    v = np.asarray(variance, dtype=np.float64)
    wm = np.asarray(max_weight, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        positive = y > 0
        y1, v1 = np.where(positive, y, 1.0), np.where(positive, v, 1.0)
        low = np.where(positive, stats.gamma.ppf(alpha / 2, y1 * y1 / v1, scale=v1 / y1), 0.0)
        low = np.where(np.isnan(y), np.nan, low)
        high = stats.gamma.ppf(1 - alpha / 2, (y + wm) ** 2 / (v + wm * wm), scale=(v + wm * wm) / (y + wm))
    return np.asarray(low, dtype=np.float64), np.asarray(high, dtype=np.float64)


def dsr_fay_feuer(
    data: pl.DataFrame,
    by: Sequence[str],
    *,
    events: str = "events",
    population: str = "population",
    weight: str = "weight",
    confidence: float = 0.95,
) -> pl.DataFrame:
    """Directly standardised rate per group, with the Fay & Feuer (1997) gamma interval.

    ``data`` is long: one row per group (columns ``by``) × stratum, with the stratum's ``events``
    d_i, ``population`` n_i (person-years) and reference ``weight`` ref_i (the reference
    population's count or share of the stratum: only proportions matter). Null events,
    populations or weights count as 0. Per group, over its strata with n_i > 0:
    w_i = ref_i / (Σ ref · n_i), rate y = Σ w_i d_i, variance v = Σ w_i² d_i, w_M = max w_i, and
    the limits of :func:`fay_feuer_interval`.

    **Strata with n_i = 0** are left out and the reference is renormalised over the remaining
    strata (their events, if any, are not counted). A group with no population (or whose remaining
    strata all have a zero reference weight) gets null rate and limits.

    Returns ``by`` + ``rate``, ``low``, ``high`` (Float64, per person), one row per group in order
    of first appearance.
    """
    _alpha(confidence)
    by = list(by)
    missing = [c for c in [*by, events, population, weight] if c not in data.columns]
    if missing:
        raise ValueError(f"dsr_fay_feuer: missing columns {missing}")
    if not by:
        data = data.with_columns(pl.lit(0).alias("_group"))
        return dsr_fay_feuer(
            data, ["_group"], events=events, population=population, weight=weight, confidence=confidence
        ).drop("_group")

    d = pl.col(events).cast(pl.Float64).fill_null(0)
    n = pl.col(population).cast(pl.Float64).fill_null(0)
    r = pl.col(weight).cast(pl.Float64).fill_null(0)
    q = pl.when(n > 0).then(r / n)  # ref_i / n_i; null for an empty stratum
    # one pass: with R = Σ ref over populated strata, y = Σ q d / R, v = Σ q² d / R², w_M = max q / R
    sums = (
        data.lazy()
        .group_by(by, maintain_order=True)
        .agg(
            r.filter(n > 0).sum().alias("_R"),
            (q * d).sum().alias("_A"),
            (q * q * d).sum().alias("_B"),
            q.max().alias("_M"),
            (d < 0).any().alias("_neg_events"),
            (n < 0).any().alias("_neg_population"),
            (r < 0).any().alias("_neg_weight"),
        )
        .collect(engine="streaming")
    )
    for column, name in (("_neg_events", events), ("_neg_population", population), ("_neg_weight", weight)):
        if sums[column].any():
            raise ValueError(f"dsr_fay_feuer: negative values in {name!r}")

    total = sums["_R"].to_numpy().astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        total = np.where(total > 0, total, np.nan)
        y = sums["_A"].to_numpy().astype(np.float64) / total
        v = sums["_B"].to_numpy().astype(np.float64) / total**2
        wm = sums["_M"].to_numpy().astype(np.float64) / total
    low, high = fay_feuer_interval(y, v, wm, confidence)
    return sums.select(by).with_columns(
        pl.Series("rate", y, dtype=pl.Float64).fill_nan(None),
        pl.Series("low", low, dtype=pl.Float64).fill_nan(None),
        pl.Series("high", high, dtype=pl.Float64).fill_nan(None),
    )


# ---------------------------------------------------------------------------------------------
# Reference populations


def _require(df: pl.DataFrame, columns: Sequence[str], what: str, path: str | Path | None = None) -> None:
    for column in columns:
        if column not in df.columns:
            raise InputError(f"{what} has no column {column!r}", path, column)


def population_bands(population: pl.DataFrame) -> list[tuple[str, int, int | None]]:
    """The age bands of a population table (column ``age_band``), sorted, checked to tile 0…∞
    (InputError otherwise)."""
    _require(population, ["age_band"], "the population table")
    if population["age_band"].null_count():
        raise InputError("the population table has rows without age_band", None, "age_band")
    labels = population.get_column("age_band").cast(pl.String).unique().to_list()
    try:
        return check_bands(labels)
    except ValueError as exc:
        raise InputError(f"the population table's age bands: {exc}", None, "age_band") from exc


def _nest_bands(
    reference: list[tuple[str, int, int | None]], target: list[tuple[str, int, int | None]], source: str
) -> dict[str, str]:
    """reference band → the target band containing it; ConfigError when one straddles two."""

    def containing(age: int) -> tuple[str, int, int | None]:
        return next(t for t in target if t[1] <= age and (t[2] is None or age <= t[2]))

    mapping: dict[str, str] = {}
    for label, low, high in reference:
        first = containing(low)
        if first[2] is not None and (high is None or high > first[2]):
            last = target[-1] if high is None else containing(high)
            raise ConfigError(
                f"reference population {source}: its age band {label!r} straddles the population "
                f"table's bands {first[0]!r} and {last[0]!r}; a reference band must fall inside one "
                f"band of the population table (give the reference in finer bands)"
            )
        mapping[label] = first[0]
    return mapping


def _read_reference_csv(path: Path) -> pl.DataFrame:
    if not path.is_file():
        raise InputError(
            "reference population file not found (give 'population', 'esp2013' or the path of a CSV "
            "with the columns age_band, population and optionally sex)",
            path,
        )
    try:
        table = pl.read_csv(path, infer_schema=False)
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise InputError(f"cannot read the reference population CSV: {exc}", path) from exc
    table = table.rename({c: c.strip() for c in table.columns})
    _require(table, ["age_band", "population"], "the reference population CSV", path)
    columns = {"age_band": pl.String, "population": pl.Float64}
    if "sex" in table.columns:
        columns["sex"] = pl.Int8
    cast = {}
    for column, dtype in columns.items():
        try:
            cast[column] = table[column].str.strip_chars().cast(dtype)
        except pl.exceptions.PolarsError as exc:
            raise InputError(f"non-numeric values in the column {column!r}", path, column) from exc
    table = pl.DataFrame(cast)
    if table["population"].null_count() or (table["population"] < 0).any():
        raise InputError("population must be given and non-negative on every row", path, "population")
    if "sex" in columns and not table["sex"].is_in(SEXES).all():
        raise InputError("sex must be 1 (male) or 2 (female) on every row", path, "sex")
    return table


def reference_population(name_or_path: str, population: pl.DataFrame) -> pl.DataFrame:
    """Standardisation weights in the population table's age bands: age_band (String), sex (Int8,
    1/2), weight (Float64, summing to 1), one row per band × sex, sorted by age then sex.

    ``name_or_path``:

    - ``"population"``: the study population itself (``population`` summed over zones, and over
      years when it has a ``year`` column) by age_band and sex;
    - ``"esp2013"``: the 2013 European Standard Population (shipped, see its README);
    - anything else: the path of a CSV with ``age_band``, ``population`` and optionally ``sex``.

    A reference without sex is split half and half between sexes 1 and 2. Reference bands finer
    than the population table's are summed into them (ESP 85-89, 90-94, 95+ → ``85+``); a reference
    band straddling two population bands is a ConfigError.
    """
    _require(population, ["age_band", "sex", "population"], "the population table")
    bands = population_bands(population)
    if not population["sex"].drop_nulls().is_in(SEXES).all() or population["sex"].null_count():
        raise InputError("the population table's sex must be 1 (male) or 2 (female)", None, "sex")

    key = name_or_path.strip()
    path: Path | None = None
    if key.lower() == "population":
        table = population.select(
            pl.col("age_band").cast(pl.String), pl.col("sex").cast(pl.Int8), pl.col("population").cast(pl.Float64)
        )
        source = "'population' (the study population)"
    else:
        path = data_path("reference_populations", "esp2013.csv") if key.lower() == "esp2013" else Path(key)
        table = _read_reference_csv(path)
        source = f"{key!r}" if key.lower() == "esp2013" else f"{str(path)!r}"

    labels = table["age_band"].unique().to_list()
    try:
        reference_bands = check_bands(labels)
    except ValueError as exc:
        raise InputError(f"the reference population's age bands: {exc}", path, "age_band") from exc
    mapping = _nest_bands(reference_bands, bands, source)

    if "sex" not in table.columns:
        table = table.join(pl.DataFrame({"sex": list(SEXES)}, schema={"sex": pl.Int8}), how="cross").with_columns(
            pl.col("population") / len(SEXES)
        )
    summed = (
        table.with_columns(pl.col("age_band").replace_strict(mapping, return_dtype=pl.String))
        .group_by("age_band", "sex")
        .agg(pl.col("population").sum())
    )
    grid = pl.DataFrame(
        {
            "age_band": [label for label, _, _ in bands for _ in SEXES],
            "sex": [sex for _ in bands for sex in SEXES],
            "_order": list(range(len(bands) * len(SEXES))),
        },
        schema={"age_band": pl.String, "sex": pl.Int8, "_order": pl.Int32},
    )
    out = grid.join(summed, on=["age_band", "sex"], how="left").with_columns(pl.col("population").fill_null(0.0))
    total = out["population"].sum()
    if not total > 0:
        raise ConfigError(f"reference population {source} totals 0: nothing to standardise on")
    return out.sort("_order").with_columns((pl.col("population") / total).alias("weight")).select(REFERENCE_COLUMNS)
