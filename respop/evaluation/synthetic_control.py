"""Synthetic control per pilot territory, with placebo-in-space inference.

The panel is the one of ONE disease × outcome (``territory_id``, ``year``, ``value``, ``log_var``;
see :mod:`respop.evaluation.did`).

**Scale.** For a pilot that starts in year ``g``, every territory's series is indexed to its own
mean over the pilot's pre-period (the years before ``g``): ``z_j,t = value_j,t / mean_{t<g}
value_j,t``; so a synthetic control reproduces the pilot's evolution, not its level, and the
effect is relative. The pilot's effect is the ratio of the post-period means, observed over
synthetic, minus 1::

    effect = mean_{t≥g} z_pilot,t / mean_{t≥g} ẑ_t − 1          ẑ_t = Σ_d w_d z_d,t

``counterfactual`` is the synthetic level in the outcome's unit averaged over the post years
(the pilot's pre-period mean × mean ẑ_t); ``effect_abs`` = effect × counterfactual is left to the
caller. ``pre_rmspe`` is the root mean squared gap z − ẑ over the pre-period, relative (0.03: the
synthetic misses the pilot's evolution by 3 % a year on average).

**Weights** (Abadie, Diamond & Hainmueller 2010, *Synthetic control methods for comparative case
studies*, JASA 105:493–505): ``w ≥ 0``, ``Σ w = 1``, minimising over the pre-period

    Σ_{t<g} (z_pilot,t − ẑ_t)²  +  T₀ · Σ_d w_d² s_d²  +  c · Σ_k (x̃_pilot,k − Σ_d w_d x̃_d,k)²

- the second term is the synthetic's own sampling variance over the ``T₀`` pre-period years
  (``s_d²``: the donor's mean sampling variance of log value over the pre-period, ≈ that of its
  indexed value). With a few pre-period years and many donors, the plain fit can reproduce the
  pilot's year-to-year noise exactly; this term makes the weights unique, prefers large (precise)
  donors to small noisy ones, and vanishes on noise-free data (a donor identical to the pilot
  then gets weight 1);
- the third term, only when ``covariates`` are given (e.g. deprivation, the share of older
  people): each covariate standardised over the pilot and the donors (mean 0, standard deviation
  equal to that of the donors' indexed pre-period values), weighted by ``covariate_weight`` =
  ``c`` (default 1: each covariate counts as much as one pre-period year of the outcome).

The problem is solved exactly as a non-negative least squares problem on the augmented system
(``scipy.optimize.nnls``, the sum-to-one constraint as a heavily weighted row, then renormalised).
Why not ``pysyncon`` (the issue suggests it "where it fits"): its ``Synth.fit`` takes a pandas
``Dataprep`` (or pandas X0/X1/Z0/Z1 frames) and runs a nested optimisation (Nelder–Mead over the
predictor weights V, an inner weight fit for each V) meant for one treated unit with predictors;
this method needs one fit per pilot and one per donor for each start year (hundreds of placebo
fits per outcome, 130 donors at national scale) on polars data, without pandas round trips; the
single quadratic problem above is solved in about a millisecond, and pysyncon is not a respop
dependency.

**Inference** (Abadie et al. 2010; Firpo & Possebom 2018, *Synthetic control method: inference,
sensitivity analysis and confidence sets*, Journal of Causal Inference 6(2)):

- placebo in space: each donor in turn is treated as the pilot (same start year), fitted on the
  other donors (never on a pilot); statistic: the mean post-period gap over the pre-period RMSPE,
  ``mean_post gap / sqrt(mean_pre gap² + s_j²)`` (signed; tests compare absolute values). The
  pre-period RMSPE is regularised by the unit's own sampling noise ``s_j²``: with few pre-period
  years the fit can be near-exact and the plain ratio would divide by ~0; the same statistic is
  used for the pilot and every placebo. The p-value is the pilot's rank:
  ``(1 + #{|placebo| ≥ |pilot|}) / (n + 1)``, so it cannot go below ``1/(n + 1)``. Abadie et al.'s
  post/pre RMSPE ratio was used first: it measures how much the post-period gaps vary, not their
  mean, so it rejected where the effect was ~0 (benchmarks/evaluation.py, seeds 1–20: 5 of 40
  outcomes without effect "significant", e.g. −0.1 % with p = 0.024) and its confidence sets
  could exclude the estimate itself; the mean gap is the statistic for a constant effect, and
  its confidence set holds the pilot's estimate (the statistic is 0 there);
- the confidence set by test inversion: for δ on a grid (``−0.9 … +2`` by 0.005), the pilot's
  post-period values are divided by ``1 + δ`` (the weights, fitted on the pre-period, do not
  change) and δ is kept when the p-value is above ``1 − confidence``; the interval is the kept
  set's range. Said in ``note``: a set that reaches a grid end (unbounded there), an empty set,
  and a p-value floor ``1/(n + 1)`` above ``1 − confidence`` (too few donors to conclude);
- the pooled effect over pilots (a row with ``territory_id`` null): the pilots' effects weighted
  by their post years; its test statistic is the mean of the pilots' statistics, referred to the
  means of the placebo statistics over sets of distinct donors, one per pilot, each with that
  pilot's start year and fitted on the donors outside the set, as the pilots are (every set when
  there are at most 500, else 500 draws with a fixed seed: :data:`POOLED_REFIT_DRAWS`). Re-fitting each set matters: the
  pilots share their donor pool, so their statistics are correlated; the mean of independent
  single-donor placebos ignored that and rejected 7 % of true nulls at 5 % on simulated panels
  (with the RMSPE ratio).
  Its confidence set inverts the same test with one δ for every pilot.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import permutations

import numpy as np
import polars as pl
from scipy.optimize import nnls

from respop.evaluation.did import between_territory_cov, extra_variance_per_year, panel_matrices

OVERALL_SCHEMA = {
    "territory_id": pl.Int64,
    "effect": pl.Float64,
    "ci_lower": pl.Float64,
    "ci_upper": pl.Float64,
    "p_value": pl.Float64,
    "pre_rmspe": pl.Float64,
    "counterfactual": pl.Float64,
    "n_post_years": pl.Int64,
    "n_donors": pl.Int64,
    "note": pl.String,
}
"""Columns of :attr:`ScResult.overall` (``territory_id`` null: the pooled row)."""

TRAJECTORY_SCHEMA = {"territory_id": pl.Int64, "year": pl.Int64, "observed": pl.Float64, "synthetic": pl.Float64}
WEIGHT_SCHEMA = {"territory_id": pl.Int64, "donor_id": pl.Int64, "weight": pl.Float64}

DEFAULT_GRID = (-0.9, 2.0, 0.005)
"""The δ grid of the test inversion: from, to, step."""

_SUM_ROW = 1e3


@dataclass(frozen=True)
class ScResult:
    """The synthetic control of one outcome.

    ``overall``: per pilot and pooled, columns :data:`OVERALL_SCHEMA`; ``trajectories``: each
    pilot's observed and synthetic levels, every year (:data:`TRAJECTORY_SCHEMA`); ``weights``:
    each pilot's donors with a weight above 1e-6 (:data:`WEIGHT_SCHEMA`); ``placebo_ratios``: the
    placebo statistics, per start year (for plots and checks)."""

    overall: pl.DataFrame
    trajectories: pl.DataFrame
    weights: pl.DataFrame
    placebo_ratios: dict[int, np.ndarray]


def fit_weights(
    target: np.ndarray,
    donors: np.ndarray,
    donor_noise: np.ndarray | None = None,
    target_covariates: np.ndarray | None = None,
    donor_covariates: np.ndarray | None = None,
    covariate_weight: float = 1.0,
) -> np.ndarray:
    """Weights ≥ 0 summing to 1 (see the module docstring).

    ``target``: the pilot's T₀ pre-period indexed values; ``donors``: T₀ × m; ``donor_noise``: the
    m donors' sampling variances (the penalty ``T₀ Σ w² s²``; none: no penalty);
    ``target_covariates`` (K) and ``donor_covariates`` (K × m): standardised covariates."""
    target = np.asarray(target, dtype=float)
    donors = np.asarray(donors, dtype=float)
    t0, m = donors.shape
    if m == 0:
        raise ValueError("no donor to build a synthetic control from")
    if m == 1:
        return np.ones(1)
    blocks = [donors]
    rhs = [target]
    if donor_noise is not None:
        blocks.append(np.diag(np.sqrt(t0 * np.clip(np.asarray(donor_noise, dtype=float), 0, None))))
        rhs.append(np.zeros(m))
    if donor_covariates is not None and target_covariates is not None:
        root = np.sqrt(covariate_weight)
        blocks.append(root * np.atleast_2d(donor_covariates))
        rhs.append(root * np.atleast_1d(target_covariates))
    scale = max(1.0, float(np.abs(donors).max(initial=0.0)), float(np.abs(target).max(initial=0.0)))
    blocks.append(np.full((1, m), _SUM_ROW * scale))
    rhs.append(np.array([_SUM_ROW * scale]))
    weights, _ = nnls(np.vstack(blocks), np.concatenate(rhs), maxiter=50 * m)
    total = weights.sum()
    if total <= 0:
        return np.full(m, 1.0 / m)
    return weights / total


def _ratio(gaps_post: np.ndarray, pre_mspe: float | np.ndarray, noise: float | np.ndarray) -> np.ndarray:
    """The test statistic: the signed mean post-period gap over the pre-period RMSPE (regularised
    by the sampling noise); ``gaps_post``: (..., T₁). Tests use its absolute value."""
    post = np.mean(gaps_post, axis=-1)
    pre = np.sqrt(np.asarray(pre_mspe) + np.asarray(noise))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(pre > 0, post / np.where(pre > 0, pre, 1.0), np.where(post > 0, np.inf, np.where(post < 0, -np.inf, 0.0)))


def _ratio_one(gaps_post: np.ndarray, pre_mspe: float, noise: float) -> float:
    """:func:`_ratio` of one statistic (one-dimensional ``gaps_post``) in Python floats, the same
    value: the placebo fits call it hundreds of thousands of times, where numpy's scalar
    overheads cost more than the fit."""
    post = float(gaps_post.sum() / gaps_post.size)  # np.mean's sum and division
    total = pre_mspe + noise
    pre = math.sqrt(total) if total >= 0 else math.nan
    if pre > 0:
        return post / pre
    return math.inf if post > 0 else -math.inf if post < 0 else 0.0


def _rank_p(stat: np.ndarray, null: np.ndarray) -> np.ndarray:
    """(1 + #{|null| ≥ |stat|}) / (len(null) + 1), for each stat (two-sided; ties count against the pilot)."""
    ordered = np.sort(np.abs(null))
    at_least = ordered.size - np.searchsorted(ordered, np.abs(stat) * (1 - 1e-12), side="left")
    return (1 + at_least) / (ordered.size + 1)


POOLED_REFIT_DRAWS = 500
"""Sets of donors drawn for the pooled test (every ordered set when there are fewer)."""


def _pooled_null_refit(placebos: list, n: int, seed: int) -> np.ndarray:
    """The pooled statistic's null distribution: for sets of distinct donors, one per pilot, the
    mean of their statistics, each donor fitted (with its pilot's start year) on the donors
    outside the set, as the pilots are fitted on donors that are not pilots. ``placebos[i]``:
    pilot i's placebo function (donor index, excluded indices) → statistic."""
    k = len(placebos)
    if k > n - 1:
        raise ValueError(f"{k} pilots but {n} comparison territories: the pooled placebo test needs one donor per pilot and others to fit them")
    count = 1
    for i in range(k):
        count *= n - i
    if count <= POOLED_REFIT_DRAWS:
        sets = np.array(list(permutations(range(n), k)), dtype=np.int64)
    else:
        rng = np.random.default_rng(seed)
        sets = rng.random((POOLED_REFIT_DRAWS, n)).argsort(axis=1)[:, :k]
    # a donor's statistic depends on its placebo function, the donor and the set excluded (not its
    # order): computed once each (random draws repeat sets: with 2 pilots among 23 donors, about a
    # third of the 500 draws repeat one, each repeat a refit saved)
    known: dict[tuple, float] = {}

    def statistic(i: int, member: int, members: np.ndarray) -> float:
        key = (placebos[i], member, frozenset(members.tolist()))
        if key not in known:
            known[key] = placebos[i](member, members)
        return known[key]

    return np.array([np.mean([statistic(i, int(member), members) for i, member in enumerate(members)]) for members in sets])


def _fr_percent(value: float) -> str:
    """A signed percentage as the notes' French readers write it: −90 %, +200 %."""
    return f"{value:+.0%}".replace("-", "\u2212").replace("%", "\u202f%")


def _fr_decimal(value: float) -> str:
    return f"{value:.2f}".replace(".", ",")


def _interval(grid: np.ndarray, p: np.ndarray, alpha: float) -> tuple[float | None, float | None, list[str]]:
    kept = np.flatnonzero(p > alpha)
    if kept.size == 0:
        return None, None, ["aucun effet compatible sur la grille testée : intervalle vide"]
    notes = []
    if kept[0] == 0:
        notes.append(f"intervalle non borné vers le bas (au-delà de {_fr_percent(grid[0])})")
    if kept[-1] == grid.size - 1:
        notes.append(f"intervalle non borné vers le haut (au-delà de {_fr_percent(grid[-1])})")
    return float(grid[kept[0]]), float(grid[kept[-1]]), notes


def _standardised_covariates(covariates: pl.DataFrame, units: list[int]) -> np.ndarray:
    """K × units matrix, each covariate centred and scaled to standard deviation 1 over ``units``."""
    if "territory_id" not in covariates.columns:
        raise ValueError("the covariates lack the column territory_id")
    names = [c for c in covariates.columns if c != "territory_id"]
    if not names:
        raise ValueError("the covariates frame has no covariate column")
    rows = {int(r[0]): r[1:] for r in covariates.select("territory_id", *names).iter_rows()}
    missing = [u for u in units if u not in rows or any(v is None for v in rows[u])]
    if missing:
        raise ValueError(f"territory {missing[0]} has no value for every covariate ({', '.join(names)})")
    matrix = np.array([[float(v) for v in rows[u]] for u in units]).T
    centred = matrix - matrix.mean(axis=1, keepdims=True)
    sd = centred.std(axis=1, keepdims=True)
    return centred / np.where(sd > 0, sd, 1.0)


def estimate(
    panel: pl.DataFrame,
    starts: Mapping[int, int],
    donors: Sequence[int],
    confidence: float = 0.95,
    covariates: pl.DataFrame | None = None,
    covariate_weight: float = 1.0,
    grid: tuple[float, float, float] = DEFAULT_GRID,
    seed: int = 0,
) -> ScResult:
    """Synthetic control of one disease × outcome for each pilot, and pooled (module docstring).

    ``covariates``: territory_id and numeric columns (one row per territory). Raises ValueError
    for a design the panel cannot support (:func:`respop.evaluation.did.panel_matrices`) or fewer
    than 2 usable donors."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence {confidence} is not between 0 and 1")
    alpha = 1 - confidence
    matrices = panel_matrices(panel, starts, donors)
    years = matrices.years
    notes = list(matrices.notes)
    deltas = np.arange(grid[0], grid[1] + grid[2] / 2, grid[2])

    def usable(t: int, pre: np.ndarray) -> bool:
        v = matrices.value[t]
        return bool(np.all(np.isfinite(v)) and np.all(v >= 0) and np.all(np.isfinite(matrices.log_var[t][pre]))
                    and v[pre].mean() > 0)

    start_years = sorted(set(matrices.starts.values()))
    pre_masks = {g: years < g for g in start_years}
    donor_ids = [d for d in matrices.donors if all(usable(d, pre_masks[g]) for g in start_years)]
    if len(donor_ids) < len(matrices.donors):
        notes.append(f"{len(matrices.donors) - len(donor_ids)} territoire(s) de comparaison écarté(s) (valeur manquante)")
    n = len(donor_ids)
    if n < 2:
        raise ValueError(
            f"{n} usable comparison territory(ies): the synthetic control needs at least 2 (one for each placebo's "
            "synthetic control) (trop peu de territoires de comparaison)"
        )
    floor_note = (
        f"trop peu de territoires de comparaison ({n}) : la valeur p ne peut descendre sous 1/{n + 1} = {_fr_decimal(1 / (n + 1))}"
        if 1 / (n + 1) > alpha else None
    )
    covariate_matrix = None
    if covariates is not None:
        units = matrices.pilots + donor_ids
        covariate_matrix = dict(zip(units, _standardised_covariates(covariates, units).T, strict=True))

    positive = [d for d in donor_ids if np.all(matrices.value[d] > 0)]
    extra = 0.0
    if len(positive) >= 2:
        extra = extra_variance_per_year(between_territory_cov(
            np.log(np.vstack([matrices.value[d] for d in positive])), np.vstack([matrices.log_var[d] for d in positive])
        ))
    placebo_ratios: dict[int, np.ndarray] = {}
    placebos: dict = {}
    fits: dict[int, dict] = {}
    overall_rows: list[dict] = []
    trajectory_rows: list[dict] = []
    weight_rows: list[dict] = []
    everyone = np.arange(n)
    pools: dict[bytes, np.ndarray] = {}  # the pool without each set excluded, for every start year (read only)
    for g in start_years:
        pre = pre_masks[g]
        indexed = {t: matrices.value[t] / matrices.value[t][pre].mean() for t in matrices.pilots + donor_ids
                   if usable(t, pre)}
        noise = {t: float(np.nanmean(matrices.log_var[t][pre])) for t in indexed}
        scale = {t: noise[t] + extra for t in indexed}
        z_donors = np.vstack([indexed[d] for d in donor_ids])  # n × T
        noise_donors = np.array([noise[d] for d in donor_ids])
        spread = float(z_donors[:, pre].std()) or 1.0
        cov_donors = (np.vstack([covariate_matrix[d] for d in donor_ids]).T * spread) if covariate_matrix else None

        def fit(target: int, pool: np.ndarray, indexed=indexed, pre=pre, z_donors=z_donors, noise_donors=noise_donors,
                spread=spread, cov_donors=cov_donors) -> np.ndarray:
            return fit_weights(
                indexed[target][pre], z_donors[pool][:, pre].T, noise_donors[pool],
                covariate_matrix[target] * spread if covariate_matrix else None,
                cov_donors[:, pool] if cov_donors is not None else None, covariate_weight,
            )

        def placebo(k: int, excluded: np.ndarray, fit=fit, indexed=indexed, z_donors=z_donors, scale=scale, pre=pre,
                    post=~pre, pools=pools) -> float:
            """Donor k's statistic as a placebo pilot, fitted on the donors not in ``excluded``."""
            key = excluded.tobytes()
            pool = pools.get(key)
            if pool is None:  # everyone is 0..n-1: its values are its positions
                pool = pools[key] = np.delete(everyone, excluded)
            d = donor_ids[k]
            gaps = indexed[d] - fit(d, pool) @ z_donors[pool]
            before = gaps[pre] ** 2
            return _ratio_one(gaps[post], float(before.sum() / before.size), scale[d])

        placebos[g] = placebo
        ratios = np.array([placebo(k, np.array([k])) for k in range(n)])
        placebo_ratios[g] = ratios
        for pilot in [p for p in matrices.pilots if matrices.starts[p] == g]:
            if pilot not in indexed:
                fits[pilot] = {}
                continue
            w = fit(pilot, everyone)
            synthetic = w @ z_donors
            z = indexed[pilot]
            gaps = z - synthetic
            pre_mspe = float(np.mean(gaps[pre] ** 2))
            effect = float(z[~pre].mean() / synthetic[~pre].mean() - 1) if synthetic[~pre].mean() > 0 else None
            level = float(matrices.value[pilot][pre].mean())
            stat_grid = _ratio(z[~pre][None, :] / (1 + deltas[:, None]) - synthetic[~pre][None, :], pre_mspe, scale[pilot])
            fits[pilot] = {
                "effect": effect, "stat_grid": stat_grid, "p_grid": _rank_p(stat_grid, ratios),
                "stat": float(_ratio(gaps[~pre], pre_mspe, scale[pilot])),
                "pre_rmspe": float(np.sqrt(pre_mspe)), "counterfactual": level * float(synthetic[~pre].mean()),
                "n_post": int((~pre).sum()), "start": g,
            }
            for year, observed, synth in zip(years, matrices.value[pilot], synthetic * level, strict=True):
                trajectory_rows.append({"territory_id": pilot, "year": int(year), "observed": float(observed), "synthetic": float(synth)})
            for d, weight in zip(donor_ids, w, strict=True):
                if weight > 1e-6:
                    weight_rows.append({"territory_id": pilot, "donor_id": d, "weight": float(weight)})

    for pilot in matrices.pilots:
        f = fits[pilot]
        if not f:
            overall_rows.append({"territory_id": pilot, "n_donors": n,
                                 "n_post_years": int((years >= matrices.starts[pilot]).sum()),
                                 "note": "; ".join([*notes, "valeur manquante ou moyenne nulle avant le début : effet non estimé"])})
            continue
        lower, upper, ci_notes = _interval(deltas, f["p_grid"], alpha)
        p_value = float(_rank_p(np.atleast_1d(f["stat"]), placebo_ratios[f["start"]])[0])
        row_notes = [*notes, *([floor_note] if floor_note else []), *ci_notes]
        overall_rows.append({"territory_id": pilot, "effect": f["effect"], "ci_lower": lower, "ci_upper": upper,
                             "p_value": p_value, "pre_rmspe": f["pre_rmspe"], "counterfactual": f["counterfactual"],
                             "n_post_years": f["n_post"], "n_donors": n, "note": "; ".join(row_notes) or None})

    estimated = [p for p in matrices.pilots if fits[p] and fits[p]["effect"] is not None]
    if estimated:
        null = _pooled_null_refit([placebos[fits[p]["start"]] for p in estimated], n, seed)
        stat_grid = np.mean([fits[p]["stat_grid"] for p in estimated], axis=0)
        p_grid = _rank_p(stat_grid, null)
        observed_stat = float(np.mean([fits[p]["stat"] for p in estimated]))
        weights = np.array([fits[p]["n_post"] for p in estimated], dtype=float)
        lower, upper, ci_notes = _interval(deltas, p_grid, alpha)
        row_notes = [*notes, *ci_notes]
        if 1 / (null.size + 1) > alpha:
            row_notes.append(f"trop peu de territoires de comparaison ({n}) : la valeur p ne peut descendre sous {_fr_decimal(1 / (null.size + 1))}")
        overall_rows.append({
            "territory_id": None,
            "effect": float(np.average([fits[p]["effect"] for p in estimated], weights=weights)),
            "ci_lower": lower, "ci_upper": upper,
            "p_value": float(_rank_p(np.atleast_1d(observed_stat), null)[0]),
            "pre_rmspe": float(np.mean([fits[p]["pre_rmspe"] for p in estimated])),
            "counterfactual": float(np.average([fits[p]["counterfactual"] for p in estimated], weights=weights)),
            "n_post_years": int(weights.sum()), "n_donors": n, "note": "; ".join(row_notes) or None,
        })
    else:
        overall_rows.append({"territory_id": None, "n_post_years": 0, "n_donors": n,
                             "note": "; ".join([*notes, "aucun territoire pilote estimable"])})
    return ScResult(
        overall=pl.DataFrame(overall_rows, schema=OVERALL_SCHEMA),
        trajectories=pl.DataFrame(trajectory_rows, schema=TRAJECTORY_SCHEMA),
        weights=pl.DataFrame(weight_rows, schema=WEIGHT_SCHEMA),
        placebo_ratios=placebo_ratios,
    )
