"""What the boards say on tiny is not misleading (issue 19): a masked cell, small or masked only so
that a small one cannot be found by subtraction, is shown with the one symbol "s" and never as
"< 11"; the years whose look-back is incomplete are flagged to the trend figure, the headline and
the note; incidence says what a new case is; the transitions table gives no share of a masked
total."""

from __future__ import annotations

import re

import polars as pl
import pytest

from respop.boards import data, report
from respop.boards.labels import MASKED, MASKED_NOTE
from respop.config import load_config

FALSE_BOUND = re.compile(r"<\s*11|moins de 11", re.IGNORECASE)


def _unmasked(tiny_run, table: str) -> pl.DataFrame:
    """A table of the run's outputs before publication (counts not masked)."""
    folder = "cases" if table == "indicators" else "strata"
    return pl.read_parquet(tiny_run.base / "run" / folder / f"{table}.parquet")


def _territory(tiny_run) -> tuple[str, int, int]:
    url = tiny_run.config.store.url
    return url, tiny_run.run_id, data.default_territory(url, tiny_run.run_id)


def _all_board_text(url: str, run: int, tid: int) -> str:
    """Every headline and table cell of every page of the board, for every disease and year."""
    parts = [data.headline_territory(url, run, tid)]
    frames = [data.table_flows(url, run, tid), data.table_territories(url, run, tid)]
    for disease in data.diseases(url, run):
        for year in data.indicator_years(url, run, disease):
            parts.append(data.headline_disease(url, run, tid, disease, year))
            parts += [f"{k} {v}" for k, v, _ in data.disease_facts(url, run, tid, disease, year)]
            frames += [data.table_zone_indicators(url, run, tid, disease, year),
                       data.table_comparison(url, run, tid, disease, year),
                       data.table_subtypes(url, run, tid, disease, year)]
        for year in data.care_years(url, run, disease):
            parts += [data.headline_strata(url, run, tid, disease, year), data.headline_care(url, run, tid, disease, year)]
            frames += [data.table_care(url, run, tid, disease, year), data.table_strata_zones(url, run, tid, disease, year)]
        for year in data.transition_years(url, run, disease):
            parts.append(data.headline_trajectories(url, run, disease, year))
            frames.append(data.table_transitions(url, run, disease, year))
    for frame in frames:
        parts += [str(c) for c in frame.columns] + [str(v) for v in frame.to_numpy().ravel()]
    return "\n".join(parts)


def test_a_complementary_suppression_shows_the_common_symbol(tiny_run):
    """On tiny a care-use count of 11 or more is masked (a complementary suppression): its cell
    reads "s" like a count of 1 to 10, and nothing anywhere says "< 11"."""
    url, run, tid = _territory(tiny_run)
    raw = _unmasked(tiny_run, "care_use").filter(pl.col("level") == "territory")
    published = data.read(url, "care_use", run, level="territory")
    both = raw.join(published, on=["unit", "year", "disease", "stratum"], suffix="_pub")
    complementary = both.filter(pl.col("people_pub").is_null() & (pl.col("people") >= 11))
    assert complementary.height > 0, "tiny has no complementary suppression of people: the test needs one"
    hit = complementary.sort("people", descending=True).row(0, named=True)
    table = data.table_care(url, run, int(hit["unit"]), hit["disease"], hit["year"])
    name = data.strata_names(url, run, hit["disease"]).get(hit["stratum"], "Ensemble des personnes suivies")
    row = table[table["Profil"] == name]
    assert row["Personnes"].tolist() == [MASKED] == ["s"], (hit, row)
    # the headline of that profile or care page never says "moins de 11" for it
    text = _all_board_text(url, run, int(hit["unit"]))
    assert not FALSE_BOUND.search(text), FALSE_BOUND.search(text)
    assert MASKED in text


def test_masked_headline_counts_say_secret_not_a_bound(tiny_run):
    url, run, tid = _territory(tiny_run)
    assert data.people_phrase(None) == "nombre soumis au secret statistique (« s »)"
    assert "secret statistique" in MASKED_NOTE and "« s »" in MASKED_NOTE
    for name in data.territory_names(url, run):
        assert not FALSE_BOUND.search(_all_board_text(url, run, name))


def test_years_with_an_incomplete_look_back_are_flagged(tiny_run):
    """tiny covers 2019-2023: heart failure (5 years of look-back) has no complete year, diabetes
    (1 year) only 2019 incomplete. The trend figure is told which years are apart, the headline
    and the note say so, and the incidence is labelled for what it is."""
    url, run, tid = _territory(tiny_run)
    hf = data.territory_indicators(url, run, tid, "heart_failure")
    assert hf["complete_history"].to_list() == [False] * 5
    diabetes = data.territory_indicators(url, run, tid, "diabetes")
    assert diabetes["complete_history"].to_list() == [False, True, True, True, True]
    assert data.lookback_years(url, run, "heart_failure") == 5 and data.lookback_years(url, run, "diabetes") == 1
    assert data.incident_label(url, run, "heart_failure") == "premier séjour repéré depuis 5 ans"
    assert data.incident_label(url, run, "diabetes") == "premier séjour repéré depuis 1 an"
    assert "recul incomplet en 2023" in data.headline_disease(url, run, tid, "heart_failure", 2023)
    assert "recul incomplet" not in data.headline_disease(url, run, tid, "diabetes", 2023)
    assert "recul incomplet en 2019" in data.headline_disease(url, run, tid, "diabetes", 2019)
    note = data.history_note(url, run, tid, "diabetes")
    assert note.startswith("Recul incomplet en 2019 :") and "à part" in note
    facts = dict((k, v) for k, v, _ in data.disease_facts(url, run, tid, "heart_failure", 2023))
    assert "Nouveaux cas (premier séjour repéré depuis 5 ans)" in facts
    assert any("pour 100\u202f000 hab." in k for k in facts)  # a unit on every rate tile
    assert "premier séjour repéré depuis 5 ans" in data.indicator_title(url, run, "heart_failure", "incidence_std")

    # what the trend figure is given: the complete flag per year and series, and the label
    seen = {}

    def spy(df, title, value_label, meeting=False, **kwargs):
        seen.update(df=df, kwargs=kwargs)
        return "figure"

    from respop.boards import figures

    original = figures.trend
    figures.trend = spy
    try:
        data._fig_trend(url, run, False, tid, "diabetes", "prevalence_std")
    finally:
        figures.trend = original
    df = seen["df"]
    assert dict(df.filter(pl.col("series") != data.AREA).select("year", "complete").iter_rows()) == {
        2019: False, 2020: True, 2021: True, 2022: True, 2023: True}
    assert seen["kwargs"]["incomplete_label"] == "Recul incomplet (< 1 an) : cas sous-comptés"


def test_no_share_of_a_masked_total_in_the_transitions_table(tiny_run):
    url, run, _ = _territory(tiny_run)
    checked = 0
    for disease in data.diseases(url, run):
        for year in data.transition_years(url, run, disease):
            table = data.table_transitions(url, run, disease, year)
            for _, row in table.iterrows():
                if row["Effectif"] != MASKED:
                    continue
                checked += 1
                assert not any("%" in str(v) for v in row.to_numpy()), row.to_dict()
    assert checked > 0, "tiny has no transition row with a masked total"


def test_the_dossier_uses_the_symbol_and_the_notes(tiny_run, tmp_path):
    path = report.write_report(tiny_run.config_path, tmp_path / "dossier.html")
    text = path.read_text(encoding="utf-8")
    assert not FALSE_BOUND.search(re.sub(r"<[^>]+>", " ", text).replace("&lt;", "<"))
    assert "« s » : secret statistique" in text
    assert "Recul incomplet en" in text
    assert "réhospitalisation à 30 jours est un nouveau séjour" in text


@pytest.mark.parametrize("years,expected", [(0, "séjour dans l'année (pas de recul)"),
                                            (1, "premier séjour repéré depuis 1 an"),
                                            (5, "premier séjour repéré depuis 5 ans")])
def test_lookback_label(years, expected):
    from respop.spec.catalogue import lookback_label

    assert lookback_label(years) == expected


def test_the_catalogue_holds_the_look_back(tiny_run):
    config = load_config(tiny_run.config_path)
    rows = data.catalogue(config.store.url, tiny_run.run_id, kind="window")
    assert sorted(rows["disease"].to_list()) == ["copd", "diabetes", "heart_failure"]


def test_the_quality_page_shows_true_run_times(tiny_run):
    """The run's start is when `respop run` started, before every step; each step's start and end
    are in order and within the run; the store step (publication) took more than its insert."""
    import datetime as dt

    url, run, _ = _territory(tiny_run)
    info = data.run_info(url, run)
    clock = info["timings"]["clock"]
    assert list(clock) == ["input", "territories", "cases", "strata", "evaluation", "store"]
    moments = [info["started_at"]]
    for step in clock:
        moments += [dt.datetime.fromisoformat(t) for t in clock[step]]
    moments.append(info["finished_at"])
    assert moments == sorted(moments), moments
    table = data.run_timings(url, run)
    assert table["Étape"].tolist() == [*data.STEP_LABELS.values(), "Total des étapes"]
    shown = {r["Étape"]: r for r in table.to_dict("records")}
    assert shown["Lecture et contrôle du PMSI"]["Début"] == data._fr_date(clock["input"][0])
    assert shown["Publication dans la base"]["Fin"] == data._fr_date(clock["store"][1])
    facts = dict(zip(data.run_facts(url, run)[""], data.run_facts(url, run)["Valeur"], strict=True))
    assert facts["Début"] == data._fr_date(info["started_at"]) != facts["Fin"]
    total = (info["finished_at"] - info["started_at"]).total_seconds()
    assert facts["Durée"] == data._fr_duration(total)
    # each step's seconds are its clock's span (the store step: the whole publication, which
    # ends after the run's last table is written, not the insert alone)
    for step, (start, end) in clock.items():
        span = (dt.datetime.fromisoformat(end) - dt.datetime.fromisoformat(start)).total_seconds()
        assert abs(span - info["timings"][step]) <= 0.01 + 0.01 * span, (step, span, info["timings"][step])


@pytest.mark.parametrize("seconds,text", [(0.84, "0,8\u00a0s"), (87.3, "1\u00a0min 27\u00a0s"), (3725, "1\u00a0h 02\u00a0min")])
def test_durations_in_french(seconds, text):
    assert data._fr_duration(seconds) == text


def test_sankey_nodes_equal_the_transitions_table_on_tiny(tiny_run):
    """Every disease and year of tiny: each left block of the Sankey is the row's Effectif in the
    table beside it, each right block the column sum of the table's published cells of the rows
    drawn, and the grouped band of suppressed flows the rest; a row with a masked total is not drawn."""
    from respop.boards import figures
    from respop.boards.labels import label, parse_fr_number

    url, run, _ = _territory(tiny_run)
    compared = grouped = hidden = 0
    for disease in data.diseases(url, run):
        levels = data.strata_levels(url, run, disease)
        order = levels["stratum"].to_list()
        names = data.strata_names(url, run, disease)
        by_name = {v: k for k, v in names.items()}
        for year in data.transition_years(url, run, disease):
            nodes = figures.sankey_nodes(data.read(url, "transitions", run, disease=disease, year=year), order)
            table = data.table_transitions(url, run, disease, year)
            drawn = []
            for record in table.to_dict("records"):
                code = by_name[record[f"Profil en {year}"]]
                if record["Effectif"] == MASKED:
                    assert code in nodes["hidden"] and code not in nodes["left"], (disease, year, code)
                    hidden += 1
                    continue
                drawn.append(record)
                assert nodes["left"][code] == parse_fr_number(record["Effectif"]), (disease, year, code)
                compared += 1
            for code in [*order, "deces", "non_revu"]:
                head = names.get(code) or label(code)
                cells = [str(r[head]).split(" (")[0] for r in drawn]
                assert nodes["right"].get(code, 0) == sum(parse_fr_number(c) for c in cells if c != MASKED), \
                    (disease, year, code)
            rest = sum(parse_fr_number(r["Effectif"]) for r in drawn) - sum(
                v for k, v in nodes["right"].items() if k != figures.SECRET_NODE)
            assert nodes["right"].get(figures.SECRET_NODE, 0) == rest, (disease, year)
            grouped += rest > 0
    assert compared >= 5 and grouped > 0 and hidden > 0, (compared, grouped, hidden)  # tiny seed 5: 10, 5, 31


@pytest.mark.parametrize("reason,french", [
    ("BEN_DCD_DTE: death before the year of birth (BEN_NAI_ANN)", "BEN_DCD_DTE : décès avant l'année de naissance (BEN_NAI_ANN)"),
    ("duplicate primary key (BEN_NIR_PSA, BEN_RNG_GEM): an earlier row has it", "clé primaire (BEN_NIR_PSA, BEN_RNG_GEM) en double"),
    ("BEN_DCD_AME: not the year and month of BEN_DCD_DTE", "BEN_DCD_AME : pas l'année et le mois de BEN_DCD_DTE"),
    ("ETA_NUM: not a 9-character FINESS number", "ETA_NUM : pas un numéro FINESS de 9 caractères"),
    ("DGN_PAL: code absent from the French CIM-10", "DGN_PAL : code absent de la CIM-10"),
])
def test_quarantine_reasons_in_french(reason, french):
    assert data.reason_fr(reason) == french


def test_a_model_without_skill_shows_neither_calibration_nor_variables(tiny_run, monkeypatch):
    """tiny's COPD model has no skill: its calibration and its variables are not drawn (they said
    which variables matter to a model that predicts nothing)."""
    from respop.boards import figures

    url, run, _ = _territory(tiny_run)
    drawn = {}
    monkeypatch.setattr(figures, "hbar", lambda rows, *a, **k: drawn.setdefault("hbar", (rows, a[2])))
    for disease in data.diseases(url, run):
        drawn.clear()
        data._fig_importance(url, run, False, disease)
        rows, title = drawn["hbar"]
        if data.main_model_without_skill(url, run, disease):
            assert rows.height == 0 and title.startswith("Modèle sans pouvoir prédictif"), disease
        else:
            assert rows.height > 0 and not any("_" in n for n in rows["name"].to_list()), rows["name"].to_list()
    assert data.main_model_without_skill(url, run, "copd")


@pytest.mark.parametrize("row,estimable", [
    ({"estimate": 1.3, "lower": 0.9, "upper": 1.8}, True),
    ({"estimate": 1e-9, "lower": 1e-9, "upper": 1e-9}, False),  # a group without event: HR 0,00 (0,00 – 0,00)
    ({"estimate": 5e4, "lower": 1.0, "upper": float("inf")}, False),
    ({"estimate": None, "lower": None, "upper": None}, False),
])
def test_hazard_ratios_that_cannot_be_estimated(row, estimable):
    assert data._estimable(row) is estimable
