"""Difference-in-differences for pilots that start in different years, with its event study.

The panel is the one of ONE disease × outcome (``respop.evaluation.outcomes.build_panel``,
filtered): ``territory_id``, ``year``, ``value`` (age-sex standardised), ``log_var`` (the sampling
variance of ``log(value)``); other columns are ignored.

**Estimator.** Callaway & Sant'Anna (2021), *Difference-in-differences with multiple time
periods*, Journal of Econometrics 225:200–230: group-time average treatment effects on
``y = log(value)``, with the never-treated donors as the comparison group and the "universal"
base year ``b = start − 1``::

    ATT_i(t) = (y_i,t − y_i,b) − mean_d (y_d,t − y_d,b)        (d over the donors)

computed for every year ``t ≠ b`` of the panel (the years before ``b`` give the pre-trend
check). Each pilot is its own group (two pilots with the same start make a group whose ATT is the
mean of theirs, which the aggregations below give). Aggregations, as in Callaway & Sant'Anna:

- a pilot's overall effect: the mean of its ATT_i(t) over its post years ``start … last year``;
- the pooled effect: the mean over every (pilot, post year) pair ("simple" aggregation, weights
  pilot × post-year);
- the event study: for each event time ``e = t − start``, the mean of ATT_i(start + e) over the
  pilots that have that year; ``e = −1`` is the reference (0).

Never plain two-way fixed effects: with staggered starts, TWFE compares late pilots with early
ones and its weights can be negative (Goodman-Bacon 2021).

**The overall effects use every pre-period year as the base.** A pilot's overall effect (and the
pooled one) contrasts the mean of its post years with the mean of ALL its years before the start,
minus the same contrast of the donors' mean::

    θ_i = mean_{t ≥ start} y_i,t − mean_{t < start} y_i,t − (same for ȳ)

This is the imputation estimator of Borusyak, Jaravel & Spiess (2024), *Revisiting event-study
designs: robust and efficient estimation*, Review of Economic Studies 91:3253–3285, with the year
effects learnt from the never-treated donors and the pilot's level from its pre-period mean:
valid with staggered starts like Callaway & Sant'Anna's, and more precise than a single base year
when the years' noise is independent (on the ``evaluation`` worlds of benchmarks/evaluation.py
the single base year gave intervals about 1.3 times as wide). The event study keeps the
universal base year ``start − 1`` (its points are each a year against that base, so that the
pre-period points show the trends).

**Relative effects.** An estimate θ on the log scale is reported as ``effect = exp(θ) − 1``
(−0.15: 15 % lower than without the intervention), and its interval ``exp(θ ± q·se) − 1``.
``counterfactual`` is the counterfactual level in the outcome's unit, averaged over the post
years: ``exp(mean_pre y_i + ȳ_t − mean_pre ȳ)`` where ȳ is the donors' mean log value; the caller computes
``effect_abs = effect × counterfactual``.

**Inference with few pilots and territories of very different sizes.** Every estimate here is a
linear contrast of log values, ``θ = Σ_i c_i·y_i − A·ȳ`` (``c_i`` a vector over the years that sums
to 0, ``A = Σ_i c_i``). Each territory's log value is ``y_j,t = α_j + γ_t + u_j,t + e_j,t``: a
level, a common year effect, a territory-year deviation ``u`` (between-territory variance, the
same law for every territory, any correlation across years) and the sampling error ``e``, whose
variance ``log_var`` is known from the counts (Poisson/binomial, delta method) and differs with
the territory's size. Then

    Var(θ) = Σ_i c_i'(Σ_u + D_i)c_i + A'(Σ_u + D̄)A / n

with ``D_i = diag(log_var_i)``, ``D̄`` the donors' mean of ``D_d`` and ``n`` the number of donors.
Σ_u is estimated from the donors by the method of moments: ``Σ̂_u = S − D̄`` where ``S`` is the
donors' covariance of log values across years. For any contrast ``a``, ``a'(S − D̄)a`` is exactly
the method-of-moments estimate of the extra variance obtained from the donors' placebo estimates
(each donor treated as if it were a pilot with the same start and contrasted with the mean of the
other donors: mean placebo² minus their mean sampling variance, divided by ``n/(n−1)``). The
extra (between-territory) part of an estimate's variance is floored at 0 (for a vector of
estimates, its negative eigenvalues are set to 0); the sampling part is added as it is. This is the few-treated-units
inference of Conley & Taber (2011), *Inference with "difference in differences" with a small
number of policy changes*, Review of Economics and Statistics 93:113–125 (the pilot's error law is
learnt from the controls), with the correction for heteroskedasticity from different territory
sizes of Ferman & Pinto (2019), *Inference in differences-in-differences with few treated groups
and heteroskedasticity*, Review of Economics and Statistics 101:452–467 (the variance of a
territory's estimate depends on its size, here through its known sampling variance). Tests and
intervals use Student's t with ``n − 1`` degrees of freedom (Σ̂_u is learnt from ``n`` donors).

**Pre-trend check.** ``pre_trend_p``: the joint Wald test that the pre-period effects (a pilot's
ATT_i(t), t < b; pooled: the event-study effects at e ≤ −2) are all 0, with the covariance of the
same variance model; ``W/k`` is referred to F(k, n − 1) (between χ²(k)/k, which ignores that Σ̂_u is
estimated, and Hotelling's F(k, n − k), which treats the whole covariance as estimated although
its sampling part is known; on simulated panels of 25 territories with 2 pilots its size at 5 %
was 4.2 %, against 6.0 % and 3.3 %). Null when a pilot has no year before its base year.

Donors whose value is missing or not positive in some year are left out (log of 0), and said in
``note``; a pilot in that case gets no estimate (a note says why). At least 2 donors are needed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import polars as pl
from scipy import stats

REQUIRED_COLUMNS = ("territory_id", "year", "value", "log_var")

OVERALL_SCHEMA = {
    "territory_id": pl.Int64,
    "effect": pl.Float64,
    "ci_lower": pl.Float64,
    "ci_upper": pl.Float64,
    "p_value": pl.Float64,
    "se": pl.Float64,
    "counterfactual": pl.Float64,
    "n_post_years": pl.Int64,
    "pre_trend_p": pl.Float64,
    "n_donors": pl.Int64,
    "note": pl.String,
}
"""Columns of :attr:`DidResult.overall` (``territory_id`` null: the pooled row)."""

EVENT_STUDY_SCHEMA = {
    "event_time": pl.Int64,
    "effect": pl.Float64,
    "ci_lower": pl.Float64,
    "ci_upper": pl.Float64,
    "n_pilots": pl.Int64,
}
"""Columns of :attr:`DidResult.event_study` (pooled over the pilots)."""

FEW_DONORS = 5
"""Below this many donors, a note says the intervals are very wide."""


@dataclass(frozen=True)
class DidResult:
    """The difference-in-differences of one outcome.

    ``overall``: one row per pilot and one pooled row (``territory_id`` null), columns
    :data:`OVERALL_SCHEMA`; ``effect`` relative, ``se`` on the log scale, ``n_post_years`` the
    pilot's post years (pooled: the pilot × post-year pairs). ``event_study``: columns
    :data:`EVENT_STUDY_SCHEMA`. ``between_cov``: Σ̂_u, the estimated between-territory covariance
    of log values across ``years`` (on the contrasts' space, not floored: the floor applies to
    each estimate's extra variance, see the module docstring)."""

    overall: pl.DataFrame
    event_study: pl.DataFrame
    years: list[int] = field(default_factory=list)
    between_cov: np.ndarray | None = None


# ---------------------------------------------------------------------------------------------
# The panel as matrices (shared with synthetic_control and power)


@dataclass
class PanelMatrices:
    """The panel of one outcome as territory × year matrices (NaN where a row is missing)."""

    years: np.ndarray
    pilots: list[int]
    donors: list[int]
    starts: dict[int, int]
    value: dict[int, np.ndarray]
    log_var: dict[int, np.ndarray]
    notes: list[str] = field(default_factory=list)


def panel_matrices(panel: pl.DataFrame, starts: Mapping[int, int], donors: Sequence[int]) -> PanelMatrices:
    """Check the design against the panel and return it as matrices.

    Raises ValueError (naming the territory) for: a missing column, no pilot, a pilot that is also
    a donor, a pilot absent from the panel, a pilot whose start year leaves no year of the panel
    before it or none from it on, a (territory, year) given twice. Donors absent from the panel
    are left out with a note (the methods then check how many are left)."""
    missing = [c for c in REQUIRED_COLUMNS if c not in panel.columns]
    if missing:
        raise ValueError(f"the panel lacks the column(s) {', '.join(missing)}")
    if not starts:
        raise ValueError("no pilot territory: give at least one pilot and the year it started")
    starts = {int(k): int(v) for k, v in starts.items()}
    donors = list(dict.fromkeys(int(d) for d in donors))
    both = sorted(set(starts) & set(donors))
    if both:
        raise ValueError(f"territory {both[0]} is both a pilot and a donor")
    frame = panel.select(
        pl.col("territory_id").cast(pl.Int64),
        pl.col("year").cast(pl.Int64),
        pl.col("value").cast(pl.Float64),
        pl.col("log_var").cast(pl.Float64),
    ).filter(pl.col("territory_id").is_in(list(starts) + donors))
    if frame.select(pl.struct("territory_id", "year").is_duplicated().any()).item():
        raise ValueError("the panel has a territory and year twice: give the panel of one disease and one outcome")
    years = np.array(sorted(panel.get_column("year").cast(pl.Int64).unique().drop_nulls().to_list()), dtype=np.int64)
    if years.size == 0:
        raise ValueError("the panel is empty")
    present = set(frame.get_column("territory_id").unique().to_list())
    for pilot, start in starts.items():
        if pilot not in present:
            raise ValueError(f"pilot territory {pilot} is not in the panel")
        if start <= years[0]:
            raise ValueError(
                f"pilot territory {pilot} starts in {start}: the panel has no year before its start "
                f"(first year {years[0]}), at least one pre-period year is needed"
            )
        if start > years[-1]:
            raise ValueError(f"pilot territory {pilot} starts in {start}, after the panel's last year {years[-1]}")
    notes = []
    absent = [d for d in donors if d not in present]
    if absent:
        notes.append(f"{len(absent)} territoire(s) de comparaison absent(s) des données")
        donors = [d for d in donors if d in present]
    index = {int(y): i for i, y in enumerate(years)}
    value: dict[int, np.ndarray] = {}
    log_var: dict[int, np.ndarray] = {}
    for tid in list(starts) + donors:
        value[tid] = np.full(years.size, np.nan)
        log_var[tid] = np.full(years.size, np.nan)
    for tid, year, v, lv in frame.iter_rows():
        if year is None or tid is None:
            continue
        value[tid][index[year]] = np.nan if v is None else v
        log_var[tid][index[year]] = np.nan if lv is None else lv
    return PanelMatrices(years, list(starts), donors, starts, value, log_var, notes)


def _psd(matrix: np.ndarray) -> np.ndarray:
    """The symmetric matrix with its negative eigenvalues set to 0 (for a 1 × 1 matrix: floored at 0)."""
    matrix = (matrix + matrix.T) / 2
    eigenvalues, eigenvectors = np.linalg.eigh(matrix)
    return (eigenvectors * np.clip(eigenvalues, 0.0, None)) @ eigenvectors.T


def _on_contrasts(matrix: np.ndarray) -> np.ndarray:
    """The matrix projected on the space orthogonal to the constant vector (the contrasts, whose
    weights sum to 0, see only that space; the territories' levels drop out)."""
    t = matrix.shape[0]
    centre = np.eye(t) - np.full((t, t), 1.0 / t)
    projected = centre @ matrix @ centre
    return (projected + projected.T) / 2


def between_territory_cov(log_values: np.ndarray, log_vars: np.ndarray) -> np.ndarray:
    """Σ̂_u: the between-territory covariance of log values across years, by the method of
    moments from territories that were not treated (rows: territories, columns: years): their
    covariance across years minus their mean sampling variance, on the contrasts' space (not floored).

    Needs at least 2 territories."""
    n = log_values.shape[0]
    if n < 2:
        raise ValueError("at least 2 comparison territories are needed to estimate the between-territory variance")
    covariance = np.atleast_2d(np.cov(log_values, rowvar=False, ddof=1))
    return _on_contrasts(covariance - np.diag(log_vars.mean(axis=0)))


def extra_variance_per_year(between_cov: np.ndarray) -> float:
    """The between-territory variance of one territory-year, under independent years: the mean
    variance of the year deviations from the territory's own mean, ``trace(Σ̂_u)/(T − 1)``, floored at 0."""
    t = between_cov.shape[0]
    return max(0.0, float(np.trace(between_cov) / (t - 1))) if t > 1 else 0.0


# ---------------------------------------------------------------------------------------------
# The estimator


class _Model:
    """Log values of the usable pilots and donors, and the variance model."""

    def __init__(self, matrices: PanelMatrices, pilots: list[int]):
        self.years = matrices.years
        self.donors = matrices.donors
        self.y = {t: np.log(matrices.value[t]) for t in pilots + matrices.donors}
        self.v = {t: matrices.log_var[t] for t in pilots + matrices.donors}
        donor_y = np.vstack([self.y[d] for d in self.donors])
        donor_v = np.vstack([self.v[d] for d in self.donors])
        self.n = len(self.donors)
        self.ybar = donor_y.mean(axis=0)
        self.dbar = donor_v.mean(axis=0)
        self.sigma_u = between_territory_cov(donor_y, donor_v)
        self.df = self.n - 1

    def combine(self, contrasts: dict[int, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Estimates and covariance of k contrasts: ``contrasts[pilot]`` is k × T (rows sum to 0)."""
        first = next(iter(contrasts.values()))
        total = np.zeros_like(first)
        estimate = np.zeros(first.shape[0])
        sampling = np.zeros((first.shape[0], first.shape[0]))
        between = np.zeros_like(sampling)
        for pilot, c in contrasts.items():
            total = total + c
            estimate += c @ self.y[pilot]
            sampling += (c * self.v[pilot]) @ c.T
            between += c @ self.sigma_u @ c.T
        estimate -= total @ self.ybar
        sampling += (total * self.dbar) @ total.T / self.n
        between += total @ self.sigma_u @ total.T / self.n
        covariance = sampling + _psd(between)
        return estimate, covariance

    def interval(self, theta: float, variance: float, confidence: float) -> tuple[float, float, float, float, float]:
        """(effect, lower, upper, p, se) on the relative scale."""
        se = float(np.sqrt(max(variance, 0.0)))
        q = float(stats.t.ppf(0.5 + confidence / 2, self.df))
        if se > 0:
            p = float(2 * stats.t.sf(abs(theta) / se, self.df))
        else:
            p = 1.0 if theta == 0 else 0.0
        return float(np.expm1(theta)), float(np.expm1(theta - q * se)), float(np.expm1(theta + q * se)), p, se

    def wald_p(self, estimate: np.ndarray, covariance: np.ndarray) -> float | None:
        k = estimate.size
        if k == 0:
            return None
        w = float(estimate @ np.linalg.pinv(covariance) @ estimate)
        return float(stats.f.sf(w / k, k, self.df))


def estimate(panel: pl.DataFrame, starts: Mapping[int, int], donors: Sequence[int], confidence: float = 0.95) -> DidResult:
    """Difference-in-differences of one disease × outcome (see the module docstring).

    ``starts``: pilot territory → start year (its post years are start … the panel's last year);
    ``donors``: the never-treated comparison territories. Raises ValueError for a design the panel
    cannot support (:func:`panel_matrices`) or fewer than 2 usable donors."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence {confidence} is not between 0 and 1")
    matrices = panel_matrices(panel, starts, donors)
    notes = list(matrices.notes)
    usable = {t: bool(np.all(np.isfinite(matrices.value[t]) & (matrices.value[t] > 0) & np.isfinite(matrices.log_var[t])))
              for t in matrices.value}
    dropped = [d for d in matrices.donors if not usable[d]]
    if dropped:
        notes.append(f"{len(dropped)} territoire(s) de comparaison écarté(s) (valeur nulle ou manquante une année)")
        matrices.donors = [d for d in matrices.donors if usable[d]]
    if len(matrices.donors) < 2:
        raise ValueError(
            f"{len(matrices.donors)} usable comparison territory(ies): the difference-in-differences needs at least 2 "
            "(trop peu de territoires de comparaison)"
        )
    pilots = [p for p in matrices.pilots if usable[p]]
    model = _Model(matrices, pilots)
    years = matrices.years
    t_count = years.size
    index = {int(y): i for i, y in enumerate(years)}
    n = model.n
    if n < FEW_DONORS:
        notes.append(f"trop peu de territoires de comparaison ({n}) : intervalles très larges")
    common_note = "; ".join(notes) or None

    def unit(i: int) -> np.ndarray:
        e = np.zeros(t_count)
        e[i] = 1.0
        return e

    overall_rows = []
    pooled_contrasts: dict[int, np.ndarray] = {}
    post_counts: dict[int, int] = {}
    counterfactuals: dict[int, np.ndarray] = {}
    pilot_pre: dict[int, list[int]] = {}
    for pilot in matrices.pilots:
        start = matrices.starts[pilot]
        post = [i for i, y in enumerate(years) if y >= start]
        if pilot not in pilots:
            overall_rows.append(
                {"territory_id": pilot, "n_post_years": len(post), "n_donors": n,
                 "note": "; ".join([*notes, "valeur nulle ou manquante une année : effet non estimé"])}
            )
            continue
        if start - 1 not in index:
            raise ValueError(f"pilot territory {pilot} starts in {start}: the year before its start is not in the panel")
        base = index[start - 1]
        pilot_pre[pilot] = [i for i, y in enumerate(years) if y < start - 1]
        before = [i for i, y in enumerate(years) if y < start]
        # the overall effect: post years against the mean of every pre-period year (imputation,
        # Borusyak, Jaravel & Spiess 2024; module docstring), not the base year alone
        contrast = np.mean([unit(i) for i in post], axis=0) - np.mean([unit(i) for i in before], axis=0)
        theta, var = model.combine({pilot: contrast[None, :]})
        effect, lower, upper, p, se = model.interval(float(theta[0]), float(var[0, 0]), confidence)
        pre = pilot_pre[pilot]
        if pre:
            c_pre = np.vstack([unit(i) - unit(base) for i in pre])
            pre_p = model.wald_p(*model.combine({pilot: c_pre}))
        else:
            pre_p = None
        cf = np.exp(model.y[pilot][before].mean() + model.ybar[post] - model.ybar[before].mean())
        counterfactuals[pilot] = cf
        post_counts[pilot] = len(post)
        pooled_contrasts[pilot] = contrast
        overall_rows.append(
            {"territory_id": pilot, "effect": effect, "ci_lower": lower, "ci_upper": upper, "p_value": p, "se": se,
             "counterfactual": float(cf.mean()), "n_post_years": len(post), "pre_trend_p": pre_p, "n_donors": n,
             "note": common_note}
        )

    # pooled: weights pilot × post-year
    event_rows = []
    if pooled_contrasts:
        total_post = sum(post_counts.values())
        theta, var = model.combine({p: (post_counts[p] / total_post * c)[None, :] for p, c in pooled_contrasts.items()})
        effect, lower, upper, p_value, se = model.interval(float(theta[0]), float(var[0, 0]), confidence)
        # event study
        event_times: dict[int, list[tuple[int, int, int]]] = {}
        for pilot in pooled_contrasts:
            start = matrices.starts[pilot]
            for i, y in enumerate(years):
                event_times.setdefault(int(y) - start, []).append((pilot, i, index[start - 1]))
        pre_event: list[int] = []
        pre_contrasts: dict[int, list[np.ndarray]] = {p: [] for p in pooled_contrasts}
        for e in sorted(event_times):
            members = event_times[e]
            if e == -1:
                event_rows.append({"event_time": e, "effect": 0.0, "ci_lower": 0.0, "ci_upper": 0.0, "n_pilots": len(members)})
                continue
            contrasts = {p: ((unit(i) - unit(b)) / len(members))[None, :] for p, i, b in members}
            est, cov = model.combine(contrasts)
            eff, lo, hi, _, _ = model.interval(float(est[0]), float(cov[0, 0]), confidence)
            event_rows.append({"event_time": e, "effect": eff, "ci_lower": lo, "ci_upper": hi, "n_pilots": len(members)})
            if e <= -2:
                pre_event.append(e)
                for p in pooled_contrasts:
                    row = contrasts.get(p, np.zeros((1, t_count)))[0]
                    pre_contrasts[p].append(row)
        pooled_pre_p = model.wald_p(*model.combine({p: np.vstack(rows) for p, rows in pre_contrasts.items()})) if pre_event else None
        cf_all = np.concatenate(list(counterfactuals.values()))
        overall_rows.append(
            {"territory_id": None, "effect": effect, "ci_lower": lower, "ci_upper": upper, "p_value": p_value, "se": se,
             "counterfactual": float(cf_all.mean()), "n_post_years": total_post, "pre_trend_p": pooled_pre_p,
             "n_donors": n, "note": common_note}
        )
    else:
        overall_rows.append(
            {"territory_id": None, "n_post_years": 0, "n_donors": n,
             "note": "; ".join([*notes, "aucun territoire pilote estimable"])}
        )
    return DidResult(
        overall=pl.DataFrame(overall_rows, schema=OVERALL_SCHEMA),
        event_study=pl.DataFrame(event_rows, schema=EVENT_STUDY_SCHEMA),
        years=[int(y) for y in years],
        between_cov=model.sigma_u,
    )
