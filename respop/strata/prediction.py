"""Who will move up: probability of a more severe stratum or an in-hospital death in N + 1.

For each person-year of a disease (a case in year N, alive at the end of N), the **target** is 1
when the same patient is, in N + 1, a case of the same disease in a **higher** stratum
(``stratum_level`` greater than in N) or died in hospital in N + 1 (``died_in_year`` of N + 1),
and 0 when they are a case in N + 1 in the same or a lower stratum and did not die. Person-years
with no row in N + 1 (**no longer seen**: no longer a case, moved away, or died outside hospital,
which the PMSI does not see) have no target: :func:`labelled` drops them (or keeps them with a
null label on request) and :func:`evaluate` counts them (``not_seen_next_year``) without
training or testing on them. The model is therefore conditional on still being followed in N + 1.

**Features** (the features of N, docs/strata.md): by default every column of
:data:`KNOWN_FEATURES` present in the data, plus ``age``, ``female`` (``sex == 2``) and
``stratum_level`` (the stratum as an ordered number, not one-hot: the levels are ordered by
severity); the gradient boosting also gets the person's earlier years of the disease
(:data:`HISTORY_FEATURES`, :func:`with_history`). Booleans count as 0/1; missing values are NaN (handled natively by gradient boosting,
imputed by the median plus a missing indicator in the logistic baseline).

**Models** (:class:`UpstratumModel`, a scikit-learn classifier):

- ``gradient_boosting``: :class:`~sklearn.ensemble.HistGradientBoostingClassifier` with
  learning_rate 0.05, at most 300 iterations, and by default (:data:`SMALL_TREES`) 4 leaves per
  tree, 100 person-years per leaf and L2 regularisation 5 below :data:`LARGE_TRAINING` training
  person-years (a territory of 300,000 inhabitants gives a disease a few thousand training
  person-years and a few hundred events: 15 leaves of 40 overfitted there, and the logistic
  baseline often beat them, docs/strata.md), 15 leaves of 40 with L2 1 above
  (:data:`LARGE_TREES`, regional and national data), and early stopping on a stratified 15 % validation fraction (20 iterations
  without improvement of the log loss) when there are at least 1,000 person-years and 20 of each
  outcome (otherwise all the iterations are run). No class weights (they would shift every
  probability).
- ``logistic``: ``Pipeline(SimpleImputer(median, missing indicator), StandardScaler,
  LogisticRegression(max_iter=1000))``, the transparent baseline.

**Second target** (``emergency_or_death``, :data:`TARGETS`): an emergency stay (any cause) or an
in-hospital death in N + 1, among the same person-years (seen in N + 1): the target of published
population models (SPARRA, QAdmissions), not relative to the stratum.

**Recalibration** (:func:`temporal_recalibration`): each model, fitted on all training years, is
recalibrated (logistic intercept and slope on the logit of its predictions) on the latest training
year, predicted by the same model fitted on the earlier years. The case mix drifts over the years
(short look-back windows in the first years of the data) and without it the logistic model was
over-confident on the test year (heart failure, demo seed 1: calibration slope 0.40, Brier worse
than the prevalence). Below :data:`LARGE_TRAINING` training person-years the gradient boosting's
recalibration is the intercept alone (:data:`SMALL_SLOPE_PRIOR_SD`).

**Temporal validation** (:func:`evaluate`): trained on the person-years N ≤ last_year − 2, tested
on N = last_year − 1 (whose targets come from last_year). When the training years hold more than
:data:`TRAIN_SAMPLE` labelled person-years (national data: several millions), both models are fitted
on a random sample of that many, stratified by the target (each outcome keeps its share), drawn
with ``random_state``; the model card says so. The test year is never sampled. Metrics on the test year: AUC, Brier
score, the Brier score of a model that knows only the prevalence (the training prevalence given
to everyone), the Brier skill score, log loss, the AUC's DeLong interval, the calibration slope
and intercept with their intervals (:func:`calibration_fit`), per target and model; a model
without skill (:func:`has_skill`) is said so in the model card; calibration by deciles of predicted risk; permutation importance of the
gradient boosting features (AUC drop); AUC per sex and per age group (< 75, ≥ 75) for the model
card's fairness note.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import polars as pl
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.inspection import permutation_importance
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss, get_scorer, log_loss, roc_auc_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils import check_array, column_or_1d
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import check_is_fitted

from respop.cards import TECHNICAL_CLOSE, TECHNICAL_OPEN, split_card  # noqa: F401 - the card's format, shared with the boards
from respop.errors import InputError
from respop.privacy.disclosure import masked_count, protect_calibration, protect_parts
from respop.strata.engine import in_area
from respop.spec.features import MODEL_LABELS as BASE_LABELS  # the model terms' labels live with the features


def _known_features() -> tuple[str, ...]:
    from respop.spec.features import COMPUTED, load_features

    return (*(n for n in COMPUTED if n != "age"), *load_features().names(), "readmissions_30d")


KNOWN_FEATURES: tuple[str, ...] = _known_features()
"""Feature columns of ``person_strata`` used by default when present: the features of
respop.spec.features (computed and shipped code features) and the 30-day re-hospitalisations
(the case-of features, which depend on the configured diseases, are given by the strata step)."""

BASE_FEATURES: tuple[str, ...] = ("age", "female", "stratum_level")
"""Always used by default: age, the female indicator (from ``sex``: 1 male, 2 female), the level."""

SMALL_TREES: tuple[int, int, float] = (4, 100, 5.0)
"""Gradient boosting's (max_leaf_nodes, min_samples_leaf, l2_regularization) below
:data:`LARGE_TRAINING` training person-years. Measured on the demo and peripheral worlds, seeds 1–5
(300,000 inhabitants, 2,000–26,000 training person-years a disease): held-out AUC +0.007 on
average over the 60 disease × target × world against (15, 40, 1.0), the largest gains where the
logistic baseline had beaten the boosting (heart failure, COPD)."""

LARGE_TREES: tuple[int, int, float] = (15, 40, 1.0)
"""… and from :data:`LARGE_TRAINING` on (the settings measured on the national synthetic data,
benchmarks/README.md, "Scale")."""

LARGE_TRAINING = 100_000
"""Training person-years from which the gradient boosting grows :data:`LARGE_TREES`."""

KINDS: tuple[str, ...] = ("gradient_boosting", "logistic")
"""The two models: gradient boosting and the logistic baseline."""

LABEL_COLUMNS: tuple[str, ...] = ("patient_key", "disease", "year", "stratum_level", "died_in_year")
"""Columns :func:`labelled` needs."""

ADDED_COLUMNS: tuple[str, ...] = (
    "next_stratum_level", "died_next_year", "next_emergency_stays", "seen_next_year", "label",
)
"""Columns :func:`labelled` adds."""

TARGETS: tuple[str, ...] = ("upstratum", "emergency_or_death")
"""The two targets: ``upstratum`` (a higher stratum or an in-hospital death in N + 1, the FHF's
question, the main one) and ``emergency_or_death`` (at least one stay admitted through the
emergency department, any cause, or an in-hospital death in N + 1: the target of the published
population models such as SPARRA or QAdmissions)."""

MAIN_TARGET = TARGETS[0]

TARGET_COLUMNS: dict[str, tuple[str, ...]] = {"upstratum": (), "emergency_or_death": ("emergency_stays_12m",)}
"""Further columns of ``person_strata`` each target needs."""

METRICS_SCHEMA: dict[str, pl.DataType] = {
    "target": pl.String, "model": pl.String, "auc": pl.Float64, "auc_lower": pl.Float64, "auc_upper": pl.Float64,
    "brier": pl.Float64, "brier_reference": pl.Float64, "brier_skill": pl.Float64, "log_loss": pl.Float64,
    "calibration_slope": pl.Float64, "calibration_slope_lower": pl.Float64, "calibration_slope_upper": pl.Float64,
    "calibration_intercept": pl.Float64, "calibration_intercept_lower": pl.Float64,
    "calibration_intercept_upper": pl.Float64, "recalibration_intercept": pl.Float64, "recalibration_slope": pl.Float64,
}
"""Columns of ``metrics.csv`` (one row per target and model; :class:`PredictionReport`)."""

N_BINS = 10
"""Calibration bins: deciles of predicted risk."""

AGE_CUT = 75
"""Age groups of the fairness note: below 75 and 75 or more."""

MIN_GROUP_CLASS = 10
"""A subgroup AUC is computed when the group has at least this many of each outcome."""

IMPORTANCE_REPEATS = 5
"""Repeats of the permutation importance."""

TRAIN_SAMPLE = 1_000_000
"""Most training person-years the models are fitted on (a random sample, stratified by the target,
above it). On the national synthetic data (5 years) diabetes has 4.5 million training person-years:
fitting on a million changed the test AUC by −0.0003 (gradient boosting, 0.7189 → 0.7186) and
+0.0001 (logistic), less than changing the boosting's seed does (0.001), and took a quarter of the
time (benchmarks/README.md, "Scale")."""

IMPORTANCE_SAMPLE = 100_000
"""Person-years of the test year drawn (without replacement, in each repeat) for the permutation
importance: on national data the test year holds millions, and 5 repeats × 20 features of
predictions over all of them took most of an hour; the ranking of the features is stable well
below this size."""


# --------------------------------------------------------------------------------------------
# Target
# --------------------------------------------------------------------------------------------


def _require(person_strata: pl.DataFrame, columns: Sequence[str]) -> None:
    missing = [c for c in columns if c not in person_strata.columns]
    if missing:
        raise InputError(f"person_strata lacks the column(s) {', '.join(missing)}", column=missing[0])


def labelled(
    person_strata: pl.DataFrame, last_year: int, *, keep_unseen: bool = False, target: str = MAIN_TARGET,
) -> pl.DataFrame:
    """The person-years that have a target, with the target ``label``.

    Rows: the person-years with year N < ``last_year``, not ``died_in_year`` (people who died in
    N are not followed) and with a residence zone (:data:`respop.strata.engine.RESIDENCE`, as the
    published transitions; their N + 1 is read wherever they live then). Added columns: ``next_stratum_level`` (Int8, the level in N + 1),
    ``died_next_year`` (Boolean, in-hospital death in N + 1), ``next_emergency_stays`` (stays
    admitted through the emergency department in N + 1, any cause; null when ``person_strata`` has
    no ``emergency_stays_12m``), ``seen_next_year`` (Boolean, a row of the same patient and disease
    in N + 1) and ``label`` (Int8) for ``target`` (:data:`TARGETS`): ``upstratum``: 1 if the level
    of N + 1 is higher or the person died in hospital in N + 1, 0 if they are seen in N + 1 at the
    same or a lower level without dying; ``emergency_or_death``: 1 if they had an emergency stay
    or died in hospital in N + 1, else 0. Person-years not seen in N + 1 are dropped, or kept with
    a null label (and the other added columns null / False) when ``keep_unseen``. A null
    ``died_in_year`` counts as no death. Sorted by disease, year and patient_key.
    """
    if target not in TARGETS:
        raise ValueError(f"target must be one of {', '.join(TARGETS)}, got {target!r}")
    _require(person_strata, (*LABEL_COLUMNS, *TARGET_COLUMNS[target]))
    keys = ["patient_key", "disease", "year"]
    ps = person_strata.drop([c for c in ADDED_COLUMNS if c in person_strata.columns]).with_columns(
        pl.col("year").cast(pl.Int16),
        pl.col("stratum_level").cast(pl.Int8),
    )
    duplicated = ps.select(pl.struct(keys).is_duplicated().sum()).item()
    if duplicated:
        raise InputError(
            f"person_strata has {duplicated} rows sharing a patient_key, disease and year "
            "(one row per person-year expected)"
        )
    died = pl.col("died_in_year").fill_null(False)
    emergency = (
        pl.col("emergency_stays_12m").cast(pl.Int64) if "emergency_stays_12m" in ps.columns else pl.lit(None, pl.Int64)
    )
    following = ps.filter(pl.col("year") <= last_year).select(
        "patient_key",
        "disease",
        (pl.col("year") - 1).cast(pl.Int16).alias("year"),
        pl.col("stratum_level").alias("next_stratum_level"),
        died.alias("died_next_year"),
        emergency.alias("next_emergency_stays"),
        pl.lit(True).alias("seen_next_year"),
    )
    current = ps.filter((pl.col("year") < last_year) & ~died & in_area(ps.columns))
    event = (
        pl.col("died_next_year") | (pl.col("next_stratum_level") > pl.col("stratum_level"))
        if target == "upstratum"
        else pl.col("died_next_year") | (pl.col("next_emergency_stays").fill_null(0) > 0)
    )
    out = current.join(following, on=keys, how="left").with_columns(
        pl.col("seen_next_year").fill_null(False),
    ).with_columns(
        pl.when(~pl.col("seen_next_year")).then(None).when(event).then(1).otherwise(0).cast(pl.Int8).alias("label")
    )
    if not keep_unseen:
        out = out.filter(pl.col("seen_next_year"))
    return out.sort(keys)


# --------------------------------------------------------------------------------------------
# Features
# --------------------------------------------------------------------------------------------


HISTORY_FEATURES: tuple[str, ...] = (
    "previous_stratum_level", "max_previous_stratum_level", "previous_case_years", "previous_disease_stays",
    "previous_emergency_stays_12m", "previous_bed_days_12m",
)
"""Features of the person's **earlier years** of the same disease (:func:`with_history`), added by
:func:`evaluate` (``history=True``, the default) to the features of the models of
:data:`HISTORY_KINDS`. The strata are built on a look-back window and the world's latent severity
only moves up, so the person's past tells a little more than the year N alone. Measured on the
demo and peripheral worlds, seeds 1–5 (60 disease × target × world, gradient boosting with
:data:`SMALL_TREES`): held-out AUC +0.001 on average (COPD upstratum +0.007, heart failure
upstratum −0.002), calibration slope in [0.8, 1.2] on 46 against 45, Brier skill > 0 on 60
against 58. Given to the logistic baseline they cost it 0.004 of AUC and 10 calibration slopes in
[0.8, 1.2] (median imputation of the first years' missing history): it does not get them."""

HISTORY_KINDS: tuple[str, ...] = ("gradient_boosting",)
"""The models given the :data:`HISTORY_FEATURES` (missing values handled natively)."""

HISTORY_SOURCES: dict[str, str] = {
    "previous_disease_stays": "disease_stays_12m",
    "previous_emergency_stays_12m": "emergency_stays_12m",
    "previous_bed_days_12m": "bed_days_12m",
}
"""The column of ``person_strata`` each history feature but the level ones is read from."""


def with_history(person_strata: pl.DataFrame) -> pl.DataFrame:
    """``person_strata`` with the :data:`HISTORY_FEATURES` of each person-year N, read from the
    same patient's rows of the same disease of the years before N (a person not a case in a year
    has no row that year):

    - ``previous_stratum_level``: the level in N − 1 (null when not a case in N − 1);
    - ``max_previous_stratum_level``: the highest level of the years before N (null when none);
    - ``previous_case_years``: the years before N the person was a case (0 when none);
    - ``previous_disease_stays``: disease stays (``disease_stays_12m``) summed over the years
      before N (0 when none);
    - ``previous_emergency_stays_12m``, ``previous_bed_days_12m``: emergency stays and bed days
      (any cause) of N − 1 (null when not a case in N − 1).

    A feature whose source column is absent is not added. Row order and other columns unchanged;
    existing history columns are recomputed. Only the person's past is read (no leak from N + 1)."""
    _require(person_strata, ("patient_key", "disease", "year", "stratum_level"))
    ps = person_strata.drop([c for c in HISTORY_FEATURES if c in person_strata.columns])
    keys = ["patient_key", "disease"]
    sources = {name: col for name, col in HISTORY_SOURCES.items() if col in ps.columns}
    base = ps.select(
        *keys, pl.col("year").cast(pl.Int32).alias("_year"), pl.col("stratum_level").cast(pl.Float64).alias("_level"),
        *(pl.col(col).cast(pl.Float64).alias(f"_{name}") for name, col in sources.items()),
    ).with_row_index("_row")
    history = base.sort([*keys, "_year"]).with_columns(
        pl.col("_level").shift(1).over(keys).alias("_prev_level"),
        pl.col("_year").shift(1).over(keys).alias("_prev_year"),
        pl.col("_level").cum_max().shift(1).over(keys).alias("max_previous_stratum_level"),
        pl.int_range(pl.len()).over(keys).cast(pl.Int32).alias("previous_case_years"),
        *(
            (pl.col(f"_{name}").fill_null(0).cum_sum().shift(1).over(keys).fill_null(0)).alias(name)
            for name in sources if name == "previous_disease_stays"
        ),
        *(
            pl.col(f"_{name}").shift(1).over(keys).alias(f"_prev_{name}")
            for name in sources if name != "previous_disease_stays"
        ),
    )
    last_year = pl.col("_prev_year") == pl.col("_year") - 1
    history = history.select(
        "_row",
        pl.when(last_year).then(pl.col("_prev_level")).alias("previous_stratum_level"),
        "max_previous_stratum_level",
        "previous_case_years",
        *(name for name in sources if name == "previous_disease_stays"),
        *(pl.when(last_year).then(pl.col(f"_prev_{name}")).alias(name) for name in sources if name != "previous_disease_stays"),
    )
    added = history.sort("_row").drop("_row")
    return pl.concat([ps, added], how="horizontal")


def default_features(columns: Sequence[str]) -> list[str]:
    """The default features for a table with these columns: age, female, stratum_level (when
    ``age``, ``sex`` or ``female``, ``stratum_level`` are present), then :data:`KNOWN_FEATURES`
    present."""
    present = set(columns)
    base = [f for f in BASE_FEATURES if f in present or (f == "female" and "sex" in present)]
    return [*base, *(f for f in KNOWN_FEATURES if f in present)]


def _as_table(X):
    """A pandas or polars frame unchanged; anything else validated as a 2-D float array."""
    if isinstance(X, (pd.DataFrame, pl.DataFrame)):
        return X
    return check_array(X, dtype=np.float64, ensure_all_finite="allow-nan")


def _columns(X) -> list[str]:
    if isinstance(X, (pd.DataFrame, pl.DataFrame)):
        return [str(c) for c in X.columns]
    return [f"x{i}" for i in range(np.asarray(X).shape[1])]


def design_matrix(X, features: Sequence[str]) -> np.ndarray:
    """The features of ``X`` (pandas or polars frame, or a 2-D array whose columns are named
    ``x0``, ``x1``, …) as a float matrix in the order of ``features``; booleans 0/1, missing NaN.
    ``female`` is derived from ``sex`` (2 → 1, 1 → 0) when ``X`` has no ``female`` column."""
    if isinstance(X, pl.DataFrame):
        X = X.select([c for c in X.columns if c in set(features) or c == "sex"]).to_pandas()
    elif not isinstance(X, pd.DataFrame):
        array = _as_table(X)
        X = pd.DataFrame(array, columns=_columns(array))
    lookup = {str(c): c for c in X.columns}
    columns = []
    for name in features:
        if name in lookup:
            series = X[lookup[name]]
        elif name == "female" and "sex" in lookup:
            sex = pd.Series(X[lookup["sex"]].to_numpy(dtype="float64", na_value=np.nan))
            series = pd.Series(np.where(sex.isna(), np.nan, (sex == 2).astype("float64")))
        else:
            raise InputError(f"the feature {name!r} is not a column of the data", column=name)
        try:
            columns.append(series.to_numpy(dtype="float64", na_value=np.nan))
        except (TypeError, ValueError) as exc:
            raise InputError(f"the feature {name!r} is not numeric or boolean ({exc})", column=name) from exc
    if not columns:
        return np.empty((len(X), 0))
    return np.column_stack(columns)


# --------------------------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------------------------


class UpstratumModel(ClassifierMixin, BaseEstimator):
    """Probability of moving to a higher stratum or dying in hospital next year.

    ``kind``: ``"gradient_boosting"`` or ``"logistic"``; ``features``: the columns used (default:
    :func:`default_features` of the training table; every column of a table without any of them
    and of a plain array, whose columns are named ``x0``, ``x1``, …). The other parameters tune
    the gradient boosting (``learning_rate``, ``max_iter``, ``max_leaf_nodes``, ``min_samples_leaf``,
    ``l2_regularization``: ``"auto"`` = :data:`SMALL_TREES` or :data:`LARGE_TREES` by the number of
    training person-years, ``early_stopping``: ``"auto"`` = on when at least 1,000 person-years and
    20 of each outcome, ``validation_fraction``, ``n_iter_no_change``) or the logistic regression
    (``C``). ``random_state`` seeds the boosting's validation split.

    Fitted attributes: ``model_`` (the scikit-learn estimator), ``features_`` (the feature names,
    in the order of the model's columns), ``classes_`` (the two outcomes, sorted),
    ``n_features_in_`` (``len(features_)``), ``n_iter_`` (iterations of the boosting or the solver).
    Binary only. Plain arrays are validated as scikit-learn does (finite or NaN floats, 2-D).
    """

    def __init__(
        self,
        kind: str = "gradient_boosting",
        features: Sequence[str] | None = None,
        random_state: int = 0,
        *,
        learning_rate: float = 0.05,
        max_iter: int = 300,
        max_leaf_nodes: int | str = "auto",
        min_samples_leaf: int | str = "auto",
        l2_regularization: float | str = "auto",
        early_stopping: bool | str = "auto",
        validation_fraction: float = 0.15,
        n_iter_no_change: int = 20,
        C: float = 1.0,
    ):
        self.kind = kind
        self.features = features
        self.random_state = random_state
        self.learning_rate = learning_rate
        self.max_iter = max_iter
        self.max_leaf_nodes = max_leaf_nodes
        self.min_samples_leaf = min_samples_leaf
        self.l2_regularization = l2_regularization
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.C = C

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = False  # binary: moves up (or dies) or not
        tags.input_tags.allow_nan = True
        return tags

    def _estimator(self, y: np.ndarray):
        if self.kind == "gradient_boosting":
            trees = SMALL_TREES if len(y) < LARGE_TRAINING else LARGE_TREES
            leaves, leaf, l2 = (
                trees[i] if value == "auto" else value
                for i, value in enumerate((self.max_leaf_nodes, self.min_samples_leaf, self.l2_regularization))
            )
            early = self.early_stopping
            if early == "auto":
                early = len(y) >= 1000 and min(int(y.sum()), int(len(y) - y.sum())) >= 20
            return HistGradientBoostingClassifier(
                learning_rate=self.learning_rate,
                max_iter=self.max_iter,
                max_leaf_nodes=leaves,
                min_samples_leaf=leaf,
                l2_regularization=l2,
                early_stopping=bool(early),
                validation_fraction=self.validation_fraction,
                n_iter_no_change=self.n_iter_no_change,
                scoring="loss",
                random_state=self.random_state,
            )
        if self.kind == "logistic":
            return Pipeline([
                ("impute", SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True)),
                ("scale", StandardScaler()),
                ("logistic", LogisticRegression(C=self.C, max_iter=1000)),
            ])
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {self.kind!r}")

    def fit(self, X, y) -> UpstratumModel:
        """Fit on the person-years ``X`` (a table with the feature columns; other columns ignored)
        and their targets ``y`` (two distinct values, e.g. 0/1)."""
        if y is None:
            raise ValueError("UpstratumModel requires y to be passed, but the target y is None")
        X = _as_table(X)
        if self.features is not None:
            features = list(self.features)
        else:
            # a table: its known features; a plain array or a table without any: every column
            features = default_features(_columns(X)) or _columns(X)
        if not features:
            raise InputError("no feature column found in the data (see the features table of docs/strata.md)")
        design = design_matrix(X, features)
        y = column_or_1d(y, warn=True)
        if len(y) != design.shape[0]:
            raise ValueError(f"X has {design.shape[0]} rows but y has {len(y)}")
        check_classification_targets(y)
        if type_of_target(y) != "binary":
            raise ValueError(
                f"Only binary classification is supported: y must hold two outcomes (e.g. 0 and 1), "
                f"got a {type_of_target(y)} target"
            )
        classes = np.unique(y)
        if len(classes) != 2:
            raise ValueError(f"y has only one class ({classes.tolist()}): both outcomes are needed (e.g. 0 and 1)")
        target = (y == classes[1]).astype(np.int64)
        # a feature missing on every training row (the history features on the first year of the
        # data) cannot be binned by the boosting: it is set to 0 at fit and predict time (unused)
        self.empty_features_ = np.all(np.isnan(design), axis=0) if self.kind == "gradient_boosting" else np.zeros(design.shape[1], bool)
        design[:, self.empty_features_] = 0.0
        model = self._estimator(target)
        model.fit(design, target)
        self.model_ = model
        self.features_ = features
        self.classes_ = classes
        self.n_features_in_ = len(features)
        final = model[-1] if isinstance(model, Pipeline) else model
        self.n_iter_ = int(np.max(final.n_iter_))
        return self

    def predict_proba(self, X) -> np.ndarray:
        """(n, 2): probabilities of ``classes_[0]`` (stays) and ``classes_[1]`` (moves up or dies)."""
        check_is_fitted(self, "model_")
        X = _as_table(X)
        if not isinstance(X, (pd.DataFrame, pl.DataFrame)) and X.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {X.shape[1]} features, but UpstratumModel is expecting {self.n_features_in_} features as input"
            )
        design = design_matrix(X, self.features_)
        design[:, getattr(self, "empty_features_", np.zeros(design.shape[1], bool))] = 0.0
        p = self.model_.predict_proba(design)[:, 1]
        return np.column_stack([1.0 - p, p])

    def predict(self, X) -> np.ndarray:
        """The more probable outcome (threshold 0.5)."""
        check_is_fitted(self, "model_")
        return self.classes_[(self.predict_proba(X)[:, 1] >= 0.5).astype(np.int64)]


# --------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------


@dataclass
class PredictionReport:
    """Temporal validation of the two models for one disease (:func:`evaluate`).

    ``metrics`` (:data:`METRICS_SCHEMA`), per target and model: auc with its DeLong interval
    (``auc_lower``, ``auc_upper``), brier, brier_reference (Brier score of the training
    prevalence given to everyone), brier_skill (1 − brier / brier_reference: > 0 beats the
    prevalence), log_loss, the calibration slope and intercept with their intervals
    (:func:`calibration_fit`) and the temporal recalibration applied (intercept, slope; null when
    none). ``calibration``: target, model, bin (1–10, deciles of predicted risk on the test
    year), n, mean_predicted, observed_rate. ``positives``: per target, the events of the
    training and test years (``positives_train``, ``positives_test``: those of the main target). ``importance``: feature, importance (mean drop of
    the test AUC when the feature is permuted, gradient boosting), importance_std. ``subgroups``:
    model, group (``sex`` / ``age``), value (``male``, ``female``, ``< 75``, ``≥ 75``), n,
    positives, auc (null when fewer than :data:`MIN_GROUP_CLASS` of either outcome).
    ``not_seen_next_year``: person-years of the training and test years (alive at the end of N)
    with no row in N + 1, excluded from both.
    """

    disease: str
    train_years: list[int]
    test_year: int
    n_train: int
    n_test: int
    positives_train: int
    positives_test: int
    not_seen_next_year: int
    metrics: pl.DataFrame
    calibration: pl.DataFrame
    importance: pl.DataFrame
    subgroups: pl.DataFrame = field(default_factory=pl.DataFrame)
    features: list[str] = field(default_factory=list)
    synthetic: bool = False
    n_fitted: int | None = None
    """Training person-years the models were fitted on, when a sample of the ``n_train`` (else None)."""
    positives: dict[str, tuple[int, int]] = field(default_factory=dict)

    @property
    def main_target(self) -> str:
        """The first target evaluated (the importance and the fairness table are about it)."""
        return str(self.metrics["target"][0]) if self.metrics.height else MAIN_TARGET

    def metrics_dict(self) -> dict:
        """The headline numbers as plain Python (for ``metrics.json``)."""
        return {
            "disease": self.disease,
            "train_years": list(self.train_years),
            "test_year": self.test_year,
            "n_train": self.n_train,
            "n_fitted": self.n_fitted if self.n_fitted is not None else self.n_train,
            "n_test": self.n_test,
            "positives_train": self.positives_train,
            "positives_test": self.positives_test,
            "not_seen_next_year": self.not_seen_next_year,
            "models": {
                row.pop("model"): row for row in self.metrics.filter(pl.col("target") == self.main_target).to_dicts()
            },
            "targets": {
                target: {row.pop("model"): row for row in part.to_dicts()}
                for (target,), part in self.metrics.group_by(["target"], maintain_order=True)
            },
        }

    def model_card(self, disease_name: str | None = None, labels: dict[str, str] | None = None) -> str:
        """The model card in Markdown, in French, for clinicians (they read it on the boards and
        in the dossier), with every count of people disclosure-controlled (:func:`_model_card`).

        First, in plain sentences and with the features' French labels only: what the model
        predicts, for whom, over which horizon, what it is for and not for, what it reads, how
        often it ranks right and whether its risks match the observed ones on the test year, its
        limits. Then the technical details (algorithms, hyper-parameters, every metric, the
        features' names) in one HTML block ``<details><summary>Détails techniques</summary>…
        </details>`` (:data:`TECHNICAL_OPEN`; :func:`split_card` cuts the card there).

        ``disease_name``: the disease's French name (its algorithm's ``name``); the disease id when
        None. ``labels``: feature name → French label, from the run's catalogue
        (``Catalogue.feature_rows``); features it lacks take the shipped catalogue's labels
        (:func:`feature_labels`)."""
        return _model_card(self, disease_name or self.disease, labels)


def _case_of_sentence(features: Sequence[str]) -> str:
    """Which other followed diseases the model used (``case_of_<disease>``, one per other
    configured disease): adding or removing a disease changes the model's features."""
    from respop.spec.features import CASE_OF

    used = [f for f in features if f.startswith(CASE_OF)]
    if not used:
        return ("Autres maladies suivies : aucune variable `case_of_<maladie>` dans ce modèle (aucune autre maladie "
                "configurée).")
    return (
        "Autres maladies suivies prises en compte (être aussi un cas de cette maladie l'année N) : "
        + ", ".join(f"`{f}`" for f in used)
        + ". Ajouter ou retirer une maladie de la configuration change ces variables, donc le modèle."
    )


def calibration_table(y: np.ndarray, p: np.ndarray, model: str, n_bins: int = N_BINS) -> pl.DataFrame:
    """Calibration by deciles of predicted risk: bin (1 = lowest risk), n, mean_predicted,
    observed_rate. Bins are equal-sized (sizes differ by at most one) by the rank of the predicted
    risk, ties broken by row order, so that tied predictions do not empty a bin."""
    order = np.argsort(p, kind="stable")
    ranks = np.empty(len(p), dtype=np.int64)
    ranks[order] = np.arange(len(p))
    bins = (ranks * n_bins) // max(len(p), 1) + 1
    return (
        pl.DataFrame({"bin": bins.astype(np.int8), "p": p.astype(np.float64), "y": y.astype(np.float64)})
        .group_by("bin")
        .agg(
            pl.len().cast(pl.Int64).alias("n"),
            pl.col("p").mean().alias("mean_predicted"),
            pl.col("y").mean().alias("observed_rate"),
        )
        .sort("bin")
        .select(pl.lit(model).alias("model"), "bin", "n", "mean_predicted", "observed_rate")
    )


def stratified_sample(y: np.ndarray, size: int, random_state: int = 0) -> np.ndarray:
    """Sorted row indices of a random sample of ``size`` rows of ``y`` (without replacement),
    stratified by the value of ``y``: each value keeps its share (rounded; the largest share takes
    the rounding). All rows when ``size`` ≥ ``len(y)``."""
    n = len(y)
    if size >= n:
        return np.arange(n)
    rng = np.random.default_rng(random_state)
    values, counts = np.unique(y, return_counts=True)
    takes = np.floor(counts * size / n).astype(np.int64)
    takes[np.argmax(counts)] += size - takes.sum()
    picked = [rng.choice(np.flatnonzero(y == v), size=int(k), replace=False) for v, k in zip(values, takes, strict=True)]
    return np.sort(np.concatenate(picked))


def _z(confidence: float) -> float:
    from scipy.stats import norm

    return float(norm.ppf(0.5 + confidence / 2))


def auc_interval(y: np.ndarray, p: np.ndarray, confidence: float = 0.95) -> tuple[float, float, float]:
    """AUC with DeLong's confidence interval (DeLong et al. 1988; midranks, Sun & Xu 2014):
    (auc, lower, upper), the bounds clipped to [0, 1]."""
    from scipy.stats import rankdata

    y = np.asarray(y).astype(bool)
    p = np.asarray(p, dtype=np.float64)
    pos, neg = p[y], p[~y]
    m, n = len(pos), len(neg)
    if m == 0 or n == 0:
        return float("nan"), float("nan"), float("nan")
    ranks_all = rankdata(np.r_[pos, neg])
    ranks_pos, ranks_neg = rankdata(pos), rankdata(neg)
    auc = float((ranks_all[:m].sum() - m * (m + 1) / 2) / (m * n))
    v_pos = (ranks_all[:m] - ranks_pos) / n  # structural components of the positives
    v_neg = 1.0 - (ranks_all[m:] - ranks_neg) / m  # … and of the negatives
    var = (np.var(v_pos, ddof=1) / m if m > 1 else 0.0) + (np.var(v_neg, ddof=1) / n if n > 1 else 0.0)
    half = _z(confidence) * float(np.sqrt(max(var, 0.0)))
    return auc, max(0.0, auc - half), min(1.0, auc + half)


def _logistic_fit(x: np.ndarray, y: np.ndarray, offset: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Maximum-likelihood logistic regression of ``y`` on the columns of ``x`` with an ``offset``
    (Newton–Raphson): the coefficients and their covariance (inverse Fisher information)."""
    beta = np.zeros(x.shape[1])
    for _ in range(100):
        eta = np.clip(offset + x @ beta, -35, 35)
        mu = 1.0 / (1.0 + np.exp(-eta))
        w = np.maximum(mu * (1 - mu), 1e-12)
        info = x.T @ (x * w[:, None])
        step = np.linalg.solve(info, x.T @ (y - mu))
        beta = beta + step
        if np.max(np.abs(step)) < 1e-10:
            break
    eta = np.clip(offset + x @ beta, -35, 35)
    mu = 1.0 / (1.0 + np.exp(-eta))
    info = x.T @ (x * np.maximum(mu * (1 - mu), 1e-12)[:, None])
    return beta, np.linalg.inv(info)


def calibration_fit(y: np.ndarray, p: np.ndarray, confidence: float = 0.95) -> dict[str, float]:
    """Logistic recalibration of predictions ``p`` against outcomes ``y`` (Cox 1958; Van Calster
    et al. 2016): ``calibration_slope`` is the slope of the logistic regression of ``y`` on
    logit(p) (1 = ideal; < 1 predictions too extreme, > 1 too timid); ``calibration_intercept`` the
    calibration-in-the-large, the intercept of that regression with the slope fixed at 1
    (logit(p) as offset; 0 = ideal, > 0 risks underestimated on average). Each with its Wald
    interval (``_lower``, ``_upper``) at ``confidence``."""
    y = np.asarray(y, dtype=np.float64)
    lp = np.log(np.clip(np.asarray(p, dtype=np.float64), 1e-9, 1 - 1e-9))
    lp = lp - np.log1p(-np.clip(np.asarray(p, dtype=np.float64), 1e-9, 1 - 1e-9))
    z = _z(confidence)
    ones = np.ones((len(y), 1))
    try:
        beta, cov = _logistic_fit(np.column_stack([ones, lp]), y, np.zeros(len(y)))
        slope, slope_se = float(beta[1]), float(np.sqrt(cov[1, 1]))
        alpha, acov = _logistic_fit(ones, y, lp)
        intercept, intercept_se = float(alpha[0]), float(np.sqrt(acov[0, 0]))
    except np.linalg.LinAlgError:
        nan = float("nan")
        slope = slope_se = intercept = intercept_se = nan
    return {
        "calibration_slope": slope,
        "calibration_slope_lower": slope - z * slope_se,
        "calibration_slope_upper": slope + z * slope_se,
        "calibration_intercept": intercept,
        "calibration_intercept_lower": intercept - z * intercept_se,
        "calibration_intercept_upper": intercept + z * intercept_se,
    }


def has_skill(row: dict) -> bool:
    """A model has predictive value on its test year when its Brier skill score is positive (it
    beats the prevalence given to everyone) and the lower bound of its AUC interval is above 0.5."""
    skill, lower = row.get("brier_skill"), row.get("auc_lower")
    return skill is not None and lower is not None and bool(skill > 0) and bool(lower > 0.5)


def _auc_or_none(y: np.ndarray, p: np.ndarray) -> float | None:
    positives = int(y.sum())
    if positives < MIN_GROUP_CLASS or len(y) - positives < MIN_GROUP_CLASS:
        return None
    return float(roc_auc_score(y, p))


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-9, 1 - 1e-9)
    return np.log(p) - np.log1p(-p)


RECALIBRATION_YEARS = 1
"""Latest training years the temporal recalibration is learnt on (:func:`temporal_recalibration`).
Pooling the two latest (each predicted by a model of the years before it) was measured worse: the
second latest is predicted from the first year of the data alone, whose case mix differs most
(gradient boosting's calibration slope in [0.8, 1.2] on 19 of 60 disease × target × world, against
44 with the latest year alone)."""

SLOPE_PRIOR_SD: dict[str, float | None] = {"gradient_boosting": 0.1, "logistic": None}
"""Per model, the standard deviation of the prior of the recalibration slope around 1
(:func:`temporal_recalibration`): the slope estimated on the latest training year is shrunk
towards 1 by the weight ``sd² / (sd² + se²)``; 0: the slope is kept at 1 and only the intercept
is recalibrated (recalibration in the large); None: the slope is applied as estimated.
Measured on the demo and peripheral worlds, seeds 1–5 (60 disease × target × world, gradient
boosting with :data:`SMALL_TREES`): calibration slope in [0.8, 1.2] on 38 with sd 0.25, 46 with
sd 0.1, 52 with the intercept alone (43 before these changes). The latest year holds a few hundred
events (COPD: about a hundred), and its slope swung from 0.2 to 1.2 over the seeds while the test
year wanted the opposite. The boosting keeps sd 0.1 rather than the intercept alone: a slope
estimated on a large year (regional or national data) is then still applied (se 0.03: 92 % of it),
which a drift of the case mix needs. The logistic baseline keeps its estimated slope (without it,
heart failure demo seed 1: calibration slope 0.40 on the test year). The gradient boosting uses
it from :data:`LARGE_TRAINING` training person-years on; below, :data:`SMALL_SLOPE_PRIOR_SD`."""

SMALL_SLOPE_PRIOR_SD: dict[str, float | None] = {"gradient_boosting": 0.0}
"""Per model, the prior standard deviation of the recalibration slope below :data:`LARGE_TRAINING`
training person-years (other models: :data:`SLOPE_PRIOR_SD`). 0 for the gradient boosting: on
small data only its intercept is recalibrated. The slope learnt on the latest training year is the
slope of the *earlier years' model*, and on small data that model is over-confident for a reason
the final model does not share: it is fitted on fewer person-years (COPD: under 1,000, so without
early stopping, 300 iterations where the final model stops at 60–150). Its own out-of-fold slope on
its training years is about its slope on the latest year (peripheral seed 1: heart failure 0.81 and
0.70, COPD 0.54 and 0.53): the slope measured its over-fitting, not a drift, and applied to the
final model it made it too timid on the test year (peripheral world: slopes 1.22–1.52). Measured
on the demo and peripheral worlds, seeds 1–5, heart failure and COPD, both targets (40 cases):
test-year calibration slope in [0.8, 1.2] on 33 with the intercept alone against 26 with sd 0.1
(peripheral 17 of 20 against 9; demo 16 of 20 against 17), the same AUC (a monotone map).
Dividing the latest year's slope by the earlier model's out-of-fold slope (keeping the drift
alone) was too noisy (0.38–1.30)."""


def temporal_recalibration(
    kind: str, features: Sequence[str], X: pd.DataFrame, y: np.ndarray, years: np.ndarray, random_state: int = 0,
    *, n_years: int | None = None, slope_prior_sd: float | None = -1.0,
) -> tuple[float, float] | None:
    """(intercept, slope) of the logistic recalibration learnt on the latest training year(s): for
    each of the ``n_years`` latest training years (default :data:`RECALIBRATION_YEARS`) that has
    earlier years, a model of the same ``kind`` fitted on the years before it predicts it; the
    outcomes of those years, pooled, are regressed on the logit of their predictions. The slope is
    then shrunk towards 1 by its precision (prior standard deviation ``slope_prior_sd``, default
    :data:`SLOPE_PRIOR_SD` of ``kind``, or :data:`SMALL_SLOPE_PRIOR_SD` below :data:`LARGE_TRAINING`
    person-years in ``y``; 0: slope 1, the intercept alone; None: no shrinkage), and
    the intercept refitted with that slope. None
    when there is a single training year or either part lacks an outcome.

    Why: the case mix drifts from year to year (in the first years of the data the look-back
    windows are short, so every case of the first year had a disease stay that year), and a model
    fitted on all training years is over-confident on the next one (heart failure, demo seed 1:
    logistic calibration slope 1.01 on its own training years, 0.40 on the test year). Refitting
    the intercept and slope on the most recent year (Steyerberg, *Clinical Prediction Models*,
    ch. 20; "temporal recalibration", Booth et al. 2020) brings it to 0.90. A year with few events
    (COPD on a 300,000-inhabitant world: about a hundred) gives a slope too noisy to apply as it is
    (0.2 to 1.2 over seeds, and test slopes up to 3.8 after it): the slope is shrunk towards 1 by
    its standard error (Steyerberg ch. 13, shrinkage; :data:`SLOPE_PRIOR_SD`). On small data the
    gradient boosting's recalibration is the intercept alone (:data:`SMALL_SLOPE_PRIOR_SD`): the
    earlier years' model is over-fitted, and its slope on the latest year is not the final model's."""
    n_years = RECALIBRATION_YEARS if n_years is None else n_years
    if slope_prior_sd != -1.0:
        prior = slope_prior_sd
    elif len(y) < LARGE_TRAINING and kind in SMALL_SLOPE_PRIOR_SD:
        prior = SMALL_SLOPE_PRIOR_SD[kind]
    else:
        prior = SLOPE_PRIOR_SD.get(kind)
    distinct = np.unique(years)
    targets_years = [k for k in distinct[::-1][:n_years] if (years < k).any()]
    if not targets_years:
        return None
    ys, lps = [], []
    for k in targets_years:
        early, late = years < k, years == k
        if min(len(np.unique(y[early])), len(np.unique(y[late]))) < 2:
            continue
        model = UpstratumModel(kind=kind, features=list(features), random_state=random_state).fit(X[early], y[early])
        lps.append(_logit(model.predict_proba(X[late])[:, 1]))
        ys.append(y[late].astype(np.float64))
    if not ys:
        return None
    yy, lp = np.concatenate(ys), np.concatenate(lps)
    ones = np.ones(len(yy))
    try:
        beta, cov = _logistic_fit(np.column_stack([ones, lp]), yy, np.zeros(len(yy)))
    except np.linalg.LinAlgError:
        return None
    if not np.all(np.isfinite(beta)) or beta[1] <= 0:
        return None  # no usable recalibration: the early model ranks the latest year no better than chance
    slope = float(beta[1])
    if prior is not None:
        variance = max(float(cov[1, 1]), 0.0)
        weight = prior**2 / (prior**2 + variance) if prior > 0 else 0.0
        slope = 1.0 + (slope - 1.0) * weight
        try:
            alpha, _ = _logistic_fit(ones[:, None], yy, slope * lp)
        except np.linalg.LinAlgError:
            return None
        return float(alpha[0]), slope
    return float(beta[0]), slope


def read_features(model: UpstratumModel) -> list[str]:
    """The features a fitted model's predictions depend on: for the gradient boosting, those some
    tree splits on (a feature no tree reads changes no prediction); for the logistic regression,
    all of them."""
    final = model.model_[-1] if isinstance(model.model_, Pipeline) else model.model_
    everything = list(model.features_)
    if not isinstance(final, HistGradientBoostingClassifier) or getattr(final, "is_categorical_", None) is not None:
        return everything  # (categorical features are reordered by the boosting: their indices differ)
    # scikit-learn's fitted trees have no public accessor: whatever in them is not as expected,
    # every feature counts as read (the importance then scores every permutation)
    try:
        used: set[int] = set()
        for iteration in final._predictors:
            for tree in iteration:
                nodes = tree.nodes
                used.update(nodes["feature_idx"][~nodes["is_leaf"].astype(bool)].tolist())
    except (AttributeError, KeyError, ValueError, TypeError, IndexError):
        return everything
    return [f for k, f in enumerate(everything) if k in used]


class UnreadColumnsScorer:
    """``scorer`` for the permutation importance, that scores a table again only when it differs,
    in the columns the model reads, from every table it scored before. The importance permutes
    each feature in turn; permuting one that no tree reads gives the same predictions, hence the
    same score, exactly: it is taken from the table already scored (the unpermuted one, or the
    same rows drawn for every feature when the test year is sampled) instead of predicting again.
    On small data most features are never split on, and predicting and scoring them took a
    quarter of a run. Tables are recognised by a BLAKE2b digest of their read columns and
    outcomes."""

    def __init__(self, scorer, read: Sequence[str]):
        self.scorer = scorer
        self.read = list(read)
        self.scores: dict[bytes, float] = {}
        self.estimator = None

    def __call__(self, estimator, X: pd.DataFrame, y) -> float:
        import hashlib

        if estimator is not self.estimator:  # the scores are those of one model
            self.scores.clear()
            self.estimator = estimator
        outcomes = np.ascontiguousarray(np.asarray(y))
        if outcomes.dtype == object:  # its bytes would be addresses: no reuse
            return self.scorer(estimator, X, y)
        columns = np.ascontiguousarray(X[self.read].to_numpy(dtype=float))
        digest = hashlib.blake2b(digest_size=32)
        digest.update(f"{columns.shape} {outcomes.shape} {outcomes.dtype.str}".encode())
        digest.update(columns.tobytes())
        digest.update(outcomes.tobytes())
        key = digest.digest()
        if key not in self.scores:
            self.scores[key] = self.scorer(estimator, X, y)
        return self.scores[key]


def evaluate(
    person_strata: pl.DataFrame,
    disease: str,
    last_year: int,
    random_state: int = 0,
    *,
    features: Sequence[str] | None = None,
    synthetic: bool = False,
    train_sample: int | None = TRAIN_SAMPLE,
    targets: Sequence[str] | None = None,
    confidence: float = 0.95,
    recalibrate: bool = True,
    importance: bool = True,
    history: bool = True,
) -> PredictionReport:
    """Temporal validation of gradient boosting and the logistic baseline for ``disease``.

    Trains on the labelled person-years N ≤ ``last_year`` − 2, tests on N = ``last_year`` − 1,
    for each of ``targets`` (default: :data:`TARGETS` whose columns ``person_strata`` has; the
    first is the main one, for the importance and the fairness table). Each model is fitted on all
    the training years, then recalibrated on the latest of them (:func:`temporal_recalibration`).
    ``features``: default :func:`default_features` of ``person_strata``. ``synthetic``: say in the
    model card that the data are synthetic. ``train_sample``: fit on at most this many training
    person-years (:func:`stratified_sample`, seeded by ``random_state``); None: all of them.
    ``confidence``: of the AUC and calibration intervals. ``recalibrate`` false: no temporal
    recalibration (benchmarks); ``importance`` false: no permutation importance (an empty table;
    benchmarks); ``history`` false: no :data:`HISTORY_FEATURES` (else added to ``features`` for the
    models of :data:`HISTORY_KINDS`; the report's ``features`` lists them). Raises :class:`InputError` when the
    disease has fewer than two years with a following year, or a set lacks either outcome.
    """
    _require(person_strata, LABEL_COLUMNS)
    if targets is None:
        targets = [t for t in TARGETS if all(c in person_strata.columns for c in TARGET_COLUMNS[t])]
    targets = list(targets)
    rows = person_strata.filter(pl.col("disease") == disease)
    if history:
        rows = with_history(rows)
    all_labelled = labelled(rows, last_year, keep_unseen=True, target=targets[0])
    test_year = last_year - 1
    seen = all_labelled.filter(pl.col("seen_next_year"))
    years = sorted(seen["year"].unique().to_list())
    train_years = [y for y in years if y <= last_year - 2]
    if test_year not in years or not train_years:
        raise InputError(
            f"prediction needs at least three years of data for {disease} (training on the years up to "
            f"{last_year - 2}, testing on {test_year} with its outcome in {last_year}); "
            f"years with a following year: {years or 'none'}"
        )
    not_seen = all_labelled.filter(~pl.col("seen_next_year") & (pl.col("year") <= test_year)).height
    train = seen.filter(pl.col("year") <= last_year - 2)
    test = seen.filter(pl.col("year") == test_year)
    labels = {targets[0]: (train["label"], test["label"])}
    for target in targets[1:]:
        other = labelled(rows, last_year, target=target)
        labels[target] = (
            train.select("patient_key", "year").join(other, on=["patient_key", "year"], how="left", maintain_order="left")["label"],
            test.select("patient_key", "year").join(other, on=["patient_key", "year"], how="left", maintain_order="left")["label"],
        )
    outcomes: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for target, (lab_train, lab_test) in labels.items():
        y_train, y_test = lab_train.to_numpy().astype(np.int64), lab_test.to_numpy().astype(np.int64)
        for name, y in (("training", y_train), ("test", y_test)):
            if y.min() == y.max():
                raise InputError(
                    f"prediction for {disease} ({target}): the {name} person-years all have the same outcome "
                    f"({'the event' if y[0] else 'no event'}); both are needed"
                )
        outcomes[target] = (y_train, y_test)
    feature_names = list(features) if features is not None else default_features(rows.columns)
    history_names: list[str] = []
    if history:
        history_names = [f for f in HISTORY_FEATURES if f in rows.columns and f not in feature_names]
        feature_names += history_names
    n_fitted = None
    keep = np.arange(train.height)
    if train_sample is not None and train.height > train_sample:
        keep = stratified_sample(outcomes[targets[0]][0], train_sample, random_state)
        n_fitted = len(keep)
    train_fit = train[keep]
    X_train = pd.DataFrame(design_matrix(train_fit, feature_names), columns=feature_names)
    X_test = pd.DataFrame(design_matrix(test, feature_names), columns=feature_names)
    fit_years = train_fit["year"].to_numpy()

    metric_rows, calibrations, predictions, fitted = [], [], {}, {}
    for target in targets:
        y_train, y_test = outcomes[target]
        y_fit = y_train[keep]
        prevalence = float(y_train.mean())  # of every training person-year, sampled or not
        brier_reference = float(brier_score_loss(y_test, np.full(len(y_test), prevalence)))
        for kind in KINDS:
            names = feature_names if kind in HISTORY_KINDS else [f for f in feature_names if f not in history_names]
            model = UpstratumModel(kind=kind, features=names, random_state=random_state).fit(X_train, y_fit)
            p = model.predict_proba(X_test)[:, 1]
            recalibration = (
                temporal_recalibration(kind, names, X_train, y_fit, fit_years, random_state) if recalibrate else None
            )
            if recalibration is not None:
                p = 1.0 / (1.0 + np.exp(-(recalibration[0] + recalibration[1] * _logit(p))))
            fitted[target, kind], predictions[target, kind] = model, p
            auc, auc_lower, auc_upper = auc_interval(y_test, p, confidence)
            brier = float(brier_score_loss(y_test, p))
            metric_rows.append({
                "target": target,
                "model": kind,
                "auc": auc,
                "auc_lower": auc_lower,
                "auc_upper": auc_upper,
                "brier": brier,
                "brier_reference": brier_reference,
                "brier_skill": 1.0 - brier / brier_reference if brier_reference > 0 else float("nan"),
                "log_loss": float(log_loss(y_test, p, labels=[0, 1])),
                **calibration_fit(y_test, p, confidence),
                "recalibration_intercept": recalibration[0] if recalibration else None,
                "recalibration_slope": recalibration[1] if recalibration else None,
            })
            calibrations.append(calibration_table(y_test, p, kind).select(pl.lit(target).alias("target"), pl.all()))
    main = targets[0]
    y_train, y_test = outcomes[main]

    importance_table = pl.DataFrame(schema={"feature": pl.String, "importance": pl.Float64, "importance_std": pl.Float64})
    if importance:
        model = fitted[main, "gradient_boosting"]
        read = read_features(model)  # when the trees read every feature, nothing to skip (no digests)
        result = permutation_importance(
            model, X_test, y_test,
            scoring="roc_auc" if set(read) == set(X_test.columns) else UnreadColumnsScorer(get_scorer("roc_auc"), read),
            n_repeats=IMPORTANCE_REPEATS, random_state=random_state,
            max_samples=min(1.0, IMPORTANCE_SAMPLE / max(len(y_test), 1)),
        )
        importance_table = pl.DataFrame({
            "feature": feature_names,
            "importance": result.importances_mean.astype(np.float64),
            "importance_std": result.importances_std.astype(np.float64),
        }).sort("importance", descending=True, maintain_order=True)

    groups: list[tuple[str, str, np.ndarray]] = []
    if "sex" in test.columns:
        sex = test["sex"].to_numpy()
        groups += [("sex", "male", sex == 1), ("sex", "female", sex == 2)]
    if "age" in test.columns:
        age = test["age"].cast(pl.Float64).to_numpy()
        groups += [("age", f"< {AGE_CUT}", age < AGE_CUT), ("age", f"≥ {AGE_CUT}", age >= AGE_CUT)]
    subgroup_rows = [
        {
            "model": kind, "group": group, "value": value, "n": int(mask.sum()),
            "positives": int(y_test[mask].sum()), "auc": _auc_or_none(y_test[mask], predictions[main, kind][mask]),
        }
        for kind in KINDS for group, value, mask in groups
    ]
    subgroups = pl.DataFrame(subgroup_rows, schema={
        "model": pl.String, "group": pl.String, "value": pl.String, "n": pl.Int64,
        "positives": pl.Int64, "auc": pl.Float64,
    })

    return PredictionReport(
        disease=disease,
        train_years=train_years,
        test_year=test_year,
        n_train=train.height,
        n_test=test.height,
        positives_train=int(y_train.sum()),
        positives={t: (int(a.sum()), int(b.sum())) for t, (a, b) in outcomes.items()},
        positives_test=int(y_test.sum()),
        not_seen_next_year=not_seen,
        metrics=pl.DataFrame(metric_rows, schema=METRICS_SCHEMA),
        calibration=pl.concat(calibrations),
        importance=importance_table,
        subgroups=subgroups,
        features=feature_names,
        synthetic=synthetic,
        n_fitted=n_fitted,
    )


# --------------------------------------------------------------------------------------------
# Model card
# --------------------------------------------------------------------------------------------

_MODEL_NAMES = {"gradient_boosting": "Gradient boosting", "logistic": "Régression logistique (référence)"}
_TARGET_NAMES = {
    "upstratum": "Profil plus sévère ou décès",
    "emergency_or_death": "Hospitalisation en urgence ou décès",
}
NO_SKILL = "sans pouvoir prédictif"
"""What the card (and the board) says of a model without skill (:func:`has_skill`)."""


def _targets(r: PredictionReport) -> list[str]:
    return list(dict.fromkeys(r.metrics["target"].to_list())) if r.metrics.height else []


def _skill_lines(r: PredictionReport) -> list[str]:
    """The plain sentence on each model without predictive skill on the test year."""
    lines = []
    for row in r.metrics.iter_rows(named=True):
        if has_skill(row):
            continue
        why = []
        if row["brier_skill"] is None or not row["brier_skill"] > 0:
            why.append("ses risques ne sont pas plus justes que le même risque moyen donné à tous")
        if row["auc_lower"] is None or not row["auc_lower"] > 0.5:
            why.append("son classement ne se distingue pas du hasard")
        lines.append(
            f"**{_PLAIN_MODELS.get(row['model'], 'modèle').capitalize()}, « {_TARGET_NAMES.get(row['target'], row['target'])} » : "
            f"{NO_SKILL}** sur l'année de test ({' et '.join(why)}). Ses probabilités ne doivent pas servir à "
            "classer ni à compter des personnes."
        )
    return [*(f"- {line}" for line in lines), *([""] if lines else [])]


def protect_target_calibration(calibration: pl.DataFrame) -> tuple[pl.DataFrame, set[tuple[str, str]]]:
    """:func:`respop.privacy.disclosure.protect_calibration` for each target's deciles (each
    target's bins sum to the same test year): the table as it may be published, and the (target,
    model) pairs whose total of events would have to be masked. A table without ``target`` is one
    target's."""
    if "target" not in calibration.columns:
        out, hidden = protect_calibration(calibration)
        return out, {(MAIN_TARGET, m) for m in hidden}
    parts, hidden = [], set()
    for (target,), part in calibration.group_by(["target"], maintain_order=True):
        protected, models = protect_calibration(part)
        parts.append(protected)
        hidden |= {(target, m) for m in models}
    return (pl.concat(parts, how="vertical_relaxed") if parts else calibration), hidden
_GROUP_VALUES = {"male": "hommes", "female": "femmes", f"< {AGE_CUT}": f"moins de {AGE_CUT} ans",
                 f"≥ {AGE_CUT}": f"{AGE_CUT} ans et plus"}
HIDDEN = "s"
"""How a masked count reads in the card (the boards' symbol of a suppressed cell)."""

SECRET_NOTE = ("« s » : valeur soumise au secret statistique (effectif de 1 à 10, ou masqué pour qu'on ne puisse pas "
               "le retrouver par soustraction) ; « n.d. » : taux non publié pour la même raison.")


def _fmt(value: float | None, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "n.d."
    return f"{value:.{digits}f}".replace(".", ",")


def _count(value: int | None) -> str:
    return HIDDEN if value is None else f"{value:,}".replace(",", "\u202f")


def _share(k: int | None, n: int | None) -> str:
    return "n.d." if k is None or not n else f"{100 * k / n:.1f} %".replace(".", ",")


def _pct_f(x: float | None) -> str:
    return "n.d." if x is None or (isinstance(x, float) and np.isnan(x)) else f"{100 * x:.1f} %".replace(".", ",")





_PLAIN_MODELS = {"gradient_boosting": "modèle principal", "logistic": "modèle de référence (régression logistique)"}
_PLAIN_TARGETS = {
    "upstratum": ("de passer à un profil plus sévère de la maladie ou de décéder à l'hôpital",
                  "une personne qui s'est aggravée ou est décédée", "une personne restée stable"),
    "emergency_or_death": ("d'être hospitalisée en passant par les urgences (toute cause) ou de décéder à l'hôpital",
                           "une personne hospitalisée par les urgences ou décédée", "une personne qui ne l'a pas été"),
}


def feature_labels(disease: str, features: Sequence[str], labels: dict[str, str] | None = None) -> dict[str, str]:
    """Feature name → French label for the card: ``labels`` (the run's catalogue), then
    :data:`BASE_LABELS`, the computed features' labels, the shipped catalogue's (code features,
    other diseases), and last the name with spaces for underscores."""
    from respop.spec.features import CASE_OF, COMPUTED_LABELS, case_label

    out = {**BASE_LABELS, **COMPUTED_LABELS, **(labels or {})}
    missing = [f for f in features if f not in out]
    if missing:
        try:  # the shipped catalogue (the run's catalogue is the caller's: labels)
            from respop.spec.catalogue import freeze
            from respop.spec.loaders import available_diseases

            shipped = freeze(available_diseases(None), None)
            rows = shipped.feature_rows(disease) if disease in shipped.diseases else []
            known = {row["name"]: row["label"] for row in rows}
            known.update({f"{CASE_OF}{d}": case_label(shipped.names[d]) for d in shipped.diseases})
            known.update({n: f.label for n, f in shipped.features.codes.items() if f.label})
        except Exception:  # noqa: BLE001 - no shipped catalogue: the names, readable
            known = {}
        for f in missing:
            out[f] = known.get(f) or f.removeprefix(CASE_OF).replace("_", " ").capitalize()
    return out


def _in_sentence(name: str) -> str:
    """A French label inside a sentence: first letter in lower case unless it starts an acronym."""
    return name if len(name) > 1 and name[1].isupper() else name[:1].lower() + name[1:]


def _list(items: Sequence[str], sep: str = ", ") -> str:
    items = [_in_sentence(i) for i in items]
    return items[0] if len(items) == 1 else sep.join(items[:-1]) + " et " + items[-1]


def _auc_words(auc: float) -> str:
    if auc < 0.6:
        return "à peine meilleur que le hasard"
    if auc < 0.7:
        return "modeste"
    if auc < 0.8:
        return "correct"
    return "bon"


def _calibration_words(row: dict) -> str:
    """The calibration slope and intercept (with their intervals) in words."""
    said = []
    lo, hi = row.get("calibration_intercept_lower"), row.get("calibration_intercept_upper")
    if lo is not None and lo > 0:
        said.append("il **sous-estime** le risque en moyenne")
    elif hi is not None and hi < 0:
        said.append("il **surestime** le risque en moyenne")
    lo, hi = row.get("calibration_slope_lower"), row.get("calibration_slope_upper")
    if hi is not None and hi < 1:
        said.append("il **exagère les écarts** de risque entre les personnes (risques annoncés trop extrêmes)")
    elif lo is not None and lo > 1:
        said.append("il **resserre trop** les risques (les écarts entre personnes sont plus grands qu'annoncé)")
    if not said:
        return "aux incertitudes près, les risques annoncés **concordent** avec les risques observés"
    return " et ".join(said)


def _groups(features: Sequence[str]) -> list[tuple[str, list[str]]]:
    """The features by what they describe, in the card's order."""
    from respop.spec.features import CASE_OF, COMPUTED

    person = [f for f in features if f in ("female", "age")]
    profile = [f for f in features if f == "stratum_level"]
    history = [f for f in features if f in HISTORY_FEATURES]
    others = [f for f in features if f.startswith(CASE_OF)]
    hospital = [f for f in features if (f in COMPUTED or f == "readmissions_30d") and f not in person]
    taken = {*person, *profile, *history, *others, *hospital}
    codes = [f for f in features if f not in taken]
    return [
        ("La personne", person),
        ("Sa maladie", profile),
        ("Son recours à l'hôpital dans l'année", hospital),
        ("Les atteintes notées dans ses séjours", codes),
        ("Les autres maladies suivies pour lesquelles elle est aussi repérée la même année", others),
        ("Son histoire des années antérieures (modèle principal seulement)", history),
    ]


def _model_card(r: PredictionReport, disease_name: str, labels: dict[str, str] | None = None) -> str:
    """The model card, in French (:meth:`PredictionReport.model_card`). It is published in the
    store and shown on the boards, so its counts of people go through disclosure control like
    every table's: lone counts of 1 to 10 masked (:func:`respop.privacy.disclosure.masked_count`),
    the calibration deciles as the ``model_calibration`` table
    (:func:`respop.privacy.disclosure.protect_calibration`), and the groups of the fairness table
    (men and women, under and over 75) as parts of the test year's totals
    (:func:`respop.privacy.disclosure.protect_parts`), so that no group is the total minus the
    other."""
    from respop.spec.features import CASE_OF, case_label

    calibration, hidden = protect_target_calibration(r.calibration)
    hidden_totals = {model for target, model in hidden if target == r.main_target}
    n_train, n_test = masked_count(r.n_train), masked_count(r.n_test)
    positives_train = masked_count(r.positives_train)
    positives_test = None if hidden_totals else masked_count(r.positives_test)
    # each target's events of the test year: masked as the main one's (lone 1-10, or a decile total hidden)
    events = {
        t: (None if any(target == t for target, _ in hidden) else masked_count(r.positives[t][1]))
        for t in r.positives
    }
    if r.main_target not in events:
        events[r.main_target] = positives_test
    names = feature_labels(r.disease, r.features, labels)
    name = _in_sentence(disease_name)
    targets = _targets(r) or [r.main_target]
    years = _list([str(y) for y in r.train_years])
    fairness = _fairness_rows(r)

    plain = [
        f"# Fiche du modèle — risque d'aggravation ({name})",
        "",
        "## Ce que fait le modèle",
        "",
        f"Pour chaque personne repérée pour {name} une année donnée (l'année N), le modèle estime sa probabilité "
        f"{_PLAIN_TARGETS['upstratum'][0]} **l'année suivante** (N + 1). Il ne lit que ses séjours "
        "hospitaliers de court séjour (PMSI) de l'année N et des années précédentes.",
        *(
            ["", f"Il estime aussi, de la même façon, sa probabilité {_PLAIN_TARGETS['emergency_or_death'][0]} "
             "l'année suivante : la question des modèles de population publiés à l'étranger, donnée pour comparaison."]
            if "emergency_or_death" in targets else []
        ),
        "",
        "## À quoi il sert",
        "",
        "- À **planifier** en réunion clinique : estimer combien de personnes risquent de s'aggraver, dans quels "
        "profils et quels territoires, pour anticiper leur prise en charge.",
        "- Il ne doit **jamais guider seul une décision individuelle** : seul un clinicien qui connaît le patient "
        "décide. Ce n'est ni un outil de diagnostic ni un outil de tri.",
        "",
        "## Sur quelles personnes il a été construit",
        "",
        f"- Appris sur les personnes suivies en {years} et leur devenir l'année suivante ; testé sur celles de "
        f"{r.test_year} (devenir en {r.test_year + 1}), une année qu'il n'avait pas vue.",
        # this sentence's shape is parsed by tests/attack/viewer.py (the counts a viewer reads)
        f"- {_count(n_train)} personnes-années d'apprentissage ({_count(positives_train)} passées à un profil plus "
        f"sévère ou décédées, {_share(positives_train, n_train)}) ; {_count(n_test)} personnes-années de test "
        f"({_count(positives_test)}, {_share(positives_test, n_test)}).",
        *(
            [f"- Le modèle a été ajusté sur un échantillon aléatoire de {_count(r.n_fitted)} des {_count(n_train)} "
             "personnes-années d'apprentissage, où chaque devenir garde sa part ; le test porte sur toutes les "
             "personnes-années de l'année de test."]
            if r.n_fitted is not None else []
        ),
        f"- {_count(masked_count(r.not_seen_next_year))} personnes-années de ces années n'étaient **plus vues l'année "
        "suivante** (plus repérées, parties du territoire ou décédées hors de l'hôpital) : elles sont exclues.",
        "- Les personnes décédées à l'hôpital l'année N ne sont pas suivies au-delà.",
        "",
        "## Ce qu'il prend en compte (année N)",
        "",
    ]
    for title, group in _groups(r.features):
        if group:
            shown = [names[f].removeprefix(case_label("")) for f in group]  # the other diseases: their names
            plain.append(f"- {title} : {_list(shown, ' ; ')}.")
    if not any(f.startswith(CASE_OF) for f in r.features):
        plain.append("- Aucune autre maladie suivie n'est configurée.")
    else:
        plain.append("- Ajouter ou retirer une maladie de la configuration change ces éléments, donc le modèle.")
    if not r.importance.is_empty():
        top = [row["feature"] for row in r.importance.head(5).iter_rows(named=True) if (row["importance"] or 0) > 0]
        if top:
            plain += ["", f"Ce qui pèse le plus dans ses estimations (modèle principal) : {_list([names.get(f, f) for f in top], ' ; ')}."]
    plain += ["", f"## Est-il fiable ? (année de test {r.test_year}, devenir en {r.test_year + 1})", ""]
    for target in targets:
        rows = {row["model"]: row for row in r.metrics.filter(pl.col("target") == target).iter_rows(named=True)}
        row = rows.get("gradient_boosting") or next(iter(rows.values()), None)
        if row is None:
            continue
        what, yes, no = _PLAIN_TARGETS.get(target, (_TARGET_NAMES.get(target, target).lower(), "une personne qui a eu l'événement", "une qui ne l'a pas eu"))
        plain.append(f"**{_TARGET_NAMES.get(target, target)}** ({_PLAIN_MODELS.get(row['model'], 'modèle')}) :")
        plain.append("")
        if row["auc"] is not None and not np.isnan(row["auc"]):
            plain.append(
                f"- *Classer* : quand on compare {yes} à {no}, le modèle donne le risque le plus élevé à la première "
                f"**dans {100 * row['auc']:.0f} % des cas** (AUC {_fmt(row['auc'], 2)}, intervalle de confiance à 95 % "
                f"de {_fmt(row['auc_lower'], 2)} à {_fmt(row['auc_upper'], 2)} ; 50 % serait le hasard, 100 % un "
                f"classement parfait) : un classement **{_auc_words(row['auc'])}**."
            )
        cal = calibration.filter((pl.col("target") == target) & (pl.col("model") == row["model"])) if "target" in calibration.columns \
            else calibration.filter(pl.col("model") == row["model"])
        if not cal.is_empty():
            mean_predicted = float(cal["mean_predicted"].mean())
            low, high = cal.row(0, named=True), cal.row(-1, named=True)
            plain.append(
                f"- *Annoncer le bon risque* : le modèle annonçait en moyenne {_pct_f(mean_predicted)} ; on a observé "
                f"{_share(events.get(target), n_test)}. Pour les 10 % de personnes au risque annoncé le plus élevé : "
                f"annoncé {_pct_f(high['mean_predicted'])}, observé {_pct_f(high['observed_rate'])} ; pour les 10 % au "
                f"risque le plus bas : annoncé {_pct_f(low['mean_predicted'])}, observé {_pct_f(low['observed_rate'])}. "
                f"{_calibration_words(row)[:1].upper()}{_calibration_words(row)[1:]}."
            )
            plain[-1] = plain[-1].replace("n.d.. ", "n.d. ")  # a sentence ending on "n.d."
        plain.append("")
    plain += _skill_lines(r)
    plain += [
        "## Équité : le classement est-il aussi bon pour tous ?",
        "",
        f"Qualité du classement (AUC) du modèle principal par sexe et par âge sur {r.test_year}, pour le passage à un "
        f"profil plus sévère ou le décès ; « n.d. » quand un groupe compte moins de {MIN_GROUP_CLASS} personnes de "
        "l'un des deux devenirs. Une valeur plus basse dans un groupe : le classement y est moins fiable, les "
        "probabilités y sont à lire avec plus de prudence.",
        "",
        "| groupe | personnes-années | aggravées ou décédées | classement correct (AUC) |",
        "|---|---|---|---|",
    ]
    first = "gradient_boosting" if any(row[0] == "gradient_boosting" for row in fairness) else (fairness[0][0] if fairness else None)
    main_rows = [row for row in fairness if row[0] == first]
    plain += [f"| {value} | {n} | {pos} | {auc} |" for _m, value, n, pos, auc in main_rows] or ["| pas de sexe ni d'âge connus | | | |"]
    plain += [
        "",
        "## Limites",
        "",
        "- PMSI seul (séjours hospitaliers de court séjour) : ni soins de ville, ni médicaments, ni biologie, ni "
        "données sociales ; les profils et le devenir ne voient que ce qui arrive à l'hôpital.",
        "- Les décès hors de l'hôpital ne sont pas vus : ces personnes comptent comme *plus vues l'année suivante* "
        "et sont exclues ; le devenir sous-compte les décès.",
        "- Les profils sont des règles sur les mêmes informations : une part de ce que le modèle prévoit est "
        "mécanique (une personne proche d'un seuil change facilement de profil).",
        f"- Une seule année de test ({r.test_year}) : les performances peuvent dériver avec le codage et "
        "l'organisation des soins ; à revérifier chaque année.",
    ]
    if r.synthetic:
        plain.append(
            "- **Les données sont synthétiques** (générées par respop) : les mesures montrent que la chaîne "
            "fonctionne, pas la qualité de la prédiction sur de vrais patients."
        )
    plain += ["", SECRET_NOTE]
    return "\n".join(plain) + "\n\n" + TECHNICAL_OPEN + "\n\n" + "\n".join(_technical(r, names, calibration, fairness)) + "\n\n" + TECHNICAL_CLOSE + "\n"


def _fairness_rows(r: PredictionReport) -> list[tuple[str, str, str, str, str]]:
    """(model, group in French, person-years, events, AUC) of the fairness table, the counts
    protected as parts of the test year's totals."""
    out = []
    if r.subgroups.is_empty():
        return out
    for (model, _group), part in r.subgroups.group_by(["model", "group"], maintain_order=True):
        n_masked, _ = protect_parts([int(v) for v in part["n"]], r.n_test)
        pos_masked, _ = protect_parts([int(v) for v in part["positives"]], r.positives_test, forced=n_masked)
        for row, hide_n, hide_pos in zip(part.iter_rows(named=True), n_masked, pos_masked, strict=True):
            value = _GROUP_VALUES.get(row["value"], f"{row['value']} ans")
            out.append((model, value, _count(None if hide_n else row["n"]), _count(None if hide_pos else row["positives"]),
                        _fmt(row["auc"])))
    return out


def _technical(r: PredictionReport, names: dict[str, str], calibration: pl.DataFrame, fairness: list) -> list[str]:
    """The card's technical part (inside ``<details>``): the names, algorithms, metrics."""
    lines = [
        "### Variables du modèle",
        "",
        "| variable | libellé |",
        "|---|---|",
        *(f"| `{f}` | {names.get(f, f)} |" for f in r.features),
        "",
        "Les indicateurs oui/non valent 0 ou 1 ; `female` vaut 1 pour `sex == 2` ; le profil entre par son niveau "
        "(`stratum_level`, ordonné)."
        + (" Les variables `previous_…` et `max_previous_stratum_level` (gradient boosting seulement) décrivent les "
           "années antérieures de la personne pour cette maladie : niveau de l'année N − 1 et niveau le plus élevé "
           "avant N, années où elle était déjà un cas, séjours pour la maladie de toutes les années antérieures, "
           "séjours arrivés par les urgences et journées d'hospitalisation de l'année N − 1."
           if any(f in HISTORY_FEATURES for f in r.features) else ""),
        "",
        _case_of_sentence(r.features),
        "",
        "### Modèles",
        "",
        "- Modèle principal, gradient boosting : HistGradientBoostingClassifier de scikit-learn (pas d'apprentissage "
        "0,05, jusqu'à 300 itérations, arrêt précoce sur 15 % de validation (log loss) à partir de 1 000 "
        "personnes-années ; petits arbres de 4 feuilles d'au moins 100 personnes-années sous 100 000 personnes-années "
        "d'apprentissage, 15 feuilles de 40 au-delà).",
        "- Modèle de référence : régression logistique (imputation par la médiane, standardisation, pénalité L2).",
        "- Chaque modèle est ajusté sur toutes les années d'apprentissage puis **recalibré** sur la plus récente "
        "(ordonnée à l'origine et pente d'une régression logistique du devenir de cette année sur le logit des "
        "prédictions d'un modèle ajusté sur les années antérieures) : la population suivie change d'une année à "
        "l'autre et un modèle non recalibré surestime les écarts de risque l'année suivante. Pour le gradient "
        "boosting, la pente estimée est rapprochée de 1 d'autant plus qu'elle est imprécise (peu d'événements "
        "dans l'année).",
        "- Cibles : `upstratum` (1 quand la personne est en N + 1 dans un profil de `stratum_level` plus élevé ou "
        "décédée à l'hôpital ; la personne du profil le plus sévère ne peut « monter » qu'en décédant) et "
        "`emergency_or_death` (au moins un séjour arrivé par les urgences, toute cause, ou un décès à l'hôpital en "
        "N + 1 : la cible de SPARRA et QAdmissions).",
        "",
        f"### Performances (année de test {r.test_year})",
        "",
        "| cible | modèle | AUC (IC 95 %) | score de Brier | Brier, prévalence seule | gain de Brier | log loss | "
        "pente de calibration (IC 95 %) | calibrage global (IC 95 %) | recalibration (ordonnée, pente) | pouvoir prédictif |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in r.metrics.iter_rows(named=True):
        lines.append(
            f"| {_TARGET_NAMES.get(row['target'], row['target'])} | {_MODEL_NAMES.get(row['model'], row['model'])} | "
            f"{_fmt(row['auc'])} ({_fmt(row['auc_lower'])}–{_fmt(row['auc_upper'])}) | {_fmt(row['brier'])} | "
            f"{_fmt(row['brier_reference'])} | {_fmt(row['brier_skill'])} | {_fmt(row.get('log_loss'))} | "
            f"{_fmt(row['calibration_slope'], 2)} "
            f"({_fmt(row['calibration_slope_lower'], 2)}–{_fmt(row['calibration_slope_upper'], 2)}) | "
            f"{_fmt(row['calibration_intercept'], 2)} ({_fmt(row['calibration_intercept_lower'], 2)}–"
            f"{_fmt(row['calibration_intercept_upper'], 2)}) | {_fmt(row.get('recalibration_intercept'), 2)}, "
            f"{_fmt(row.get('recalibration_slope'), 2)} | {'oui' if has_skill(row) else '**aucun**'} |"
        )
    lines += [
        "",
        "AUC : probabilité qu'une personne qui a l'événement ait reçu un risque plus élevé qu'une autre "
        "(0,5 = hasard), avec l'intervalle de DeLong. Score de Brier : erreur quadratique moyenne des probabilités "
        "(plus bas = mieux) ; la référence donne à tous la prévalence de l'apprentissage ; gain de Brier = 1 − Brier / "
        "référence (> 0 : mieux que la prévalence seule). Log loss : entropie croisée (plus bas = mieux). Pente de "
        "calibration : 1 idéalement, < 1 quand les risques prédits sont trop dispersés ; calibrage global : 0 "
        "idéalement, > 0 quand les risques sont sous-estimés en moyenne. Un modèle est dit **sans pouvoir "
        "prédictif** quand son gain de Brier n'est pas positif ou que l'intervalle de son AUC contient 0,5.",
        "",
        "### Calibration (déciles du risque prédit, année de test)",
        "",
    ]
    for (target, kind), cal in calibration.group_by(["target", "model"], maintain_order=True):
        if cal.is_empty():
            continue
        gap = (cal["mean_predicted"] - cal["observed_rate"]).abs().drop_nulls()
        low, high = cal.row(0, named=True), cal.row(-1, named=True)
        lines.append(
            f"- {_TARGET_NAMES.get(target, target)}, {_MODEL_NAMES.get(kind, kind)} : décile le plus bas, prédit "
            f"{_pct_f(low['mean_predicted'])}, observé {_pct_f(low['observed_rate'])} ; décile le plus haut, prédit "
            f"{_pct_f(high['mean_predicted'])}, observé {_pct_f(high['observed_rate'])} ; plus grand écart sur les "
            f"déciles publiés {_fmt(100 * float(gap.max()), 1) + ' points.' if gap.len() else 'n.d.'}"
        )
    if not r.importance.is_empty():
        lines += [
            "",
            "### Variables les plus influentes (gradient boosting, importance par permutation : baisse de l'AUC de test"
            + (f", sur {IMPORTANCE_SAMPLE:,} personnes-années de test tirées au sort)".replace(",", "\u202f")
               if r.n_test > IMPORTANCE_SAMPLE else ")"),
            "",
            *(f"- `{row['feature']}` ({names.get(row['feature'], row['feature'])}) : {_fmt(row['importance'])}"
              for row in r.importance.head(5).iter_rows(named=True)),
        ]
    lines += [
        "",
        f"### Équité, les deux modèles (AUC par sexe et par âge, < {AGE_CUT} ans et ≥ {AGE_CUT} ans)",
        "",
        "| modèle | groupe | personnes-années | aggravées ou décédées | AUC |",
        "|---|---|---|---|---|",
        *(f"| {_MODEL_NAMES.get(m, m)} | {value} | {n} | {pos} | {auc} |" for m, value, n, pos, auc in fairness),
    ]
    if not fairness:
        lines.append("| — | pas de colonne de sexe ou d'âge | | | |")
    return lines
