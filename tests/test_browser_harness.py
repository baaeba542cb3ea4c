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
