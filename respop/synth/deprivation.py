"""A zone deprivation index of the synthetic world, correlated with the diseases' incidence.

``reference/deprivation.parquet`` (zone_code, deprivation): a continuous index, higher = more
deprived, standardised (population-weighted mean 0 and standard deviation 1 over the zones),
spatially smooth (a smooth random field over the zone centroids plus some noise per zone), in the
role of a published commune-level index (FDep, EDI) aggregated to PMSI zones.

Type 2 diabetes, heart failure and COPD are more frequent where deprivation is higher, in France as
elsewhere: the prevalence of treated diabetes is about 1.3 to 1.5 times as high in the most deprived
fifth of communes (FDep quintile 5) as in the least deprived (Fosse-Edorh et al., BEH 2014; Mandereau-
Bruno et al., BEH 2014), heart failure and COPD hospitalisations follow the same gradient (Santé
publique France; smoking for COPD). The generator multiplies each zone's prevalence at the start and
incidence of these three diseases by ``exp(beta × z)`` (``z``: the zone's index, :data:`BETA`),
normalised so that its population-weighted mean over the zones is 1; the calibration scales of
:func:`respop.synth.people.initial_people` include the factor, so that the national figures hold.
With ``beta`` = 0.15, the most deprived fifth of zones (z about +1.4) has about 1.5 times the risk of
the least deprived (z about −1.4).

The index is drawn from a random stream of its own (:data:`DEPRIVATION_STREAM`): the geography and
the other draws are those of the world without it (the people's diseases differ, as the factor moves
each person's risk).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from respop.synth.geography import World

BETA = {"diabetes": 0.15, "heart_failure": 0.15, "copd": 0.15}
"""Log relative risk of the diseases' prevalence and incidence per standard deviation of the index
(type 2 diabetes only: type 1 has no social gradient worth simulating)."""
LENGTH_SCALE_KM = 25.0
"""Correlation length of the smooth field (squared-exponential kernel): towns and their suburbs,
a valley, a former industrial basin share their deprivation."""
SMOOTH_SHARE = 0.8
"""Share of the index's variance that is smooth; the rest is independent per zone."""
FEATURES = 256
"""Random Fourier features of the smooth field (Rahimi & Recht 2007): a Gaussian field of the
squared-exponential kernel, drawn in time linear in the number of zones (national: 5,600)."""
DEPRIVATION_STREAM = (1 << 30, 4)
"""The index's random stream: (seed, *DEPRIVATION_STREAM), apart from every chunk's (seed, chunk, …)."""
FILE = "deprivation.parquet"


def deprivation_index(world: World, seed: int) -> np.ndarray:
    """The index of each zone of ``world`` (its ``zones`` order): smooth field plus noise,
    standardised with the zones' populations as weights."""
    rng = np.random.default_rng([seed, *DEPRIVATION_STREAM])
    xy = np.column_stack([world.zones["x"].to_numpy(), world.zones["y"].to_numpy()]) / 1000.0  # km
    w = rng.normal(0.0, 1.0 / LENGTH_SCALE_KM, size=(FEATURES, 2))
    b = rng.uniform(0.0, 2 * np.pi, size=FEATURES)
    field = np.sqrt(2.0 / FEATURES) * np.cos(xy @ w.T + b).sum(axis=1)
    noise = rng.normal(size=len(xy))
    raw = np.sqrt(SMOOTH_SHARE) * _standardise(field, None) + np.sqrt(1 - SMOOTH_SHARE) * noise
    return _standardise(raw, world.zones["population"].to_numpy().astype(float))


def _standardise(values: np.ndarray, weights: np.ndarray | None) -> np.ndarray:
    weights = np.ones(len(values)) if weights is None else weights
    mean = np.average(values, weights=weights)
    sd = np.sqrt(np.average((values - mean) ** 2, weights=weights))
    return (values - mean) / (sd if sd > 0 else 1.0)


def risk_factors(index: np.ndarray, population: np.ndarray) -> dict[str, np.ndarray]:
    """Each disease's risk multiplier per zone, ``exp(beta × index)`` normalised to a
    population-weighted mean of 1 (the world's expected cases stay those of the calibration)."""
    out = {}
    for disease, beta in BETA.items():
        factor = np.exp(beta * index)
        out[disease] = factor / np.average(factor, weights=population)
    return out


def write_deprivation(world: World, index: np.ndarray, folder: Path) -> None:
    pl.DataFrame(
        {"zone_code": world.zones["zone_code"].to_numpy().astype(str), "deprivation": np.round(index, 4)},
        schema={"zone_code": pl.String, "deprivation": pl.Float64},
    ).write_parquet(Path(folder) / FILE)
