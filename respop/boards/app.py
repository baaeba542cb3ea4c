"""The Streamlit board of the réunions cliniques: read-only, in French, over the results store.

Run it with ``respop dashboard CONFIG`` or ``streamlit run dashboards/app.py -- CONFIG [--run ID]``
(the configuration can also come from the environment variable ``RESPOP_CONFIG``). The board
shows the newest succeeded run of the configuration's name, or an earlier one chosen in the
sidebar (``?run=<id>``), for one territory (``?territoire=<id>``; default: the run's territory of
interest). Meeting mode (``?reunion=1``, or ``[dashboard] meeting_mode``) is for the projector:
large type, one headline sentence per page, figures drawn large.

Pages are functions of :class:`Board` (the store, run, territory and mode chosen in the
sidebar); what they read, say and draw comes from :mod:`respop.boards.data`, shared with the
meeting dossier (:mod:`respop.boards.report`).
"""

from __future__ import annotations

import re

import sys
from pathlib import Path

if __name__ == "__main__":  # `streamlit run respop/boards/app.py` puts this folder first on sys.path
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse
import functools
import hashlib
import math
import os
from dataclasses import dataclass

import pandas as pd
import streamlit as st

from respop.boards import access, data
from respop.boards.access import check_password
from respop.boards.labels import MASKED_NOTE, MISSING, PER_100K
from respop.config import STORE_URL_ENV, Config, load_config
from respop.errors import RespopError
from respop.secrets import HIDDEN, config_secrets, hide_url_password, redact_text, redacted_config_text

CONFIG_ENV = "RESPOP_CONFIG"
"""Environment variable naming the configuration file when none is given after ``--``."""

TITLE = "respop — réunions cliniques"
TABLE_ROWS = 25
"""Rows of a table shown at once on a screen; a longer table is shown in pages of this many rows."""
MEETING_ROWS = 15
"""Rows of a table shown at once in meeting mode (what a projector shows without scrolling)."""
CHOOSE = "Choisir"
"""What an empty choice shows (Streamlit's own is English)."""
TABLE_COLUMNS = 8
"""Columns after the first a table shows side by side on a screen; a wider table is split in two or
more tables, each starting with the first column."""
MEETING_COLUMNS = 6
"""The same in meeting mode."""
TECHNICAL_KEY = "respop-technical"
"""Key of the container of the model card's technical details (raw names, on purpose)."""
NOTICES = "respop_notices"
"""Session key of the warnings about the address (an unknown run or territory) the next page shows."""

DISEASE_ICON = ":material/clinical_notes:"
"""The icon of every disease page (a disease's page is built from the run's catalogue). Page icons
are drawn with the Material Symbols font Streamlit serves itself (nothing fetched elsewhere)."""

BOARD_CSS = """
<style>
/* figures: the width of the main column (the PNG is sent as drawn, never resized) */
[data-testid="stImage"], [data-testid="stImageContainer"] { width: 100% !important; }
[data-testid="stImageContainer"] img { width: 100% !important; max-width: 100% !important; height: auto !important; }
/* headline tiles: long labels and values wrap, never cut with an ellipsis */
[data-testid="stMetricLabel"], [data-testid="stMetricLabel"] *, [data-testid="stMetricValue"],
[data-testid="stMetricValue"] * { white-space: normal !important; overflow: visible !important;
  text-overflow: clip !important; overflow-wrap: break-word; height: auto !important; }
[data-testid="stMetricValue"] { line-height: 1.15; }
/* the sidebar's page names wrap instead of ending in "..." */
[data-testid="stSidebarNav"] a span, [data-testid="stSidebarNav"] a span *, [data-testid="stSidebarNav"] a p {
  white-space: normal !important; overflow: visible !important; text-overflow: clip !important; height: auto !important; }
[data-testid="stSidebarNav"] a { height: auto !important; min-height: 2rem; }
/* st.table: headers and text cells wrap, so that a wide table fits the column without scrolling */
[data-testid="stTable"] th, [data-testid="stTable"] td { white-space: normal !important; overflow-wrap: break-word;
  vertical-align: top; font-size: 1rem; line-height: 1.3; }
[data-testid="stTable"] th { font-weight: 700 !important; color: #1f2a44 !important; overflow-wrap: anywhere; }
[data-testid="stTable"] :is(th, td) { padding: 0.3em 0.5em !important; }
/* markdown tables (the model card): long words wrap inside the column */
[data-testid="stMarkdownContainer"] table { max-width: 100%; }
[data-testid="stMarkdownContainer"] :is(td, th) { overflow-wrap: anywhere; }
</style>
"""
"""Both modes: figures as wide as the main column, tiles and page names that wrap, tables."""

NORMAL_CSS = BOARD_CSS + """
<style>
[data-testid="stMainBlockContainer"] { padding-left: 3rem; padding-right: 3rem; }
.respop-headline { font-size: 1.8rem; font-weight: 700; line-height: 1.3; margin: 0.2rem 0 1rem 0;
  color: #1f2a44; }
.respop-context { color: #5a5a5a; font-size: 0.95rem; margin-bottom: 0.4rem; }
</style>
"""

MEETING_CSS = BOARD_CSS + """
<style>
/* large type for the room; the sidebar (the presenter's controls) keeps a screen's type */
html { font-size: 22px; }
[data-testid="stSidebar"] { font-size: 16px; }
[data-testid="stSidebar"] :is(p, span, label, input, li, a, div, h1, h2, h3) { font-size: 16px !important; }
[data-testid="stSidebar"] h3 { font-size: 18px !important; }
[data-testid="stSidebarNav"] a { min-height: 0; padding-top: 2px; padding-bottom: 2px; }
[data-testid="stMainBlockContainer"] { padding: 2.5rem 1.5rem 4rem 1.5rem; max-width: none; }
[data-testid="stMetricValue"] { font-size: 2.2rem; }
[data-testid="stMetricLabel"] p { font-size: 1rem !important; }
h1 { font-size: 2.4rem !important; }
h2, h3 { font-size: 1.6rem !important; }
.respop-headline { font-size: 2.1rem; font-weight: 800; line-height: 1.2; margin: 0.3rem 0 1.2rem 0;
  color: #10204a; }
.respop-context { color: #333; font-size: 1rem; }
[data-testid="stCaptionContainer"], [data-testid="stCaptionContainer"] p { font-size: 0.9rem !important; color: #333 !important; }
[data-testid="stTable"] :is(th, td) { font-size: 0.9rem !important; }
</style>
"""


@dataclass(frozen=True)
class Board:
    """What every page draws from: the store, run, territory and display mode."""

    config: Config
    config_path: str
    url: str
    run_id: int
    territory_id: int
    meeting: bool

    @property
    def territory_name(self) -> str:
        return data.territory_name(self.url, self.run_id, self.territory_id)


# ------------------------------------------------------------------------------------ arguments


SCRIPTS = ("app.py", "serve.py")
"""Scripts that serve the board: dashboards/app.py and respop/boards/serve.py (respop dashboard)."""


def config_arguments(argv: list[str] | None = None) -> tuple[str | None, int | None]:
    """The configuration path and ``--run`` given after ``--`` on ``streamlit run``'s command
    line, else the configuration from ``RESPOP_CONFIG``."""
    argv = sys.argv if argv is None else argv
    # only when streamlit runs one of the board's scripts (not pytest's own arguments)
    own = argv[1:] if argv and Path(argv[0]).name in SCRIPTS else []
    parser = argparse.ArgumentParser(prog="respop-board", add_help=False)
    parser.add_argument("config", nargs="?")
    parser.add_argument("--run", type=int)
    parsed, _unknown = parser.parse_known_args(own)
    return parsed.config or os.environ.get(CONFIG_ENV) or None, parsed.run


def _int(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


# ------------------------------------------------------------------------------------- display


def headline(board: Board, text: str) -> None:
    """The page's one message: a large sentence under the title."""
    st.markdown(f'<div class="respop-headline">{_escape(text)}</div>', unsafe_allow_html=True)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def page_title(board: Board, title: str, context: str | None = None) -> None:
    for notice in st.session_state.pop(NOTICES, []):
        st.sidebar.warning(notice)
    st.title(title)
    st.markdown(f'<div class="respop-context">{_escape(context or board.territory_name)}</div>', unsafe_allow_html=True)


def figure(board: Board, name: str, download: str, **params) -> None:
    """One figure of :data:`data.FIGURES` (cached PNG) and its "Télécharger (PNG)" button."""
    png = data.figure_png(name, board.url, board.run_id, board.meeting, **params)
    # given its own width and the format PNG, st.image sends the PNG as drawn (a narrower width,
    # "stretch" for a PNG wider than 1460 px, or the format "auto" for a PNG without alpha, would
    # have Streamlit resize or re-encode it, as JPEG even, losing the figure's layout report); the
    # page's CSS draws it as wide as the main column (BOARD_CSS)
    st.image(png, width=png_width(png), output_format="PNG")
    key = hashlib.sha1(repr((name, sorted(params.items()))).encode()).hexdigest()[:12]
    st.download_button(
        "Télécharger (PNG)", png, file_name=data.file_name(download, *params.values()), mime="image/png",
        key=f"png-{key}", on_click="ignore",
    )


def png_width(png: bytes) -> int:
    """The width in pixels of PNG bytes (from its IHDR header)."""
    return int.from_bytes(png[16:20], "big")


def table(board: Board, frame: pd.DataFrame, empty: str = "Aucune ligne à afficher.") -> None:
    """A table of French text cells (number-like columns right-aligned) drawn whole by ``st.table``:
    no box that scrolls. A table longer than :data:`TABLE_ROWS` rows (:data:`MEETING_ROWS` in
    meeting mode) is shown a page of rows at a time, chosen above it; a wider one than
    :data:`TABLE_COLUMNS` (:data:`MEETING_COLUMNS`) is split in tables of fewer columns."""
    if frame is None or len(frame) == 0:
        st.info(empty)
        return
    numeric = set()
    for column in frame.columns:
        cells = [str(v) for v in frame[column] if str(v) != ""]
        if cells and all(data.is_numeric_cell(c) for c in cells):
            numeric.add(column)
    rows = MEETING_ROWS if board.meeting else TABLE_ROWS
    start, n = 0, len(frame)
    if n > rows:
        pages = [f"{first + 1}–{min(first + rows, n)}" for first in range(0, n, rows)]
        key = hashlib.sha1(repr((list(frame.columns), n, [str(v) for v in frame.iloc[0]])).encode()).hexdigest()[:12]
        chosen = st.segmented_control(f"Lignes (sur {n})", pages, default=pages[0], key=f"rows-{key}")
        start = pages.index(chosen) * rows if chosen in pages else 0
    shown = frame.iloc[start:start + rows]
    # a wide table is split into tables of fewer columns, each starting with the first (the row's name)
    width = MEETING_COLUMNS if board.meeting else TABLE_COLUMNS
    others = list(frame.columns[1:])
    parts = max(1, math.ceil(len(others) / width))
    size = math.ceil(len(others) / parts) if others else 0
    for part in range(parts):
        columns = [frame.columns[0], *others[part * size:(part + 1) * size]]
        # st.table: a static table drawn whole (no box of its own), numbers right-aligned
        styler = shown[columns].style.set_properties(subset=[c for c in columns if c in numeric],
                                                     **{"text-align": "right", "white-space": "nowrap"})
        st.table(styler, hide_index=True, border="horizontal", width="content")


def details(board: Board, label: str):
    """Tables and secondary content: open on a screen, folded in meeting mode."""
    return st.expander(label, expanded=not board.meeting)


def metrics(board: Board, items: list[tuple[str, str, str]]) -> None:
    if not items:
        return
    # meeting mode: three tiles a row, so that a tile's label and value stay large on a projector
    per_row = 3 if board.meeting else 4
    for start in range(0, len(items), per_row):
        for col, (label_, value, help_) in zip(st.columns(per_row), items[start:start + per_row], strict=False):
            col.metric(label_, value, help=help_)


def choose_disease(board: Board) -> str | None:
    """The disease of a strata, care or trajectories page, chosen in the sidebar among the run's
    catalogue (none, and a message, for a run published before the catalogue)."""
    diseases = data.diseases(board.url, board.run_id)
    if not diseases:
        st.warning(data.NO_CATALOGUE)
        return None
    names = {d: data.disease_name(board.url, board.run_id, d) for d in diseases}
    return st.sidebar.radio("Maladie", diseases, format_func=names.get, key="disease", persist_state="session")


def choose_year(years: list[int], key: str, label_: str = "Année") -> int | None:
    if not years:
        return None
    return st.sidebar.selectbox(label_, list(reversed(years)), key=key, persist_state="session",
                                placeholder=CHOOSE)


# --------------------------------------------------------------------------------------- pages


def page_territory(board: Board) -> None:
    url, run, tid = board.url, board.run_id, board.territory_id
    page_title(board, "Territoire")
    headline(board, data.headline_territory(url, run, tid))
    metrics(board, data.territory_facts(url, run, tid))
    st.subheader("Le territoire parmi ses voisins")
    figure(board, "territory_map", "territoire-carte", territory_id=tid)
    near = data.neighbours(url, run, tid)
    if near:
        names = data.territory_names(url, run)
        st.markdown("**Territoires voisins** : " + ", ".join(names[t] for t in near))
    st.subheader("Les zones du territoire")
    figure(board, "population_map", "territoire-zones", territory_id=tid)
    st.subheader("Où les habitants sont hospitalisés")
    figure(board, "flows", "territoire-flux", territory_id=tid)
    with details(board, "Les 10 premiers établissements"):
        table(board, data.table_flows(url, run, tid))
    with details(board, "Établissements du territoire"):
        table(board, data.table_hospitals(url, run, tid), "Aucun établissement situé sur le territoire.")
    with details(board, data.territories_heading(url, run, tid)):
        table(board, data.table_territories(url, run, tid))
    st.caption(
        "Indice de localisation : part des séjours des habitants réalisés dans les établissements du territoire. "
        "Indice de part de marché : part des séjours des établissements du territoire qui concernent ses habitants. "
        f"{MASKED_NOTE}."
    )


def page_disease(board: Board, disease: str) -> None:
    url, run, tid = board.url, board.run_id, board.territory_id
    years = data.indicator_years(url, run, disease)
    year = choose_year(years, f"year-{disease}")
    indicator = st.sidebar.selectbox(
        "Indicateur", list(data.INDICATOR_CHOICES), format_func=data.INDICATOR_CHOICES.get,
        key=f"indicator-{disease}", persist_state="session", placeholder=CHOOSE,
    )
    page_title(board, data.disease_name(url, run, disease))
    if year is None:
        st.info("Aucun indicateur publié pour cette maladie dans cette exécution.")
        return
    headline(board, data.headline_disease(url, run, tid, disease, year))
    metrics(board, data.disease_facts(url, run, tid, disease, year))
    st.subheader(f"Par zone du territoire, {year}")
    figure(board, "indicator_map", f"{disease}-carte", territory_id=tid, disease=disease, indicator=indicator, year=year)
    with details(board, "Tableau par zone"):
        table(board, data.table_zone_indicators(url, run, tid, disease, year))
    st.subheader("Évolution")
    figure(board, "trend", f"{disease}-evolution", territory_id=tid, disease=disease, indicator=indicator)
    note = data.history_note(url, run, tid, disease)
    if note:
        st.caption(note)
    deaths = data.deaths_note(url, run)
    if deaths:
        st.caption(deaths)
    st.subheader(data.comparison_heading(url, run, tid, year))
    figure(board, "comparison", f"{disease}-territoires", territory_id=tid, disease=disease, indicator=indicator, year=year)
    with details(board, "Tableau des territoires"):
        table(board, data.table_comparison(url, run, tid, disease, year))
    with details(board, f"Par sous-groupe, {year}"):
        table(board, data.table_subtypes(url, run, tid, disease, year))
    st.caption(f"Taux {PER_100K} ; IC 95 % : intervalle de confiance à 95 %. {data.incident_note(url, run, disease)} "
               f"{MASKED_NOTE} ; « {MISSING} » : taux non publié car calculé sur un effectif masqué.")


def page_strata(board: Board) -> None:
    url, run, tid = board.url, board.run_id, board.territory_id
    page_title(board, "Strates")
    disease = choose_disease(board)
    if disease is None:
        return
    year = choose_year(data.care_years(url, run, disease), "year-strata")
    if year is None:
        st.info("Aucune strate publiée pour cette maladie.")
        return
    headline(board, data.headline_strata(url, run, tid, disease, year))
    figure(board, "pyramid", f"{disease}-strates", territory_id=tid, disease=disease, year=year)
    st.markdown("**Les profils et leur protocole de soins**")
    people = dict(data.strata_pyramid_rows(url, run, tid, disease, year).select("stratum", "people").iter_rows())
    levels = data.strata_levels(url, run, disease).sort("stratum_level", descending=True)
    top = levels["stratum_level"].max()
    for r in levels.iter_rows(named=True):
        with st.expander(f"{r['name']} : {data.people_phrase(people.get(r['stratum']))}",
                         expanded=not board.meeting and r["stratum_level"] == top):
            st.markdown(f"**Qui ?** {_escape(r['description'] or '')}")
            st.markdown(f"**Protocole de soins.** {_escape(r['protocol'] or 'Non précisé.')}".replace("\n", " "))
    with details(board, f"Personnes par zone et par profil, {year}"):
        table(board, data.table_strata_zones(url, run, tid, disease, year), "Aucune zone publiée.")
    st.caption(f"{MASKED_NOTE} ; « 0 » : aucune personne.")


def page_care(board: Board) -> None:
    url, run, tid = board.url, board.run_id, board.territory_id
    page_title(board, "Recours aux soins")
    disease = choose_disease(board)
    if disease is None:
        return
    year = choose_year(data.care_years(url, run, disease), "year-care")
    if year is None:
        st.info("Aucun recours aux soins publié pour cette maladie.")
        return
    headline(board, data.headline_care(url, run, tid, disease, year))
    figure(board, "care", f"{disease}-recours", territory_id=tid, disease=disease, year=year)
    figure(board, "bed_days", f"{disease}-journees", territory_id=tid, disease=disease, year=year)
    with details(board, f"Recours aux soins par profil, {year}"):
        table(board, data.table_care(url, run, tid, disease, year))
    st.subheader("Où les habitants sont hospitalisés (tous séjours)")
    figure(board, "flows", "recours-flux", territory_id=tid)
    with details(board, "Les 10 premiers établissements"):
        table(board, data.table_flows(url, run, tid))
    st.caption(f"{data.CARE_NOTE} {MASKED_NOTE}.")


def page_trajectories(board: Board) -> None:
    url, run = board.url, board.run_id
    page_title(board, "Trajectoires", "Ensemble de la région étudiée (tous territoires)")
    disease = choose_disease(board)
    if disease is None:
        return
    year = choose_year(data.transition_years(url, run, disease), "year-trajectories", "Année de départ (N)")
    missing = data.period_skips(url, run)  # what the data's period left out, and why (respop.periods)
    if year is None:
        st.info(missing.get("transitions") or "Aucune trajectoire publiée pour cette maladie (il faut au moins deux années).")
    else:
        headline(board, data.headline_trajectories(url, run, disease, year))
        figure(board, "sankey", f"{disease}-trajectoires", disease=disease, year=year)
        with details(board, f"Profils en {year} et situation en {year + 1}"):
            table(board, data.table_transitions(url, run, disease, year))
    st.subheader("Survie sans nouvelle hospitalisation ni décès")
    if "survival" in missing:
        st.info(missing["survival"])
    else:
        figure(board, "survival", f"{disease}-survie", disease=disease)
        with details(board, "Comparaison des profils voisins (test du log-rank)"):
            table(board, data.table_logrank(url, run, disease))
        with details(board, "Modèle de Cox (rapports de risques)"):
            table(board, data.table_cox(url, run, disease))
            st.markdown("**Test de l'hypothèse des risques proportionnels**")
            table(board, data.table_ph_test(url, run, disease))
    st.subheader("Prédire le passage à un profil plus sévère")
    if "prediction" in missing:
        st.info(missing["prediction"])
    else:
        prediction_section(board, disease)
    st.caption(f"{MASKED_NOTE}. Outil de planification : le modèle ne doit jamais guider seul une décision "
               "individuelle.")


def prediction_section(board: Board, disease: str) -> None:
    """The trajectories page's prediction: the models' scores, calibration, variables and card."""
    url, run = board.url, board.run_id
    with details(board, "Performances du modèle (année de test)"):
        table(board, data.table_model_metrics(url, run, disease), "Pas de modèle publié pour cette maladie.")
        st.caption("AUC : probabilité qu'une personne qui s'aggrave ait reçu un risque plus élevé qu'une autre "
                   "(0,5 = hasard). Score de Brier : erreur quadratique moyenne des probabilités (plus bas = mieux). "
                   "Un modèle « sans pouvoir prédictif » ne fait pas mieux que la prévalence seule (gain de Brier ≤ 0) "
                   "ou ne classe pas mieux que le hasard (intervalle de l'AUC contenant 0,5) : ses scores ne sont pas "
                   "montrés.")
    figure(board, "calibration", f"{disease}-calibration", disease=disease)
    figure(board, "importance", f"{disease}-variables", disease=disease)
    card = data.model_card(url, run, disease)
    if card:
        from respop.cards import split_card

        plain, technical = split_card(card)

        def lower(text: str) -> str:  # the card's headings one level under the page's subheadings
            return re.sub(r"^(#+) ", lambda m: "#" * (len(m.group(1)) + 3) + " ", text, flags=re.MULTILINE)

        with st.expander("Fiche du modèle"):
            st.markdown(lower(plain))
        if technical:
            # for the data team: the variables' and algorithms' own names (key: the browser test
            # reads no English in it, and checks its layout)
            with st.container(key=TECHNICAL_KEY), st.expander("Détails techniques du modèle (pour l'équipe données)"):
                st.markdown(lower(technical))


def page_quality(board: Board) -> None:
    url, run = board.url, board.run_id
    page_title(board, "Qualité des données", f"Exécution {data.run_label(data.run_info(url, run) or {'run_id': run})}")
    headline(board, data.headline_quality(url, run))
    st.subheader("Lecture des fichiers PMSI")
    table(board, data.quality_files(url, run), "Pas de rapport de lecture pour cette exécution.")
    with details(board, "Motifs de mise en quarantaine"):
        table(board, data.quality_reasons(url, run), "Aucune ligne mise en quarantaine.")
    st.subheader("Séjours et filtres de qualité")
    figure(board, "quality", "qualite-filtres")
    table(board, data.quality_stays(url, run))
    table(board, data.quality_filters(url, run))
    st.subheader("L'exécution")
    table(board, data.run_facts(url, run))
    missing = data.period_skips(url, run)
    if missing:  # what the data's period left out of the run, and why (respop.periods)
        st.markdown("**Ce que la période des données ne permet pas**")
        st.markdown("\n".join(f"- {_escape(sentence)}" for sentence in missing.values()))
    st.markdown("**Durée des étapes**")
    table(board, data.run_timings(url, run), "Durées non enregistrées.")
    with st.expander("Fichier de configuration de l'exécution"):
        # stored without its secrets; redacted again here for the runs stored before that
        st.code(redacted_config_text((data.run_info(url, run) or {}).get("config_toml") or ""), language="toml")
        st.caption(f"Les secrets (mot de passe de la base de résultats, empreinte du mot de passe du tableau de "
                   f"bord) ne sont ni conservés ni affichés : « {HIDDEN} » les remplace.")
    with details(board, "Toutes les exécutions de cette configuration"):
        table(board, data.table_runs(url, board.config.name))


def page_evaluation(board: Board) -> None:
    """Ce qui a changé dans le territoire, comparé à des territoires semblables (issue 20): shown
    only for a run that published an evaluation."""
    url, run, tid = board.url, board.run_id, board.territory_id
    page_title(board, data.EVALUATION_TITLE, data.EVALUATION_CONTEXT)
    missing = data.missing_note(url, run, "evaluation")
    if missing and not data.has_evaluation(url, run):  # the data's period did not allow it (respop.periods)
        st.info(missing)
        return
    headline(board, data.headline_evaluation(url, run, tid))
    st.subheader(data.effects_scope(url, run, tid))
    st.markdown("\n".join(f"- {_escape(sentence)}" for sentence in data.effect_sentences(url, run, tid)))
    with details(board, "Les deux méthodes côte à côte"):
        table(board, data.table_methods(url, run, tid))
        st.caption("DiD : différence de différences (Callaway et Sant'Anna) ; CS : contrôle synthétique (Abadie et al.) ; "
                   "IC : intervalle de confiance ; p : probabilité d'observer un tel écart par le seul hasard.")
    labels = data.outcome_labels(url, run)
    if not labels:
        return
    chosen = st.sidebar.selectbox("Résultat suivi", list(labels), index=data.default_outcome(url, run, tid),
                                  format_func=labels.get, key="evaluation-outcome", persist_state="session", placeholder=CHOOSE)
    disease, outcome = (chosen or next(iter(labels))).split("|", 1)
    st.subheader("Année par année depuis le début")
    figure(board, "event_study", f"evaluation-{disease}-{outcome}-annees", disease=disease, outcome=outcome)
    st.subheader("Le territoire pilote et son contrôle synthétique")
    figure(board, "synthetic_control", f"evaluation-{disease}-{outcome}-controle", territory_id=tid, disease=disease,
           outcome=outcome)
    with details(board, "Territoires qui composent le contrôle synthétique"):
        table(board, data.table_weights(url, run, tid, disease, outcome), "Aucun poids publié.")
    st.subheader("Avant de conclure")
    st.markdown("\n".join(f"- {_escape(text)}" for text in data.evaluation_caveats(url, run, tid)))
    st.subheader("Plus petit effet détectable")
    table(board, data.table_power(url, run), "Pas de calcul de puissance publié.")
    st.caption(data.power_note(url, run))
    deprivation = data.table_deprivation(url, run, disease, outcome)
    if len(deprivation):
        with details(board, "Selon la défavorisation des zones de résidence"):
            table(board, deprivation)
    st.caption(f"{MASKED_NOTE}.")


# --------------------------------------------------------------------------------- the session


ATTEMPT = "respop_attempt"
"""Session key of the outcome of the last password attempt, for the page that follows it."""


def client_key() -> str:
    """Who is trying a password, for the rate limit: the client's IP address as Streamlit sees it
    (behind a reverse proxy on this machine, uvicorn takes it from the proxy's X-Forwarded-For),
    else (a browser on this machine, or a proxy that sends no address) this browser session."""
    try:
        ip = st.context.ip_address
    except Exception:  # noqa: BLE001 - no client context (a bare script run)
        ip = None
    if isinstance(ip, str) and ip:  # (Streamlit's AppTest gives a stand-in object)
        return f"ip:{ip}"
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    ctx = get_script_run_ctx()
    return f"session:{ctx.session_id if ctx is not None else 'none'}"


def _try_password(expected: str | None, client: str) -> None:
    """The password field's callback: each password typed is checked once (and the field emptied),
    unless the client's attempts are paused."""
    password = st.session_state.get("respop_password") or ""
    st.session_state["respop_password"] = ""
    if not password:
        return
    if access.LIMITER.wait(client) > 0:
        st.session_state[ATTEMPT] = "paused"
    elif check_password(password, expected):
        access.LIMITER.succeeded(client)
        st.session_state["respop_access"] = expected
    else:
        access.LIMITER.failed(client)
        st.session_state[ATTEMPT] = "wrong"


def _duration(seconds: float) -> str:
    """A pause in French: "30 secondes", "2 minutes", "1 heure"."""
    seconds = max(1, math.ceil(seconds))
    if seconds < 120:
        return f"{seconds} secondes"
    minutes = math.ceil(seconds / 60)
    if minutes < 120:
        return f"{minutes} minutes"
    hours = math.ceil(minutes / 60)
    return f"{hours} heure" + ("s" if hours > 1 else "")


def password_gate(config: Config) -> bool:
    """True when the board is public or the session gave the right password. Wrong passwords
    are rate-limited per client (:data:`respop.boards.access.LIMITER`)."""
    expected = config.dashboard.password_hash
    if config.dashboard.access != "password":
        return True
    if st.session_state.get("respop_access") == expected:
        return True
    st.title(TITLE)
    st.markdown("Ce tableau de bord est réservé aux participants de la réunion clinique.")
    client = client_key()
    wait = access.LIMITER.wait(client)
    st.text_input("Mot de passe", type="password", key="respop_password", on_change=_try_password,
                  args=(expected, client), disabled=wait > 0)
    outcome = st.session_state.pop(ATTEMPT, None)
    if wait > 0:
        st.error(("Mot de passe incorrect. " if outcome == "wrong" else "")
                 + f"Trop de mots de passe erronés : les essais sont suspendus pendant {_duration(wait)}. "
                 "Rechargez la page ensuite pour réessayer.")
    elif outcome == "wrong":
        st.error("Mot de passe incorrect.")
    return False


def _config_secrets(path: str) -> list[str]:
    """The secrets a configuration error could repeat: those written in the file, and the store
    URL of the environment."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        text = ""
    return [*config_secrets(text), os.environ.get(STORE_URL_ENV, "")]


def _choose(key: str, param: str, options: list[int], default: int, labels: dict[int, str], label_: str,
            wanted: int | None = None) -> int:
    """A sidebar choice kept in the session and mirrored in the URL (``?<param>=<id>``)."""
    if st.session_state.get(key) not in options:
        asked = _int(st.query_params.get(param))
        asked = asked if asked is not None else wanted
        if asked is not None and asked not in options:  # said by the page (page_title)
            st.session_state.setdefault(NOTICES, []).append(f"{label_} n° {asked} introuvable : {labels[default]} est affiché.")
        st.session_state[key] = asked if asked in options else default
    value = st.sidebar.selectbox(label_, options, key=key, format_func=lambda i: labels.get(i, str(i)),
                                 placeholder=CHOOSE)
    st.query_params[param] = str(value)
    return value


def main() -> None:
    st.set_page_config(
        # an emoji, drawn by the browser: a ":material/...:" icon is fetched from Google's font servers
        page_title=TITLE, page_icon="🏥", layout="wide",
        menu_items={"Get help": None, "Report a bug": None,
                    "About": "respop : responsabilité populationnelle, tableau de bord des réunions cliniques. "
                             f"Données agrégées du PMSI ; {MASKED_NOTE}."},
    )
    path, run_arg = config_arguments()
    if not path:
        st.title(TITLE)
        st.error("Aucune configuration : lancez `respop dashboard territories/<territoire>.toml` "
                 f"(ou `streamlit run dashboards/app.py -- <configuration>`, ou la variable {CONFIG_ENV}).")
        st.stop()
    try:
        config = load_config(path)
    except RespopError as exc:
        st.title(TITLE)
        st.error(f"Configuration illisible ({path}) :\n\n{redact_text(str(exc), *_config_secrets(path))}")
        st.stop()
    if not password_gate(config):
        st.stop()
    url = config.store.url
    try:
        done = data.succeeded_runs(url, config.name)
    except Exception as exc:  # noqa: BLE001 - unreachable database, bad URL: a message, not a traceback
        st.title(TITLE)
        error = redact_text(f"{type(exc).__name__}: {exc}", url, config.dashboard.password_hash)
        st.error(f"La base de résultats est inaccessible ({hide_url_password(url)}) : {error}")
        st.stop()
    if not done:
        st.title(TITLE)
        st.warning(f"Aucun résultat publié pour « {config.name} » : lancez `respop run {path}`, "
                   "puis rechargez cette page.")
        others = data.runs(url, config.name)
        if others:
            st.markdown(f"La base contient {len(others)} exécution(s) de cette configuration, aucune réussie "
                        f"(la dernière : {data.RUN_STATUS.get(others[0]['status'], others[0]['status'])}).")
        st.stop()

    st.sidebar.markdown(f"### {TITLE}")
    if config.description:
        st.sidebar.caption(config.description)
    run_labels = {r["run_id"]: data.run_label(r) for r in done}
    run_id = _choose("run_id", "run", list(run_labels), done[0]["run_id"], run_labels, "Exécution", run_arg)
    chosen = next(r for r in done if r["run_id"] == run_id)
    st.sidebar.caption(f"{'Année' if chosen.get('first_year') == chosen.get('last_year') else 'Années'} {data.run_years(chosen)}"
                       + (" · la plus récente" if run_id == done[0]["run_id"] else " · une exécution antérieure"))
    names = data.territory_names(url, run_id)
    if not names:
        st.title(TITLE)
        st.warning("Cette exécution n'a pas de territoires : lancez l'étape territories de `respop run`.")
        st.stop()
    territory_id = _choose("territory_id", "territoire", list(names), data.default_territory(url, run_id), names,
                           "Territoire")
    if "meeting" not in st.session_state:
        asked = st.query_params.get("reunion")
        st.session_state["meeting"] = config.dashboard.meeting_mode if asked is None else asked in ("1", "oui", "true")
    meeting = st.sidebar.toggle("Mode réunion", key="meeting",
                                help="Grands caractères et grandes figures pour le vidéoprojecteur.")
    if meeting:
        st.query_params["reunion"] = "1"
    elif "reunion" in st.query_params:
        del st.query_params["reunion"]
    st.markdown(MEETING_CSS if meeting else NORMAL_CSS, unsafe_allow_html=True)

    board = Board(config, str(path), url, run_id, territory_id, meeting)
    territory = st.Page(lambda: page_territory(board), title="Territoire", url_path="territoire", icon=":material/map:")
    # the app's root opens the Territoire page at its own address (/territoire), so that every page
    # has one address to share (Streamlit serves a default page at the root only)
    home = st.Page(lambda: st.switch_page(territory), title="Accueil", url_path="accueil", default=True,
                   visibility="hidden")
    pages = [
        home,
        territory,
        # one page per disease of the run's catalogue, named and addressed from its spec
        *[st.Page(functools.partial(page_disease, board, disease), title=name, url_path=path,
                  icon=DISEASE_ICON) for disease, name, path in data.disease_pages(url, run_id)],
        st.Page(lambda: page_strata(board), title="Strates", url_path="strates", icon=":material/change_history:"),
        st.Page(lambda: page_care(board), title="Recours aux soins", url_path="recours", icon=":material/local_hospital:"),
        st.Page(lambda: page_trajectories(board), title="Trajectoires", url_path="trajectoires", icon=":material/moving:"),
        st.Page(lambda: page_quality(board), title="Qualité des données", url_path="qualite", icon=":material/fact_check:"),
    ]
    # the page of a run that evaluated an experiment, or that says why the period did not allow it
    if data.has_evaluation(url, run_id) or data.missing_note(url, run_id, "evaluation"):
        pages.insert(-1, st.Page(lambda: page_evaluation(board), title=data.EVALUATION_TITLE, url_path="evaluation",
                                 icon=":material/compare_arrows:"))
    st.navigation(pages).run()


if __name__ == "__main__":
    main()
