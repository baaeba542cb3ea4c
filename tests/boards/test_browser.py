"""The board in a real browser: served on localhost, every page loaded in headless Chromium,
screenshot taken; any Streamlit error box fails the test. Skipped, saying so, where Chromium or
Playwright is absent (.ci/run installs them)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.browser import load_page, serve_streamlit

APP = Path(__file__).resolve().parents[2] / "dashboards" / "app.py"

PAGES = [
    ("territoire", "Territoire"),
    ("diabete", "Diabète"),
    ("insuffisance-cardiaque", "Insuffisance cardiaque"),
    ("strates", "Strates"),
    ("recours", "Recours aux soins"),
    ("trajectoires", "Trajectoires"),
    ("qualite", "Qualité des données"),
]


@pytest.mark.slow
def test_every_page_loads_in_chromium_without_error(chromium_executable, tiny_run, tmp_path):
    shots = tmp_path / "screenshots"
    shots.mkdir()
    with serve_streamlit(APP, [str(tiny_run.config_path)], cwd=APP.parents[1]) as base:
        for path, title in PAGES:
            for meeting in (False, True):
                suffix = "?reunion=1" if meeting else ""
                shot = shots / f"{path}{'-reunion' if meeting else ''}.png"
                page = load_page(f"{base}/{path}{suffix}", shot, chromium=chromium_executable)
                assert page.errors == [], (path, meeting, page.errors)
                assert shot.is_file() and shot.stat().st_size > 10_000, (path, meeting)
                assert title.split()[0] in page.text, (path, page.text[:300])
                assert "Traceback" not in page.text
