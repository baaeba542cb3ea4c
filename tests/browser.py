"""Browser tests of Streamlit pages: serve a script, load it in the system's headless Chromium.

The browser is Debian's ``chromium`` package (``/usr/bin/chromium``; ``.ci/run`` installs it),
driven by Playwright through ``executable_path``. Playwright's own browser downloads are never
used (do not run ``playwright install``): nothing is fetched at run time.

Typical use::

    from tests.browser import load_page, serve_streamlit

    def test_board(chromium_executable, tmp_path):
        with serve_streamlit(Path("dashboards/app.py"), ["--data", str(tmp_path)]) as url:
            page = load_page(url, tmp_path / "app.png")
        assert page.errors == []

The fixture ``chromium_executable`` (registered by tests/conftest.py) gives the browser's path,
or skips the test with the reason "Chromium not found (...)" where Chromium or Playwright is
absent; the marker ``needs_chromium`` does the same for a test that doesn't need the path.

Environment:

``RESPOP_CHROMIUM``
    Path of the Chromium executable to use instead of the one found on PATH. A path that is not
    an executable file counts as "no Chromium": ``RESPOP_CHROMIUM=/nonexistent`` makes the
    browser tests skip, to check that they do so cleanly.

Streamlit's page markers used here (checked against the installed Streamlit 1.67 front end):
``stApp`` carries ``data-test-script-state`` (``initial``, ``running``, ``notRunning``,
``rerunRequested``, ``stopRequested``, ``compilationError``) and ``data-test-connection-state``
(``CONNECTED``...); ``stMain`` is the main block; ``stStatusWidgetRunningIcon`` shows while a
script runs; errors are ``stException`` (uncaught exception, ``st.exception``) and
``stAlertContentError`` (``st.error``).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

CHROMIUM_ENV = "RESPOP_CHROMIUM"
"""Environment variable overriding the Chromium executable (see the module docstring)."""

CHROMIUM_MISSING = "Chromium not found (apt-get install chromium; .ci/run installs it)"
PLAYWRIGHT_MISSING = (
    "Playwright not installed (pip install -e '.[dev]'; it drives the system Chromium)"
)

# Flags for a headless Chromium on a closed network, as root, in a container: no sandbox (root),
# no GPU, none of the background connections a closed network refuses.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]

ERROR_SELECTOR = (
    '[data-testid="stException"], '
    '[data-testid="stAlertContentError"]:not([data-testid="stException"] *), '
    '[role="dialog"] [data-testid="stErrorCodeBlock"]'
)
"""Streamlit's error elements: uncaught exceptions / st.exception (which Streamlit draws inside
an error alert of its own, not counted twice), st.error, and the "Script execution error" dialog
a script that doesn't compile opens."""

# An exception's text: its message and traceback rows, without the Copy / Ask buttons.
_ERROR_TEXTS_JS = """els => els.map(e => {
  if (e.getAttribute('data-testid') === 'stErrorCodeBlock') {
    const heading = e.closest('[role="dialog"]').querySelector('h1, h2, h3');
    return ((heading ? heading.innerText + ':\\n' : '') + e.innerText).trim();
  }
  if (e.getAttribute('data-testid') !== 'stException') return e.innerText.trim();
  const message = e.querySelector('[data-testid="stExceptionMessage"]');
  const rows = [...e.querySelectorAll('[data-testid="stExceptionTraceRow"]')].map(r => r.innerText);
  const parts = [message ? message.innerText : e.innerText];
  if (rows.length) parts.push('Traceback:', ...rows);
  return parts.join('\\n').trim();
})"""

# True once the app is connected, its script has run to the end and nothing is running.
_APP_SETTLED_JS = """() => {
  const app = document.querySelector('[data-testid="stApp"]');
  if (!app) return false;
  const state = app.getAttribute('data-test-script-state');
  if (state !== 'notRunning' && state !== 'compilationError') return false;
  if (app.getAttribute('data-test-connection-state') !== 'CONNECTED') return false;
  return !document.querySelector('[data-testid="stStatusWidgetRunningIcon"]');
}"""

# Height of the content, scrolled containers included.
_CONTENT_HEIGHT_JS = """() => Math.max(document.documentElement.scrollHeight,
  ...[...document.querySelectorAll('[data-testid="stApp"], [data-testid="stAppViewContainer"], '
     + '[data-testid="stMain"], section, main')].map(e => e.scrollHeight))"""

MAX_HEIGHT = 16000
"""Screenshots stop there (px): Chromium's limit for one capture is about 16k."""


# --- Chromium ------------------------------------------------------------------------------------


def chromium_path() -> str | None:
    """The system Chromium executable, or None. ``RESPOP_CHROMIUM`` overrides the search."""
    override = os.environ.get(CHROMIUM_ENV)
    if override is not None:
        return override if os.path.isfile(override) and os.access(override, os.X_OK) else None
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


def browser_skip_reason() -> str | None:
    """Why browser tests cannot run here, or None when they can."""
    if chromium_path() is None:
        return CHROMIUM_MISSING
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return PLAYWRIGHT_MISSING
    return None


_SKIP_REASON = browser_skip_reason()
needs_chromium = pytest.mark.skipif(_SKIP_REASON is not None, reason=_SKIP_REASON or "")
"""Marker: skip the test where Chromium or Playwright is absent."""


@pytest.fixture(scope="session")
def chromium_executable() -> str:
    """Path of the system Chromium; skips the test where it (or Playwright) is absent."""
    reason = browser_skip_reason()
    if reason is not None:
        pytest.skip(reason)
    path = chromium_path()
    assert path is not None
    return path


# --- Streamlit server ----------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _healthy(base_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base_url}/_stcore/health", timeout=2) as response:
            return response.status == 200 and response.read().strip() == b"ok"
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        return False


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def serve_streamlit(
    script: Path,
    args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    *,
    cwd: Path | None = None,
    timeout: float = 60.0,
) -> Iterator[str]:
    """Run ``streamlit run SCRIPT -- *args`` headless on a free local port; yield its base URL
    (``http://127.0.0.1:PORT``) once ``/_stcore/health`` answers "ok"; stop it on exit.

    ``env`` is added to this process's environment. Raises RuntimeError, with the server's
    output, if it exits or doesn't answer within ``timeout`` seconds.
    """
    script = Path(script).resolve()
    full_env = {**os.environ, **(env or {})}
    with tempfile.TemporaryFile("w+b") as log:
        for attempt in range(3):  # another process may take the free port before streamlit does
            port = _free_port()
            base_url = f"http://127.0.0.1:{port}"
            command = [
                sys.executable, "-m", "streamlit", "run", str(script),
                "--server.headless", "true",
                "--server.address", "127.0.0.1",
                "--server.port", str(port),
                "--server.fileWatcherType", "none",
                "--browser.gatherUsageStats", "false",
                "--global.developmentMode", "false",
                "--", *args,
            ]  # fmt: skip
            log.seek(0)
            log.truncate()
            proc = subprocess.Popen(
                command, cwd=cwd, env=full_env, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT,
            )  # fmt: skip
            try:
                deadline = time.monotonic() + timeout
                while not _healthy(base_url):
                    if proc.poll() is not None or time.monotonic() > deadline:
                        break
                    time.sleep(0.1)
                else:
                    yield base_url
                    return
                died = proc.poll() is not None
            finally:
                _stop(proc)
            log.seek(0)
            output = log.read().decode(errors="replace")
            if died and "already in use" in output and attempt < 2:
                continue
            what = f"exited with code {proc.returncode}" if died else f"no answer in {timeout:g} s"
            raise RuntimeError(
                f"streamlit server for {script} {what}; its output:\n{output[-4000:]}"
            )


# --- Loading a page ------------------------------------------------------------------------------


@dataclass
class PageResult:
    """What a Streamlit page showed once its script had run."""

    url: str
    title: str
    """The document's title (Streamlit's page_title, or the script's name)."""
    h1: list[str]
    """Texts of the visible h1 elements (st.title), in page order."""
    errors: list[str]
    """Texts of every Streamlit error element (exceptions, st.error), in page order."""
    text: str
    """Visible text of the main block."""
    screenshot: Path
    console_errors: list[str] = field(default_factory=list)
    """Uncaught JavaScript errors and console.error messages of the page."""


def load_page(
    url: str,
    screenshot: Path,
    *,
    chromium: str | None = None,
    timeout: float = 60.0,
    viewport: tuple[int, int] = (1280, 900),
) -> PageResult:
    """Open ``url`` in headless system Chromium, wait until the Streamlit app has connected and
    run its script to the end, save a full-page screenshot to ``screenshot`` and report what the
    page shows. ``chromium`` defaults to ``chromium_path()``."""
    from playwright.sync_api import sync_playwright

    executable = chromium or chromium_path()
    if executable is None:
        raise RuntimeError(CHROMIUM_MISSING)
    screenshot = Path(screenshot)
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    timeout_ms = timeout * 1000
    console_errors: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": viewport[0], "height": viewport[1]})
            page.on("pageerror", lambda exc: console_errors.append(str(exc)))
            page.on(
                "console",
                lambda msg: console_errors.append(msg.text) if msg.type == "error" else None,
            )
            page.goto(url, timeout=timeout_ms)
            page.wait_for_function(_APP_SETTLED_JS, timeout=timeout_ms, polling=100)
            page.locator('[data-testid="stMain"]').wait_for(state="visible", timeout=timeout_ms)
            state = page.get_attribute('[data-testid="stApp"]', "data-test-script-state")
            if state == "compilationError":  # the script didn't compile: a dialog tells why
                page.locator('[role="dialog"] [data-testid="stErrorCodeBlock"]').first.wait_for(
                    state="visible", timeout=timeout_ms
                )
            page.evaluate("document.fonts.ready.then(() => true)")
            page.wait_for_timeout(300)  # let the last elements and transitions render
            # Streamlit scrolls its main block inside a fixed-height app: a full-page screenshot
            # alone would stop at the viewport, so grow the viewport to the content first.
            height = page.evaluate(_CONTENT_HEIGHT_JS)
            if height > viewport[1]:
                page.set_viewport_size({"width": viewport[0], "height": min(height, MAX_HEIGHT)})
                page.wait_for_timeout(300)
            page.screenshot(path=str(screenshot), full_page=True)
            h1 = [
                t.strip()
                for t in page.locator("h1").evaluate_all(
                    "els => els.filter(e => e.checkVisibility()).map(e => e.innerText)"
                )
            ]
            errors = page.locator(ERROR_SELECTOR).evaluate_all(_ERROR_TEXTS_JS)
            return PageResult(
                url=url,
                title=page.title(),
                h1=h1,
                errors=errors,
                text=page.locator('[data-testid="stMain"]').inner_text(),
                screenshot=screenshot,
                console_errors=console_errors,
            )
        finally:
            browser.close()
