"""What the boards read and show, shared by the Streamlit board (:mod:`respop.boards.app`) and the
meeting dossier (:mod:`respop.boards.report`).

Three layers, each built on the one before:

1. **reads**: the results store through :class:`~respop.store.db.Store` only (no SQL here),
   cached with ``st.cache_data`` and keyed by the store URL, the run and the filters. A
   succeeded run never changes, so its rows are cached for the life of the server; the list of
   runs is re-read every :data:`RUNS_TTL` seconds so that a new ``respop run`` shows up.
   Geometries (WKB in the run's CRS) are decoded into GeoDataFrames here.
2. **frames and sentences**: the rows a page needs (one territory, disease, year), the French
   headline of each page (meeting mode: one message per screen), and the tables as pandas
   DataFrames of French text: French headers, numbers the French way
   (:mod:`respop.boards.labels`), masked counts as "s" (:data:`~respop.boards.labels.MASKED`, primary
   and complementary suppressions alike: never "< 11"), never NaN or None.
3. **figures**: :func:`figure_png` draws one of :data:`FIGURES` with
   :mod:`respop.boards.figures` and caches its PNG bytes (the board shows them with
   ``st.image`` beside a download button; the dossier embeds them).

Outside a Streamlit server (the dossier, tests) ``st.cache_data`` falls back to an in-memory
cache; :func:`quiet_streamlit` silences its "no runtime" warnings.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import logging
import re
import unicodedata
from collections.abc import Callable

import geopandas as gpd
import numpy as np
import pandas as pd
import polars as pl
import shapely
import streamlit as st
from sqlalchemy import inspect
from streamlit import runtime

from respop.boards import figures
from respop.boards.labels import (
    CARE_USE,
    CARE_USE_PER_PERSON,
    MASKED,
    MASKED_NOTE,
    MISSING,
    NNBSP,
    PER_100K,
    fr_dec,
    fr_int,
    fr_pct,
    fr_rate,
    label,
)
from respop.spec.features import MODEL_LABELS
from respop.store import schema
from respop.store.db import Store

RUNS_TTL = 30
"""Seconds the list of runs is cached (a new run appears within this delay)."""

AREA = "Région étudiée"
"""The whole area of the run (level ``area`` of the tables)."""

# ------------------------------------------------------------------------------- French labels
# Labels the boards need beyond :mod:`respop.boards.labels` (store codes of the other tables).

ALL_SUBTYPES = "Tous les cas"
"""The row of every case (sub-type ``all``); the sub-types' own labels come from the catalogue."""

INDICATOR_CHOICES = {
    "prevalence_std": "Prévalence standardisée",
    "prevalence_crude": "Prévalence brute",
    "incidence_std": "Incidence standardisée",
    "incidence_crude": "Incidence brute",
    "cases": "Personnes suivies (cas)",
    "incident_cases": "Nouveaux cas",
}
"""Indicators a disease page can map, trend and compare (columns of the ``indicators`` table)."""

HOSPITAL_KINDS = {"CHU": "CHU", "CH": "Centre hospitalier", "local": "Hôpital de proximité", "private": "Clinique privée"}

FILTER_LABELS = {
    "linkage": "Clé patient inutilisable (chaînage)",
    "legal_entity_duplicates": "Doublons AP-HP / AP-HM / HCL (FINESS géographiques)",
    "inter_hospital_services": "Prestations inter-établissements (SEJ_TYP = B)",
    "error_ghm": "Séjours en erreur de groupage (CMD 90)",
    "invalid_residence": "Code de résidence absent ou invalide",
    "residence_abroad": "Résidence à l'étranger",
    "duplicate_stays": "Séjours en double",
}
"""The quality filters of :data:`respop.pmsi.FILTERS`, in French."""

STEP_LABELS = {
    "input": "Lecture et contrôle du PMSI",
    "territories": "Territoires",
    "cases": "Repérage des cas",
    "strata": "Strates et trajectoires",
    "evaluation": "Évaluation de l'expérimentation",
    "store": "Publication dans la base",
}

RUN_STATUS = {"succeeded": "réussie", "failed": "échouée", "running": "en cours", "interrupted": "interrompue"}

MODELS = {"gradient_boosting": "Gradient boosting (modèle principal)", "logistic": "Régression logistique (référence)"}
MAIN_MODEL = "gradient_boosting"
MAIN_TARGET = "upstratum"
TARGETS = {"upstratum": "Profil plus sévère ou décès", "emergency_or_death": "Hospitalisation en urgence ou décès"}


def has_skill(row: dict) -> bool:
    """The model beats the prevalence (Brier skill > 0) and its AUC interval excludes 0.5 (the
    rule of respop.strata.prediction.has_skill; a run published before these figures: unknown, false)."""
    skill, lower = row.get("brier_skill"), row.get("auc_lower")
    return skill is not None and lower is not None and skill > 0 and lower > 0.5

MODEL_TERMS = {
    "age_per_10_years": "Âge (par tranche de 10 ans)",
    "female": "Femme",
    "readmissions_30d": "Réhospitalisations à 30 jours",
}
"""Terms of the survival and prediction models that are not features of the catalogue (the
features' own labels, computed, case-of and code features, come from the run's catalogue)."""

CARE_MEASURES = ["stays_per_person", "emergency_stays_per_person", "readmissions_30d_per_person", "deaths_per_person"]
"""Care use per person shown side by side (bed-days, on another scale, have their own figure)."""

_REASONS_FR = [
    (re.compile(r"^duplicate primary key \((\w+), (\w+)\).*"), r"clé primaire (\1, \2) en double"),
    (re.compile(r"^(\w+): death before the year of birth \((\w+)\)$"), r"\1 : décès avant l'année de naissance (\2)"),
    (re.compile(r"^(\w+): not the year and month of (\w+)$"), r"\1 : pas l'année et le mois de \2"),
    (re.compile(r"^(\w+): date after (.+)$"), r"\1 : date postérieure au \2"),
    (re.compile(r"^(\w+): not a year and month \(AAAAMM\)$"), r"\1 : pas une année et un mois (AAAAMM)"),
    (re.compile(r"^(\w+): not a 9-character FINESS number$"), r"\1 : pas un numéro FINESS de 9 caractères"),
    (re.compile(r"^(\w+): not an RSA index \(1 to 10 digits\)$"), r"\1 : pas un numéro de RSA (1 à 10 chiffres)"),
    (re.compile(r"^(\w+): not a one-digit return code$"), r"\1 : pas un code retour à un chiffre"),
    (re.compile(r"^(\w+): not a GHM code \(2 digits, a letter, 2 digits, a level\)$"),
     r"\1 : pas un code GHM (2 chiffres, une lettre, 2 chiffres, un niveau)"),
    (re.compile(r"^no loaded stay with this \(ETA_NUM, RSA_NUM\) in (\S+)"), r"aucun séjour chargé de même (ETA_NUM, RSA_NUM) dans \1"),
    (re.compile(r"^(\w+): not an integer$"), r"\1 : pas un nombre entier"),
    (re.compile(r"^(\w+): not a date$"), r"\1 : pas une date"),
    (re.compile(r"^(\w+): below the minimum (.+)$"), r"\1 : inférieur au minimum \2"),
    (re.compile(r"^(\w+): above the maximum (.+)$"), r"\1 : supérieur au maximum \2"),
    (re.compile(r"^(\w+): code absent from the French CIM-10$"), r"\1 : code absent de la CIM-10"),
    (re.compile(r"^(\w+): missing value$"), r"\1 : valeur manquante"),
    (re.compile(r"^(\w+): invalid format$"), r"\1 : format invalide"),
    (re.compile(r"^(\w+): longer than (\d+) characters?$"), r"\1 : plus de \2 caractères"),
    (re.compile(r"^(\w+): shorter than (\d+) characters?$"), r"\1 : moins de \2 caractères"),
    (re.compile(r"^(\w+): not a code of (.+)$"), r"\1 : code absent de \2"),
]


def reason_fr(reason: str | None) -> str:
    """A quarantine reason of the input report in French (technical ones stay as they are)."""
    if not reason:
        return ""
    for pattern, replacement in _REASONS_FR:
        if pattern.match(reason):
            return pattern.sub(replacement, reason)
    return reason


def quiet_streamlit() -> None:
    """Silence Streamlit's "no runtime" warnings: outside a Streamlit server (the dossier, tests)
    the cached functions fall back to an in-memory cache, which is what is wanted."""
    for name in ("streamlit.runtime.caching.cache_data_api", "streamlit.runtime.caching.cache_resource_api",
                 "streamlit.runtime.scriptrunner_utils.script_run_context"):
        logging.getLogger(name).setLevel(logging.ERROR)


if not runtime.exists():
    quiet_streamlit()


# ========================================================================================= reads


@st.cache_resource(show_spinner=False)
def store(url: str) -> Store:
    """One :class:`Store` (one connection pool) per URL for the whole server."""
    return Store(url)


@st.cache_data(ttl=RUNS_TTL, show_spinner=False)
def runs(url: str, name: str | None = None) -> list[dict]:
    """Every run of the store (of the configuration ``name``), newest first, any status."""
    return store(url).runs(name)


_STAMPS: dict[str, dict[int, str]] = {}
"""Per store URL: run id → what identifies that run's content (see :func:`succeeded_runs`)."""


def succeeded_runs(url: str, name: str | None = None) -> list[dict]:
    """The runs that succeeded, newest first.

    The caches are keyed by run id, and a succeeded run never changes, but a store can be deleted
    and made again (``respop run`` on a fresh SQLite file numbers its runs from 1): when a known
    run id comes back with other results, every cache of this module is cleared."""
    done = [r for r in runs(url, name) if r["status"] == "succeeded"]
    seen = _STAMPS.setdefault(url, {})
    for r in done:
        stamp = f"{r.get('results_sha256')}|{r.get('started_at')}"
        if seen.get(r["run_id"], stamp) != stamp:
            for cached in (run_info, read, zones_gdf, territories_gdf, neighbours, figure_png):
                cached.clear()
            seen.clear()
        seen[r["run_id"]] = stamp
    return done


def latest_run(url: str, name: str | None = None) -> int | None:
    """The newest succeeded run of ``name`` (re-read with the list of runs)."""
    done = succeeded_runs(url, name)
    return done[0]["run_id"] if done else None


@st.cache_data(show_spinner=False)
def run_info(url: str, run_id: int) -> dict | None:
    return store(url).run(run_id)


@st.cache_data(show_spinner=False, max_entries=1024)
def read(url: str, table: str, run_id: int, **equals) -> pl.DataFrame:
    """Rows of a result table of one run, filtered by ``column=value`` (:meth:`Store.read`)."""
    return store(url).read(table, run_id, **equals)


def _crs(url: str, run_id: int) -> str | None:
    info = run_info(url, run_id) or {}
    return info.get("crs")


def _geodataframe(frame: pl.DataFrame, crs: str | None) -> gpd.GeoDataFrame:
    geometry = shapely.from_wkb(frame["geometry"].to_list()) if frame.height else []
    return gpd.GeoDataFrame(frame.drop("geometry").to_pandas(), geometry=list(geometry), crs=crs)


@st.cache_data(show_spinner=False)
def zones_gdf(url: str, run_id: int) -> gpd.GeoDataFrame:
    """zone_code, departement, territory_id (NaN outside the scope), population, geometry."""
    return _geodataframe(read(url, "zones", run_id), _crs(url, run_id))


@st.cache_data(show_spinner=False)
def territories_gdf(url: str, run_id: int) -> gpd.GeoDataFrame:
    """The territories with their metrics and dissolved polygons."""
    return _geodataframe(read(url, "territories", run_id).sort("territory_id"), _crs(url, run_id))


def territories(url: str, run_id: int) -> pl.DataFrame:
    """The territories' rows without their geometry, by id."""
    return read(url, "territories", run_id).drop("geometry").sort("territory_id")


def territory_names(url: str, run_id: int) -> dict[int, str]:
    t = territories(url, run_id)
    return dict(zip(t["territory_id"].to_list(), t["territory_name"].to_list(), strict=True))


def territory_name(url: str, run_id: int, territory_id: int) -> str:
    return territory_names(url, run_id).get(territory_id, f"Territoire n° {territory_id}")


def default_territory(url: str, run_id: int) -> int | None:
    """The run's territory of interest, else the first territory."""
    names = territory_names(url, run_id)
    selected = (run_info(url, run_id) or {}).get("selected_territory")
    if selected in names:
        return int(selected)
    return next(iter(names), None)


@st.cache_data(show_spinner=False)
def neighbours(url: str, run_id: int, territory_id: int) -> list[int]:
    """Territories sharing a border with ``territory_id`` (from the zones' geometries)."""
    zones = zones_gdf(url, run_id)
    if len(zones) == 0:
        return []
    mine = zones[zones["territory_id"] == territory_id]
    others = zones[zones["territory_id"].notna() & (zones["territory_id"] != territory_id)]
    if len(mine) == 0 or len(others) == 0:
        return []
    geom = shapely.union_all(mine.geometry.values)
    x0, y0, x1, y1 = zones.total_bounds
    tolerance = 1e-6 * max(x1 - x0, y1 - y0, 1.0)
    near = shapely.dwithin(others.geometry.values, geom, tolerance)
    return sorted({int(t) for t in others.loc[near, "territory_id"]})


MAX_COMPARED = 15
"""Above this many territories (a national run), comparisons show the territory and its
neighbours only: a bar chart of hundreds of territories reads as nothing."""


def compared_ids(url: str, run_id: int, territory_id: int) -> list[int] | None:
    """The territories a comparison shows: None for all of them (at most :data:`MAX_COMPARED`),
    else the territory and its neighbours."""
    if len(territory_names(url, run_id)) <= MAX_COMPARED:
        return None
    return [territory_id, *neighbours(url, run_id, territory_id)]


def comparison_scope(url: str, run_id: int, territory_id: int) -> str:
    """What a comparison covers, in French (for titles)."""
    return " par territoire" if compared_ids(url, run_id, territory_id) is None else " du territoire et de ses voisins"


def territories_heading(url: str, run_id: int, territory_id: int) -> str:
    if compared_ids(url, run_id, territory_id) is None:
        return "Tous les territoires de la région étudiée"
    return "Le territoire et ses voisins"


def comparison_heading(url: str, run_id: int, territory_id: int, year: int) -> str:
    others = "les autres territoires" if compared_ids(url, run_id, territory_id) is None else "les territoires voisins"
    return f"Comparaison avec {others}, {year}"


# ------------------------------------------------------------------------- the run's catalogue
# What the boards say about the diseases (which ones, their French names, sub-types, strata,
# features) is the ``catalogue`` table of the run (respop.spec.catalogue: the specs the run
# computed with), never Python: a disease added by a spec file gets its page and its labels.

NO_CATALOGUE = (
    "Cette exécution a été publiée par une version antérieure de respop, sans le catalogue de ses maladies "
    "(noms, sous-types, strates) : ses pages par maladie ne peuvent pas être affichées. Relancez `respop run` "
    "sur cette configuration pour publier une exécution complète."
)
"""What the boards say for a run whose ``catalogue`` table has no row."""

RESERVED_PATHS = {"accueil", "territoire", "strates", "recours", "trajectoires", "evaluation", "qualite"}
"""The addresses of the board's other pages (a disease page never takes one)."""


@st.cache_data(show_spinner=False)
def has_table(url: str, table: str) -> bool:
    """Whether the store has ``table`` (a store written before a migration may lack it: the
    boards read, they never upgrade a store)."""
    return inspect(store(url).engine).has_table(table)


def catalogue(url: str, run_id: int, **equals) -> pl.DataFrame:
    """The run's catalogue rows (disease, kind, name, rank, label, description, protocol,
    condition, codes, version), in the spec's order; none for a run published before the
    catalogue existed."""
    if not has_table(url, "catalogue"):
        return pl.DataFrame(schema={c.name: pl.Int64 if c.name == "rank" else pl.String
                                    for c in schema.catalogue.columns if c.name not in schema.STORE_KEYS})
    return read(url, "catalogue", run_id, **equals)


def _labels(url: str, run_id: int, disease: str, kind: str) -> dict[str, str]:
    rows = catalogue(url, run_id, disease=disease, kind=kind)
    return dict(zip(rows["name"].to_list(), rows["label"].to_list(), strict=True)) if rows.height else {}


def diseases(url: str, run_id: int) -> list[str]:
    """The diseases of the run's catalogue, in the run's configured order (none for a run
    published before the catalogue: :data:`NO_CATALOGUE`)."""
    rows = catalogue(url, run_id, kind="disease")
    return rows["disease"].to_list() if rows.height else []


def disease_name(url: str, run_id: int, disease: str) -> str:
    """The disease's French name, from its spec (``name`` of its ``[algorithm]``)."""
    return _labels(url, run_id, disease, "disease").get(disease, disease)


def in_sentence(name: str) -> str:
    """A French name inside a sentence: its first letter in lower case ("Maladie rare" → "maladie
    rare"), unless the name starts with an acronym ("ABCD" stays "ABCD")."""
    if len(name) > 1 and name[1].isupper():
        return name
    return name[:1].lower() + name[1:]


def disease_noun(url: str, run_id: int, disease: str) -> str:
    """The disease's name inside a sentence ("suivies pour <nom>", :func:`in_sentence`)."""
    return in_sentence(disease_name(url, run_id, disease))


def slug(text: str) -> str:
    """An address from a French name: "Qualité des données" → "qualite-des-donnees"."""
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[^a-z0-9]+", "-", plain.lower()).strip("-")


def disease_pages(url: str, run_id: int) -> list[tuple[str, str, str]]:
    """(disease, French name, address) of each disease's page, in the catalogue's order; the
    address is the name's :func:`slug`, else the identifier's when that is taken or empty."""
    pages, taken = [], set(RESERVED_PATHS)
    for disease in diseases(url, run_id):
        name = disease_name(url, run_id, disease)
        path = slug(name)
        if not path or path in taken:
            path = slug(disease) or "maladie"
        while path in taken:
            path += "-bis"
        taken.add(path)
        pages.append((disease, name, path))
    return pages


def subtype_labels(url: str, run_id: int, disease: str) -> dict[str, str]:
    """Sub-type → French label, from the disease's spec, and "all" → :data:`ALL_SUBTYPES`."""
    return {"all": ALL_SUBTYPES, **_labels(url, run_id, disease, "subtype")}


def incident_label(url: str, run_id: int, disease: str) -> str:
    """What a new (incident) case of the disease is, from its spec's look-back: "premier séjour
    repéré depuis 5 ans" (a case with no qualifying stay in the look-back years; a run published
    before the catalogue held the look-back: the general wording)."""
    return _labels(url, run_id, disease, "window").get("lookback_years") or "premier séjour repéré sur la période de recul"


def incident_note(url: str, run_id: int, disease: str) -> str:
    """The definition of a new case under a disease page's figures and tables."""
    years = lookback_years(url, run_id, disease)
    if not years:
        return f"Nouveaux cas : {incident_label(url, run_id, disease)}."
    span = "l'année précédente" if years == 1 else f"les {years} années précédentes"
    return (f"Nouveaux cas : {incident_label(url, run_id, disease)}, c'est-à-dire sans séjour pour la maladie "
            f"dans {span} ; une personne déjà connue mais non hospitalisée depuis compte à nouveau.")


def lookback_years(url: str, run_id: int, disease: str) -> int | None:
    """The disease's look-back in years (from the run's catalogue; None for an older run)."""
    rows = catalogue(url, run_id, disease=disease, kind="window")
    return int(rows["rank"][0]) if rows.height else None


def feature_labels(url: str, run_id: int, disease: str) -> dict[str, str]:
    """Feature or model term → French label: the disease's features in the catalogue (computed,
    ``case_of_<disease>`` and code features) and :data:`MODEL_TERMS`."""
    return {**MODEL_LABELS, **MODEL_TERMS, **_labels(url, run_id, disease, "feature")}


STRATA_COLUMNS = {"stratum": pl.String, "stratum_level": pl.Int64, "name": pl.String, "description": pl.String,
                  "protocol": pl.String, "condition": pl.String}


def strata_levels(url: str, run_id: int, disease: str) -> pl.DataFrame:
    """The disease's strata from the catalogue, least severe first: stratum, stratum_level, name
    (French), description, protocol, condition."""
    rows = catalogue(url, run_id, disease=disease, kind="stratum")
    if rows.height == 0:
        return pl.DataFrame(schema=STRATA_COLUMNS)
    return rows.select(
        pl.col("name").alias("stratum"), pl.col("rank").cast(pl.Int64).alias("stratum_level"),
        pl.col("label").alias("name"), "description", "protocol", "condition",
    ).sort("stratum_level")


def strata_names(url: str, run_id: int, disease: str) -> dict[str, str]:
    levels = strata_levels(url, run_id, disease)
    return dict(zip(levels["stratum"].to_list(), levels["name"].to_list(), strict=True))


def indicator_years(url: str, run_id: int, disease: str) -> list[int]:
    return sorted(set(read(url, "indicators", run_id, level="area", disease=disease)["year"].to_list()))


def care_years(url: str, run_id: int, disease: str) -> list[int]:
    return sorted(set(read(url, "care_use", run_id, level="area", disease=disease)["year"].to_list()))


def transition_years(url: str, run_id: int, disease: str) -> list[int]:
    return sorted(set(read(url, "transitions", run_id, disease=disease)["year"].to_list()))


# ============================================================================ frames, sentences


def _value(frame: pl.DataFrame, column: str):
    """The first row's value of ``column`` (None when there is no row)."""
    return frame[column][0] if frame.height else None


SECRET = "secret statistique"
"""What a headline says of a masked count: it may be a small count or a larger one masked so that
a small one cannot be found by subtraction, so never "moins de 11"."""


def people_phrase(n: int | None, noun: str = "personnes") -> str:
    """"1 234 personnes"; a masked count → "nombre soumis au secret statistique (« s »)"."""
    if n is None:
        return f"nombre soumis au {SECRET} (« {MASKED} »)"
    return f"{fr_int(n)} {noun if n > 1 else noun.removesuffix('s')}"


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


def _is_rate(indicator: str) -> bool:
    return indicator.startswith(("prevalence", "incidence"))


def indicator_unit(indicator: str, short: bool = False) -> str:
    if _is_rate(indicator):
        return PER_100K_SHORT if short else PER_100K
    return "personnes"


def indicator_title(url: str, run_id: int, disease: str, indicator: str) -> str:
    """The indicator's French name; incidence and new cases say what a new case is ("Incidence
    standardisée (premier séjour repéré depuis 5 ans)")."""
    name = INDICATOR_CHOICES[indicator]
    if indicator.startswith("incid"):
        name += f" ({incident_label(url, run_id, disease)})"
    return name


def incomplete_label(url: str, run_id: int, disease: str) -> str:
    """What the years without their whole look-back are called on a trend figure."""
    years = lookback_years(url, run_id, disease)
    span = f" (< {years} an{'s' if years > 1 else ''})" if years else ""
    return f"Recul incomplet{span} : cas sous-comptés"


def indicator_format(indicator: str) -> Callable:
    return fr_rate if _is_rate(indicator) else fr_int


def territory_indicators(url: str, run_id: int, territory_id: int, disease: str, subtype: str = "all") -> pl.DataFrame:
    """The territory's indicator rows of every year."""
    return read(url, "indicators", run_id, level="territory", unit=str(territory_id), disease=disease,
                subtype=subtype).sort("year")


def zone_indicators(url: str, run_id: int, territory_id: int, disease: str, year: int) -> pl.DataFrame:
    """The indicator rows of the territory's zones (subtype 'all') for one year."""
    zones = read(url, "zones", run_id).filter(pl.col("territory_id") == territory_id)["zone_code"].to_list()
    return read(url, "indicators", run_id, level="zone", disease=disease, year=year, subtype="all",
                unit=zones).sort("unit")


def territory_care(url: str, run_id: int, territory_id: int, disease: str, year: int) -> pl.DataFrame:
    """Care use of the territory per stratum (most severe first) and its 'all' row last, with the
    strata's French names (column ``name``) and levels."""
    rows = read(url, "care_use", run_id, level="territory", unit=str(territory_id), disease=disease, year=year)
    levels = strata_levels(url, run_id, disease).select("stratum", "stratum_level", "name")
    out = rows.join(levels, on="stratum", how="left").with_columns(
        pl.when(pl.col("stratum") == "all").then(pl.lit("Ensemble des personnes suivies")).otherwise(pl.col("name"))
        .alias("name"),
        pl.col("stratum_level").fill_null(0),
    )
    return out.sort("stratum_level", descending=True).with_columns(pl.col("stratum_level").replace(0, None))


NBSP = "\u00a0"
PER_100K_SHORT = f"pour 100{NNBSP}000 hab."
"""The rates' unit where room is short (tiles, axes): "pour 100 000 hab."."""


def typeset(text: str) -> str:
    """French typography of a sentence: no-break spaces inside « » and before : ; ? !, so that a
    projector never starts a line with a lone sign."""
    text = re.sub(r"«\s+", "«" + NBSP, text)
    text = re.sub(r"\s+([»:;?!])", NBSP + r"\1", text)
    return text


def _typeset(function: Callable[..., str]) -> Callable[..., str]:
    @functools.wraps(function)
    def wrapper(*args, **kwargs) -> str:
        return typeset(function(*args, **kwargs))

    return wrapper


@_typeset
def headline_territory(url: str, run_id: int, territory_id: int) -> str:
    row = territories(url, run_id).filter(pl.col("territory_id") == territory_id)
    name = territory_name(url, run_id, territory_id)
    population = _value(row, "population")
    li = _value(row, "localization_index")
    text = f"{name} : {fr_int(population)} habitants" if population is not None else name
    if li is not None:
        text += f" ; {fr_pct(li, 0)} des séjours de ses habitants ont lieu sur le territoire"
    return text


@_typeset
def headline_disease(url: str, run_id: int, territory_id: int, disease: str, year: int) -> str:
    row = territory_indicators(url, run_id, territory_id, disease).filter(pl.col("year") == year)
    noun = disease_noun(url, run_id, disease)
    if row.height == 0:
        return f"Pas de résultat pour {noun} sur le territoire en {year}"
    cases = _value(row, "cases")
    if cases is None:
        text = f"Nombre de personnes suivies pour {noun} sur le territoire en {year} : {SECRET}"
    else:
        text = _sentence(f"{people_phrase(cases)} suivies pour {noun} sur le territoire en {year}")
    if _value(row, "complete_history") is False:
        text += f" (recul incomplet en {year} : ne pas comparer aux autres années)"
    return text


@_typeset
def headline_strata(url: str, run_id: int, territory_id: int, disease: str, year: int) -> str:
    care = territory_care(url, run_id, territory_id, disease, year)
    strata = care.filter(pl.col("stratum") != "all")
    if strata.height == 0:
        return "Pas de strates publiées pour cette année"
    top = strata.row(0, named=True)
    total = _value(care.filter(pl.col("stratum") == "all"), "people")
    noun = disease_noun(url, run_id, disease)
    if top["people"] is None:
        return (f"Profil le plus sévère, « {top['name']} » : nombre de personnes suivies pour {noun} "
                f"soumis au {SECRET} ({year})")
    among = f" sur {fr_int(total)} suivies pour {noun}" if total is not None else f" suivies pour {noun}"
    verb = "est" if top["people"] <= 1 else "sont"
    return _sentence(f"{people_phrase(top['people'])}{among} {verb} au profil le plus sévère, « {top['name']} » ({year})")


@_typeset
def headline_care(url: str, run_id: int, territory_id: int, disease: str, year: int) -> str:
    row = territory_care(url, run_id, territory_id, disease, year).filter(pl.col("stratum") == "all")
    noun = disease_noun(url, run_id, disease)
    if row.height == 0:
        return f"Pas de recours aux soins publié pour {noun} en {year}"
    r = row.row(0, named=True)
    if r["people"] is None and r["stays"] is None:
        return f"En {year}, le recours aux soins des personnes suivies pour {noun} est soumis au {SECRET} sur ce territoire"
    who = (f"les {people_phrase(r['people'])} suivies pour {noun}" if r["people"] is not None
           else f"les personnes suivies pour {noun} (nombre soumis au {SECRET})")
    stays = (people_phrase(r["stays"], "séjours") if r["stays"] is not None
             else f"un nombre de séjours soumis au {SECRET}")
    text = f"En {year}, {who} ont eu {stays}"
    if r["emergency_stays"] is not None and r["stays"] is not None:
        text += f", dont {fr_int(r['emergency_stays'])} arrivées par les urgences"
    return text


def _upward(from_level: int | None, to: str, levels: dict[str, int]) -> bool:
    if to == "deces":
        return True
    return from_level is not None and to in levels and levels[to] > from_level


@_typeset
def headline_trajectories(url: str, run_id: int, disease: str, year: int) -> str:
    rows = read(url, "transitions", run_id, disease=disease, year=year)
    levels = dict(strata_levels(url, run_id, disease).select("stratum", "stratum_level").iter_rows())
    noun = disease_noun(url, run_id, disease)
    totals = rows.filter((pl.col("to_stratum") == "all") & pl.col("count").is_not_null())
    if totals.height == 0:
        return f"Pas de trajectoires publiées pour {noun} en {year}"
    known = set(totals["from_stratum"].to_list())
    moves = rows.filter(pl.col("from_stratum").is_in(known) & (pl.col("to_stratum") != "all"))
    up = [r for r in moves.iter_rows(named=True) if _upward(levels.get(r["from_stratum"]), r["to_stratum"], levels)]
    total = int(totals["count"].sum())
    share = sum(r["count"] or 0 for r in up) / total if total else 0.0
    at_least = "au moins " if any(r["count"] is None for r in up) else ""
    return _sentence(
        f"{at_least}{fr_pct(share, 0)} des personnes suivies pour {noun} en {year} sont passées à un profil "
        f"plus sévère ou sont décédées à l'hôpital en {year + 1}"
    )


@_typeset
def headline_quality(url: str, run_id: int) -> str:
    stays = read(url, "quality", run_id, section="stays")
    values = dict(stays.select("measure", "rows").iter_rows())
    if not values:
        return "Pas de rapport de lecture du PMSI pour cette exécution"
    loaded, kept = values.get("loaded"), values.get("kept")
    text = f"{fr_int(loaded)} séjours lus, {fr_int(kept)} retenus après les filtres de qualité"
    if loaded and kept is not None:
        text += f" ({fr_pct(kept / loaded, 0)})"
    return text


# ------------------------------------------------------------------------------------- tables


def _fr_p(p: float | None) -> str:
    if p is None or (isinstance(p, float) and np.isnan(p)):
        return MISSING
    return "< 0,001" if p < 0.001 else fr_dec(p, 3)


def _fr_date(value) -> str:
    if value is None:
        return MISSING
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    return value.strftime("%d/%m/%Y %H:%M:%S")


def _yes_no(value) -> str:
    return MISSING if value is None else ("oui" if value else "non")


def _text(value) -> str:
    return "" if value is None else str(value)


def is_numeric_cell(cell: str) -> bool:
    """A table cell that reads as a number, a masked count, an interval or a share (tables align
    such cells to the right)."""
    text = cell.replace("km²", "").replace("n°", "")
    return cell in (MISSING, MASKED) or (any(c.isdigit() for c in text) and not any(c.isalpha() or c == "_" for c in text))


def _table(rows: list[dict]) -> pd.DataFrame:
    """A table of text cells (French headers as keys): no NaN, no None."""
    frame = pd.DataFrame(rows)
    return frame.fillna("") if len(frame) else frame


def territory_facts(url: str, run_id: int, territory_id: int) -> list[tuple[str, str, str]]:
    """(label, value, help) of the territory's key figures."""
    row = territories(url, run_id).filter(pl.col("territory_id") == territory_id)
    if row.height == 0:
        return []
    r = row.row(0, named=True)
    return [
        ("Habitants", fr_int(r["population"]), "Population du recensement (INSEE)"),
        ("Zones", fr_int(r["zones"]), "Zones de résidence (codes géographiques PMSI) du territoire"),
        ("Établissements", fr_int(r["hospitals"]), "Établissements de santé (MCO) situés sur le territoire"),
        ("Séjours des habitants", fr_int(r["stays_residents"]), "Séjours hospitaliers des habitants, où qu'ils aient lieu"),
        ("Indice de localisation", fr_pct(r["localization_index"], 0),
         "Part des séjours des habitants réalisés dans les établissements du territoire"),
        ("Indice de part de marché", fr_pct(r["market_share_index"], 0),
         "Part des séjours des établissements du territoire qui concernent ses habitants"),
        ("Superficie", f"{fr_int(r['area_km2'])} km²", "Superficie du territoire"),
    ]


def rate_unit(url: str, run_id: int, disease: str, year: int) -> str:
    """The unit of the disease's rates, its denominator stated: "pour 100 000 habitants de 18 ans
    et plus en 2023" (the ages of its spec's ``[population]``, from the run's catalogue)."""
    ages = _labels(url, run_id, disease, "population").get("population")  # None: a run published before it
    return f"{PER_100K}{' ' + ages if ages else ''} en {year}"


def disease_facts(url: str, run_id: int, territory_id: int, disease: str, year: int) -> list[tuple[str, str, str]]:
    """(label, value, help) of the disease's key figures on the territory for one year."""
    row = territory_indicators(url, run_id, territory_id, disease).filter(pl.col("year") == year)
    if row.height == 0:
        return []
    r = row.row(0, named=True)
    unit = rate_unit(url, run_id, disease, year)
    new = incident_label(url, run_id, disease)
    return [
        ("Personnes suivies", fr_int(r["cases"]), f"Cas repérés dans les données hospitalières en {year}"),
        (f"Nouveaux cas ({new})", fr_int(r["incident_cases"]),
         f"Cas dont le premier séjour pour la maladie sur la période de recul de l'algorithme a lieu en {year}"),
        (f"Prévalence standardisée ({PER_100K_SHORT})", fr_rate(r["prevalence_std"]),
         f"{unit}, standardisée sur l'âge et le sexe"),
        (f"Incidence standardisée ({PER_100K_SHORT})", fr_rate(r["incidence_std"]),
         f"{unit}, standardisée sur l'âge et le sexe ; nouveaux cas : {new}"),
    ]


def table_hospitals(url: str, run_id: int, territory_id: int) -> pd.DataFrame:
    rows = read(url, "hospitals", run_id, territory_id=territory_id).sort("name")
    return _table([
        {
            "Établissement": _text(r["name"]),
            "Commune": _text(r["town"]),
            "Catégorie": HOSPITAL_KINDS.get(r["kind"], _text(r["kind"])),
            "Urgences": _yes_no(r["has_emergency"]),
            "FINESS": _text(r["hospital_id"]),
        }
        for r in rows.iter_rows(named=True)
    ])


def flows(url: str, run_id: int, territory_id: int, top: int = 10) -> pl.DataFrame:
    """The hospital groups where the territory's residents are hospitalised, largest first
    (masked groups after), at most ``top``, with the group's territory name (``group_territory``)
    and display name (``group``)."""
    rows = read(url, "flows", run_id, territory_id=territory_id).filter(pl.col("hospital_group") != "all")
    names = territory_names(url, run_id)
    rows = rows.with_columns(
        pl.col("group_territory_id").replace_strict(list(names), list(names.values()), default=None,
                                                    return_dtype=pl.String).alias("group_territory")
    )
    # establishment grouping: a group is a hospital, named as in the hospitals table
    hospitals = read(url, "hospitals", run_id).select(pl.col("hospital_id").alias("hospital_group"), "name")
    rows = rows.join(hospitals, on="hospital_group", how="left").with_columns(
        pl.coalesce("name", "group_name", "hospital_group").alias("group")
    )
    return rows.sort(pl.col("stays").is_null(), pl.col("stays"), "group", descending=[False, True, False]).head(top)


def table_flows(url: str, run_id: int, territory_id: int, top: int = 10) -> pd.DataFrame:
    total = read(url, "flows", run_id, territory_id=territory_id, hospital_group="all")
    rows = [
        {
            "Établissement": _text(r["group"]),
            "Territoire": _text(r["group_territory"]) or "hors périmètre",
            "Séjours": fr_int(r["stays"]),
            "Part": fr_pct(r["share"]),
        }
        for r in flows(url, run_id, territory_id, top).iter_rows(named=True)
    ]
    if total.height:
        rows.append({
            "Établissement": "Tous les établissements",
            "Territoire": "",
            "Séjours": fr_int(total["stays"][0]),
            "Part": fr_pct(1.0),
        })
    return _table(rows)


def table_territories(url: str, run_id: int, territory_id: int) -> pd.DataFrame:
    """Every territory of the run, the selected one and its neighbours marked."""
    near = set(neighbours(url, run_id, territory_id))
    return _table([
        {
            "Territoire": r["territory_name"],
            "Situation": "ce territoire" if r["territory_id"] == territory_id else ("voisin" if r["territory_id"] in near else ""),
            "Habitants": fr_int(r["population"]),
            "Zones": fr_int(r["zones"]),
            "Établissements": fr_int(r["hospitals"]),
            "Indice de localisation": fr_pct(r["localization_index"], 0),
            "Indice de part de marché": fr_pct(r["market_share_index"], 0),
        }
        for r in territories(url, run_id).iter_rows(named=True)
        if (ids := compared_ids(url, run_id, territory_id)) is None or r["territory_id"] in ids
    ])


def table_zone_indicators(url: str, run_id: int, territory_id: int, disease: str, year: int) -> pd.DataFrame:
    rows = zone_indicators(url, run_id, territory_id, disease, year)
    return _table([
        {
            "Zone": r["unit"] if not r["unit_name"] else f"{r['unit']} {r['unit_name']}",
            "Habitants": fr_int(r["population"]),
            "Personnes suivies": fr_int(r["cases"]),
            "Nouveaux cas": fr_int(r["incident_cases"]),
            "Prévalence brute": fr_rate(r["prevalence_crude"]),
            "Prévalence standardisée": fr_rate(r["prevalence_std"]),
            "IC 95 % (prév. std.)": _interval(r["prevalence_std_low"], r["prevalence_std_high"]),
            "Incidence standardisée": fr_rate(r["incidence_std"]),
        }
        for r in rows.iter_rows(named=True)
    ])


def _interval(low, high, fmt: Callable = fr_rate) -> str:
    if low is None or high is None:
        return MISSING
    return f"{fmt(low)} – {fmt(high)}"


def table_subtypes(url: str, run_id: int, territory_id: int, disease: str, year: int) -> pd.DataFrame:
    rows = read(url, "indicators", run_id, level="territory", unit=str(territory_id), disease=disease, year=year)
    rows = rows.sort(pl.col("subtype") != "all", "subtype")
    labels = subtype_labels(url, run_id, disease)
    return _table([
        {
            "Sous-groupe": labels.get(r["subtype"], label(r["subtype"])),
            "Personnes suivies": fr_int(r["cases"]),
            "Nouveaux cas": fr_int(r["incident_cases"]),
            f"Prévalence standardisée ({PER_100K})": fr_rate(r["prevalence_std"]),
            "IC 95 %": _interval(r["prevalence_std_low"], r["prevalence_std_high"]),
            f"Incidence standardisée ({PER_100K})": fr_rate(r["incidence_std"]),
        }
        for r in rows.iter_rows(named=True)
    ])


def compared_territories(url: str, run_id: int, territory_id: int, disease: str, indicator: str,
                         year: int) -> pl.DataFrame:
    """The territories' indicator rows of one year (all, or the territory and its neighbours: see
    :func:`compared_ids`), highest ``indicator`` first."""
    rows = read(url, "indicators", run_id, level="territory", disease=disease, year=year, subtype="all")
    rows = rows.with_columns(pl.col("unit").cast(pl.Int64).alias("territory_id"))
    ids = compared_ids(url, run_id, territory_id)
    if ids is not None:
        rows = rows.filter(pl.col("territory_id").is_in(ids))
    return rows.sort(pl.col(indicator).is_null(), indicator, descending=[False, True])


def table_comparison(url: str, run_id: int, territory_id: int, disease: str, year: int) -> pd.DataFrame:
    rows = compared_territories(url, run_id, territory_id, disease, "prevalence_std", year)
    area = read(url, "indicators", run_id, level="area", disease=disease, year=year, subtype="all")
    out = []
    for r in [*rows.iter_rows(named=True), *area.iter_rows(named=True)]:
        name = AREA if r["level"] == "area" else (r["unit_name"] or f"Territoire n° {r['unit']}")
        if r["level"] == "territory" and int(r["unit"]) == territory_id:
            name += " (ce territoire)"
        out.append({
            "Territoire": name,
            "Personnes suivies": fr_int(r["cases"]),
            "Habitants": fr_int(r["population"]),
            "Prévalence brute": fr_rate(r["prevalence_crude"]),
            "Prévalence standardisée": fr_rate(r["prevalence_std"]),
            "IC 95 %": _interval(r["prevalence_std_low"], r["prevalence_std_high"]),
            "Incidence standardisée": fr_rate(r["incidence_std"]),
        })
    return _table(out)


def history_note(url: str, run_id: int, territory_id: int, disease: str) -> str | None:
    """A caution for the years whose look-back is not fully covered by the data."""
    rows = territory_indicators(url, run_id, territory_id, disease).filter(pl.col("complete_history").not_())
    years = rows["year"].to_list()
    if not years:
        return None
    listed = ", ".join(str(y) for y in years)
    several = len(years) > 1
    span = lookback_years(url, run_id, disease)
    missing = ("l'année de recul demandée par l'algorithme n'est pas dans les données" if span == 1 else
               f"les {span or ''} années de recul demandées par l'algorithme ne sont pas toutes dans les données")
    return (f"Recul incomplet en {listed} : {missing}. "
            f"{'Ces années sont dessinées' if several else 'Cette année est dessinée'} à part sur la figure : "
            "la prévalence y est sous-estimée et l'incidence surestimée ; l'écart avec les autres années n'est pas une tendance."
            ).replace("les  années", "les années")


DEATHS_UNKNOWN = "La prévalence peut inclure des personnes décédées hors de l'hôpital."
"""Said beside the prevalence when the run did not know the deaths out of hospital (no SNDS
referential of the beneficiaries, IR_BEN_R: docs/pmsi.md, Deaths)."""


def deaths_note(url: str, run_id: int) -> str | None:
    """:data:`DEATHS_UNKNOWN` (completed) when the run did not know the deaths out of hospital;
    None when it read the referential of the beneficiaries' deaths."""
    report = (run_info(url, run_id) or {}).get("input_report") or {}
    if report.get("deaths_known"):
        return None
    return (f"{DEATHS_UNKNOWN[:-1]} : les données hospitalières n'enregistrent que les décès à l'hôpital, et "
            "le référentiel des bénéficiaires (dates de décès) n'a pas été fourni pour cette exécution.")


def strata_pyramid_rows(url: str, run_id: int, territory_id: int, disease: str, year: int) -> pl.DataFrame:
    """stratum, stratum_level, name, people of the territory (every stratum, even without a row)."""
    people = read(url, "care_use", run_id, level="territory", unit=str(territory_id), disease=disease, year=year)
    return strata_levels(url, run_id, disease).select("stratum", "stratum_level", "name").join(
        people.select("stratum", "people"), on="stratum", how="left"
    )


def table_strata_zones(url: str, run_id: int, territory_id: int, disease: str, year: int) -> pd.DataFrame:
    """People per zone of the territory and stratum (columns: strata, most severe first)."""
    zones = read(url, "zones", run_id).filter(pl.col("territory_id") == territory_id)["zone_code"].to_list()
    rows = read(url, "care_use", run_id, level="zone", disease=disease, year=year, unit=zones)
    levels = strata_levels(url, run_id, disease).sort("stratum_level", descending=True)
    people = {(r["unit"], r["stratum"]): r["people"] for r in rows.iter_rows(named=True)}
    present = {r["unit"] for r in rows.iter_rows(named=True)}
    out = []
    for zone in sorted(present):
        row = {"Zone": zone}
        for s, name in levels.select("stratum", "name").iter_rows():
            row[name] = fr_int(people.get((zone, s))) if (zone, s) in people else "0"
        row["Total"] = fr_int(people.get((zone, "all"))) if (zone, "all") in people else MISSING
        out.append(row)
    return _table(out)


def table_care(url: str, run_id: int, territory_id: int, disease: str, year: int) -> pd.DataFrame:
    rows = territory_care(url, run_id, territory_id, disease, year)
    out = []
    for r in rows.iter_rows(named=True):
        row = {"Profil": r["name"], "Personnes": fr_int(r["people"])}
        for key in ("stays", "emergency_stays", "bed_days", "readmissions_30d", "deaths"):
            row[CARE_USE[key]] = fr_int(r[key])
        for key in ("stays_per_person", "emergency_stays_per_person", "bed_days_per_person",
                    "readmissions_30d_per_person", "deaths_per_person"):
            row[CARE_USE_PER_PERSON[key]] = fr_dec(r[key], 2)
        out.append(row)
    return _table(out)


CARE_NOTE = (
    "Séjours, arrivées par les urgences, journées, réhospitalisations à 30 jours et décès de l'année, des "
    "personnes suivies dans l'année (décès à l'hôpital ; hors de l'hôpital aussi quand le référentiel des "
    "bénéficiaires est fourni). Une réhospitalisation à 30 jours est un nouveau séjour pour la maladie dans les "
    "30 jours suivant la sortie d'un autre. Le profil d'une personne est établi avec les séjours de cette même "
    "année : une personne réhospitalisée a au moins deux séjours, et les profils définis par plusieurs séjours "
    "concentrent donc les réhospitalisations ; un 0 dans un autre profil peut venir de sa définition plutôt "
    "que d'une meilleure prise en charge."
)
"""What the care-use figures count, said under them (the board's Recours aux soins page, the dossier)."""


def table_transitions(url: str, run_id: int, disease: str, year: int) -> pd.DataFrame:
    """From each stratum of N (rows, most severe first) to N + 1 (columns): count (share)."""
    rows = read(url, "transitions", run_id, disease=disease, year=year)
    levels = strata_levels(url, run_id, disease).sort("stratum_level", descending=True)
    names = dict(levels.select("stratum", "name").iter_rows())
    targets = [*levels["stratum"].to_list(), "deces", "non_revu"]
    cells = {(r["from_stratum"], r["to_stratum"]): (r["count"], r["proportion"]) for r in rows.iter_rows(named=True)}
    out = []
    for s in levels["stratum"].to_list():
        if (s, "all") not in cells:
            continue
        row = {f"Profil en {year}": names[s], "Effectif": fr_int(cells[(s, "all")][0])}
        for t in targets:
            head = names.get(t) or label(t)
            if (s, t) not in cells:
                row[head] = "0"
                continue
            count, share = cells[(s, t)]
            # no share of a masked total: the share and the count would give the total away
            known_total = cells[(s, "all")][0] is not None
            row[head] = fr_int(count) if count is None or not known_total else f"{fr_int(count)} ({fr_pct(share, 0)})"
        out.append(row)
    return _table(out)


def _stratum_term(term: str, names: dict[str, str], features: dict[str, str]) -> str:
    if term.startswith("stratum:"):
        code = term.split(":", 1)[1]
        return typeset(f"Profil « {names.get(code, code)} »")
    return features.get(term, term)


def table_logrank(url: str, run_id: int, disease: str) -> pd.DataFrame:
    rows = read(url, "survival_tests", run_id, disease=disease, kind="logrank")
    names = strata_names(url, run_id, disease)
    out = []
    for r in rows.iter_rows(named=True):
        detail = json.loads(r["detail"]) if r["detail"] else {}
        higher, lower = detail.get("higher", ""), detail.get("lower", "")
        out.append({
            "Profil le plus sévère": names.get(higher, higher),
            "comparé à": names.get(lower, lower),
            "Effectifs": f"{fr_int(detail.get('n_higher'))} / {fr_int(detail.get('n_lower'))}",
            "Sans événement à 1 an": f"{fr_pct(detail.get('survival_365_higher'), 0)} / "
                                     f"{fr_pct(detail.get('survival_365_lower'), 0)}",
            "Statistique du log-rank": fr_dec(r["estimate"], 1),
            "p": _fr_p(r["p_value"]),
            "Ordre attendu": _yes_no(detail.get("ordered")),
        })
    return _table(out)


NOT_ESTIMABLE = "non estimable"
"""A hazard ratio the data cannot estimate (a group with no event, or every one: the fit runs to 0
or to infinity, with an interval of no width): shown so rather than as "0,00 (0,00 – 0,00)"."""


def _estimable(r: dict) -> bool:
    estimate, lower, upper = r.get("estimate"), r.get("lower"), r.get("upper")
    if estimate is None or not np.isfinite(estimate) or estimate < 1e-3 or estimate > 1e3:
        return False
    return not (lower is not None and upper is not None and np.isfinite(lower) and np.isfinite(upper)
                and upper - lower < 1e-6 * max(1.0, estimate))


def table_cox(url: str, run_id: int, disease: str) -> pd.DataFrame:
    rows = read(url, "survival_tests", run_id, disease=disease, kind="cox")
    names = strata_names(url, run_id, disease)
    features = feature_labels(url, run_id, disease)
    return _table([
        {
            "Variable": _stratum_term(r["term"], names, features),
            **({"Rapport de risques (HR)": fr_dec(r["estimate"], 2),
                "IC 95 %": _interval(r["lower"], r["upper"], lambda v: fr_dec(v, 2)),
                "p": _fr_p(r["p_value"])} if _estimable(r) else
               {"Rapport de risques (HR)": NOT_ESTIMABLE, "IC 95 %": MISSING, "p": MISSING}),
            "Personnes": fr_int(r["n"]),
            "Événements": fr_int(r["events"]),
        }
        for r in rows.iter_rows(named=True)
    ])


def table_ph_test(url: str, run_id: int, disease: str) -> pd.DataFrame:
    rows = read(url, "survival_tests", run_id, disease=disease, kind="ph_test")
    names = strata_names(url, run_id, disease)
    features = feature_labels(url, run_id, disease)
    return _table([
        {
            "Variable": _stratum_term(r["term"], names, features),
            "Statistique": fr_dec(r["estimate"], 2),
            "p": _fr_p(r["p_value"]),
            "Risques proportionnels": "hypothèse plausible" if (r["p_value"] or 0) >= 0.05 else "à vérifier",
        }
        for r in rows.iter_rows(named=True)
    ])


def table_model_metrics(url: str, run_id: int, disease: str) -> pd.DataFrame:
    rows = read(url, "model_metrics", run_id, disease=disease)
    # a model without skill: its scores are not shown as figures to compare, only the verdict
    return _table([
        {
            "Cible": TARGETS.get(r.get("target") or MAIN_TARGET, r.get("target")),
            "Modèle": MODELS.get(r["model"], r["model"]),
            "Pouvoir prédictif": "oui" if has_skill(r) else "sans pouvoir prédictif : ne pas utiliser",
            "AUC (IC 95 %)": (f"{fr_dec(r['auc'], 3)} ({fr_dec(r.get('auc_lower'), 3)}–{fr_dec(r.get('auc_upper'), 3)})"
                              if has_skill(r) else "–"),
            "Gain de Brier (> 0 : mieux que la prévalence)": fr_dec(r.get("brier_skill"), 3),
            "Pente de calibration (1 = idéal)": fr_dec(r.get("calibration_slope"), 2) if has_skill(r) else "–",
            "Score de Brier": fr_dec(r["brier"], 3),
            "Brier de référence (prévalence seule)": fr_dec(r["brier_reference"], 3),
        }
        for r in rows.iter_rows(named=True)
    ])


def model_card(url: str, run_id: int, disease: str) -> str | None:
    rows = read(url, "model_cards", run_id, disease=disease)
    return rows["markdown"][0] if rows.height else None


def quality_files(url: str, run_id: int) -> pd.DataFrame:
    rows = read(url, "quality", run_id, section="file")
    per_file: dict[str, dict] = {}
    for r in rows.iter_rows(named=True):
        per_file.setdefault(r["item"], {})[r["measure"]] = r["rows"]
    return _table([
        {
            "Fichier": item,
            "Lignes lues": fr_int(v.get("read")),
            "Lignes chargées": fr_int(v.get("loaded")),
            "Lignes en quarantaine": fr_int(v.get("quarantined")),
        }
        for item, v in per_file.items()
    ])


def quality_reasons(url: str, run_id: int) -> pd.DataFrame:
    rows = read(url, "quality", run_id, section="reason")
    return _table([
        {"Fichier": r["item"], "Motif de mise en quarantaine": reason_fr(r["detail"]), "Lignes": fr_int(r["rows"])}
        for r in rows.iter_rows(named=True)
    ])


def quality_stays(url: str, run_id: int) -> pd.DataFrame:
    rows = read(url, "quality", run_id, section="stays")
    words = {"loaded": "Séjours chargés", "kept": "Séjours retenus", "sessions": "Séances (CMD 28) mises à part"}
    return _table([{"": words.get(r["measure"], r["measure"]), "Séjours": fr_int(r["rows"])} for r in rows.iter_rows(named=True)])


def quality_filters(url: str, run_id: int) -> pd.DataFrame:
    rows = read(url, "quality", run_id, section="filter")
    return _table([
        {
            "Filtre de qualité": FILTER_LABELS.get(r["item"], r["item"]),
            "Appliqué": _yes_no(r["enabled"]),
            "Séjours exclus": fr_int(r["rows"]),
        }
        for r in rows.iter_rows(named=True)
    ])


def run_facts(url: str, run_id: int) -> pd.DataFrame:
    r = run_info(url, run_id) or {}
    years = run_years(r)
    report = r.get("input_report") or {}
    selected = r.get("selected_territory")
    rows = [
        ("Exécution", f"n° {run_id}"),
        ("Configuration", _text(r.get("name"))),
        ("Description", _text(r.get("description"))),
        ("Fichier de configuration", _text(r.get("config_path"))),
        ("Statut", RUN_STATUS.get(r.get("status"), _text(r.get("status")))),
        ("Début", _fr_date(r.get("started_at"))),
        ("Fin", _fr_date(r.get("finished_at"))),
        ("Durée", _fr_duration(run_duration(r))),
        ("Version de respop", _text(r.get("code_version"))),
        ("Années", years),
        ("Comptes de lecture équilibrés", _yes_no(report.get("balanced"))),
        ("Territoire d'intérêt", territory_name(url, run_id, selected) if selected is not None else "non précisé"),
        ("Système de coordonnées", _text(r.get("crs"))),
        ("Empreinte de la configuration (SHA-256)", _text(r.get("config_sha256"))[:16]),
        ("Empreinte des résultats (SHA-256)", _text(r.get("results_sha256"))[:16]),
    ]
    if r.get("error"):
        rows.append(("Erreur", r["error"]))
    return _table([{"": k, "Valeur": v} for k, v in rows])


def _step_seconds(timings: dict) -> dict[str, float]:
    """The seconds of the steps a run did (``runs.timings``: its numbers; ``clock`` and ``reused``
    are not steps)."""
    return {k: v for k, v in (timings or {}).items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def _fr_duration(seconds: float | None) -> str:
    """A duration in French: "0,8 s", "1 min 27 s", "1 h 02 min"."""
    if seconds is None:
        return MISSING
    if seconds < 60:
        return f"{fr_dec(seconds, 1)}{NBSP}s"
    whole = int(round(seconds))
    if whole < 3600:
        return f"{whole // 60}{NBSP}min {whole % 60:02d}{NBSP}s"
    return f"{whole // 3600}{NBSP}h {whole % 3600 // 60:02d}{NBSP}min"


def run_duration(r: dict) -> float | None:
    """Seconds from the run's start to its end (None while it runs, or without an end)."""
    start, end = r.get("started_at"), r.get("finished_at")
    if isinstance(start, str):
        start = dt.datetime.fromisoformat(start)
    if isinstance(end, str):
        end = dt.datetime.fromisoformat(end)
    if not isinstance(start, dt.datetime) or not isinstance(end, dt.datetime):
        return None
    return max(0.0, (end - start).total_seconds())


def run_timings(url: str, run_id: int) -> pd.DataFrame:
    """Each step of the run: when it started and ended, its duration; the steps whose results
    were reused from an earlier run say so (their time belongs to that run)."""
    timings = (run_info(url, run_id) or {}).get("timings") or {}
    seconds = _step_seconds(timings)
    clock = timings.get("clock") or {}
    reused = timings.get("reused") or {}

    def at(value) -> str:
        return _fr_date(value) if value else MISSING

    rows = []
    for step in [*STEP_LABELS, *[k for k in seconds if k not in STEP_LABELS]]:
        if step in seconds:
            start, end = (clock.get(step) or [None, None])[:2]
            rows.append({"Étape": STEP_LABELS.get(step, step), "Début": at(start), "Fin": at(end),
                         "Durée": _fr_duration(seconds[step])})
        elif step in reused:
            when = reused[step]
            rows.append({"Étape": STEP_LABELS.get(step, step), "Début": "–", "Fin": "–",
                         "Durée": "reprise d'une exécution antérieure" + (f" ({at(when)})" if when else "")})
    if seconds:
        rows.append({"Étape": "Total des étapes", "Début": "", "Fin": "", "Durée": _fr_duration(sum(seconds.values()))})
    return _table(rows)


def run_label(r: dict) -> str:
    """How a run is named in the run selector: "n° 3 · 24/11/2026 13:41"."""
    started = r.get("started_at")
    when = started.strftime("%d/%m/%Y %H:%M") if isinstance(started, dt.datetime) else _text(started)
    return f"n° {r['run_id']} · {when}" if when else f"n° {r['run_id']}"


def run_years(r: dict) -> str:
    if not r.get("first_year"):
        return MISSING
    # a run of one year (respop.periods: any period runs) says its year once
    return str(r["first_year"]) if r["first_year"] == r.get("last_year") else f"{r['first_year']}–{r['last_year']}"


def table_runs(url: str, name: str | None) -> pd.DataFrame:
    out = []
    for r in runs(url, name):
        out.append({
            "Exécution": f"n° {r['run_id']}",
            "Statut": RUN_STATUS.get(r["status"], r["status"]),
            "Début": _fr_date(r.get("started_at")),
            "Années": run_years(r),
            "Durée": _fr_duration(run_duration(r)),
            "Version": _text(r.get("code_version")),
            "Empreinte des résultats": _text(r.get("results_sha256"))[:12],
        })
    return _table(out)


# ======================================================================================= figures


def _percent(value: float | None) -> str:
    """A value already in percent: 12.3 → "12 %"."""
    return fr_pct(None if value is None else value / 100, 0)


def _fig_territory_map(url, run_id, meeting, territory_id):
    hospitals = read(url, "hospitals", run_id)
    return figures.territory_map(territories_gdf(url, run_id), territory_id, hospitals, zones_gdf(url, run_id),
                                 meeting=meeting,
                                 title=f"{territory_name(url, run_id, territory_id)} et ses voisins")


def _fig_population_map(url, run_id, meeting, territory_id):
    zones = read(url, "zones", run_id).filter(pl.col("territory_id") == territory_id)
    values = zones.select("zone_code", pl.col("population").alias("value"))
    return figures.zone_map(zones_gdf(url, run_id), values, f"Habitants par zone — {territory_name(url, run_id, territory_id)}",
                            "Habitants", territory_id=territory_id, meeting=meeting)


def _fig_flows(url, run_id, meeting, territory_id):
    rows = flows(url, run_id, territory_id, top=8 if meeting else 10).with_columns(
        (pl.col("share") * 100).alias("percent")
    )
    return figures.hbar(rows, "group", "percent", f"Où sont hospitalisés les habitants — {territory_name(url, run_id, territory_id)}",
                        "Part des séjours des habitants (%)", formatter=_percent, meeting=meeting, masked_text=MASKED)


def _fig_indicator_map(url, run_id, meeting, territory_id, disease, indicator, year):
    rows = zone_indicators(url, run_id, territory_id, disease, year).select(
        pl.col("unit").alias("zone_code"), pl.col(indicator).alias("value")
    )
    title = f"{indicator_title(url, run_id, disease, indicator)} — {disease_name(url, run_id, disease)}, {year}"
    return figures.zone_map(zones_gdf(url, run_id), rows, title, indicator_unit(indicator), territory_id=territory_id,
                            meeting=meeting)


def _fig_trend(url, run_id, meeting, territory_id, disease, indicator):
    name = territory_name(url, run_id, territory_id)
    parts = [
        (name, territory_indicators(url, run_id, territory_id, disease)),
        (AREA, read(url, "indicators", run_id, level="area", disease=disease, subtype="all").sort("year")),
    ]
    band = _is_rate(indicator)
    frames = []
    for series, rows in parts:
        frames.append(rows.select(
            "year", pl.lit(series).alias("series"), pl.col(indicator).cast(pl.Float64).alias("value"),
            (pl.col(f"{indicator}_low") if band else pl.lit(None)).cast(pl.Float64).alias("low"),
            (pl.col(f"{indicator}_high") if band else pl.lit(None)).cast(pl.Float64).alias("high"),
            pl.col("complete_history").fill_null(True).alias("complete"),
        ))
    if not band:  # a count of the whole area dwarfs the territory's: show the territory alone
        frames = frames[:1]
    title = f"{indicator_title(url, run_id, disease, indicator)} — {disease_name(url, run_id, disease)}, évolution"
    value_label = f"{INDICATOR_CHOICES[indicator]} ({indicator_unit(indicator, short=True)})"
    return figures.trend(pl.concat(frames), title, value_label, meeting=meeting,
                         incomplete_label=incomplete_label(url, run_id, disease))


def _fig_comparison(url, run_id, meeting, territory_id, disease, indicator, year):
    rows = compared_territories(url, run_id, territory_id, disease, indicator, year).with_columns(
        pl.when(pl.col("territory_id") == territory_id).then(pl.format("▶ {}", pl.col("unit_name")))
        .otherwise(pl.col("unit_name")).alias("name")
    )
    title = (f"{indicator_title(url, run_id, disease, indicator)}{comparison_scope(url, run_id, territory_id)} — "
             f"{disease_name(url, run_id, disease)}, {year}")
    return figures.hbar(rows, "name", indicator, title, f"{INDICATOR_CHOICES[indicator]} ({indicator_unit(indicator)})",
                        formatter=indicator_format(indicator), meeting=meeting)


def _fig_pyramid(url, run_id, meeting, territory_id, disease, year):
    rows = strata_pyramid_rows(url, run_id, territory_id, disease, year)
    title = f"Profils des personnes suivies pour {disease_noun(url, run_id, disease)} — {territory_name(url, run_id, territory_id)}, {year}"
    return figures.strata_pyramid(rows, title, meeting=meeting)


def _care_rows(url, run_id, territory_id, disease, year) -> pl.DataFrame:
    return territory_care(url, run_id, territory_id, disease, year).filter(pl.col("stratum") != "all")


def _fig_care(url, run_id, meeting, territory_id, disease, year):
    rows = _care_rows(url, run_id, territory_id, disease, year)
    long = pl.concat([
        rows.select("name", pl.lit(m).alias("measure"), pl.col(m).cast(pl.Float64).alias("value")) for m in CARE_MEASURES
    ]) if rows.height else None
    if long is not None:  # group by stratum (most severe first), measures in a fixed order
        order = {n: i for i, n in enumerate(rows["name"].to_list())}
        long = long.with_columns(pl.col("name").replace_strict(order, return_dtype=pl.Int64).alias("_o")).sort(
            "_o", maintain_order=True).drop("_o")
    title = f"Recours aux soins par personne et par profil — {disease_name(url, run_id, disease)}, {year}"
    return figures.grouped_bars(long, "name", "measure", "value", title, "Nombre moyen par personne", meeting=meeting)


def _fig_bed_days(url, run_id, meeting, territory_id, disease, year):
    rows = _care_rows(url, run_id, territory_id, disease, year)
    title = f"Journées d'hospitalisation par personne — {disease_name(url, run_id, disease)}, {year}"
    return figures.hbar(rows, "name", "bed_days_per_person", title, "Journées par personne",
                        formatter=lambda v: fr_dec(v, 1), meeting=meeting)


def _fig_sankey(url, run_id, meeting, disease, year):
    rows = read(url, "transitions", run_id, disease=disease, year=year)
    levels = strata_levels(url, run_id, disease)
    title = f"Trajectoires {year} → {year + 1} — {disease_name(url, run_id, disease)} (région étudiée)"
    return figures.sankey(rows, levels["stratum"].to_list(), strata_names(url, run_id, disease), title, meeting=meeting)


def _fig_survival(url, run_id, meeting, disease):
    curves = read(url, "survival_curves", run_id, disease=disease)
    title = f"Survie sans nouvelle hospitalisation pour {disease_noun(url, run_id, disease)} ni décès, par profil"
    years = transition_years(url, run_id, disease)  # follow-up starts on 1 January of N + 1
    return figures.survival(curves, strata_names(url, run_id, disease), title, meeting=meeting,
                            start_year=(years[0] + 1, years[-1] + 1) if years else None)


def main_model_without_skill(url: str, run_id: int, disease: str) -> bool:
    """The main model of the main target was published and has no skill (:func:`has_skill`): its
    calibration and the variables it uses are not shown (nothing to read in them)."""
    main = read(url, "model_metrics", run_id, disease=disease, model=MAIN_MODEL)
    main = main.filter(pl.col("target") == MAIN_TARGET) if "target" in main.columns and main["target"].is_not_null().any() else main
    return bool(main.height) and not has_skill(main.row(0, named=True))


def _fig_calibration(url, run_id, meeting, disease):
    rows = read(url, "model_calibration", run_id, disease=disease, model=MAIN_MODEL)
    if "target" in rows.columns and rows["target"].is_not_null().any():
        rows = rows.filter(pl.col("target") == MAIN_TARGET)
    rows = rows.sort("bin")
    no_skill = main_model_without_skill(url, run_id, disease)
    if no_skill:
        rows = rows.head(0)  # no deciles of a model without skill: nothing to read in them
    long = pl.concat([
        rows.select(pl.format("Décile {}", "bin").alias("decile"), pl.lit("Risque prédit").alias("series"),
                    (pl.col("mean_predicted") * 100).alias("value")),
        rows.select(pl.format("Décile {}", "bin").alias("decile"), pl.lit("Proportion observée").alias("series"),
                    (pl.col("observed_rate") * 100).alias("value")),
    ]).sort("decile", maintain_order=True) if rows.height else None
    if long is not None:
        long = long.with_columns(pl.col("decile").str.extract(r"(\d+)").cast(pl.Int64).alias("_b")).sort(
            "_b", maintain_order=True).drop("_b")
    title = f"Calibration du modèle — {disease_name(url, run_id, disease)} (déciles de risque prédit, année de test)"
    if no_skill:
        title = f"Modèle sans pouvoir prédictif — {disease_name(url, run_id, disease)} : calibration non montrée"
    return figures.grouped_bars(long, "decile", "series", "value", title, "Passage à un profil plus sévère ou décès (%)",
                                meeting=meeting, formatter=_percent)


def _fig_importance(url, run_id, meeting, disease):
    rows = read(url, "model_importance", run_id, disease=disease).sort("importance", descending=True).head(10)
    # the features as the model card names them (sex, not "women" as in the Cox table)
    labels = {**feature_labels(url, run_id, disease), **MODEL_LABELS}
    rows = rows.with_columns(pl.col("feature").replace(labels).alias("name"))
    title = f"Variables les plus utiles au modèle — {disease_name(url, run_id, disease)}"
    if main_model_without_skill(url, run_id, disease):
        rows = rows.head(0)
        title = f"Modèle sans pouvoir prédictif — {disease_name(url, run_id, disease)} : variables non montrées"
    return figures.hbar(rows, "name", "importance", title,
                        "Perte de pouvoir de classement quand la variable est brouillée (AUC)",
                        formatter=lambda v: fr_dec(v, 3), meeting=meeting)


def _fig_quality(url, run_id, meeting):
    rows = read(url, "quality", run_id, section="filter").with_columns(
        pl.col("item").replace(FILTER_LABELS).alias("name")
    )
    return figures.hbar(rows, "name", "rows", "Séjours exclus par les filtres de qualité", "Séjours exclus (nombre)",
                        meeting=meeting)


FIGURES: dict[str, Callable] = {
    "territory_map": _fig_territory_map,
    "population_map": _fig_population_map,
    "flows": _fig_flows,
    "indicator_map": _fig_indicator_map,
    "trend": _fig_trend,
    "comparison": _fig_comparison,
    "pyramid": _fig_pyramid,
    "care": _fig_care,
    "bed_days": _fig_bed_days,
    "sankey": _fig_sankey,
    "survival": _fig_survival,
    "calibration": _fig_calibration,
    "importance": _fig_importance,
    "quality": _fig_quality,
}
"""Every figure of the boards: name → function(url, run_id, meeting, **parameters) → Figure."""


@st.cache_data(show_spinner=False, max_entries=512)
def figure_png(name: str, url: str, run_id: int, meeting: bool = False, **params) -> bytes:
    """The PNG bytes of the figure ``name`` of :data:`FIGURES` (cached per run and parameters)."""
    return figures.to_png(FIGURES[name](url, run_id, meeting, **params))


def file_name(*parts: object) -> str:
    """A download file name: "respop-<disease>-carte-2023.png"."""
    text = "-".join(str(p) for p in ("respop", *parts) if p is not None and p != "")
    text = re.sub(r"[^A-Za-z0-9_.-]+", "-", text.replace(NNBSP, "-")).strip("-")
    return f"{text}.png"


# ================================================================================== evaluation
# The evaluation of the experiment (issue 20): the store's evaluation_* tables of a run that has
# one (respop.store.publish.evaluation_tables). Effects are relative (−0.12: 12 % lower than
# without the intervention); a value masked because it depends on a masked cell is null.

EVALUATION_TITLE = "Évaluation"
EVALUATION_CONTEXT = "Ce qui a changé dans le territoire, comparé à des territoires semblables"
METHODS = {"did": "Différence de différences", "synthetic_control": "Contrôle synthétique"}
MAIN_METHOD = "did"
"""The method of the page's sentences and event study (the synthetic control is beside it)."""
CHANCE = "différence compatible avec le hasard"
"""Said of an effect whose confidence interval contains 0."""
UNLIKE_RMSPE = 0.10
"""A synthetic control whose pre-period error (relative RMSPE) exceeds this fits the pilot badly:
the pilot is unlike every combination of donors."""
FEW_PRE_YEARS = 3
"""Fewer years than this before a pilot's start: the pre-period fit says little."""


def period_skips(url: str, run_id: int) -> dict[str, str]:
    """The parts the data's period left out of the run (respop.periods; ``runs.timings["skipped"]``):
    part (``transitions``, ``survival``, ``prediction``, ``evaluation``) → the French sentence that
    says what is missing and why. Empty for a run that left nothing out, or published before."""
    timings = (run_info(url, run_id) or {}).get("timings") or {}
    return {r["part"]: r["fr"] for r in timings.get("skipped") or []
            if isinstance(r, dict) and isinstance(r.get("part"), str) and isinstance(r.get("fr"), str)}


def missing_note(url: str, run_id: int, part: str) -> str | None:
    """Why ``part`` is missing from the run (:func:`period_skips`), or None when it is not."""
    return period_skips(url, run_id).get(part)


def has_evaluation(url: str, run_id: int) -> bool:
    """The run published an evaluation (a store written before migration 0005 has none)."""
    return has_table(url, "evaluation_design") and read(url, "evaluation_design", run_id).height > 0


def evaluation_design(url: str, run_id: int) -> dict:
    """The design row (first_year, last_year, confidence, ...) with ``detail`` parsed."""
    rows = read(url, "evaluation_design", run_id)
    if not rows.height:
        return {}
    row = rows.row(0, named=True)
    try:
        row["detail"] = json.loads(row.get("detail") or "{}")
    except ValueError:
        row["detail"] = {}
    return row


def evaluation_territories(url: str, run_id: int, role: str) -> pl.DataFrame:
    return read(url, "evaluation_territories", run_id, role=role).sort("territory_id")


def evaluation_outcomes(url: str, run_id: int) -> list[tuple[str, str, str]]:
    """(disease, outcome, French label) of every outcome evaluated, in the step's order."""
    rows = read(url, "evaluation_outcomes", run_id)
    return [(d, o, lab) for d, o, lab in rows.select("disease", "outcome", "label").iter_rows()]


def outcome_key(disease: str, outcome: str) -> str:
    return f"{disease}|{outcome}"


def outcome_labels(url: str, run_id: int) -> dict[str, str]:
    """``disease|outcome`` → French label (the page's choice)."""
    return {outcome_key(d, o): lab for d, o, lab in evaluation_outcomes(url, run_id)}


def _pct(x: float | None, signed: bool = True) -> str:
    """A relative effect as a French percentage without decimals: −0.123 → "−12 %"; masked → "s"."""
    if x is None or (isinstance(x, float) and np.isnan(x)):
        return MASKED
    text = fr_pct(x, 0)
    return ("+" + text) if signed and round(x * 100) > 0 else text


def _confidence(url: str, run_id: int) -> str:
    level = evaluation_design(url, run_id).get("confidence") or 0.95
    return fr_pct(level, 0)


NOT_ESTIMATED = "non évaluable"
"""The evaluation step's note on an effect it did not estimate (too few events, too few donors)."""


def not_estimated(row: dict) -> str | None:
    """Why the step did not estimate an effect (its note « non évaluable : <reason> », after the
    store's « secret statistique » when a cell it depends on is masked too): the reason ("" when
    the note gives none), or None for an effect that was estimated (a null effect is then masked)."""
    note = row.get("note") or ""
    if note.startswith(SECRET):
        note = note[len(SECRET):].lstrip(" ;")
    return note[len(NOT_ESTIMATED):].lstrip(" :").strip() if note.startswith(NOT_ESTIMATED) else None


def default_outcome(url: str, run_id: int, territory_id: int) -> int:
    """The outcome the page's figures open on: the first with a published effect (DiD) for the
    page's pilot (or pooled), the first outcome when there is none."""
    pilot = evaluation_focus(url, run_id, territory_id)
    for i, (d, o, _lab) in enumerate(evaluation_outcomes(url, run_id)):
        row = effect_row(url, run_id, d, o, MAIN_METHOD, pilot)
        if row is not None and row["effect"] is not None:
            return i
    return 0


def evaluation_focus(url: str, run_id: int, territory_id: int) -> int | None:
    """The pilot whose effects the page shows: the chosen territory when it is a pilot, else None
    (every pilot pooled)."""
    pilots = evaluation_territories(url, run_id, "pilot")["territory_id"].to_list()
    return territory_id if territory_id in pilots else None


def effect_row(url: str, run_id: int, disease: str, outcome: str, method: str, pilot: int | None) -> dict | None:
    rows = read(url, "evaluation_effects", run_id, method=method, disease=disease, outcome=outcome)
    rows = rows.filter(pl.col("territory_id").is_null() if pilot is None else pl.col("territory_id") == pilot)
    return rows.row(0, named=True) if rows.height else None


def _names_list(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " et " + names[-1]


@_typeset
def headline_evaluation(url: str, run_id: int, territory_id: int) -> str:
    """The design in one sentence: which pilots, since when, compared with how many territories,
    on which outcomes."""
    pilots = evaluation_territories(url, run_id, "pilot")
    donors = evaluation_territories(url, run_id, "donor").height
    parts = [f"{r['territory_name'] or 'Territoire n° ' + str(r['territory_id'])} (depuis {r['start_year']})"
             for r in pilots.iter_rows(named=True)]
    who = ("Territoire pilote : " if len(parts) == 1 else "Territoires pilotes : ") + _names_list(parts)
    outcomes = evaluation_outcomes(url, run_id)
    diseases = list(dict.fromkeys(disease_noun(url, run_id, d) for d, _o, _l in outcomes))
    what = f"{len(outcomes)} résultat{'s' if len(outcomes) > 1 else ''} suivi{'s' if len(outcomes) > 1 else ''}"
    if diseases:
        what += f" ({_names_list(diseases)})"
    return f"{who}, comparé{'s' if len(parts) > 1 else ''} à {donors} territoire{'s' if donors > 1 else ''} semblable{'s' if donors > 1 else ''} ; {what}"


@_typeset
def effect_sentence(url: str, run_id: int, disease: str, outcome: str, label_: str, pilot: int | None) -> str:
    """« Séjours … : −12 % (intervalle de confiance à 95 % : −20 % à −3 %) par rapport aux
    territoires de comparaison », and « différence compatible avec le hasard » when the interval
    contains 0; a masked effect reads « s » (secret statistique)."""
    row = effect_row(url, run_id, disease, outcome, MAIN_METHOD, pilot)
    if row is None:
        return f"{label_} : pas d'estimation publiée"
    if row["effect"] is None:
        reason = not_estimated(row)
        if reason is not None:
            return f"{label_} : {NOT_ESTIMATED}" + (f" ({reason})" if reason else "")
        return f"{label_} : {MASKED} ({SECRET})"
    text = f"{label_} : {_pct(row['effect'])}"
    if row["ci_lower"] is not None and row["ci_upper"] is not None:
        text += (f" (intervalle de confiance à {_confidence(url, run_id)} : {_pct(row['ci_lower'])} à "
                 f"{_pct(row['ci_upper'])}) par rapport aux territoires de comparaison")
        if row["ci_lower"] <= 0 <= row["ci_upper"]:
            text += f" ; {CHANCE}"
    else:
        text += " par rapport aux territoires de comparaison (intervalle non estimable)"
    return text


def effect_sentences(url: str, run_id: int, territory_id: int) -> list[str]:
    """One sentence per outcome with an estimate (or a masked one), then one sentence per reason
    listing the outcomes the step could not estimate (« Non évaluables (reason) : A ; B »), so that
    a page of 24 outcomes does not bury the few that say something."""
    pilot = evaluation_focus(url, run_id, territory_id)
    sentences: list[str] = []
    skipped: dict[str, list[str]] = {}
    for d, o, lab in evaluation_outcomes(url, run_id):
        row = effect_row(url, run_id, d, o, MAIN_METHOD, pilot)
        reason = not_estimated(row) if row is not None and row["effect"] is None else None
        if reason is None:
            sentences.append(effect_sentence(url, run_id, d, o, lab, pilot))
        else:
            skipped.setdefault(reason, []).append(lab)
    for reason, labels in skipped.items():
        head = "Non évaluable" if len(labels) == 1 else "Non évaluables"
        sentences.append(f"{head}" + (f" ({reason})" if reason else "") + " : " + " ; ".join(labels))
    return sentences


def effects_scope(url: str, run_id: int, territory_id: int) -> str:
    """Whose effects the page shows, in French."""
    pilot = evaluation_focus(url, run_id, territory_id)
    if pilot is not None:
        return f"Effets estimés pour {territory_name(url, run_id, pilot)}"
    n = evaluation_territories(url, run_id, "pilot").height
    return "Effets estimés pour le territoire pilote" if n == 1 else f"Effets estimés sur l'ensemble des {n} territoires pilotes"


def _interval_pct(low, high) -> str:
    if low is None or high is None:
        return MISSING
    return f"{_pct(low)} à {_pct(high)}"


def table_methods(url: str, run_id: int, territory_id: int) -> pd.DataFrame:
    """The two methods side by side, one row per outcome: effect, interval, p-value."""
    pilot = evaluation_focus(url, run_id, territory_id)
    level = _confidence(url, run_id)
    out = []
    for d, o, lab in evaluation_outcomes(url, run_id):
        row = {"Résultat suivi": lab}
        for method, short in (("did", "DiD"), ("synthetic_control", "CS")):
            r = effect_row(url, run_id, d, o, method, pilot) or {}
            masked = bool(r) and r.get("effect") is None and not_estimated(r) is None
            row[f"Effet ({short})"] = MASKED if masked else _pct(r.get("effect")) if r and r.get("effect") is not None else MISSING
            row[f"IC {level} ({short})"] = MASKED if masked else _interval_pct(r.get("ci_lower"), r.get("ci_upper"))
            row[f"p ({short})"] = MASKED if masked else _fr_p(r.get("p_value"))
        out.append(row)
    return _table(out)


def table_weights(url: str, run_id: int, territory_id: int, disease: str, outcome: str) -> pd.DataFrame:
    """The synthetic control's donors and their weights (largest first; zero weights left out)."""
    pilots = evaluation_territories(url, run_id, "pilot")["territory_id"].to_list()
    pilot = evaluation_focus(url, run_id, territory_id) or (pilots[0] if pilots else None)
    rows = read(url, "evaluation_weights", run_id, disease=disease, outcome=outcome, territory_id=pilot)
    names = territory_names(url, run_id)
    rows = rows.filter(pl.col("weight").is_null() | (pl.col("weight") > 0.0005)).sort(
        pl.col("weight").is_null(), pl.col("weight"), descending=[False, True])
    return _table([{"Territoire de comparaison": names.get(r["donor_id"], f"Territoire n° {r['donor_id']}"),
                    "Poids": MASKED if r["weight"] is None else fr_pct(r["weight"], 0)}
                   for r in rows.iter_rows(named=True)])


def evaluation_pilot(url: str, run_id: int, territory_id: int) -> tuple[int | None, int | None]:
    """(pilot, start year) of the page's trajectory: the chosen territory when it is a pilot, else
    the first pilot."""
    pilots = evaluation_territories(url, run_id, "pilot")
    if not pilots.height:
        return None, None
    focus = evaluation_focus(url, run_id, territory_id)
    row = pilots.filter(pl.col("territory_id") == focus) if focus is not None else pilots.head(1)
    return int(row["territory_id"][0]), row["start_year"][0]


def evaluation_caveats(url: str, run_id: int, territory_id: int) -> list[str]:
    """What to keep in mind before reading the effects, in French: the pre-period fit, few years
    before the start, a pilot unlike every donor, the synthetic control's p-value floor with few
    donors, and the notes of the estimates."""
    design = evaluation_design(url, run_id)
    pilots = evaluation_territories(url, run_id, "pilot")
    donors = evaluation_territories(url, run_id, "donor").height
    first = design.get("first_year")
    out = []
    if first is not None and pilots.height:
        pre = min(int(s) - int(first) for s in pilots["start_year"].to_list())
        years = f"{pre} année{'s' if pre > 1 else ''}"
        text = f"Période avant le début : {years} de données au plus court"
        if pre < FEW_PRE_YEARS:
            text += " ; c'est peu : la comparaison avant le début dit peu de la ressemblance des territoires"
        out.append(text + ".")
    pilot = evaluation_focus(url, run_id, territory_id)
    unlike, trend = [], []
    for d, o, lab in evaluation_outcomes(url, run_id):
        sc = effect_row(url, run_id, d, o, "synthetic_control", pilot) or {}
        did = effect_row(url, run_id, d, o, "did", pilot) or {}
        if sc.get("pre_fit") is not None and sc["pre_fit"] > UNLIKE_RMSPE:
            unlike.append(f"{in_sentence(lab)} (écart {fr_pct(sc['pre_fit'], 0)})")
        if did.get("pre_fit") is not None and did["pre_fit"] < 0.05:
            trend.append(in_sentence(lab))
    if unlike:
        out.append("Ajustement avant le début : le contrôle synthétique reproduit mal le territoire pilote pour "
                   + _names_list(unlike) + " ; le pilote ne ressemble à aucune combinaison de territoires de comparaison.")
    else:
        out.append("Ajustement avant le début : le contrôle synthétique suit le territoire pilote d'assez près "
                   f"(écart moyen inférieur à {fr_pct(UNLIKE_RMSPE, 0)}) pour chaque résultat estimé.")
    if trend:
        out.append("Tendances différentes avant le début (test à 5 %) pour " + _names_list(trend)
                   + " : la différence de différences suppose des évolutions parallèles sans l'expérimentation.")
    if donors:
        floor = 1 / (donors + 1)
        text = (f"Avec {donors} territoire{'s' if donors > 1 else ''} de comparaison, la plus petite valeur p possible "
                f"du contrôle synthétique est 1/{donors + 1} = {fr_dec(floor, 3)}")
        if floor > 0.05:
            text += " : ce contrôle ne peut pas conclure au seuil de 5 %, quel que soit l'effet"
        out.append(text + ".")
    notes = sorted({n for n in read(url, "evaluation_effects", run_id)["note"].to_list()
                    if n and n != SECRET and not n.startswith(SECRET)})
    out += [f"{_sentence(n)}." for n in notes]
    return [typeset(t) for t in out]


def table_power(url: str, run_id: int) -> pd.DataFrame:
    """The smallest effect the design detects, one row per outcome, one column per territory
    population (power and risk in the caption)."""
    rows = read(url, "evaluation_power", run_id)
    labels = outcome_labels(url, run_id)
    populations = sorted(set(rows["population"].to_list()))
    out = []
    for d, o, lab in evaluation_outcomes(url, run_id):
        mine = rows.filter((pl.col("disease") == d) & (pl.col("outcome") == o))
        if not mine.height:
            continue
        row = {"Résultat suivi": labels.get(outcome_key(d, o), lab)}
        for p in populations:
            cell = mine.filter(pl.col("population") == p)
            value = cell["mde"][0] if cell.height else None
            row[f"{fr_int(p)} habitants"] = MISSING if value is None else fr_pct(value, 0)
        out.append(row)
    return _table(out)


def power_note(url: str, run_id: int) -> str:
    rows = read(url, "evaluation_power", run_id)
    if not rows.height:
        return ""
    r = rows.row(0, named=True)
    return typeset(
        f"Plus petit effet détectable : la baisse (ou la hausse) relative qu'un territoire de cette taille, suivi "
        f"{r['years_pre']} ans avant et {r['years_post']} ans après le début, détecterait {fr_pct(r['power'], 0)} "
        f"des fois au seuil de {fr_pct(r['alpha'], 0)}. Sert à dimensionner un nouveau pilote avant qu'il ne commence.")


def table_deprivation(url: str, run_id: int, disease: str, outcome: str) -> pd.DataFrame:
    """The outcome by deprivation quintile for the last year (events, denominator, value)."""
    if not has_table(url, "evaluation_deprivation"):
        return _table([])
    rows = read(url, "evaluation_deprivation", run_id, disease=disease, outcome=outcome)
    if not rows.height:
        return _table([])
    year = max(rows["year"].to_list())
    rows = rows.filter(pl.col("year") == year).sort(pl.col("quintile").is_null(), "quintile")
    per_case = outcome not in ("disease_stays", "hospitalised")
    return _table([{
        f"Quintile de défavorisation ({year})": "Ensemble" if r["quintile"] is None else
            f"{r['quintile']}{' (moins défavorisé)' if r['quintile'] == 1 else ' (plus défavorisé)' if r['quintile'] == 5 else ''}",
        "Événements": fr_int(r["events"]),
        "Personnes suivies" if per_case else "Habitants": fr_int(r["denominator"]),
        "Valeur standardisée": fr_dec(r["value"], 2 if per_case else 1),
    } for r in rows.iter_rows(named=True)])


def _fig_event_study(url, run_id, meeting, disease, outcome):
    rows = read(url, "evaluation_event_study", run_id, disease=disease, outcome=outcome)
    label_ = outcome_labels(url, run_id).get(outcome_key(disease, outcome), outcome)
    title = f"{label_} : écart aux territoires de comparaison, année par année (différence de différences)"
    return figures.event_study(rows, title, meeting=meeting)


def _fig_synthetic(url, run_id, meeting, territory_id, disease, outcome):
    pilot, start = evaluation_pilot(url, run_id, territory_id)
    rows = read(url, "evaluation_trajectories", run_id, disease=disease, outcome=outcome, territory_id=pilot)
    label_ = outcome_labels(url, run_id).get(outcome_key(disease, outcome), outcome)
    title = f"{label_} — {territory_name(url, run_id, pilot) if pilot is not None else ''} et son contrôle synthétique"
    return figures.pilot_vs_synthetic(rows, title, "Valeur standardisée sur l'âge et le sexe (unité du résultat)", start,
                                      meeting=meeting)


FIGURES.update({"event_study": _fig_event_study, "synthetic_control": _fig_synthetic})
