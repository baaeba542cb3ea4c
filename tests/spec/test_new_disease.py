"""Acceptance 1 of issue 17: a disease added by a TOML file alone. A made-up ``obesity.toml``
(tests/spec/new_disease.py) is written next to copies of the shipped specs, a ``tiny``
configuration points at that folder, and the whole pipeline runs through the store; the published
catalogue carries its French labels, the board (AppTest) has a page for it with those labels, and
no Python file of respop names it."""

from __future__ import annotations

import shutil
from pathlib import Path

import polars as pl
import pytest

import respop
from respop.boards import data
from respop.spec.loaders import shipped_algorithms_dir
from respop.store.db import Store
from tests.boards.test_app import board, headline, open_page, texts
from tests.spec.new_disease import NEW_DISEASE, NEW_DISEASE_TOML
from tests.store.conftest import CONFIG, make_tiny_run

DISEASES = ["diabetes", "heart_failure", NEW_DISEASE]


@pytest.mark.slow
def test_a_disease_added_by_a_spec_file_runs_through_the_store_and_the_board(tmp_path, monkeypatch):
    folder = tmp_path / "algorithms"
    shutil.copytree(shipped_algorithms_dir(), folder)
    (folder / f"{NEW_DISEASE}.toml").write_text(NEW_DISEASE_TOML, encoding="utf-8")
    config = CONFIG.replace(
        '[input]', f'diseases = {DISEASES!r}\n[cases]\nalgorithms_dir = "algorithms"\n[input]', 1
    ).replace("'", '"')
    run = make_tiny_run(tmp_path, config)
    assert run.config.diseases == DISEASES
    # the run froze its specs with its outputs
    assert [d["id"] for d in __import__("json").loads((run.config.output.dir / "catalogue.json").read_text())["diseases"]] == DISEASES
    store = Store(run.config.store.url)
    try:
        catalogue = store.read("catalogue", run.run_id)
        strata = store.read("strata_levels", run.run_id)
        indicators = store.read("indicators", run.run_id)
    finally:
        store.close()
    mine = catalogue.filter(pl.col("disease") == NEW_DISEASE)
    assert mine.filter(pl.col("kind") == "disease")["label"].to_list() == ["Obésité hospitalisée"]
    assert set(mine.filter(pl.col("kind") == "subtype")["label"]) == {"Obésité due à un excès calorique", "Autre obésité"}
    assert "Obésité chez une personne diabétique" in mine.filter(pl.col("kind") == "stratum")["label"].to_list()
    # each other disease's features gained the new disease's case-of feature, with its French name
    for other in ("diabetes", "heart_failure"):
        features = catalogue.filter((pl.col("disease") == other) & (pl.col("kind") == "feature"))
        (label,) = features.filter(pl.col("name") == f"case_of_{NEW_DISEASE}")["label"].to_list()
        assert "Obésité hospitalisée" in label
    assert "Obésité avec atteinte rénale" in strata.filter(pl.col("disease") == NEW_DISEASE)["name"].to_list()
    assert indicators.filter(pl.col("disease") == NEW_DISEASE).height > 0
    # the board: a page for it, addressed and titled from its French name, its labels from the spec
    url = run.config.store.url
    assert data.disease_pages(url, run.run_id)[-1] == (NEW_DISEASE, "Obésité hospitalisée", "obesite-hospitalisee")
    at = board(run.config_path, monkeypatch, "obesite-hospitalisee")
    assert not at.exception and not at.error, [e.value for e in at.exception]
    assert [t.value for t in at.title] == ["Obésité hospitalisée"]
    assert "suivies pour obésité hospitalisée sur le territoire en 2023" in headline(at)
    subtypes = {str(v) for t in at.table if "Sous-groupe" in t.value.columns for v in t.value["Sous-groupe"]}
    assert "Tous les cas" in subtypes and len(subtypes) > 1
    assert subtypes <= {"Tous les cas", "Obésité due à un excès calorique", "Autre obésité"}
    open_page(at, "strates").run()
    radio = at.sidebar.radio(key="disease")
    assert radio.options == ["Diabète", "Insuffisance cardiaque", "Obésité hospitalisée"]  # the configured order
    radio.set_value(NEW_DISEASE).run()
    assert not at.exception and not at.error
    shown = [e.label.split(" : ")[0] for e in at.expander if " : " in e.label]
    # most severe first: the spec's order
    assert shown == ["Obésité, séjours répétés", "Obésité avec atteinte rénale", "Obésité chez une personne diabétique",
                     "Obésité sans autre signe"]
    assert "Coordination avec le suivi du diabète." in texts(at)
    # the other diseases' models name the new case-of feature by its French name
    assert data.feature_labels(url, run.run_id, "diabetes")[f"case_of_{NEW_DISEASE}"] == "Cas de la même année : Obésité hospitalisée"
    # no Python file of respop names the disease
    package = Path(respop.__file__).parent
    naming = [str(p.relative_to(package)) for p in package.rglob("*.py") if NEW_DISEASE in p.read_text(encoding="utf-8").lower()]
    assert naming == []
