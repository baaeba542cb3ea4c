"""The meeting dossier (respop report) on the tiny store: every section of the board, figures
embedded as PNG, French and printable, masked counts as "s" (never "< 11"), no patient key; the command."""

from __future__ import annotations

import base64
import os
import re
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from respop.boards.report import Dossier, write_report
from respop.config import load_config

ROOT = Path(__file__).resolve().parents[2]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
DATA_URI = re.compile(r'data:image/png;base64,([A-Za-z0-9+/=]+)"')


@pytest.fixture(scope="module")
def dossier(tiny_run, tmp_path_factory) -> str:
    path = write_report(tiny_run.config_path, tmp_path_factory.mktemp("dossier") / "dossier.html")
    return path.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def sections(tiny_run) -> list[tuple[str, str]]:
    return Dossier(load_config(tiny_run.config_path)).sections()


def test_one_section_per_disease_of_the_catalogue(sections):
    assert sections == [
        ("territoire", "Territoire"),
        ("bpco", "BPCO"), ("diabete", "Diabète"), ("insuffisance-cardiaque", "Insuffisance cardiaque"),
        ("strates", "Strates"), ("recours", "Recours aux soins"), ("trajectoires", "Trajectoires"),
        ("evaluation", "Évaluation"),  # tiny's configuration has [evaluation]
        ("qualite", "Qualité des données"),
    ]


def test_every_board_page_has_its_section(dossier, sections):
    assert dossier.startswith("<!DOCTYPE html>")
    assert '<html lang="fr">' in dossier
    positions = []
    for anchor, title in sections:
        heading = f'<section id="{anchor}"><h2>{title}</h2>'
        assert heading in dossier, anchor
        positions.append(dossier.index(heading))
        assert f'<a href="#{anchor}">{title}</a>' in dossier  # the table of contents
    assert positions == sorted(positions)  # in the board's order
    for anchor, _title in sections:  # each section says its one message
        body = dossier.split(f'<section id="{anchor}">', 1)[1].split("</section>", 1)[0]
        assert '<p class="headline">' in body, anchor


def test_figures_are_embedded_png(dossier, tiny_run):
    from respop.boards import data

    images = DATA_URI.findall(dossier)
    # the evaluation: two figures per outcome with an effect published by a method, for the
    # dossier's territory (a pilot) or every pilot pooled
    url, run = tiny_run.config.store.url, tiny_run.run_id
    dossier_ = Dossier(load_config(tiny_run.config_path))
    pilot = data.evaluation_focus(url, run, dossier_.territory_id)
    estimated = sum(
        any((r := data.effect_row(url, run, d, o, m, pilot)) is not None and r["effect"] is not None
            for m in ("did", "synthetic_control"))
        for d, o, _lab in data.evaluation_outcomes(url, run))
    assert 0 < estimated < len(data.evaluation_outcomes(url, run))
    # territory 3, each disease 3, per disease: strata 1, care 2, trajectories 4; quality 1
    assert len(images) == 3 + 3 * 3 + 3 * (1 + 2 + 4) + 1 + 2 * estimated  # three diseases
    for encoded in images:
        assert base64.b64decode(encoded).startswith(PNG_SIGNATURE)
    assert "<img" in dossier and 'src="http' not in dossier and "<script" not in dossier  # self-contained


def test_printable_french_with_masked_counts(dossier):
    assert "@page { size: A4" in dossier
    assert "page-break-inside: avoid" in dossier
    text = DATA_URI.sub('"', dossier)
    assert "<td class=\"num\">s</td>" in text and "&lt; 11" not in text  # masked counts: the one symbol
    for word in ("Dossier de réunion clinique", "Personnes suivies", "Protocole de soins", "« s » : secret statistique",
                 "Filtre de qualité", "Rapport de risques (HR)"):
        assert word in text, word
    assert not re.search(r">(None|nan|NaN|null)<", text)


def test_no_patient_key_in_the_dossier(tiny_run, dossier):
    keys = pl.read_parquet(tiny_run.config.output.dir / "cases" / "cases.parquet", columns=["patient_key"])
    keys = keys["patient_key"].unique().drop_nulls().to_list()
    assert len(keys) > 100
    text = DATA_URI.sub('"', dossier)
    found = [k for k in keys if k in text]
    assert found == []


def respop(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "respop", *args], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "COLUMNS": "200"}, timeout=300)


def test_cli_report(tiny_run, tmp_path):
    out = tmp_path / "dossier territoire.html"
    names = pl.read_parquet(tiny_run.config.output.dir / "territories" / "territories.parquet",
                            columns=["territory_id", "territory_name"])
    last = int(names["territory_id"].max())
    result = respop("report", str(tiny_run.config_path), "--out", str(out), "--run", str(tiny_run.run_id),
                    "--territoire", str(last))
    assert result.returncode == 0, result.stderr
    assert f"Meeting dossier written to {out}" in result.stdout
    text = out.read_text(encoding="utf-8")
    name = names.filter(pl.col("territory_id") == last)["territory_name"][0]
    assert f"<title>Dossier de réunion clinique — {name}</title>".replace("'", "&#x27;") in text

    default = respop("report", str(tiny_run.config_path))
    assert default.returncode == 0, default.stderr
    written = tiny_run.config.output.dir / "dossiers" / f"dossier-territoire-1-execution-{tiny_run.run_id}.html"
    assert f"Meeting dossier written to {written}" in default.stdout
    assert written.is_file()

    for args, message in [(("--territoire", "999"), "territory 999 is not in run"),
                          (("--run", "999"), "run 999 is not a succeeded run")]:
        bad = respop("report", str(tiny_run.config_path), *args)
        assert bad.returncode == 2, bad.stdout + bad.stderr
        assert message in bad.stderr and "Traceback" not in bad.stderr
