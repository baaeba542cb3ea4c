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
severity). Booleans count as 0/1; missing values are NaN (handled natively by gradient boosting,
imputed by the median plus a missing indicator in the logistic baseline).

**Models** (:class:`UpstratumModel`, a scikit-learn classifier):

- ``gradient_boosting``: :class:`~sklearn.ensemble.HistGradientBoostingClassifier` with
  learning_rate 0.05, at most 300 iterations, 15 leaves per tree, 40 person-years per leaf, L2
  regularisation 1, and early stopping on a stratified 15 % validation fraction (20 iterations
  without improvement of the log loss) when there are at least 1,000 person-years and 20 of each
  outcome (otherwise all the iterations are run). No class weights: the probabilities stay
  calibrated.
- ``logistic``: ``Pipeline(SimpleImputer(median, missing indicator), StandardScaler,
  LogisticRegression(max_iter=1000))``, the transparent baseline.

**Temporal validation** (:func:`evaluate`): trained on the person-years N ≤ last_year − 2, tested
on N = last_year − 1 (whose targets come from last_year). When the training years hold more than
:data:`TRAIN_SAMPLE` labelled person-years (national data: several millions), both models are fitted
on a random sample of that many, stratified by the target (each outcome keeps its share), drawn
with ``random_state``; the model card says so. The test year is never sampled. Metrics on the test year: AUC, Brier
score, the Brier score of a model that knows only the prevalence (the training prevalence given
to everyone), log loss; calibration by deciles of predicted risk; permutation importance of the
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
from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils import check_array, column_or_1d
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import check_is_fitted

from respop.errors import InputError
from respop.store.disclosure import masked_count, protect_calibration, protect_parts

def _known_features() -> tuple[str, ...]:
    from respop.strata.features import COMPUTED, load_features

    return (*(n for n in COMPUTED if n != "age"), *load_features().names(), "readmissions_30d")


KNOWN_FEATURES: tuple[str, ...] = _known_features()
"""Feature columns of ``person_strata`` used by default when present: the features of
respop.strata.features (computed and shipped code features) and the 30-day re-hospitalisations."""

BASE_FEATURES: tuple[str, ...] = ("age", "female", "stratum_level")
"""Always used by default: age, the female indicator (from ``sex``: 1 male, 2 female), the level."""

KINDS: tuple[str, ...] = ("gradient_boosting", "logistic")
"""The two models: gradient boosting and the logistic baseline."""

LABEL_COLUMNS: tuple[str, ...] = ("patient_key", "disease", "year", "stratum_level", "died_in_year")
"""Columns :func:`labelled` needs."""

ADDED_COLUMNS: tuple[str, ...] = ("next_stratum_level", "died_next_year", "seen_next_year", "label")
"""Columns :func:`labelled` adds."""

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


def labelled(person_strata: pl.DataFrame, last_year: int, *, keep_unseen: bool = False) -> pl.DataFrame:
    """The person-years that have a target, with the target ``label``.

    Rows: the person-years with year N < ``last_year`` and not ``died_in_year`` (people who died in
    N are not followed). Added columns: ``next_stratum_level`` (Int8, the level in N + 1),
    ``died_next_year`` (Boolean, in-hospital death in N + 1), ``seen_next_year`` (Boolean, a row of
    the same patient and disease in N + 1) and ``label`` (Int8): 1 if the level of N + 1 is higher
    or the person died in hospital in N + 1, 0 if they are seen in N + 1 at the same or a lower
    level without dying. Person-years not seen in N + 1 are dropped, or kept with a null label
    (and the other added columns null / False) when ``keep_unseen``. A null ``died_in_year`` counts
    as no death. Sorted by disease, year and patient_key.
    """
    _require(person_strata, LABEL_COLUMNS)
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
    following = ps.filter(pl.col("year") <= last_year).select(
        "patient_key",
        "disease",
        (pl.col("year") - 1).cast(pl.Int16).alias("year"),
        pl.col("stratum_level").alias("next_stratum_level"),
        died.alias("died_next_year"),
        pl.lit(True).alias("seen_next_year"),
    )
    current = ps.filter((pl.col("year") < last_year) & ~died)
    out = current.join(following, on=keys, how="left").with_columns(
        pl.col("seen_next_year").fill_null(False),
    ).with_columns(
        pl.when(~pl.col("seen_next_year"))
        .then(None)
        .when(pl.col("died_next_year") | (pl.col("next_stratum_level") > pl.col("stratum_level")))
        .then(1)
        .otherwise(0)
        .cast(pl.Int8)
        .alias("label")
    )
    if not keep_unseen:
        out = out.filter(pl.col("seen_next_year"))
    return out.sort(keys)


# --------------------------------------------------------------------------------------------
# Features
# --------------------------------------------------------------------------------------------


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
    ``l2_regularization``, ``early_stopping``: ``"auto"`` = on when at least 1,000 person-years and
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
        max_leaf_nodes: int = 15,
        min_samples_leaf: int = 40,
        l2_regularization: float = 1.0,
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
            early = self.early_stopping
            if early == "auto":
                early = len(y) >= 1000 and min(int(y.sum()), int(len(y) - y.sum())) >= 20
            return HistGradientBoostingClassifier(
                learning_rate=self.learning_rate,
                max_iter=self.max_iter,
                max_leaf_nodes=self.max_leaf_nodes,
                min_samples_leaf=self.min_samples_leaf,
                l2_regularization=self.l2_regularization,
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
        p = self.model_.predict_proba(design_matrix(X, self.features_))[:, 1]
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

    ``metrics``: model, auc, brier, brier_reference (Brier score of the training prevalence given
    to everyone), log_loss. ``calibration``: model, bin (1–10, deciles of predicted risk on the
    test year), n, mean_predicted, observed_rate. ``importance``: feature, importance (mean drop of
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
            "models": {row.pop("model"): row for row in self.metrics.to_dicts()},
        }

    def model_card(self, disease_name: str | None = None) -> str:
        """A short Markdown model card, in French (clinicians read it on the boards), with every
        count of people disclosure-controlled (:func:`_model_card`). ``disease_name``: the
        disease's French name (its algorithm's ``name``); the disease id when None."""
        return _model_card(self, disease_name or self.disease)


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


def _auc_or_none(y: np.ndarray, p: np.ndarray) -> float | None:
    positives = int(y.sum())
    if positives < MIN_GROUP_CLASS or len(y) - positives < MIN_GROUP_CLASS:
        return None
    return float(roc_auc_score(y, p))


def evaluate(
    person_strata: pl.DataFrame,
    disease: str,
    last_year: int,
    random_state: int = 0,
    *,
    features: Sequence[str] | None = None,
    synthetic: bool = False,
    train_sample: int | None = TRAIN_SAMPLE,
) -> PredictionReport:
    """Temporal validation of gradient boosting and the logistic baseline for ``disease``.

    Trains on the labelled person-years N ≤ ``last_year`` − 2, tests on N = ``last_year`` − 1.
    ``features``: default :func:`default_features` of ``person_strata``. ``synthetic``: say in the
    model card that the data are synthetic. ``train_sample``: fit on at most this many training
    person-years (:func:`stratified_sample`, seeded by ``random_state``); None: all of them. Raises :class:`InputError` when the disease has fewer
    than two years with a following year, or a set lacks either outcome.
    """
    _require(person_strata, LABEL_COLUMNS)
    rows = person_strata.filter(pl.col("disease") == disease)
    all_labelled = labelled(rows, last_year, keep_unseen=True)
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
    y_train = train["label"].to_numpy().astype(np.int64)
    y_test = test["label"].to_numpy().astype(np.int64)
    for name, y in (("training", y_train), ("test", y_test)):
        if y.min() == y.max():
            raise InputError(
                f"prediction for {disease}: the {name} person-years all have the same outcome "
                f"({'moved up or died' if y[0] else 'did not move up'}); both are needed"
            )
    feature_names = list(features) if features is not None else default_features(rows.columns)
    prevalence = float(y_train.mean())  # of every training person-year, sampled or not
    n_fitted = None
    if train_sample is not None and train.height > train_sample:
        keep = stratified_sample(y_train, train_sample, random_state)
        train_fit, y_fit, n_fitted = train[keep], y_train[keep], len(keep)
    else:
        train_fit, y_fit = train, y_train
    X_train = pd.DataFrame(design_matrix(train_fit, feature_names), columns=feature_names)
    X_test = pd.DataFrame(design_matrix(test, feature_names), columns=feature_names)

    brier_reference = float(brier_score_loss(y_test, np.full(len(y_test), prevalence)))
    metric_rows, calibrations, predictions, fitted = [], [], {}, {}
    for kind in KINDS:
        model = UpstratumModel(kind=kind, features=feature_names, random_state=random_state).fit(X_train, y_fit)
        p = model.predict_proba(X_test)[:, 1]
        fitted[kind], predictions[kind] = model, p
        metric_rows.append({
            "model": kind,
            "auc": float(roc_auc_score(y_test, p)),
            "brier": float(brier_score_loss(y_test, p)),
            "brier_reference": brier_reference,
            "log_loss": float(log_loss(y_test, p, labels=[0, 1])),
        })
        calibrations.append(calibration_table(y_test, p, kind))

    result = permutation_importance(
        fitted["gradient_boosting"], X_test, y_test, scoring="roc_auc",
        n_repeats=IMPORTANCE_REPEATS, random_state=random_state,
        max_samples=min(1.0, IMPORTANCE_SAMPLE / max(len(y_test), 1)),
    )
    importance = pl.DataFrame({
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
            "positives": int(y_test[mask].sum()), "auc": _auc_or_none(y_test[mask], predictions[kind][mask]),
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
        positives_test=int(y_test.sum()),
        not_seen_next_year=not_seen,
        metrics=pl.DataFrame(metric_rows, schema={
            "model": pl.String, "auc": pl.Float64, "brier": pl.Float64,
            "brier_reference": pl.Float64, "log_loss": pl.Float64,
        }),
        calibration=pl.concat(calibrations),
        importance=importance,
        subgroups=subgroups,
        features=feature_names,
        synthetic=synthetic,
        n_fitted=n_fitted,
    )


# --------------------------------------------------------------------------------------------
# Model card
# --------------------------------------------------------------------------------------------

_MODEL_NAMES = {"gradient_boosting": "Gradient boosting", "logistic": "Régression logistique (référence)"}
_GROUP_VALUES = {"male": "hommes", "female": "femmes"}
HIDDEN = "< 11"
"""How a masked count reads in the card."""


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


def _model_card(r: PredictionReport, disease_name: str) -> str:
    """The model card, in French. It is published in the store and shown on the boards, so its
    counts of people go through disclosure control like every table's: lone counts of 1 to 10
    masked (:func:`respop.store.disclosure.masked_count`), the calibration deciles as the
    ``model_calibration`` table (:func:`respop.store.disclosure.protect_calibration`), and the
    groups of the fairness table (men and women, under and over 75) as parts of the test year's
    totals (:func:`respop.store.disclosure.protect_parts`), so that no group is the total minus
    the other."""
    calibration, hidden_totals = protect_calibration(r.calibration)
    n_train, n_test = masked_count(r.n_train), masked_count(r.n_test)
    positives_train = masked_count(r.positives_train)
    positives_test = None if hidden_totals else masked_count(r.positives_test)
    years = ", ".join(str(y) for y in r.train_years)
    name = disease_name.lower()
    lines = [
        f"# Fiche du modèle — passage à un profil plus sévère ({name})",
        "",
        "## Usage prévu",
        "",
        f"Estime, pour chaque personne suivie pour {name} une année N, la probabilité de passer à un profil "
        "plus sévère ou de décéder à l'hôpital en N + 1. Destiné à la **planification en réunion clinique** : "
        "dimensionner les groupes de personnes dont il faut anticiper la prise en charge, comparer territoires "
        "et profils. Il ne doit **jamais guider seul une décision individuelle** sans un clinicien qui connaît "
        "le patient ; ce n'est ni un outil de diagnostic ni un outil de tri.",
        "",
        "## Données",
        "",
        f"- Apprentissage : personnes-années {years} (devenir l'année suivante) ; test : {r.test_year} "
        f"(devenir en {r.test_year + 1}), une validation temporelle.",
        f"- {_count(n_train)} personnes-années d'apprentissage ({_count(positives_train)} passées à un profil plus "
        f"sévère ou décédées, {_share(positives_train, n_train)}) ; {_count(n_test)} personnes-années de test "
        f"({_count(positives_test)}, {_share(positives_test, n_test)}).",
        *(
            [f"- Les modèles ont été ajustés sur un échantillon aléatoire de {_count(r.n_fitted)} des {_count(n_train)} "
             "personnes-années d'apprentissage, stratifié sur le devenir (chaque devenir garde sa part) ; les mesures "
             "portent sur toutes les personnes-années de test."]
            if r.n_fitted is not None else []
        ),
        f"- {_count(masked_count(r.not_seen_next_year))} personnes-années de ces années **n'étaient plus vues l'année "
        "suivante** (plus repérées, parties du territoire ou décédées hors de l'hôpital) et sont exclues de "
        "l'apprentissage et du test.",
        "- Les personnes décédées à l'hôpital en N ne sont pas suivies à partir de N.",
        "",
        "## Cible",
        "",
        "1 quand la personne est, en N + 1, dans un profil plus sévère de la même maladie (un `stratum_level` plus "
        "élevé) ou est décédée à l'hôpital en N + 1 ; 0 quand elle reste dans le même profil ou un profil moins "
        "sévère sans décéder.",
        "",
        "## Variables (année N)",
        "",
        ", ".join(f"`{f}`" for f in r.features) + ". Les indicateurs oui/non valent 0 ou 1 ; `female` vaut 1 pour "
        "`sex == 2` ; le profil entre par son niveau (ordonné).",
        "",
        "## Modèles",
        "",
        "- Gradient boosting : HistGradientBoostingClassifier de scikit-learn (pas d'apprentissage 0,05, jusqu'à "
        "300 itérations, arrêt précoce sur 15 % de validation à partir de 1 000 personnes-années, 15 feuilles, "
        "40 personnes-années par feuille).",
        "- Régression logistique de référence : imputation par la médiane, standardisation, pénalité L2.",
        "",
        f"## Performances (année de test {r.test_year})",
        "",
        "| modèle | AUC | score de Brier | Brier, prévalence seule | log loss |",
        "|---|---|---|---|---|",
    ]
    for row in r.metrics.iter_rows(named=True):
        lines.append(
            f"| {_MODEL_NAMES.get(row['model'], row['model'])} | {_fmt(row['auc'])} | {_fmt(row['brier'])} | "
            f"{_fmt(row['brier_reference'])} | {_fmt(row['log_loss'])} |"
        )
    lines += [
        "",
        "AUC : probabilité qu'une personne qui s'aggrave ou décède ait reçu un risque plus élevé qu'une autre "
        "(0,5 = hasard). Score de Brier : erreur quadratique moyenne des probabilités (plus bas = mieux) ; la "
        "référence donne à tous la prévalence de l'apprentissage.",
        "",
        "## Calibration (déciles du risque prédit, année de test)",
        "",
    ]
    for kind in KINDS:
        cal = calibration.filter(pl.col("model") == kind)
        if cal.is_empty():
            continue
        gap = (cal["mean_predicted"] - cal["observed_rate"]).abs().drop_nulls()
        low, high = cal.row(0, named=True), cal.row(-1, named=True)
        lines.append(
            f"- {_MODEL_NAMES.get(kind, kind)} : décile le plus bas, prédit {_pct_f(low['mean_predicted'])}, "
            f"observé {_pct_f(low['observed_rate'])} ; décile le plus haut, prédit {_pct_f(high['mean_predicted'])}, "
            f"observé {_pct_f(high['observed_rate'])} ; plus grand écart sur les déciles publiés "
            f"{_fmt(100 * float(gap.max()), 1) if gap.len() else 'n.d.'} points."
        )
    lines.append("")
    lines.append(f"« n.d. » : taux observé non publié (moins de 11 événements ou personnes dans le décile, ou secret "
                 f"secondaire) ; « {HIDDEN} » : effectif non publié.")
    if not r.importance.is_empty():
        top = r.importance.head(5)
        lines += [
            "",
            "## Variables les plus influentes (gradient boosting, importance par permutation : baisse de l'AUC de test"
            + (f", sur {IMPORTANCE_SAMPLE:,} personnes-années de test tirées au sort)".replace(",", "\u202f")
               if r.n_test > IMPORTANCE_SAMPLE else ")"),
            "",
            *(f"- `{row['feature']}` : {_fmt(row['importance'])}" for row in top.iter_rows(named=True)),
        ]
    lines += [
        "",
        "## Équité",
        "",
        f"AUC par sexe et par âge (< {AGE_CUT} ans, ≥ {AGE_CUT} ans) sur l'année de test ; n.d. quand un groupe compte "
        f"moins de {MIN_GROUP_CLASS} personnes de l'un des deux devenirs.",
        "",
        "| modèle | groupe | personnes-années | aggravées ou décédées | AUC |",
        "|---|---|---|---|---|",
    ]
    if not r.subgroups.is_empty():
        for (model, _group), part in r.subgroups.group_by(["model", "group"], maintain_order=True):
            n_masked, _ = protect_parts([int(v) for v in part["n"]], r.n_test)
            pos_masked, _ = protect_parts([int(v) for v in part["positives"]], r.positives_test, forced=n_masked)
            for row, hide_n, hide_pos in zip(part.iter_rows(named=True), n_masked, pos_masked, strict=True):
                value = _GROUP_VALUES.get(row["value"], f"{row['value']} ans")
                lines.append(
                    f"| {_MODEL_NAMES.get(model, model)} | {value} | {_count(None if hide_n else row['n'])} | "
                    f"{_count(None if hide_pos else row['positives'])} | {_fmt(row['auc'])} |"
                )
    else:
        lines.append("| — | pas de colonne de sexe ou d'âge | | | |")
    lines += [
        "",
        "Une AUC plus basse dans un groupe signifie que le classement y est moins fiable ; les probabilités "
        "doivent alors y être lues avec plus de prudence.",
        "",
        "## Limites",
        "",
        "- PMSI seul (séjours hospitaliers de court séjour) : ni soins de ville, ni médicaments, ni biologie, ni "
        "données sociales ; les profils et la cible ne voient que ce qui arrive à l'hôpital.",
        "- Les décès hors de l'hôpital ne sont pas vus : ces personnes comptent comme *plus vues l'année suivante* "
        "et sont exclues ; la cible sous-compte les décès et le modèle suppose que la personne est encore suivie.",
        "- Les profils sont des règles sur les mêmes variables : une part du signal est mécanique (une personne "
        "proche d'un seuil change facilement de profil).",
        f"- Une seule année de test ({r.test_year}) : les performances peuvent dériver avec le codage et "
        "l'organisation des soins ; revalider chaque année.",
    ]
    if r.synthetic:
        lines.append(
            "- **Les données sont synthétiques** (générées par respop) : les mesures montrent que la chaîne "
            "fonctionne, pas la qualité de la prédiction sur de vrais patients."
        )
    return "\n".join(lines) + "\n"
