"""Prediction of moving up a stratum: the target, the estimator, the temporal validation."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from scipy.stats import spearmanr
from sklearn.base import clone
from sklearn.metrics import roc_auc_score
from threadpoolctl import threadpool_limits

from respop.errors import InputError
from respop.strata.prediction import (
    KNOWN_FEATURES,
    UpstratumModel,
    calibration_table,
    default_features,
    design_matrix,
    evaluate,
    labelled,
    stratified_sample,
)

SCHEMA = {
    "patient_key": pl.String,
    "disease": pl.String,
    "year": pl.Int16,
    "stratum": pl.String,
    "stratum_level": pl.Int8,
    "age": pl.Int16,
    "sex": pl.Int8,
    "died_in_year": pl.Boolean,
}


@pytest.fixture(autouse=True, scope="module")
def _one_openmp_thread():
    """Gradient boosting's OpenMP threads slow down by an order of magnitude on a busy machine
    (e.g. pytest -n): one thread keeps these small fits fast and predictable."""
    with threadpool_limits(limits=1, user_api="openmp"):
        yield


def rows(data: list[tuple]) -> pl.DataFrame:
    """(patient_key, year, stratum_level, died_in_year) → a person_strata table (diabetes)."""
    return pl.DataFrame(
        [
            {"patient_key": k, "disease": "diabetes", "year": y, "stratum": f"s{lv}", "stratum_level": lv,
             "age": 70, "sex": 1, "died_in_year": d}
            for k, y, lv, d in data
        ],
        schema=SCHEMA,
    )


# --------------------------------------------------------------------------------------------
# labelled
# --------------------------------------------------------------------------------------------


HAND_MADE = [
    ("up", 2020, 1, False), ("up", 2021, 2, False),
    ("same", 2020, 2, False), ("same", 2021, 2, False),
    ("down", 2020, 3, False), ("down", 2021, 1, False),
    ("died_next", 2020, 2, False), ("died_next", 2021, 1, True),   # died in N+1, lower level: still 1
    ("unseen", 2020, 2, False),                                    # no row in 2021
    ("died_now", 2020, 3, True), ("died_now", 2021, 3, False),     # died in N: not followed
    ("last", 2022, 1, False),                                      # last year: no N+1
    ("gap", 2019, 1, False), ("gap", 2021, 3, False),              # 2019 → 2020 unseen, 2021 → 2022 unseen
]


def test_labelled_hand_made_rows():
    out = labelled(rows(HAND_MADE), last_year=2022)
    got = {(r["patient_key"], r["year"]): r["label"] for r in out.iter_rows(named=True)}
    assert got == {
        ("up", 2020): 1,          # higher level in N+1
        ("same", 2020): 0,        # same level
        ("down", 2020): 0,        # lower level
        ("died_next", 2020): 1,   # in-hospital death in N+1, whatever the level
    }
    assert out["label"].dtype == pl.Int8
    assert out.filter(pl.col("patient_key") == "up")["next_stratum_level"].to_list() == [2]
    assert set(out.columns) >= {*SCHEMA, "next_stratum_level", "died_next_year", "seen_next_year", "label"}


def test_labelled_keep_unseen_counts_the_not_seen():
    out = labelled(rows(HAND_MADE), last_year=2022, keep_unseen=True)
    unseen = out.filter(~pl.col("seen_next_year"))
    assert sorted(zip(unseen["patient_key"], unseen["year"])) == [
        ("died_now", 2021), ("down", 2021), ("gap", 2019), ("gap", 2021), ("same", 2021), ("unseen", 2020),
        ("up", 2021),
    ]
    assert unseen["label"].null_count() == unseen.height
    # died in N and the last year are never rows
    assert out.filter(pl.col("patient_key") == "died_now")["year"].to_list() == [2021]
    assert out.filter(pl.col("year") >= 2022).is_empty()
    assert out.filter(pl.col("patient_key") == "died_next").height == 1  # 2021 row died: not followed


def test_labelled_respects_last_year_and_disease():
    data = rows([("a", 2020, 1, False), ("a", 2021, 2, False), ("a", 2022, 3, False)])
    hf = data.with_columns(pl.lit("heart_failure").alias("disease"), pl.lit(1, pl.Int8).alias("stratum_level"))
    both = pl.concat([data, hf.filter(pl.col("year") == 2021)])
    out = labelled(both, last_year=2021)
    # last_year 2021: only 2020 is labelled, from 2021; the heart-failure row of 2021 has no 2020 row
    assert out.select("disease", "year", "label").rows() == [("diabetes", 2020, 1)]


def test_labelled_errors():
    with pytest.raises(InputError, match="stratum_level"):
        labelled(rows(HAND_MADE).drop("stratum_level"), 2022)
    with pytest.raises(InputError, match="one row per person-year"):
        labelled(rows([("a", 2020, 1, False), ("a", 2020, 2, False)]), 2022)


# --------------------------------------------------------------------------------------------
# Simulated person-years with a known logistic truth
# --------------------------------------------------------------------------------------------

YEARS = (2019, 2020, 2021, 2022)
N_FIRST, N_NEW = 2200, 700


def true_logit(age, female, level, disease_stays, emergency, ckd, cardio, bed_days):
    return (
        -2.2 + 0.045 * (age - 70) - 0.3 * female + 0.5 * (level - 2) + 0.55 * disease_stays
        + 0.6 * emergency + 0.9 * ckd + 0.5 * cardio + 0.015 * bed_days
    )


def simulate(seed: int = 1) -> pl.DataFrame:
    """Person-years of one disease over :data:`YEARS`: each row's features are drawn, its target is
    drawn from :func:`true_logit`, and the next year's row (level up or death when 1, same or lower
    level when 0, absent for 10 % at random) carries it. ``p_true`` is the true probability."""
    rng = np.random.default_rng(seed)
    frames = []
    carry_keys = np.array([], dtype=object)
    carry = {"age": np.array([], dtype=int), "sex": np.array([], dtype=int), "level": np.array([], dtype=int),
             "died": np.array([], dtype=bool)}
    next_id = 0
    for year in YEARS:
        n_new = N_FIRST if year == YEARS[0] else N_NEW
        keys = np.concatenate([carry_keys, np.array([f"p{next_id + i:06d}" for i in range(n_new)], dtype=object)])
        next_id += n_new
        age = np.concatenate([carry["age"] + 1, rng.integers(45, 95, n_new)])
        sex = np.concatenate([carry["sex"], rng.integers(1, 3, n_new)])
        level = np.concatenate([carry["level"], rng.integers(1, 4, n_new)])
        died = np.concatenate([carry["died"], np.zeros(n_new, dtype=bool)])
        n = len(keys)
        disease_stays = rng.poisson(0.3 + 0.3 * level)
        emergency = rng.binomial(disease_stays, 0.4)
        bed_days = rng.poisson(4 * disease_stays)
        ckd = rng.random(n) < 0.2
        cardio = rng.random(n) < 0.3
        eye = rng.random(n) < 0.15  # noise
        p = 1 / (1 + np.exp(-true_logit(age, sex == 2, level, disease_stays, emergency, ckd, cardio, bed_days)))
        label = rng.random(n) < p
        frames.append(pl.DataFrame({
            "patient_key": keys.astype(str), "disease": "diabetes", "year": year,
            "stratum": [f"s{v}" for v in level], "stratum_level": level, "age": age, "sex": sex,
            "died_in_year": died, "disease_stays_12m": disease_stays, "disease_emergency_stays_12m": emergency,
            "disease_bed_days_12m": bed_days, "ckd": ckd, "cardiovascular": cardio, "eye": eye, "p_true": p,
        }, schema_overrides={**SCHEMA, "disease_stays_12m": pl.Int32, "disease_emergency_stays_12m": pl.Int32,
                             "disease_bed_days_12m": pl.Int32}))
        # next year: people alive at the end of the year, 90 % seen again
        follow = ~died & (rng.random(n) < 0.9)
        up_possible = level < 3
        goes_up = label & up_possible & (rng.random(n) < 0.8)
        dies = label & ~goes_up
        down = ~label & (level > 1) & (rng.random(n) < 0.2)
        new_level = np.where(goes_up, level + 1, np.where(down, level - 1, level))
        carry_keys = keys[follow]
        carry = {"age": age[follow], "sex": sex[follow], "level": new_level[follow], "died": dies[follow]}
    return pl.concat(frames)


@pytest.fixture(scope="module")
def simulated() -> pl.DataFrame:
    return simulate()


@pytest.fixture(scope="module")
def report(simulated):
    return evaluate(simulated, "diabetes", last_year=2022, random_state=0, synthetic=True)


def test_simulated_targets_follow_the_truth(simulated):
    lab = labelled(simulated, 2022)
    # the simulated target is drawn from p_true: the mean label matches the mean probability
    assert abs(lab["label"].mean() - lab["p_true"].mean()) < 0.02


def test_evaluate_counts_and_years(report, simulated):
    all_lab = labelled(simulated, 2022, keep_unseen=True)
    assert report.train_years == [2019, 2020]
    assert report.test_year == 2021
    assert report.n_train == all_lab.filter(pl.col("seen_next_year") & (pl.col("year") <= 2020)).height
    assert report.n_test == all_lab.filter(pl.col("seen_next_year") & (pl.col("year") == 2021)).height
    assert report.not_seen_next_year == all_lab.filter(~pl.col("seen_next_year")).height > 0
    assert 0 < report.positives_test < report.n_test
    assert "p_true" not in report.features
    assert {"age", "female", "stratum_level", "ckd", "eye"} <= set(report.features)


def test_both_models_discriminate_close_to_the_truth(report, simulated):
    test = labelled(simulated, 2022).filter(pl.col("year") == 2021)
    true_auc = roc_auc_score(test["label"].to_numpy(), test["p_true"].to_numpy())
    metrics = {row["model"]: row for row in report.metrics.iter_rows(named=True)}
    assert set(metrics) == {"gradient_boosting", "logistic"}
    for row in metrics.values():
        assert row["auc"] > 0.75
        assert abs(row["auc"] - true_auc) < 0.04, (row["auc"], true_auc)
        assert row["brier"] < row["brier_reference"]
        assert 0 < row["log_loss"] < 1


def test_calibration_deciles(report):
    for model in ("gradient_boosting", "logistic"):
        cal = report.calibration.filter(pl.col("model") == model)
        assert cal["bin"].to_list() == list(range(1, 11))
        assert cal["n"].sum() == report.n_test
        assert cal["n"].max() - cal["n"].min() <= 1
        assert spearmanr(cal["bin"], cal["observed_rate"]).statistic > 0.8
        assert cal["observed_rate"][-1] > 3 * cal["observed_rate"][0]
        assert (cal["mean_predicted"] - cal["observed_rate"]).abs().max() < 0.12


def test_importance_finds_the_signal(report):
    imp = report.importance
    assert set(imp.columns) >= {"feature", "importance"}
    assert imp.height == len(report.features)
    top = imp.head(4)["feature"].to_list()
    assert "age" in top
    value = dict(zip(imp["feature"], imp["importance"]))
    assert value["eye"] < value["age"] and value["eye"] < value["disease_stays_12m"]


def test_subgroups_and_model_card(report):
    sub = report.subgroups
    assert set(sub["value"]) == {"male", "female", "< 75", "≥ 75"}
    assert sub["auc"].null_count() == 0
    card = report.model_card("Diabète")
    for row in report.metrics.iter_rows(named=True):
        assert f"{row['auc']:.3f}".replace(".", ",") in card
        assert f"{row['brier']:.3f}".replace(".", ",") in card
    for word in ("Fiche du modèle", "(diabète)", "réunion clinique", "clinicien", "Calibration", "Équité", "Limites",
                 "synthétiques", "hors de l'hôpital", "2019 et 2020"):
        assert word in card
    assert report.metrics_dict()["models"]["logistic"]["auc"] == report.metrics.filter(
        pl.col("model") == "logistic")["auc"].item()


ENGLISH = ("female", "male", "stratum", "level", "boosting", "gradient", "loss", "classifier", "feature", "previous",
           "scikit", "upstratum", "emergency", "death", "case", "days", "stays", "window", "brier", "the", "model")
"""English words (and raw terms) the clinicians' part of the card must not show."""


def assert_plain_french(text: str) -> None:
    """No raw identifier (snake_case, code, backticks) and none of :data:`ENGLISH` in ``text``."""
    import re

    assert not re.findall(r"\b[A-Za-z0-9]+(?:_[A-Za-z0-9]+)+\b", text)
    assert "==" not in text and "`" not in text and "<details>" not in text
    words = set(re.findall(r"[a-zà-ÿ]+", text.lower()))
    assert not words & set(ENGLISH), sorted(words & set(ENGLISH))


def test_the_model_card_speaks_to_clinicians_then_folds_the_technical_details(report):
    """The card (issue 19): what the model predicts, for whom, over which horizon, how often it
    ranks right and whether its risks match, in French sentences with the features' French
    labels; the names, algorithm and metrics in a folded <details> block."""
    from respop.strata.prediction import TECHNICAL_OPEN, feature_labels, split_card

    labels = {"eye": "Rétinopathie (libellé du catalogue de l'exécution)"}
    card = report.model_card("Diabète", labels)
    plain, technical = split_card(card)
    assert card.count(TECHNICAL_OPEN) == 1 and card.rstrip().endswith("</details>")
    assert f"{TECHNICAL_OPEN}\n\n" in card  # a blank line: the Markdown inside is rendered
    assert_plain_french(plain)
    assert_plain_french(split_card(report.model_card("Diabète"))[0])  # the shipped catalogue's labels without the run's
    # whom, what event, which horizon, how often right, calibration, limits
    for words in ("Pour chaque personne repérée pour diabète", "l'année suivante", "profil plus sévère",
                  "décéder à l'hôpital", "jamais guider seul une décision individuelle", "## Limites"):
        assert words in plain, words
    main = report.metrics.filter((pl.col("target") == report.main_target) & (pl.col("model") == "gradient_boosting")).row(0, named=True)
    assert f"**dans {100 * main['auc']:.0f} % des cas** (AUC {main['auc']:.2f}".replace(".", ",") in plain
    assert "le modèle annonçait en moyenne" in plain and "on a observé" in plain
    assert "Rétinopathie (libellé du catalogue de l'exécution)".lower() in plain.lower()
    names = feature_labels(report.disease, report.features, labels)
    for feature in report.features:
        assert names[feature] in technical and f"`{feature}`" in technical
    for words in ("HistGradientBoostingClassifier", "log loss", "`sex == 2`", "score de Brier", "Gradient boosting"):
        assert words in technical, words


def test_evaluate_needs_three_years(simulated):
    two_years = simulated.filter(pl.col("year") >= 2021)
    with pytest.raises(InputError, match="at least three years"):
        evaluate(two_years, "diabetes", last_year=2022)
    with pytest.raises(InputError, match="at least three years"):
        evaluate(simulated, "heart_failure", last_year=2022)


def test_evaluate_needs_both_outcomes():
    data = rows([(f"k{i}", y, 1, False) for i in range(30) for y in (2019, 2020, 2021, 2022)])
    with pytest.raises(InputError, match="same outcome"):
        evaluate(data, "diabetes", last_year=2022)


def test_stratified_sample_keeps_each_outcome_share():
    y = np.array([1] * 300 + [0] * 2700)
    keep = stratified_sample(y, 1000, random_state=4)
    assert len(keep) == 1000 == len(np.unique(keep))
    assert (np.diff(keep) > 0).all()
    assert y[keep].sum() == 100
    assert (keep == stratified_sample(y, 1000, random_state=4)).all()
    assert not (keep == stratified_sample(y, 1000, random_state=5)).all()
    assert (stratified_sample(y, 5000) == np.arange(3000)).all()


def test_evaluate_fits_on_a_sample_of_the_training_years(simulated, report):
    sampled = evaluate(simulated, "diabetes", last_year=2022, random_state=0, train_sample=2000)
    assert sampled.n_fitted == 2000 and report.n_fitted is None
    assert (sampled.n_train, sampled.n_test, sampled.positives_train) == (report.n_train, report.n_test, report.positives_train)
    assert sampled.metrics["brier_reference"].to_list() == report.metrics["brier_reference"].to_list()
    for full, part in zip(report.metrics["auc"], sampled.metrics["auc"], strict=True):
        assert abs(full - part) < 0.03
    card = sampled.model_card()
    n = lambda v: f"{v:,}".replace(",", "\u202f")  # noqa: E731
    assert f"échantillon aléatoire de {n(sampled.n_fitted)} des {n(sampled.n_train)} personnes-années" in card
    assert "échantillon aléatoire" not in report.model_card()
    assert sampled.metrics_dict()["n_fitted"] == 2000 and report.metrics_dict()["n_fitted"] == report.n_train


# --------------------------------------------------------------------------------------------
# The estimator
# --------------------------------------------------------------------------------------------


def test_clone_get_params_set_params():
    model = UpstratumModel(kind="logistic", features=("age", "female"), random_state=3, max_iter=50)
    params = model.get_params()
    assert params["kind"] == "logistic"
    assert params["features"] == ("age", "female")
    assert params["random_state"] == 3 and params["max_iter"] == 50
    copy = clone(model)
    assert copy is not model and copy.get_params() == params
    assert copy.set_params(kind="gradient_boosting", C=0.5) is copy
    assert copy.kind == "gradient_boosting" and copy.C == 0.5 and model.kind == "logistic"
    assert not hasattr(copy, "model_")


def test_fit_predict_on_pandas_and_polars(simulated):
    lab = labelled(simulated, 2022)
    train, test = lab.filter(pl.col("year") <= 2020), lab.filter(pl.col("year") == 2021)
    for kind in ("gradient_boosting", "logistic"):
        model = UpstratumModel(kind=kind).fit(train.to_pandas(), train["label"].to_numpy())
        assert model.features_ == default_features(train.columns)
        assert model.n_features_in_ == len(model.features_)
        assert model.classes_.tolist() == [0, 1]
        proba = model.predict_proba(test.to_pandas())
        assert proba.shape == (test.height, 2)
        np.testing.assert_allclose(proba.sum(axis=1), 1.0)
        np.testing.assert_allclose(model.predict_proba(test), proba)  # a polars frame works too
        assert set(np.unique(model.predict(test))) <= {0, 1}
        fitted_copy = clone(model)
        assert not hasattr(fitted_copy, "model_")


def test_default_features_and_design_matrix():
    columns = ["patient_key", "year", "stratum", "stratum_level", "age", "sex", "ckd", "stays_12m", "p_true"]
    assert default_features(columns) == ["age", "female", "stratum_level", "stays_12m", "ckd"]
    assert all(f in KNOWN_FEATURES for f in default_features(columns)[3:])
    frame = pl.DataFrame({"age": [70, None], "sex": [2, 1], "ckd": [True, None]},
                         schema={"age": pl.Int16, "sex": pl.Int8, "ckd": pl.Boolean})
    m = design_matrix(frame, ["age", "female", "ckd"])
    np.testing.assert_array_equal(np.isnan(m), [[False, False, False], [True, False, True]])
    assert m[0].tolist() == [70.0, 1.0, 1.0] and m[1, 1] == 0.0
    m2 = design_matrix(frame.to_pandas(), ["age", "female", "ckd"])
    np.testing.assert_array_equal(np.nan_to_num(m, nan=-1), np.nan_to_num(m2, nan=-1))
    with pytest.raises(InputError, match="dialysis"):
        design_matrix(frame, ["dialysis"])


def test_missing_values_are_handled_by_both_models():
    rng = np.random.default_rng(0)
    x = rng.normal(size=600)
    y = (rng.random(600) < 1 / (1 + np.exp(-2 * x))).astype(int)
    hidden = rng.random(600) < 0.3
    X = pl.DataFrame({"days_since_disease_stay": [None if h else v for h, v in zip(hidden, x)]},
                     schema={"days_since_disease_stay": pl.Float64})
    for kind in ("gradient_boosting", "logistic"):
        p = UpstratumModel(kind=kind).fit(X, y).predict_proba(X)[:, 1]
        assert np.isfinite(p).all()
        assert roc_auc_score(y, p) > 0.7


def test_fit_rejects_bad_input():
    X = np.zeros((10, 2))
    with pytest.raises(ValueError, match="only one class"):
        UpstratumModel(kind="logistic").fit(X, np.zeros(10))
    with pytest.raises(ValueError, match="binary"):
        UpstratumModel(kind="logistic").fit(X, np.arange(10) % 3)
    with pytest.raises(ValueError, match="expecting 2 features"):
        UpstratumModel(kind="logistic").fit(X, np.arange(10) % 2).predict_proba(np.zeros((3, 3)))
    with pytest.raises(ValueError, match="kind"):
        UpstratumModel(kind="forest").fit(X, np.arange(10) % 2)


def test_calibration_table_equal_bins_with_ties():
    p = np.r_[np.zeros(50), np.full(50, 0.5)]
    y = np.r_[np.zeros(50), np.ones(50)]
    cal = calibration_table(y, p, "m")
    assert cal["bin"].to_list() == list(range(1, 11))
    assert cal["n"].to_list() == [10] * 10
    assert cal["observed_rate"].to_list() == [0.0] * 5 + [1.0] * 5


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.SkipTestWarning", "ignore::RuntimeWarning")
@pytest.mark.parametrize("model", [
    UpstratumModel(kind="logistic"),
    UpstratumModel(kind="gradient_boosting", max_iter=20),
], ids=["logistic", "gradient_boosting"])
def test_scikit_learn_estimator_checks(model):
    from sklearn.utils.estimator_checks import check_estimator

    failed = [r for r in check_estimator(model, on_fail=None) if r["status"] == "failed"]
    assert not failed, [(r["check_name"], str(r["exception"])[:200]) for r in failed]


def test_the_model_card_publishes_no_count_of_1_to_10(report):
    """The card is shown on the boards: counts of 1 to 10 (a calibration decile's events, a small
    subgroup, the people not seen again) never appear, nor a group that is the total minus the
    other; the masked deciles read n.d., as in the published calibration table."""
    import dataclasses

    from respop.privacy.disclosure import protect_calibration

    cal = report.calibration.with_columns(
        pl.when(pl.col("bin") == 1).then(7 / pl.col("n")).otherwise(pl.col("observed_rate")).alias("observed_rate")
    )
    groups = report.subgroups.with_columns(
        pl.when(pl.col("value") == "≥ 75").then(6).when(pl.col("value") == "< 75").then(report.n_test - 6).otherwise(pl.col("n")).alias("n")
    )
    small = dataclasses.replace(report, calibration=cal, subgroups=groups, not_seen_next_year=4)
    card = small.model_card("Diabète")
    assert "s personnes-années de ces années" in card and "< 11" not in card  # the boards' one symbol, explained
    assert "« s » : valeur soumise au secret statistique" in card
    fairness = card[card.index("### Équité"):]  # both models' rows, in the technical part
    rows = [line.split("|")[3:5] for line in fairness.splitlines() if line.startswith(("| Gradient", "| Régression"))]
    assert len(rows) == report.subgroups.height
    for cells in rows:
        for cell in cells:
            value = cell.strip()
            assert value == "s" or int(value.replace("\u202f", "")) >= 11, rows
    assert sum(cells[0].strip() == "s" for cells in rows) == 4  # the 6 and its complement, for both models
    plain = card[card.index("## Équité"):card.index("## Limites")]  # the main model's rows, masked alike
    assert sum(line.split("|")[2].strip() == "s" for line in plain.splitlines() if line.startswith("| ")) == 2
    assert f"| {report.n_test - 6:,} |".replace(",", "\u202f") not in card
    published, _ = protect_calibration(cal)
    low = published.filter((pl.col("model") == "gradient_boosting") & (pl.col("bin") == 1))
    assert low["observed_rate"].is_null().all()
    assert "Gradient boosting : décile le plus bas, prédit" in card and "observé n.d." in card


# --------------------------------------------------------------------------------------------
# The second target, skill, calibration slope and intercept (issue 18)
# --------------------------------------------------------------------------------------------


def test_labelled_emergency_or_death_target():
    data = rows([
        ("em", 2020, 2, False), ("em", 2021, 1, False),        # an emergency stay in N+1, lower level: 1
        ("quiet", 2020, 1, False), ("quiet", 2021, 2, False),  # moves up without an emergency stay: 0
        ("died", 2020, 3, False), ("died", 2021, 3, True),     # in-hospital death in N+1: 1
        ("gone", 2020, 1, False),                              # not seen in N+1: no target
    ]).with_columns(pl.Series("emergency_stays_12m", [0, 2, 0, 0, 0, 1, 5], dtype=pl.Int32))
    out = labelled(data, 2021, target="emergency_or_death")
    assert dict(zip(out["patient_key"], out["label"])) == {"em": 1, "quiet": 0, "died": 1}
    assert dict(zip(out["patient_key"], out["next_emergency_stays"])) == {"em": 2, "quiet": 0, "died": 1}
    upstratum = labelled(data, 2021)
    assert dict(zip(upstratum["patient_key"], upstratum["label"])) == {"em": 0, "quiet": 1, "died": 1}
    with pytest.raises(InputError, match="emergency_stays_12m"):
        labelled(rows(HAND_MADE), 2022, target="emergency_or_death")
    with pytest.raises(ValueError, match="target must be one of"):
        labelled(data, 2021, target="readmission")


def test_auc_interval_is_delong():
    from respop.strata.prediction import auc_interval

    rng = np.random.default_rng(3)
    y = rng.random(4000) < 0.2
    p = np.round(1 / (1 + np.exp(-(rng.normal(size=4000) + 1.2 * y - 1.5))), 2)  # ties, as in real scores
    auc, lower, upper = auc_interval(y, p)
    assert auc == pytest.approx(roc_auc_score(y, p))
    # the bootstrap's spread of the AUC agrees with DeLong's standard error
    boots = []
    for _ in range(300):
        i = rng.integers(0, len(y), len(y))
        boots.append(roc_auc_score(y[i], p[i]))
    assert (upper - lower) / (2 * 1.959964) == pytest.approx(np.std(boots), rel=0.15)
    # scores unrelated to the outcome: the 95 % interval holds 0.5 in about 95 % of draws
    draws = np.random.default_rng(0)
    covered = [auc_interval(y, draws.random(4000)) for _ in range(200)]
    assert 0.9 <= np.mean([lo < 0.5 < hi for _, lo, hi in covered]) <= 0.99


def test_calibration_fit_slope_and_intercept():
    from respop.strata.prediction import calibration_fit

    rng = np.random.default_rng(5)
    x = rng.normal(size=30000)
    truth = 1 / (1 + np.exp(-(x - 1.5)))
    y = rng.random(len(x)) < truth
    ok = calibration_fit(y, truth)
    assert ok["calibration_slope_lower"] < 1 < ok["calibration_slope_upper"]
    assert ok["calibration_intercept_lower"] < 0 < ok["calibration_intercept_upper"]
    extreme = calibration_fit(y, 1 / (1 + np.exp(-(2 * x - 3))))  # logits twice too far apart
    assert extreme["calibration_slope"] == pytest.approx(0.5, abs=0.03)
    low = calibration_fit(y, 1 / (1 + np.exp(-(x - 2.5))))  # risks underestimated everywhere
    assert low["calibration_intercept"] == pytest.approx(1.0, abs=0.06)
    assert low["calibration_slope"] == pytest.approx(1.0, abs=0.05)


def with_emergency(simulated: pl.DataFrame, seed: int = 2) -> pl.DataFrame:
    """The simulated person-years with emergency stays driven by the level and age."""
    rng = np.random.default_rng(seed)
    rate = 0.05 * simulated["stratum_level"].to_numpy() * np.exp(0.03 * (simulated["age"].to_numpy() - 70))
    return simulated.with_columns(pl.Series("emergency_stays_12m", rng.poisson(rate), dtype=pl.Int32))


def test_evaluate_both_targets_with_skill_and_calibration(simulated):
    from respop.strata.prediction import METRICS_SCHEMA, has_skill

    data = with_emergency(simulated)
    report = evaluate(data, "diabetes", last_year=2022, random_state=0, synthetic=True, importance=False)
    assert report.metrics.schema == pl.Schema(METRICS_SCHEMA)
    assert report.metrics.select("target", "model").rows() == [
        ("upstratum", "gradient_boosting"), ("upstratum", "logistic"),
        ("emergency_or_death", "gradient_boosting"), ("emergency_or_death", "logistic"),
    ]
    for row in report.metrics.iter_rows(named=True):
        assert row["auc_lower"] < row["auc"] < row["auc_upper"]
        assert row["brier_skill"] == pytest.approx(1 - row["brier"] / row["brier_reference"])
        assert row["calibration_slope_lower"] < row["calibration_slope"] < row["calibration_slope_upper"]
        assert row["recalibration_slope"] is not None  # two training years: recalibrated on the latest
        assert has_skill(row)
    up = report.metrics.filter(pl.col("target") == "upstratum")
    assert (up["calibration_slope_lower"] < 1.0).all() and (up["calibration_slope_upper"] > 1.0).all()
    emergency = labelled(data, 2022, target="emergency_or_death").filter(pl.col("year") == 2021)
    assert report.positives["emergency_or_death"][1] == emergency["label"].sum()
    assert report.positives["upstratum"] == (report.positives_train, report.positives_test)
    cal = report.calibration
    assert cal.group_by("target", "model").agg(pl.col("n").sum())["n"].to_list() == [report.n_test] * 4
    assert set(report.metrics_dict()["targets"]) == {"upstratum", "emergency_or_death"}
    assert report.importance.is_empty()
    card = report.model_card("Diabète")
    assert "Hospitalisation en urgence ou décès" in card and "sans pouvoir prédictif** sur l'année de test" not in card
    assert card.count("| oui |") == 4


def test_a_model_without_skill_is_said_so(simulated):
    """Outcomes drawn at random: no model can do better than the prevalence; the card says it
    plainly for each model, and the board shows the verdict instead of the scores."""
    from respop.boards.data import has_skill as board_skill
    from respop.strata.prediction import NO_SKILL, has_skill

    rng = np.random.default_rng(11)
    noise = simulated.select("patient_key", "disease", "year", "stratum", "age", "sex", "eye", "cardiovascular").with_columns(
        pl.Series("stratum_level", rng.integers(1, 3, simulated.height), dtype=pl.Int8),
        pl.lit(False).alias("died_in_year"),
    )
    # the next level is drawn at random: the outcome depends on this year's level only, not given to the models
    report = evaluate(noise, "diabetes", last_year=2022, random_state=0, importance=False,
                      features=["age", "female", "eye", "cardiovascular"])
    assert not any(has_skill(row) for row in report.metrics.iter_rows(named=True))
    assert all(not board_skill(row) for row in report.metrics.iter_rows(named=True))
    card = report.model_card("Diabète")
    assert card.count(f"{NO_SKILL}** sur l'année de test") == report.metrics.height
    assert "ne doivent pas servir" in card and "| **aucun** |" in card


def test_temporal_recalibration_undoes_a_drift(monkeypatch):
    """The outcome's dependence on a feature weakens each year: a model fitted on every training
    year over-predicts the spread on the test year; the recalibration learnt on the latest training
    year brings the calibration slope back towards 1 (the ranking, hence the AUC, is unchanged).
    The boosting's slope is recalibrated as on large data (SLOPE_PRIOR_SD; on small data, the
    intercept alone: test_small_boosting_recalibrates_the_intercept_alone)."""
    import respop.strata.prediction as prediction

    monkeypatch.setattr(prediction, "SMALL_SLOPE_PRIOR_SD", {})
    rng = np.random.default_rng(8)
    frames = []
    for k, year in enumerate((2017, 2018, 2019, 2020, 2021)):
        n = 6000
        x = rng.normal(size=n)
        up = rng.random(n) < 1 / (1 + np.exp(-(-1.5 + (1.6 - 0.3 * k) * x)))
        keys = [f"k{year}-{i}" for i in range(n)]
        common = {"patient_key": keys, "disease": "diabetes", "stratum": "s", "age": 70, "sex": 1, "died_in_year": False}
        # the person-year of N, and its row of N + 1 (one level up when the outcome is 1; not followed after)
        frames.append(pl.DataFrame({**common, "year": year, "stratum_level": 1, "x": x}, schema_overrides=SCHEMA))
        frames.append(pl.DataFrame({**common, "year": year + 1, "stratum_level": 1 + up, "x": 0.0}, schema_overrides=SCHEMA))
    data = pl.concat(frames)
    plain = evaluate(data, "diabetes", 2022, features=["x"], importance=False, recalibrate=False, targets=["upstratum"])
    fixed = evaluate(data, "diabetes", 2022, features=["x"], importance=False, targets=["upstratum"])
    assert plain.n_test == 6000 and plain.train_years == [2017, 2018, 2019, 2020]
    for kind in ("logistic", "gradient_boosting"):
        before = plain.metrics.filter(pl.col("model") == kind).row(0, named=True)
        after = fixed.metrics.filter(pl.col("model") == kind).row(0, named=True)
        assert before["calibration_slope"] < 0.85, before
        assert abs(after["calibration_slope"] - 1) < abs(before["calibration_slope"] - 1), (before, after)
        assert after["brier"] < before["brier"]
        assert after["auc"] == pytest.approx(before["auc"])  # a monotone map: same ranking


# --------------------------------------------------------------------------------------------
# history features and the shrunk recalibration
# --------------------------------------------------------------------------------------------


def test_with_history_reads_only_the_past_of_the_same_person_and_disease():
    from respop.strata.prediction import HISTORY_FEATURES, with_history

    data = pl.DataFrame({
        "patient_key": ["a", "a", "a", "b", "a", "a"],
        "disease": ["copd", "copd", "copd", "copd", "copd", "diabetes"],
        "year": [2019, 2020, 2022, 2020, 2023, 2020],
        "stratum_level": [1, 3, 2, 1, 1, 4],
        "disease_stays_12m": [1, 2, 0, 1, 1, 9],
        "emergency_stays_12m": [0, 1, 2, 3, 4, 9],
        "bed_days_12m": [5, 6, 7, 8, 9, 9],
    })
    out = with_history(data)
    assert out.columns == [*data.columns, *HISTORY_FEATURES]
    assert out.select(data.columns).equals(data)  # row order and columns unchanged
    got = {(r["patient_key"], r["disease"], r["year"]): r for r in out.iter_rows(named=True)}
    first = got["a", "copd", 2019]
    assert first["previous_stratum_level"] is None and first["max_previous_stratum_level"] is None
    assert first["previous_case_years"] == 0 and first["previous_disease_stays"] == 0
    second = got["a", "copd", 2020]
    assert (second["previous_stratum_level"], second["max_previous_stratum_level"]) == (1, 1)
    assert (second["previous_emergency_stays_12m"], second["previous_bed_days_12m"]) == (0, 5)
    gap = got["a", "copd", 2022]  # not a case in 2021: no previous year, but the earlier years count
    assert gap["previous_stratum_level"] is None and gap["previous_emergency_stays_12m"] is None
    assert (gap["max_previous_stratum_level"], gap["previous_case_years"], gap["previous_disease_stays"]) == (3, 2, 3)
    last = got["a", "copd", 2023]
    assert (last["previous_stratum_level"], last["max_previous_stratum_level"], last["previous_case_years"]) == (2, 3, 3)
    assert last["previous_disease_stays"] == 3 and last["previous_emergency_stays_12m"] == 2
    # another disease of the same person and another person are not read
    assert got["a", "diabetes", 2020]["previous_case_years"] == 0
    assert got["b", "copd", 2020]["max_previous_stratum_level"] is None
    # a table without the use columns gets the level features only
    slim = with_history(data.select("patient_key", "disease", "year", "stratum_level"))
    assert "previous_disease_stays" not in slim.columns and "max_previous_stratum_level" in slim.columns


def test_evaluate_adds_the_history_features_on_request(simulated):
    from respop.strata.prediction import HISTORY_FEATURES

    with_h = evaluate(simulated, "diabetes", 2022, importance=False, targets=["upstratum"])  # the default
    without = evaluate(simulated, "diabetes", 2022, importance=False, targets=["upstratum"], history=False)
    assert [f for f in with_h.features if f in HISTORY_FEATURES] == [
        "previous_stratum_level", "max_previous_stratum_level", "previous_case_years", "previous_disease_stays",
    ]
    assert not set(without.features) & set(HISTORY_FEATURES)
    assert with_h.features[: len(without.features)] == without.features
    # only the boosting gets them: the logistic baseline's figures are the same with or without
    logistic = [r.metrics.filter(pl.col("model") == "logistic") for r in (with_h, without)]
    assert logistic[0].equals(logistic[1])


def test_recalibration_slope_is_shrunk_towards_one_on_a_small_year():
    """On a small latest year the estimated slope is noisy: with the prior it moves towards 1, more
    so when the year is smaller; without (None) it is the plain maximum-likelihood slope."""
    from respop.strata.prediction import temporal_recalibration

    rng = np.random.default_rng(3)

    def world(n_last):
        n = 3000 + n_last
        x = rng.normal(size=n)
        years = np.r_[np.full(3000, 2020), np.full(n_last, 2021)]
        slope = np.where(years == 2021, 0.4, 1.5)  # the latest year's dependence is much weaker
        y = (rng.random(n) < 1 / (1 + np.exp(-(-1.0 + slope * x)))).astype(np.int64)
        return pd_frame(x), y, years

    slopes = {}
    for n_last in (150, 6000):
        X, y, years = world(n_last)
        plain = temporal_recalibration("logistic", ["x"], X, y, years, slope_prior_sd=None)
        assert temporal_recalibration("logistic", ["x"], X, y, years) == plain  # the logistic default: as estimated
        shrunk = temporal_recalibration("logistic", ["x"], X, y, years, slope_prior_sd=0.25)
        assert plain[1] < shrunk[1] < 1, (plain, shrunk)
        slopes[n_last] = (plain[1], shrunk[1])
        # the intercept alone (slope 1) with a prior of 0
        intercept, slope = temporal_recalibration("logistic", ["x"], X, y, years, slope_prior_sd=0.0)
        assert slope == 1.0 and np.isfinite(intercept)
    small, large = slopes[150], slopes[6000]
    assert (small[1] - small[0]) > (large[1] - large[0])  # the small year is shrunk more
    assert abs(large[1] - large[0]) < 0.05  # a well-estimated slope is nearly kept


def test_small_boosting_recalibrates_the_intercept_alone(monkeypatch):
    """No drift, small data: the earlier years' model (800 person-years, no early stopping) is
    over-fitted, over-confident on the latest training year, and its slope there (< 1) made the
    final model too timid on the test year (calibration slope > 1). Below LARGE_TRAINING the
    boosting's recalibration keeps slope 1 and the test-year slope is nearer 1; same AUC."""
    import respop.strata.prediction as prediction

    rng = np.random.default_rng(1)
    frames = []
    for year in (2018, 2019, 2020, 2021):
        n = 400
        x = rng.normal(size=(n, 12))  # two useful features and ten of noise
        up = rng.random(n) < 1 / (1 + np.exp(-(-1.0 + 0.8 * x[:, 0] + 0.4 * x[:, 1])))
        keys = [f"k{year}-{i}" for i in range(n)]
        common = {"patient_key": keys, "disease": "copd", "stratum": "s", "age": 70, "sex": 1, "died_in_year": False}
        feats = {f"x{j}": x[:, j] for j in range(12)}
        frames.append(pl.DataFrame({**common, "year": year, "stratum_level": 1, **feats}, schema_overrides=SCHEMA))
        frames.append(pl.DataFrame({**common, "year": year + 1, "stratum_level": 1 + up, **{k: 0.0 for k in feats}},
                                   schema_overrides=SCHEMA))
    data = pl.concat(frames)
    kw = {"features": [f"x{j}" for j in range(12)], "importance": False, "targets": ["upstratum"], "history": False}

    def boosting():
        report = evaluate(data, "copd", 2022, **kw)
        return report.metrics.filter(pl.col("model") == "gradient_boosting").row(0, named=True)

    now = boosting()
    monkeypatch.setattr(prediction, "SMALL_SLOPE_PRIOR_SD", {})  # the slope shrunk by SLOPE_PRIOR_SD, as before
    before = boosting()
    assert now["recalibration_slope"] == 1.0 and np.isfinite(now["recalibration_intercept"])
    assert before["recalibration_slope"] < 0.9, before  # the over-fitted earlier model's slope
    assert before["calibration_slope"] > 1.2, before  # applied to the final model: too timid
    assert abs(now["calibration_slope"] - 1) < abs(before["calibration_slope"] - 1), (now, before)
    assert now["auc"] == pytest.approx(before["auc"])


def pd_frame(x):
    import pandas as pd

    return pd.DataFrame({"x": x})


def test_gradient_boosting_grows_small_trees_on_small_data(monkeypatch):
    import respop.strata.prediction as prediction

    rng = np.random.default_rng(0)
    X = rng.normal(size=(1200, 2))
    y = (rng.random(1200) < 1 / (1 + np.exp(-X[:, 0]))).astype(int)
    small = UpstratumModel().fit(X, y).model_
    assert (small.max_leaf_nodes, small.min_samples_leaf, small.l2_regularization) == prediction.SMALL_TREES
    monkeypatch.setattr(prediction, "LARGE_TRAINING", 1000)  # the same data counted as large
    large = UpstratumModel().fit(X, y).model_
    assert (large.max_leaf_nodes, large.min_samples_leaf, large.l2_regularization) == prediction.LARGE_TREES
    chosen = UpstratumModel(max_leaf_nodes=9, min_samples_leaf=5, l2_regularization=0.5).fit(X, y).model_
    assert (chosen.max_leaf_nodes, chosen.min_samples_leaf, chosen.l2_regularization) == (9, 5, 0.5)


def test_importance_skipping_unread_features_equals_scoring_every_permutation():
    """The permutation importance takes the score of a permuted feature that no tree reads from
    the unpermuted table (UnreadColumnsScorer): the same importances, to the last bit, as scoring
    every permutation, for the boosting (constant features are never split on) and the logistic
    regression (every feature read)."""
    import pandas as pd
    from sklearn.inspection import permutation_importance
    from sklearn.metrics import get_scorer

    from respop.strata.prediction import UnreadColumnsScorer, read_features

    rng = np.random.default_rng(3)
    n = 600
    x = rng.normal(size=(n, 6))
    x[:, 2] = 1.0  # constant: no split can use it
    x[:, 4] = np.nan  # missing everywhere: set to 0 by the model, never split on
    x[rng.random(n) < 0.3, 1] = np.nan  # missing values in a read feature
    y = (rng.random(n) < 1 / (1 + np.exp(-(1.2 * x[:, 0] - 0.8 * np.nan_to_num(x[:, 1]))))).astype(int)
    names = [f"x{j}" for j in range(6)]
    X = pd.DataFrame(x, columns=names)
    for kind in ("gradient_boosting", "logistic"):
        model = UpstratumModel(kind=kind, features=names).fit(X[:400], y[:400])
        read = read_features(model)
        if kind == "gradient_boosting":
            assert "x2" not in read and "x4" not in read and "x0" in read
        else:
            assert read == names
        for max_samples in (1.0, 0.5):
            kw = {"n_repeats": 3, "random_state": 7, "max_samples": max_samples}
            plain = permutation_importance(model, X[400:], y[400:], scoring="roc_auc", **kw)
            scored = []

            def counted(estimator, table, outcome):
                scored.append(1)
                return get_scorer("roc_auc")(estimator, table, outcome)

            skipping = permutation_importance(
                model, X[400:], y[400:], scoring=UnreadColumnsScorer(counted, read), **kw
            )
            np.testing.assert_array_equal(skipping.importances, plain.importances)
            unread = [k for k, f in enumerate(names) if f not in read]
            if max_samples == 1.0:
                assert np.all(plain.importances[unread] == 0.0)
            elif unread:  # the baseline is scored on every row, the permutations on the rows drawn
                assert len(np.unique(plain.importances[unread])) == 1
            # scored: the baseline, the permutations of each read feature that has several values,
            # and, when rows are drawn, those rows as they are (what permuting any other gives)
            varying = [f for f in read if X[400:][f].nunique(dropna=False) > 1]
            assert len(scored) == 1 + 3 * len(varying) + (0 if max_samples == 1.0 else 1)


def test_read_features_counts_every_feature_when_the_trees_cannot_be_read():
    """Without scikit-learn's fitted trees as expected (a private attribute), every feature is
    read: the importance then scores every permutation instead of failing."""
    from respop.strata.prediction import read_features

    rng = np.random.default_rng(4)
    X = rng.normal(size=(300, 3))
    X[:, 2] = 1.0
    y = (rng.random(300) < 1 / (1 + np.exp(-X[:, 0]))).astype(int)
    model = UpstratumModel(features=["a", "b", "c"]).fit(pd_frame_of(X, ["a", "b", "c"]), y)
    assert "c" not in read_features(model)
    del model.model_._predictors
    assert read_features(model) == ["a", "b", "c"]


def pd_frame_of(x, names):
    import pandas as pd

    return pd.DataFrame(x, columns=names)
