"""The smallest effect the difference-in-differences design can detect (power calculator).

For a pilot territory of population ``P`` followed ``years_pre`` years before and ``years_post``
years from its start, compared with ``n_donors`` territories, the variance of its overall DiD
estimate on the log scale is that of :mod:`respop.evaluation.did` with independent years
(the post years against the mean of the pre-period years; the extra between-territory variance
in the spirit of Conley & Taber 2011 and Ferman & Pinto 2019)::

    Var(θ) = (1/years_pre + 1/years_post) · [ s²_P + σ²_u + (s²_D + σ²_u) / n_donors ]

- ``s²_P = 1 / (P × rate_per_person)``: the sampling variance of the log of a yearly Poisson
  count with ``P × rate`` expected events;
- ``s²_D``: the donors' mean sampling variance of a yearly log value (default: ``s²_P``, donors
  the pilot's size);
- ``σ²_u`` (``extra_var``): the between-territory variance of a territory-year log value, what
  the counts' noise does not explain (:func:`respop.evaluation.did.extra_variance_per_year`).

The estimator contrasts the mean of the post years with the mean of the pre-period years
(:mod:`respop.evaluation.did`, overall effects), hence the factor; the design needs at least 2
pre-period years for the pre-trend check (``years_pre < 2`` is refused).

The minimum detectable effect at level α (two-sided) and power 1 − β uses Student's t with
``n_donors − 1`` degrees of freedom, like the estimator's intervals::

    m = (t_{1−α/2} + t_{power}) · sqrt(Var(θ));    mde = 1 − exp(−m)

``mde`` is a relative **reduction**: 0.12 means that an outcome 12 % lower than without the
intervention is detected with probability ``power``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl
from scipy import stats

from respop.evaluation.did import between_territory_cov, extra_variance_per_year

POWER_SCHEMA = {
    "population": pl.Int64,
    "years_pre": pl.Int64,
    "years_post": pl.Int64,
    "mde": pl.Float64,
    "alpha": pl.Float64,
    "power": pl.Float64,
}


def minimum_detectable_effect(
    population: float,
    years_pre: int,
    years_post: int,
    rate_per_person: float,
    extra_var: float,
    n_donors: int,
    alpha: float = 0.05,
    power: float = 0.8,
    donor_sampling_var: float | None = None,
) -> float:
    """The smallest relative reduction detected (module docstring); ``rate_per_person``: events
    per inhabitant and year."""
    if population <= 0 or rate_per_person <= 0:
        raise ValueError("the population and the event rate must be positive")
    if years_pre < 2:
        raise ValueError(f"{years_pre} pre-period year(s): the design needs at least 2")
    if years_post < 1:
        raise ValueError("at least one post-period year is needed")
    if n_donors < 2:
        raise ValueError(f"{n_donors} comparison territory(ies): at least 2 are needed")
    if not 0 < alpha < 1 or not 0 < power < 1:
        raise ValueError("alpha and power must be between 0 and 1")
    sampling = 1.0 / (population * rate_per_person)
    donors = sampling if donor_sampling_var is None else donor_sampling_var
    extra = max(0.0, extra_var)
    variance = (1 / years_pre + 1 / years_post) * (sampling + extra + (donors + extra) / n_donors)
    df = n_donors - 1
    multiplier = stats.t.ppf(1 - alpha / 2, df) + stats.t.ppf(power, df)
    return float(-np.expm1(-multiplier * np.sqrt(variance)))


def power_table(
    panel: pl.DataFrame,
    populations: Sequence[int],
    years_pre: int | Sequence[int],
    years_post: int | Sequence[int],
    donors: Sequence[int] | None = None,
    alpha: float = 0.05,
    power: float = 0.8,
    inhabitants: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """The minimum detectable effect for each population × years_pre × years_post
    (:data:`POWER_SCHEMA`), the rate and the variances estimated from ``panel`` (one outcome:
    territory_id, year, value, log_var, events, denominator) over ``donors`` (default: every
    territory of the panel; give the donors, so that no pilot's post years enter).

    The rate per inhabitant is Σ events / Σ denominator; for an outcome per case, give
    ``inhabitants`` (territory_id, year, population) so that it is Σ events / Σ population.
    ``extra_var`` is the method of moments of :func:`respop.evaluation.did.between_territory_cov`
    (territories with a positive value every year), ``donor_sampling_var`` their mean ``log_var``."""
    needed = ["territory_id", "year", "value", "log_var", "events", "denominator"]
    missing = [c for c in needed if c not in panel.columns]
    if missing:
        raise ValueError(f"the panel lacks the column(s) {', '.join(missing)}")
    frame = panel.select(needed)
    if donors is not None:
        frame = frame.filter(pl.col("territory_id").is_in([int(d) for d in donors]))
    if inhabitants is not None:
        frame = frame.drop("denominator").join(
            inhabitants.select("territory_id", "year", pl.col("population").alias("denominator")),
            on=["territory_id", "year"], how="inner",
        )
    frame = frame.sort("territory_id", "year")  # float sums in a fixed order: the same table on every run
    totals = frame.select(pl.col("events").sum(), pl.col("denominator").sum())
    events, denominator = totals.row(0)
    if not denominator or not events:
        raise ValueError("no event or no denominator in the panel: the rate cannot be estimated")
    rate = float(events) / float(denominator)
    wide = frame.pivot(on="year", index="territory_id", values=["value", "log_var"], aggregate_function="first").drop_nulls().sort("territory_id")
    year_columns = sorted(c for c in wide.columns if c.startswith("value_"))
    values = wide.select(year_columns).to_numpy()
    log_vars = wide.select([c.replace("value_", "log_var_") for c in year_columns]).to_numpy()
    keep = np.all(values > 0, axis=1) & np.all(np.isfinite(log_vars), axis=1)
    if keep.sum() < 2:
        raise ValueError("fewer than 2 territories with a positive value every year: the extra variance cannot be estimated")
    extra = extra_variance_per_year(between_territory_cov(np.log(values[keep]), log_vars[keep]))
    donor_sampling = float(log_vars[keep].mean())
    n_donors = int(keep.sum())
    pres = [years_pre] if isinstance(years_pre, int) else list(years_pre)
    posts = [years_post] if isinstance(years_post, int) else list(years_post)
    rows = [
        {"population": int(p), "years_pre": int(a), "years_post": int(b),
         "mde": minimum_detectable_effect(p, a, b, rate, extra, n_donors, alpha, power, donor_sampling),
         "alpha": alpha, "power": power}
        for p in populations for a in pres for b in posts
    ]
    return pl.DataFrame(rows, schema=POWER_SCHEMA)
