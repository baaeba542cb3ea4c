"""The board's « Évaluation » page and the dossier's section (issue 20) on a run with a fabricated
evaluation (tests/store/evaluation_outputs.py: a pilot territory from 2021, the two others as
donors; one outcome published, one masked because a donor's cells are, one masked because the
pilot's are: which ones depends on the cells the tiny run masks), by Streamlit's AppTest in both
modes; the page is absent from a run without one."""

from __future__ import annotations

import html

from respop.boards import data, figures
from respop.boards.labels import MASKED, MASKED_NOTE
from tests.boards.test_app import assert_french_tables, board, cells, headline, open_page, tables, texts


def label(run, role: str) -> str:
    """The published French label of the fabricated outcome of ``role`` (tests/store/evaluation_outputs.py)."""
    disease, outcome = run.design.outcomes[role]
    return data.outcome_labels(run.config.store.url, run.run_id)[data.outcome_key(disease, outcome)]


def pilot_sentence(run) -> str:
    """The sentence of the published outcome: its fabricated DiD effect −12 % (−20 % to −3 %)."""
    return (f"{label(run, 'published')}\u00a0: −12\u202f% (intervalle de confiance à 95\u202f%\u00a0: −20\u202f% à −3\u202f%) "
            "par rapport aux territoires de comparaison")


def test_the_evaluation_page_in_both_modes(evaluation_run, monkeypatch):
    design = evaluation_run.design
    at = board(evaluation_run.config_path, monkeypatch, "evaluation", territoire=design.pilot)
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    assert [t.value for t in at.title] == ["Évaluation"]
    page = texts(at)
    assert data.EVALUATION_CONTEXT in page
    assert headline(at).startswith("Territoire pilote\u00a0: Territoire de ") and "(depuis 2021), comparé à 2 territoires semblables" in headline(at)
    assert pilot_sentence(evaluation_run) in page
    for role in ("donor_masked", "pilot_masked"):
        assert f"{label(evaluation_run, role)}\u00a0: {MASKED} (secret statistique)" in page
    assert "la plus petite valeur p possible du contrôle synthétique est 1/3 = 0,333 : ce contrôle ne peut pas conclure" in page.replace("\u00a0", " ")
    assert f"{MASKED_NOTE}." in page
    methods = tables(at)[0]
    assert list(methods.columns)[:4] == ["Résultat suivi", "Effet (DiD)", "IC 95\u202f% (DiD)", "p (DiD)"]
    assert MASKED in cells(at)
    assert len(at.image) == 2 and len(at.get("download_button")) == 2
    assert any("plus petit effet détectable" in t.lower() for t in page.splitlines())
    assert_french_tables(at)
    assert all(e.proto.expanded for e in at.expander)
    # another outcome chosen in the sidebar: its figures
    at.sidebar.selectbox(key="evaluation-outcome").set_value(data.outcome_key(*design.outcomes["donor_masked"])).run()
    assert not at.exception and len(at.image) == 2
    # meeting mode: the same message, details folded, figures drawn large
    at.sidebar.toggle(key="meeting").set_value(True).run()
    assert not at.exception and headline(at)
    assert not any(e.proto.expanded for e in at.expander)
    # a territory that is not a pilot: every pilot pooled
    at = board(evaluation_run.config_path, monkeypatch, "evaluation", territoire=design.donors[0])
    assert not at.exception
    assert "Effets estimés pour le territoire pilote" in texts(at)


def test_the_figures_read_well_in_both_modes(evaluation_run):
    url, run = evaluation_run.config.store.url, evaluation_run.run_id
    for meeting in (False, True):
        for disease, outcome in evaluation_run.design.outcomes.values():
            for name, params in (("event_study", {}), ("synthetic_control", {"territory_id": evaluation_run.design.pilot})):
                report = figures.png_layout(data.figure_png(name, url, run, meeting, disease=disease, outcome=outcome, **params))
                assert {k: v for k, v in report.items() if k != "texts" and v} == {}, (name, outcome, meeting, report)
                assert not any("nan" in t.lower() or "None" in t for t in report["texts"])


def test_no_evaluation_page_without_an_evaluation(tiny_run, monkeypatch):
    url, run = tiny_run.config.store.url, tiny_run.run_id
    if data.has_evaluation(url, run):  # the tiny configuration has an [evaluation] (the real step)
        return
    at = board(tiny_run.config_path, monkeypatch)
    assert not at.exception
    open_page(at, "evaluation").run()
    assert [t.value for t in at.title] != ["Évaluation"]


def test_the_dossier_has_the_evaluation_section(evaluation_run, tmp_path):
    from respop.boards.report import write_report

    text = write_report(evaluation_run.config_path, tmp_path / "dossier.html",
                        territory_id=evaluation_run.design.pilot).read_text(encoding="utf-8")
    assert '<section id="evaluation"><h2>Évaluation</h2>' in text
    assert text.index('id="evaluation"') < text.index('id="qualite"')
    assert html.escape(pilot_sentence(evaluation_run)) in text
    assert text.count("<figure>") >= 6 + 2 * 3  # the other pages' and two per outcome


def test_outcomes_the_step_could_not_estimate_are_grouped_by_reason(tiny_run):
    """The real tiny run (pilot 1 from 2022): 24 outcomes, many with too few events; each outcome
    is named in one sentence, the estimated ones each in their own, the others in one sentence per
    reason."""
    url, run = tiny_run.config.store.url, tiny_run.run_id
    plain = lambda text: text.replace("\u00a0", " ")  # noqa: E731 - French spacing before « : » and « ; »
    sentences = [plain(s) for s in data.effect_sentences(url, run, 1)]
    grouped = [s for s in sentences if s.startswith("Non évaluable")]
    assert grouped, sentences
    assert len(sentences) < len(data.evaluation_outcomes(url, run))
    reasons = [s.split(") : ")[0] for s in grouped]
    assert len(set(reasons)) == len(reasons)  # one sentence per reason
    labels = [plain(lab) for _d, _o, lab in data.evaluation_outcomes(url, run)]
    for lab in labels:
        assert sum(lab in s for s in sentences) == 1 or any(lab != other and lab in other for other in labels), lab
