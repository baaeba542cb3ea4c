"""tests/browser.py against real Streamlit servers and the system's headless Chromium."""

from __future__ import annotations

import struct
import textwrap

import pytest

from tests.browser import load_page, serve_streamlit


def _script(tmp_path, name, body):
    path = tmp_path / name
    path.write_text(textwrap.dedent(body), encoding="utf-8")
    return path


def test_page_with_a_title(chromium_executable, tmp_path):
    script = _script(
        tmp_path,
        "hello.py",
        """
        import sys
        import streamlit as st

        st.title("Bonjour")
        st.write("arguments:", " ".join(sys.argv[1:]))
        """,
    )
    with serve_streamlit(script, ["--territoire", "demo"]) as url:
        assert url.startswith("http://127.0.0.1:")
        page = load_page(url, tmp_path / "hello.png", chromium=chromium_executable)
    assert page.h1 == ["Bonjour"]
    assert page.errors == []
    assert "arguments: --territoire demo" in page.text
    assert page.screenshot.stat().st_size > 1000
    assert page.screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_page_that_raises(chromium_executable, tmp_path):
    script = _script(
        tmp_path,
        "broken.py",
        """
        import streamlit as st

        st.title("Avant")
        raise ValueError("territoire inconnu: 99Z")
        """,
    )
    with serve_streamlit(script) as url:
        page = load_page(url, tmp_path / "broken.png", chromium=chromium_executable)
    assert page.h1 == ["Avant"]
    # One error, the exception (Streamlit draws it inside an error alert: not counted twice),
    # with its message and traceback but not the labels of its buttons.
    assert len(page.errors) == 1
    assert page.errors[0].startswith("ValueError: territoire inconnu: 99Z\nTraceback:\n")
    assert 'broken.py", line 5' in page.errors[0]
    assert "Ask Google" not in page.errors[0]


def test_st_error_is_reported(chromium_executable, tmp_path):
    script = _script(
        tmp_path,
        "alert.py",
        """
        import streamlit as st

        st.error("Données absentes")
        st.info("ceci n'est pas une erreur")
        """,
    )
    with serve_streamlit(script) as url:
        page = load_page(url, tmp_path / "alert.png", chromium=chromium_executable)
    assert page.errors == ["Données absentes"]


def test_script_that_does_not_compile(chromium_executable, tmp_path):
    script = _script(tmp_path, "syntax.py", 'import streamlit as st\nst.title("X"\n')
    with serve_streamlit(script) as url:
        page = load_page(url, tmp_path / "syntax.png", chromium=chromium_executable)
    assert len(page.errors) == 1
    assert page.errors[0].startswith("Script execution error:\n")
    assert "SyntaxError" in page.errors[0]


def test_server_that_cannot_start(tmp_path):
    """A script path that doesn't exist: the server exits, the error carries its output."""
    with pytest.raises(RuntimeError, match="streamlit server for .* exited") as info:
        with serve_streamlit(tmp_path / "absent.py", timeout=30):
            pass
    assert "absent.py" in str(info.value)


def test_tall_page_screenshot_is_whole(chromium_executable, tmp_path):
    """Streamlit scrolls inside a fixed-height app; the screenshot still holds the whole page."""
    script = _script(
        tmp_path,
        "tall.py",
        """
        import streamlit as st

        st.title("Haut")
        for i in range(60):
            st.write(f"ligne {i}")
        st.header("Bas")
        """,
    )
    with serve_streamlit(script) as url:
        page = load_page(url, tmp_path / "tall.png", chromium=chromium_executable)
    assert page.text.rstrip().endswith("Bas")
    png = page.screenshot.read_bytes()
    width, height = struct.unpack(">II", png[16:24])  # the PNG header (IHDR)
    assert width == 1280
    assert height > 2000


# --- The checks of the board's browser test (tests/boards/test_browser.py) can fail -------------


def test_english_words_and_code():
    from tests.browser import english_words

    assert english_words("Téléchargez le fichier ; « s » : secret statistique ; T_MCO19B, BEN_NIR_PSA") == []
    assert english_words("Sortie : /tmp/essai/tiny_run/run") == []  # a path is shown as it is
    assert english_words("Deploy · Running... Download None nan True") == [
        "Deploy", "Running", "Download", "None", "nan", "True"]
    assert english_words("sexe : female ; disease_stays_12m ; sex == 2 ; HistGradientBoostingClassifier") == [
        "female", "disease_stays_12m", "sex", "==", "HistGradientBoostingClassifier"]


def _png(texts: dict[str, str] | None = None, compressed: bool = False) -> bytes:
    import io

    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    for key, value in (texts or {}).items():
        if compressed:
            info.add_itxt(key, value, zip=True)
        else:
            info.add_text(key, value)
    buffer = io.BytesIO()
    Image.new("RGB", (320, 200), "white").save(buffer, format="PNG", pnginfo=info)
    return buffer.getvalue()


GOOD_LAYOUT = {"texts": ["Prévalence pour 100 000 habitants", "2023"], "legend_overlaps": [],
               "suppressed_on_numeric_axis": [], "outside_figure": [], "overlapping_texts": []}
BAD_LAYOUT = {"texts": ["Prevalence per year"], "legend_overlaps": ["Profil (légende) sur les axes 1"],
              "suppressed_on_numeric_axis": ["s"], "outside_figure": ["Titre trop long"],
              "overlapping_texts": [["2019", "2020"]]}


def test_figure_problems_read_the_png_layout_report():
    import json

    from tests.browser import LAYOUT_KEY, figure_problems, png_text_chunks

    good = _png({LAYOUT_KEY: json.dumps(GOOD_LAYOUT)})
    assert png_text_chunks(good)[LAYOUT_KEY] == json.dumps(GOOD_LAYOUT)
    assert figure_problems(good, "figure") == []
    # an iTXt (compressed) chunk is read too
    assert figure_problems(_png({LAYOUT_KEY: json.dumps(GOOD_LAYOUT)}, compressed=True), "figure") == []
    bad = figure_problems(_png({LAYOUT_KEY: json.dumps(BAD_LAYOUT)}), "figure")
    assert len(bad) == 5
    for words in ("legend over a plotting area", "suppression symbol on a numeric axis", "text outside the figure",
                  "texts overlapping", "English or code in the figure's texts: ['year']"):
        assert any(words in p for p in bad), (words, bad)
    assert figure_problems(_png(), "figure") == [
        "figure: no respop:layout report in the PNG (re-encoded, or not drawn by figures.to_png)"]
    assert png_text_chunks(b"not a png") == {}


# A page of every defect the board test must catch (?cas=<name>), and a clean one (?cas=propre).
BAD_PAGE = '''
import json
import sys

import streamlit as st

sys.path.insert(0, {root!r})
from tests.test_browser_harness import BAD_LAYOUT, GOOD_LAYOUT, _png
from tests.browser import LAYOUT_KEY

case = st.query_params.get("cas", "propre")
st.title("Cas : " + case)
st.markdown("Un tableau de bord en français, sans défaut.")
good = _png({{LAYOUT_KEY: json.dumps(GOOD_LAYOUT)}})
st.image(good, width=320, output_format="PNG")  # as the board shows its figures
if case == "boite":  # a table in a fixed-height box that scrolls
    st.html('<div style="height: 60px; overflow: auto"><table>'
            + "".join(f"<tr><td>ligne {{i}}</td></tr>" for i in range(20)) + "</table></div>")
elif case == "ellipse":  # a label cut with an ellipsis
    st.html('<div style="width: 90px; white-space: nowrap; overflow: hidden; text-overflow: ellipsis">'
            'Insuffisance cardiaque chronique</div>')
elif case == "debord":  # a text wider than its element, drawn over what follows
    st.html('<div style="width: 60px; white-space: nowrap">Réhospitalisations à trente jours</div>')
elif case == "anglais":
    st.markdown("Download the data ; disease_stays_12m")
elif case == "icone":  # an icon whose font did not load shows its name
    st.html('<span data-testid="stIconMaterial" style="font-size: 16px">clinical_notes</span>')
elif case == "dehors":  # a request to another host
    st.markdown('<img src="http://cdn.example.org/icone.png" alt="">', unsafe_allow_html=True)
elif case == "figure":  # a figure whose layout report finds every defect
    st.image(_png({{LAYOUT_KEY: json.dumps(BAD_LAYOUT)}}), width=320, output_format="PNG")
'''


@pytest.fixture(scope="module")
def bad_page(tmp_path_factory):
    from pathlib import Path

    folder = tmp_path_factory.mktemp("bad_page")
    script = folder / "defauts.py"
    script.write_text(BAD_PAGE.format(root=str(Path(__file__).resolve().parents[1])), encoding="utf-8")
    # no developer menu (its "Deploy" is English), as the board's configuration says
    with serve_streamlit(script, env={"STREAMLIT_CLIENT_TOOLBAR_MODE": "viewer"}) as url:
        yield url


def test_board_checks_fail_on_bad_pages(bad_page, chromium_executable, tmp_path):
    """Each check of BoardBrowser.visit catches its defect, on a page that has only that one; a
    clean page has none (the same page without the defect)."""
    from tests.browser import BoardBrowser, chromium_browser

    with chromium_browser(chromium_executable) as chromium, BoardBrowser(chromium, bad_page, (1280, 720)) as browser:
        def problems(case: str) -> list[str]:
            page = browser.visit(f"?cas={case}", tmp_path / f"{case}.png")
            assert page.errors == []
            return page.problems()

        assert problems("propre") == []
        assert browser.elsewhere == []
        assert any("scroll box" in p for p in problems("boite"))
        cut = problems("ellipse")
        assert any("box cuts its text « Insuffisance cardiaque chronique » (ellipsis)" in p for p in cut), cut
        assert any("text overflows its element" in p and "Réhospitalisations" in p for p in problems("debord"))
        assert any("English or code on the page: ['Download', 'the', 'disease_stays_12m']" in p
                   for p in problems("anglais"))
        assert any("icon drawn as text" in p for p in problems("icone"))
        problems("dehors")
        assert browser.elsewhere == ["http://cdn.example.org/icone.png"]  # recorded, and refused
        figure = problems("figure")
        assert sum("figure 2" in p for p in figure) == 5, figure
