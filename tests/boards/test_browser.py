"""The board in a real browser: served on localhost, every page loaded in headless Chromium,
screenshot taken; any Streamlit error box fails the test. Skipped, saying so, where Chromium or
Playwright is absent (.ci/run installs them)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.browser import load_page, serve_streamlit

ROOT = Path(__file__).resolve().parents[2]
APPS = [ROOT / "dashboards" / "app.py", ROOT / "respop" / "boards" / "serve.py"]
"""``streamlit run dashboards/app.py`` and what ``respop dashboard`` serves."""

PAGES = [
    ("territoire", "Territoire"),
    ("bpco", "BPCO"),
    ("diabete", "Diabète"),
    ("insuffisance-cardiaque", "Insuffisance cardiaque"),
    ("strates", "Strates"),
    ("recours", "Recours aux soins"),
    ("trajectoires", "Trajectoires"),
    ("qualite", "Qualité des données"),
]


@pytest.mark.slow
@pytest.mark.parametrize("app", APPS, ids=["dashboards-app", "respop-dashboard"])
def test_every_page_loads_in_chromium_without_error(app, chromium_executable, tiny_run, tmp_path):
    """Every page in both modes through ``dashboards/app.py``; through the script of ``respop
    dashboard``, which runs the same board (``respop.boards.app.main``), the first page and a
    disease page in meeting mode (each page load costs about 6 s of CI)."""
    shots = tmp_path / "screenshots"
    shots.mkdir()
    walk = [(p, m) for p in PAGES for m in (False, True)] if app == APPS[0] else [(PAGES[0], False), (PAGES[3], True)]
    with serve_streamlit(app, [str(tiny_run.config_path)], cwd=ROOT) as base:
        for (path, title), meeting in walk:
            suffix = "?reunion=1" if meeting else ""
            shot = shots / f"{path}{'-reunion' if meeting else ''}.png"
            page = load_page(f"{base}/{path}{suffix}", shot, chromium=chromium_executable)
            assert page.errors == [], (path, meeting, page.errors)
            assert shot.is_file() and shot.stat().st_size > 10_000, (path, meeting)
            assert title.split()[0] in page.text, (path, page.text[:300])
            assert "Traceback" not in page.text
            # nothing but French: no docstring shown by Streamlit's magic, no English message
            for english in ("Environment variable", "Pixels", "Tables up to", "Session key"):
                assert english not in page.text, (path, english)
