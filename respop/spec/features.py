"""The features catalogue: the names the strata conditions and the prediction model use.

Three kinds (docs/strata.md), all per person and year:

- the **computed** features of :data:`COMPUTED` (hospital use, the latest disease stay), whose
  expressions are written in each engine (``respop.strata.features`` for polars,
  ``respop.spark.strata`` for Spark);
- one **case-of** feature per configured disease other than the one stratified,
  ``case_of_<disease>`` (:func:`case_feature`): the person is a case of that disease the same
  year. Adding a disease adds one to every other disease's features (the model card says which
  a model used);
- the **code** features of ``algorithms/features.toml`` (a stay of the window carries one of the
  codes), which clinicians extend without touching Python.

Nothing here knows about an engine.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from pydantic import Field

from respop.errors import ConfigError
from respop.spec.algorithm import MAX_LOOKBACK_YEARS, Criterion, _Model

COMPUTED: dict[str, str] = {
    "age": "age in the year",
    "disease_stays_12m": "qualifying stays of the disease exiting in the year",
    "disease_stays_window": "qualifying stays over the case's look-back window (the year included)",
    "disease_emergency_stays_12m": "… of them admitted through the emergency department",
    "disease_bed_days_12m": "length of stay summed over the disease's stays of the year",
    "days_since_disease_stay": "days from the latest qualifying stay's exit to 31 December",
    "stays_12m": "all kept stays exiting in the year (séances excluded)",
    "emergency_stays_12m": "… admitted through the emergency department",
    "bed_days_12m": "length of stay summed over the stays of the year",
}
"""Computed features (name → meaning)."""

COMPUTED_LABELS: dict[str, str] = {
    "age": "Âge",
    "disease_stays_12m": "Séjours pour la maladie dans l'année",
    "disease_stays_window": "Séjours pour la maladie sur la période d'antériorité",
    "disease_emergency_stays_12m": "Séjours pour la maladie arrivés par les urgences",
    "disease_bed_days_12m": "Journées d'hospitalisation pour la maladie",
    "days_since_disease_stay": "Jours depuis le dernier séjour pour la maladie",
    "stays_12m": "Séjours de l'année (toutes causes)",
    "emergency_stays_12m": "Arrivées par les urgences (toutes causes)",
    "bed_days_12m": "Journées d'hospitalisation (toutes causes)",
    "readmissions_30d": "Réhospitalisations à 30 jours",
}
"""French labels of the computed features and of the 30-day re-hospitalisations (the boards)."""

MODEL_LABELS: dict[str, str] = {
    "female": "Sexe (femme ou homme)",
    "stratum_level": "Profil de gravité de l'année (du moins sévère au plus sévère)",
    "previous_stratum_level": "Profil de l'année précédente",
    "max_previous_stratum_level": "Profil le plus sévère des années antérieures",
    "previous_case_years": "Années antérieures où la personne était déjà repérée",
    "previous_disease_stays": "Séjours pour la maladie des années antérieures",
    "previous_emergency_stays_12m": "Arrivées par les urgences l'année précédente",
    "previous_bed_days_12m": "Journées d'hospitalisation l'année précédente",
}
"""French labels of the model's own terms (sex, the profile's level, the person's history): the
catalogue's features have theirs in the run's catalogue."""

OUTCOMES = ("readmissions_30d", "died_in_year")
"""Outcomes of the year kept beside the features (not for conditions)."""

CASE_OF = "case_of_"
"""Prefix of the case-of features: ``case_of_<disease>``."""


def case_feature(disease: str) -> str:
    """The feature saying a person is a case of ``disease`` the same year."""
    return f"{CASE_OF}{disease}"


def case_label(name: str) -> str:
    """French label of a case-of feature, from the disease's French name (its spec)."""
    return f"Cas de la même année : {name}"


def case_features(disease: str, diseases: Iterable[str]) -> list[str]:
    """The case-of features of ``disease``'s person-years: one per other configured disease, in
    the configured order."""
    return [case_feature(d) for d in diseases if d != disease]


class CodeFeature(Criterion):
    """A boolean feature: a stay of the window carries one of ``codes`` at one of ``positions``."""

    lookback_years: int = Field(0, ge=0, le=MAX_LOOKBACK_YEARS)
    comorbidity: bool = Field(False, description="a comorbidity the survival's Cox model adjusts for")


class FeaturesSpec(_Model):
    codes: dict[str, CodeFeature] = Field(default_factory=dict)

    def names(self) -> list[str]:
        return list(self.codes)


RESERVED = {
    "true", "false", "True", "False", "and", "or", "not", "patient_key", "disease", "year", "residence_zone",
    "territory_id", "territory_name", "sex", "stratum", "stratum_level",
}
"""Names a code feature cannot take: words of the condition language and columns of the output."""


def load_features(folder: str | Path | None = None) -> FeaturesSpec:
    """``features.toml`` of the algorithms folder; a folder without one uses the shipped file."""
    from respop.tomlfiles import load_toml_model
    from respop.resources import algorithms_dir

    shipped = algorithms_dir()  # the shipped folder (respop.spec.loaders.shipped_algorithms_dir)
    path = Path(folder or shipped) / "features.toml"
    if not path.is_file():
        path = shipped / "features.toml"
    if not path.is_file():
        return FeaturesSpec()
    spec = load_toml_model(path, FeaturesSpec, "features file")
    for name in spec.codes:
        if name in COMPUTED or name in OUTCOMES:
            raise ConfigError(f"{path}: key 'codes.{name}': a computed feature already has this name; choose another")
        if name.startswith(CASE_OF):
            raise ConfigError(f"{path}: key 'codes.{name}': names starting with {CASE_OF!r} are the case-of features; choose another")
        if name in RESERVED or not name.isidentifier() or not name.islower():
            raise ConfigError(
                f"{path}: key 'codes.{name}': not usable as a feature name (lower-case identifier, not one of {sorted(RESERVED)})"
            )
    return spec


def known_features(features: FeaturesSpec, diseases: Iterable[str]) -> set[str]:
    """The names a strata condition may use when ``diseases`` are the diseases there are."""
    return set(COMPUTED) | {case_feature(d) for d in diseases} | set(features.names())


def model_features(features: FeaturesSpec, case_of: Iterable[str] = ()) -> list[str]:
    """The columns of the person strata a prediction model may use: the computed features, the
    case-of features ``case_of`` (:func:`case_features`), the code features and the 30-day
    re-hospitalisations (not the deaths of the year, which are outcomes)."""
    return [*COMPUTED, *case_of, *features.names(), "readmissions_30d"]
