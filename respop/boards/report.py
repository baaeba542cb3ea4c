"""``respop report``: the meeting dossier, one self-contained HTML file for one territory.

The dossier holds what the board shows, page by page (one section each: Territoire, one per
disease of the run's catalogue, Strates, Recours aux soins, Trajectoires, Évaluation when the run has one, Qualité des données), read
and drawn by the same functions (:mod:`respop.boards.data`): the same headlines, tables and
figures, the figures drawn large (``meeting=True``) and embedded as base64 PNG images, so that
the file can be mailed, opened offline and printed on A4 (print CSS: one section per page
group, no figure or table row cut in two). Like the board it reads only the results store:
aggregated counts, the masked ones shown as "s" (secret statistique), never "< 11": a masked cell
may be larger, masked so that a small one cannot be found by subtraction. Years whose look-back
is incomplete are drawn apart on the trends and named in a note, as on the board.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
from pathlib import Path

import pandas as pd

from respop.boards import data
from respop.boards.labels import MASKED_NOTE, MISSING, PER_100K
from respop.config import Config, load_config
from respop.errors import RespopError

FIRST_SECTIONS = (("territoire", "Territoire"),)
LAST_SECTIONS = (
    ("strates", "Strates"),
    ("recours", "Recours aux soins"),
    ("trajectoires", "Trajectoires"),
    ("qualite", "Qualité des données"),
)
"""(anchor, title) of the dossier's sections around the diseases' (:meth:`Dossier.sections`)."""
EVALUATION_SECTION = ("evaluation", "Évaluation")
"""The evaluation's section, before the quality's, for a run that has one."""

CSS = """
@page { size: A4; margin: 14mm 12mm 16mm 12mm; }
* { box-sizing: border-box; }
body { font-family: "DejaVu Sans", "Helvetica Neue", Arial, sans-serif; font-size: 10.5pt; color: #1a1a1a;
  line-height: 1.4; max-width: 190mm; margin: 0 auto; padding: 8mm 0; background: white; }
h1 { font-size: 22pt; margin: 0 0 4mm 0; color: #10204a; }
h2 { font-size: 17pt; margin: 0 0 3mm 0; color: #10204a; border-bottom: 2px solid #10204a; padding-bottom: 1mm; }
h3 { font-size: 13pt; margin: 6mm 0 2mm 0; color: #10204a; page-break-after: avoid; }
h4 { font-size: 11pt; margin: 4mm 0 1mm 0; page-break-after: avoid; }
.headline { font-size: 15pt; font-weight: bold; color: #10204a; margin: 2mm 0 4mm 0; }
.cover { page-break-after: always; }
.cover .lead { font-size: 13pt; }
.note { color: #4d4d4d; font-size: 9pt; }
section { page-break-before: always; }
figure { margin: 3mm 0 5mm 0; page-break-inside: avoid; text-align: center; }
figure img { width: 100%; height: auto; }
table { border-collapse: collapse; width: 100%; font-size: 8.5pt; margin: 1mm 0 4mm 0; }
thead { display: table-header-group; }
tr { page-break-inside: avoid; }
th { background: #eef1f6; text-align: left; font-weight: bold; }
th, td { border: 1px solid #c8ccd4; padding: 1mm 1.5mm; vertical-align: top; }
td.num, th.num { text-align: right; }
.facts td:first-child { width: 45%; }
.profile { page-break-inside: avoid; margin-bottom: 3mm; }
nav ol { font-size: 12pt; }
@media screen { body { padding: 10mm; } section { border-top: 1px dashed #bbb; margin-top: 10mm; padding-top: 6mm; } }
"""


# ------------------------------------------------------------------------------------ HTML parts


def _e(text: object) -> str:
    return html.escape("" if text is None else str(text))


def _table(frame: pd.DataFrame, empty: str = "Aucune ligne.", css: str = "") -> str:
    if frame is None or len(frame) == 0:
        return f'<p class="note">{_e(empty)}</p>'
    numeric = {c for c in frame.columns
               if (cells := [str(v) for v in frame[c] if str(v) != ""]) and all(data.is_numeric_cell(v) for v in cells)}
    head = "".join(f'<th class="num">{_e(c)}</th>' if c in numeric else f"<th>{_e(c)}</th>" for c in frame.columns)
    rows = []
    for _, row in frame.iterrows():
        cells = "".join(f'<td class="num">{_e(row[c])}</td>' if c in numeric else f"<td>{_e(row[c])}</td>"
                        for c in frame.columns)
        rows.append(f"<tr>{cells}</tr>")
    return f'<table class="{css}"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def _facts(items: list[tuple[str, str, str]]) -> str:
    frame = pd.DataFrame([{"": label_, "Valeur": value} for label_, value, _help in items])
    return _table(frame, css="facts")


class Dossier:
    """The dossier of one territory of one run; :meth:`html` builds the page."""

    def __init__(self, config: Config, run_id: int | None = None, territory_id: int | None = None):
        self.config = config
        self.url = config.store.url
        done = data.succeeded_runs(self.url, config.name)
        if not done:
            raise RespopError(
                f"no published results for {config.name!r} in the store {data.store(self.url)!r}: "
                "run `respop run` on this configuration first"
            )
        ids = [r["run_id"] for r in done]
        if run_id is not None and run_id not in ids:
            raise RespopError(f"run {run_id} is not a succeeded run of {config.name!r}; succeeded runs: {ids}")
        self.run_id = run_id if run_id is not None else ids[0]
        self.run = data.run_info(self.url, self.run_id) or {}
        names = data.territory_names(self.url, self.run_id)
        if not names:
            raise RespopError(f"run {self.run_id} has no territories: run the territories step first")
        if territory_id is not None and territory_id not in names:
            raise RespopError(f"territory {territory_id} is not in run {self.run_id}; territories: {sorted(names)}")
        self.territory_id = territory_id if territory_id is not None else data.default_territory(self.url, self.run_id)
        self.territory_name = names[self.territory_id]
        self.diseases = data.diseases(self.url, self.run_id)
        self.disease_pages = data.disease_pages(self.url, self.run_id)
        self.figures = 0

    # -- pieces ------------------------------------------------------------------------------

    def figure(self, name: str, alt: str, **params) -> str:
        png = data.figure_png(name, self.url, self.run_id, True, **params)
        self.figures += 1
        encoded = base64.b64encode(png).decode("ascii")
        return f'<figure><img alt="{_e(alt)}" src="data:image/png;base64,{encoded}"></figure>'

    @staticmethod
    def headline(text: str) -> str:
        return f'<p class="headline">{_e(text)}</p>'

    # -- sections ----------------------------------------------------------------------------

    def cover(self) -> str:
        r = self.run
        years = data.run_years(r)
        started = r.get("started_at")
        when = started.strftime("%d/%m/%Y") if isinstance(started, dt.datetime) else MISSING
        toc = "".join(f'<li><a href="#{anchor}">{_e(title)}</a></li>' for anchor, title in self.sections())
        return (
            '<div class="cover">'
            "<h1>Dossier de réunion clinique</h1>"
            f'<p class="lead"><strong>{_e(self.territory_name)}</strong></p>'
            f"<p>{_e(self.config.description or self.config.name)}</p>"
            f"<p>Résultats de l'exécution n° {self.run_id} du {when} (années {years}), "
            f"dossier produit le {dt.date.today():%d/%m/%Y} par respop {_e(r.get('code_version', ''))}.</p>"
            f"<nav><h3>Sommaire</h3><ol>{toc}</ol></nav>"
            f'<p class="note">Données agrégées issues du PMSI MCO (séjours hospitaliers de court séjour). '
            f"{MASKED_NOTE} ; « {MISSING} » : taux non publié car calculé "
            f"sur un effectif masqué. Taux {PER_100K}.</p>"
            "</div>"
        )

    def territory(self) -> str:
        url, run, tid = self.url, self.run_id, self.territory_id
        near = data.neighbours(url, run, tid)
        names = data.territory_names(url, run)
        parts = [
            self.headline(data.headline_territory(url, run, tid)),
            _facts(data.territory_facts(url, run, tid)),
            "<h3>Le territoire parmi ses voisins</h3>",
            self.figure("territory_map", "Carte du territoire et de ses voisins", territory_id=tid),
            f"<p><strong>Territoires voisins</strong> : {_e(', '.join(names[t] for t in near) or 'aucun')}</p>",
            "<h3>Les zones du territoire</h3>",
            self.figure("population_map", "Habitants par zone", territory_id=tid),
            "<h3>Où les habitants sont hospitalisés</h3>",
            self.figure("flows", "Établissements où les habitants sont hospitalisés", territory_id=tid),
            _table(data.table_flows(url, run, tid)),
            "<h3>Établissements du territoire</h3>",
            _table(data.table_hospitals(url, run, tid), "Aucun établissement situé sur le territoire."),
            f"<h3>{_e(data.territories_heading(url, run, tid))}</h3>",
            _table(data.table_territories(url, run, tid)),
        ]
        return "".join(parts)

    def disease(self, disease: str) -> str:
        url, run, tid = self.url, self.run_id, self.territory_id
        years = data.indicator_years(url, run, disease)
        if not years:
            return '<p class="note">Aucun indicateur publié pour cette maladie dans cette exécution.</p>'
        year, indicator = years[-1], "prevalence_std"
        note = data.history_note(url, run, tid, disease)
        deaths = data.deaths_note(url, run)
        parts = [
            self.headline(data.headline_disease(url, run, tid, disease, year)),
            _facts(data.disease_facts(url, run, tid, disease, year)),
            f"<h3>Par zone du territoire, {year}</h3>",
            self.figure("indicator_map", "Carte par zone", territory_id=tid, disease=disease, indicator=indicator, year=year),
            _table(data.table_zone_indicators(url, run, tid, disease, year)),
            "<h3>Évolution</h3>",
            self.figure("trend", "Évolution", territory_id=tid, disease=disease, indicator=indicator),
            f'<p class="note">{_e(note)}</p>' if note else "",
            f'<p class="note">{_e(deaths)}</p>' if deaths else "",
            f"<h3>{_e(data.comparison_heading(url, run, tid, year))}</h3>",
            self.figure("comparison", "Comparaison des territoires", territory_id=tid, disease=disease,
                        indicator=indicator, year=year),
            _table(data.table_comparison(url, run, tid, disease, year)),
            f"<h3>Par sous-groupe, {year}</h3>",
            _table(data.table_subtypes(url, run, tid, disease, year)),
        ]
        return "".join(parts)

    def no_catalogue(self) -> list[str]:
        """The message of a run published before the catalogue (its diseases are unknown)."""
        return [] if self.diseases else [f'<p class="note">{_e(data.NO_CATALOGUE)}</p>']

    def strata(self) -> str:
        url, run, tid = self.url, self.run_id, self.territory_id
        parts = self.no_catalogue()
        for disease in self.diseases:
            years = data.care_years(url, run, disease)
            parts.append(f"<h3>{_e(data.disease_name(url, run, disease))}</h3>")
            if not years:
                parts.append('<p class="note">Aucune strate publiée pour cette maladie.</p>')
                continue
            year = years[-1]
            parts += [
                self.headline(data.headline_strata(url, run, tid, disease, year)),
                self.figure("pyramid", "Pyramide des profils", territory_id=tid, disease=disease, year=year),
                "<h4>Les profils et leur protocole de soins</h4>",
            ]
            people = dict(data.strata_pyramid_rows(url, run, tid, disease, year).select("stratum", "people").iter_rows())
            for r in data.strata_levels(url, run, disease).sort("stratum_level", descending=True).iter_rows(named=True):
                parts.append(
                    f'<div class="profile"><p><strong>{_e(r["name"])}</strong> — '
                    f"{_e(data.people_phrase(people.get(r['stratum'])))} en {year}</p>"
                    f"<p><em>Qui ?</em> {_e(r['description'])}</p>"
                    f"<p><em>Protocole de soins.</em> {_e(' '.join((r['protocol'] or 'Non précisé.').split()))}</p></div>"
                )
            parts += [f"<h4>Personnes par zone et par profil, {year}</h4>",
                      _table(data.table_strata_zones(url, run, tid, disease, year), "Aucune zone publiée.")]
        return "".join(parts)

    def care(self) -> str:
        url, run, tid = self.url, self.run_id, self.territory_id
        parts = self.no_catalogue()
        for disease in self.diseases:
            years = data.care_years(url, run, disease)
            parts.append(f"<h3>{_e(data.disease_name(url, run, disease))}</h3>")
            if not years:
                parts.append('<p class="note">Aucun recours aux soins publié pour cette maladie.</p>')
                continue
            year = years[-1]
            parts += [
                self.headline(data.headline_care(url, run, tid, disease, year)),
                self.figure("care", "Recours aux soins par personne", territory_id=tid, disease=disease, year=year),
                self.figure("bed_days", "Journées d'hospitalisation par personne", territory_id=tid, disease=disease,
                            year=year),
                _table(data.table_care(url, run, tid, disease, year)),
            ]
        parts.append(f'<p class="note">{_e(data.CARE_NOTE)}</p>')
        parts.append('<p class="note">Les établissements où les habitants sont hospitalisés (tous séjours) sont '
                     'dans la section <a href="#territoire">Territoire</a>.</p>')
        return "".join(parts)

    def trajectories(self) -> str:
        url, run = self.url, self.run_id
        parts = ['<p class="note">Ensemble de la région étudiée (tous territoires).</p>', *self.no_catalogue()]
        for disease in self.diseases:
            parts.append(f"<h3>{_e(data.disease_name(url, run, disease))}</h3>")
            years = data.transition_years(url, run, disease)
            missing = data.period_skips(url, run)  # what the data's period left out, and why (respop.periods)
            if years:
                year = years[-1]
                parts += [
                    self.headline(data.headline_trajectories(url, run, disease, year)),
                    self.figure("sankey", "Trajectoires d'une année à la suivante", disease=disease, year=year),
                    _table(data.table_transitions(url, run, disease, year)),
                ]
            elif "transitions" in missing:
                parts.append(f'<p class="note">{_e(missing["transitions"])}</p>')
            parts.append("<h4>Survie sans nouvelle hospitalisation ni décès</h4>")
            if "survival" in missing:
                parts.append(f'<p class="note">{_e(missing["survival"])}</p>')
            else:
                parts += [
                    self.figure("survival", "Courbes de survie par profil", disease=disease),
                    _table(data.table_logrank(url, run, disease), "Pas de test du log-rank publié."),
                    "<h4>Modèle de Cox (rapports de risques)</h4>",
                    _table(data.table_cox(url, run, disease), "Pas de modèle de Cox publié."),
                ]
            parts.append("<h4>Prédire le passage à un profil plus sévère</h4>")
            if "prediction" in missing:
                parts.append(f'<p class="note">{_e(missing["prediction"])}</p>')
            else:
                parts += [
                    _table(data.table_model_metrics(url, run, disease), "Pas de modèle publié pour cette maladie."),
                    self.figure("calibration", "Calibration du modèle", disease=disease),
                    self.figure("importance", "Variables les plus utiles au modèle", disease=disease),
                ]
        parts.append('<p class="note">Outil de planification : le modèle ne doit jamais guider seul une décision '
                     "individuelle. Sa fiche technique complète est sur le tableau de bord.</p>")
        return "".join(parts)

    def quality(self) -> str:
        url, run = self.url, self.run_id
        return "".join([
            self.headline(data.headline_quality(url, run)),
            "<h3>Lecture des fichiers PMSI</h3>",
            _table(data.quality_files(url, run), "Pas de rapport de lecture pour cette exécution."),
            "<h4>Motifs de mise en quarantaine</h4>",
            _table(data.quality_reasons(url, run), "Aucune ligne mise en quarantaine."),
            "<h3>Séjours et filtres de qualité</h3>",
            self.figure("quality", "Séjours exclus par les filtres de qualité"),
            _table(data.quality_stays(url, run)),
            _table(data.quality_filters(url, run)),
            "<h3>L'exécution</h3>",
            _table(data.run_facts(url, run), css="facts"),
            *[f'<p class="note">{_e(sentence)}</p>' for sentence in data.period_skips(url, run).values()],
            _table(data.run_timings(url, run), "Durées non enregistrées."),
            "<h4>Toutes les exécutions de cette configuration</h4>",
            _table(data.table_runs(url, self.config.name)),
        ])

    def evaluation(self) -> str:
        """The board's Évaluation page: the design, the effects in sentences, the two methods, and
        for each outcome the year-by-year figure, the pilot and its synthetic control, the donors'
        weights; the caveats and the power table."""
        url, run, tid = self.url, self.run_id, self.territory_id
        missing = data.missing_note(url, run, "evaluation")
        if missing and not data.has_evaluation(url, run):  # the data's period did not allow it (respop.periods)
            return f'<p class="note">{_e(missing)}</p>'
        parts = [
            f'<p class="note">{_e(data.EVALUATION_CONTEXT)}.</p>',
            self.headline(data.headline_evaluation(url, run, tid)),
            f"<h3>{_e(data.effects_scope(url, run, tid))}</h3>",
            "<ul>" + "".join(f"<li>{_e(t)}</li>" for t in data.effect_sentences(url, run, tid)) + "</ul>",
            "<h4>Les deux méthodes côte à côte</h4>",
            _table(data.table_methods(url, run, tid)),
            '<p class="note">DiD : différence de différences (Callaway et Sant\'Anna) ; CS : contrôle synthétique '
            "(Abadie et al.) ; IC : intervalle de confiance.</p>",
        ]
        pilot = data.evaluation_focus(url, run, tid)
        for disease, outcome, label_ in data.evaluation_outcomes(url, run):
            # figures only for the outcomes with an effect published by a method (the sentences
            # above say why the others have none: not estimated, or secret)
            if not any((row := data.effect_row(url, run, disease, outcome, method, pilot)) is not None and row["effect"] is not None
                       for method in ("did", "synthetic_control")):
                continue
            parts += [
                f"<h3>{_e(label_)}</h3>",
                self.figure("event_study", f"{label_} : année par année", disease=disease, outcome=outcome),
                self.figure("synthetic_control", f"{label_} : le pilote et son contrôle synthétique", territory_id=tid,
                            disease=disease, outcome=outcome),
                "<h4>Territoires qui composent le contrôle synthétique</h4>",
                _table(data.table_weights(url, run, tid, disease, outcome), "Aucun poids publié."),
            ]
        parts += [
            "<h3>Avant de conclure</h3>",
            "<ul>" + "".join(f"<li>{_e(t)}</li>" for t in data.evaluation_caveats(url, run, tid)) + "</ul>",
            "<h3>Plus petit effet détectable</h3>",
            _table(data.table_power(url, run), "Pas de calcul de puissance publié."),
            f'<p class="note">{_e(data.power_note(url, run))}</p>',
        ]
        return "".join(parts)

    def sections(self) -> list[tuple[str, str]]:
        """(anchor, title) of the sections, in the board's page order: one per disease of the
        run's catalogue, at its page's address (:func:`respop.boards.data.disease_pages`), and the
        evaluation's before the quality's when the run has one."""
        last = list(LAST_SECTIONS)
        if data.has_evaluation(self.url, self.run_id) or data.missing_note(self.url, self.run_id, "evaluation"):
            last.insert(-1, EVALUATION_SECTION)
        return [*FIRST_SECTIONS, *[(path, name) for _d, name, path in self.disease_pages], *last]

    def html(self) -> str:
        bodies = {
            "territoire": self.territory(),
            **{path: self.disease(disease) for disease, _name, path in self.disease_pages},
            "strates": self.strata(),
            "recours": self.care(),
            "trajectoires": self.trajectories(),
            "qualite": self.quality(),
        }
        if EVALUATION_SECTION in self.sections():
            bodies["evaluation"] = self.evaluation()
        sections = "".join(
            f'<section id="{anchor}"><h2>{_e(title)}</h2>{bodies[anchor]}</section>' for anchor, title in self.sections()
        )
        title = f"Dossier de réunion clinique — {self.territory_name}"
        return (
            '<!DOCTYPE html>\n<html lang="fr"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{_e(title)}</title><style>{CSS}</style></head>"
            f"<body>{self.cover()}{sections}</body></html>\n"
        )


def default_path(config: Config, run_id: int, territory_id: int) -> Path:
    return config.output.dir / "dossiers" / f"dossier-territoire-{territory_id}-execution-{run_id}.html"


def write_report(config_path: str | Path, out: str | Path | None = None, run_id: int | None = None,
                 territory_id: int | None = None) -> Path:
    """Write the dossier of a configuration's territory (default: the newest succeeded run and the
    run's territory of interest) and return its path."""
    config = load_config(config_path)
    dossier = Dossier(config, run_id, territory_id)
    text = dossier.html()
    path = Path(out) if out is not None else default_path(config, dossier.run_id, dossier.territory_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path

