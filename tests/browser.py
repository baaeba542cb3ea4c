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
from collections.abc import Callable, Iterator, Mapping, Sequence
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
    plain: bool = False,
    log: Path | None = None,
) -> Iterator[str]:
    """Run ``streamlit run SCRIPT -- *args`` headless on a free local port; yield its base URL
    (``http://127.0.0.1:PORT``) once ``/_stcore/health`` answers "ok"; stop it on exit.

    ``env`` is added to this process's environment. ``plain``: no option but the port and
    headless (as a user would type it; the script's own .streamlit/config.toml then decides the
    rest), instead of a local address, no usage statistics and no file watcher. ``log``: a file
    that receives the server's output. Raises RuntimeError, with the server's output, if it exits
    or doesn't answer within ``timeout`` seconds.
    """
    script = Path(script).resolve()

    def command(port: int) -> list[str]:
        options = ["--server.headless", "true", "--server.port", str(port)]
        if not plain:
            options += [
                "--server.address", "127.0.0.1",
                "--server.fileWatcherType", "none",
                "--browser.gatherUsageStats", "false",
                "--global.developmentMode", "false",
            ]  # fmt: skip
        return [sys.executable, "-m", "streamlit", "run", str(script), *options, "--", *args]

    with serve_command(command, env, cwd=cwd, timeout=timeout, log=log, what=str(script)) as base_url:
        yield base_url


@contextmanager
def serve_command(
    command: Callable[[int], list[str]],
    env: Mapping[str, str] | None = None,
    *,
    cwd: Path | None = None,
    timeout: float = 60.0,
    log: Path | None = None,
    what: str = "",
) -> Iterator[str]:
    """Run the Streamlit server ``command(port)`` on a free local port (e.g. the command line of
    ``respop dashboard``: ``respop.boards.serve.streamlit_command``); yield its base URL
    (``http://127.0.0.1:PORT``) once ``/_stcore/health`` answers "ok"; stop it on exit. ``env``,
    ``cwd``, ``timeout``, ``log``: as :func:`serve_streamlit`."""
    full_env = {**os.environ, **(env or {})}
    with (open(log, "w+b") if log is not None else tempfile.TemporaryFile("w+b")) as out:
        for attempt in range(3):  # another process may take the free port before streamlit does
            port = _free_port()
            base_url = f"http://127.0.0.1:{port}"
            out.seek(0)
            out.truncate()
            proc = subprocess.Popen(
                command(port), cwd=cwd, env=full_env, stdin=subprocess.DEVNULL, stdout=out,
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
            out.seek(0)
            output = out.read().decode(errors="replace")
            if died and "already in use" in output and attempt < 2:
                continue
            status = f"exited with code {proc.returncode}" if died else f"no answer in {timeout:g} s"
            raise RuntimeError(
                f"streamlit server for {what or command(port)} {status}; its output:\n{output[-4000:]}"
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


# --- The board as a room would see it ------------------------------------------------------------
#
# One Chromium and one page per screen size (BoardBrowser), on a closed network: every request to
# a host other than the board's own is recorded and refused. For each page, what a reader in a
# room would find wrong: boxes that cut their content, text that overflows its element, English
# or code on the page, and what the figures' PNG layout report (respop:layout, figures.to_png)
# says of each figure.

# Every problem of layout on the page, as sentences. Elements Streamlit scrolls on purpose (the
# page itself, the sidebar) are left out; the viewport is grown to the content before, so that
# these do not scroll either.
_LAYOUT_PROBLEMS_JS = r"""() => {
  const problems = [];
  const pageScrollers = new Set([...document.querySelectorAll(
    'html, body, [data-testid="stApp"], [data-testid="stAppViewContainer"], [data-testid="stMain"], '
    + '[data-testid="stSidebar"], [data-testid="stSidebarContent"], [data-testid="stAppScrollToBottomContainer"]')]);
  const ignored = '[data-testid="stToolbar"], [data-testid="stHeader"], [data-testid="stDecoration"], '
    + '[data-testid="stElementToolbar"], [data-testid="stSidebarCollapseButton"], '
    + '[data-testid="stExpandSidebarButton"], svg, style, script, noscript, input, textarea';
  // "visually hidden" elements (1 px, for screen readers: "Skip to main content") are not seen
  const seeable = e => { const r = e.getBoundingClientRect(); return r.width > 1 && r.height > 1; };
  const own = e => [...e.childNodes].filter(n => n.nodeType === 3).map(n => n.textContent).join('').trim();
  const describe = e => {
    const id = e.getAttribute('data-testid');
    const text = (e.innerText || e.textContent || '').trim().replace(/\s+/g, ' ');
    return `<${e.tagName.toLowerCase()}${id ? ' data-testid=' + id : ''}> « ${text.length > 70 ? text.slice(0, 67) + '...' : text} »`;
  };
  const block = e => {
    while (e && getComputedStyle(e).display === 'inline') e = e.parentElement;
    return e;
  };
  const range = document.createRange();
  // the first text inside e drawn (partly) outside e's box, by more than a pixel
  const cutText = e => {
    const box = e.getBoundingClientRect();
    const walker = document.createTreeWalker(e, NodeFilter.SHOW_TEXT);
    for (let n = walker.nextNode(); n; n = walker.nextNode()) {
      if (!n.textContent.trim() || !n.parentElement.checkVisibility() || n.parentElement.closest(ignored)) continue;
      range.selectNodeContents(n);
      for (const r of range.getClientRects()) {
        if (r.width < 1) continue;
        if (r.left < box.left - 1 || r.right > box.right + 1 || r.top < box.top - 1 || r.bottom > box.bottom + 1)
          return n.textContent.trim();
      }
    }
    return null;
  };
  const seen = new Set();
  for (const e of document.body.querySelectorAll('*')) {
    if (pageScrollers.has(e) || e.closest(ignored) || !e.checkVisibility() || !seeable(e)) continue;
    const s = getComputedStyle(e);
    if (e.getAttribute('data-testid') === 'stIconMaterial') {
      // the icon font draws one glyph; without it the icon's name shows as text
      if (e.getBoundingClientRect().width > 2 * parseFloat(s.fontSize)) problems.push(`icon drawn as text: ${describe(e)}`);
      continue;
    }
    if (s.display !== 'inline') {
      const scrolls = v => v === 'auto' || v === 'scroll';
      if (scrolls(s.overflowY) && e.scrollHeight > e.clientHeight + 1)
        problems.push(`scroll box (${e.scrollHeight} px of content in ${e.clientHeight} px): ${describe(e)}`);
      if (scrolls(s.overflowX) && e.scrollWidth > e.clientWidth + 1)
        problems.push(`scroll box (${e.scrollWidth} px of content in ${e.clientWidth} px wide): ${describe(e)}`);
      if (s.overflowX !== 'visible' || s.overflowY !== 'visible') {
        const cut = cutText(e);
        if (cut !== null) problems.push(`box cuts its text « ${cut.slice(0, 60)} »${s.textOverflow === 'ellipsis' ? ' (ellipsis)' : ''}: ${describe(e)}`);
      }
    }
    if (!own(e)) continue;
    const b = block(e);
    if (!b || seen.has(b) || pageScrollers.has(b)) continue;
    seen.add(b);
    if (b.clientWidth > 0 && b.scrollWidth > b.clientWidth + 1)
      problems.push(`text overflows its element (${b.scrollWidth} px in ${b.clientWidth} px): ${describe(b)}`);
  }
  return [...new Set(problems)];
}"""

# The text a reader sees: visible text nodes, without the names of icons (drawn as glyphs by the
# icon font), style sheets, code blocks (the run's configuration file is shown as it is) and the
# model card's technical details.
_VISIBLE_TEXT_JS = r"""() => {
  const out = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  // the model card's technical details (container key respop-technical, respop/boards/app.py) give
  // the variables' and algorithms' own names to the data team, on purpose
  const skip = '[data-testid="stIconMaterial"], style, script, noscript, [data-testid="stCode"], .st-key-respop-technical';
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    const p = n.parentElement;
    if (!p || !n.textContent.trim() || p.closest(skip) || !p.checkVisibility()) continue;
    const r = p.getBoundingClientRect();
    if (r.width <= 1 || r.height <= 1) continue;  // visually hidden (for screen readers)
    out.push(n.textContent.trim());
  }
  return out.join('\n');
}"""

# The script has run, nothing waits to be drawn, every image is loaded.
_PAGE_DONE_JS = "() => (" + _APP_SETTLED_JS + ")() && !document.querySelector('[data-testid=\"stSkeleton\"]') " \
    "&& [...document.images].every(i => i.complete)"

# Every image the page shows (src), visible ones only.
_IMAGES_JS = """() => [...document.querySelectorAll('img')].filter(i => i.checkVisibility() && i.src)
  .map(i => i.src)"""

# The bytes of an image, fetched by the page itself (same origin, or a data: URI), in base64.
_FETCH_BASE64_JS = """async src => {
  const r = await fetch(src);
  const bytes = new Uint8Array(await r.arrayBuffer());
  let s = '';
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
}"""

# Opens every folded expander (Streamlit draws them as <details>); a <details> block written in a
# text (the model card's "Détails techniques") stays as its author folded it.
_OPEN_EXPANDERS_JS = """() => {
  const closed = [...document.querySelectorAll('details:not([open]) > summary')]
    .filter(s => s.checkVisibility() && !s.closest('[data-testid="stMarkdownContainer"]'));
  closed.forEach(s => s.click());
  return closed.length;
}"""

ENGLISH = (
    # what Streamlit itself can show
    "Deploy", "Running", "Made with Streamlit", "Download", "Stop", "Rerun", "Settings", "Clear cache",
    "Record a screencast", "Print", "Search", "Fullscreen", "View fullscreen", "Show more", "Show less",
    "View more", "View less", "Close", "Copy", "Loading", "Please wait", "Page not found", "Connecting",
    "Connection error", "Press Enter to apply", "Choose an option", "No results", "Source code", "View source",
    # values and messages our code could let through
    "No data", "Error", "Warning", "Exception", "Traceback", "None", "nan", "NaN", "NaT", "<NA>", "null",
    "undefined", "inf", "True", "False", "Yes", "No", "Missing", "Unknown", "unknown", "Other", "Total count",
    "mean", "median", "count", "rate", "year", "Year", "female", "male", "Female", "Male", "sex", "stay",
    "stays", "death", "deaths", "readmission", "hospital", "level", "stratum", "timings", "started",
    "finished", "succeeded", "failed", "status", "Classifier", "Regressor", "log loss", "feature",
    "features", "the", "and", "of", "with", "from", "for", "to", "is",
)
"""English words and phrases a board page must not show (matched as whole words, case-sensitive)."""

_ENGLISH_RE = None


def english_words(text: str) -> list[str]:
    """The English words of :data:`ENGLISH` and the identifier-looking tokens (``snake_case``
    with a lower-case letter, ``camelCase``, ``PascalCaseWords``, ``==``) found in ``text``, each
    once, in order."""
    import re

    global _ENGLISH_RE
    if _ENGLISH_RE is None:
        words = sorted(ENGLISH, key=len, reverse=True)
        _ENGLISH_RE = re.compile(
            r"(?<![\w<])(?:" + "|".join(re.escape(w) for w in words) + r")(?![\w>])"
            # snake_case with a lower-case letter (the SNDS's names, T_MCO19B or BEN_NIR_PSA, are
            # what the DIM knows the files and variables by: allowed), not inside a file's path
            r"|(?<![/\\.\w])(?=\w*[a-z])[A-Za-z][A-Za-z0-9]*_[A-Za-z0-9_]+\b(?![/\\.]\w)"
            r"|\b[a-z]+[A-Z][A-Za-z0-9]*\b"  # camelCase
            r"|\b[A-Z][a-z]+(?:[A-Z][a-z]+){2,}\b"  # PascalCaseWords
            r"|[=!]=",
        )
    # a file's path is what it is (the configuration's path on Qualité: /tmp/pytest-of-root/...)
    text = re.sub(r"\S*/\S*", " ", text)
    return list(dict.fromkeys(m.group(0) for m in _ENGLISH_RE.finditer(text)))


def png_text_chunks(png: bytes) -> dict[str, str]:
    """The text chunks (tEXt, zTXt, iTXt) of PNG bytes, by key; {} for bytes that are not a PNG."""
    import struct
    import zlib

    if png[:8] != b"\x89PNG\r\n\x1a\n":
        return {}
    texts: dict[str, str] = {}
    at = 8
    while at + 8 <= len(png):
        length, kind = struct.unpack(">I4s", png[at:at + 8])
        body = png[at + 8:at + 8 + length]
        at += 12 + length
        if kind == b"tEXt":
            key, _, value = body.partition(b"\0")
            texts[key.decode("latin-1")] = value.decode("latin-1")
        elif kind == b"zTXt":
            key, _, rest = body.partition(b"\0")
            texts[key.decode("latin-1")] = zlib.decompress(rest[1:]).decode("latin-1")
        elif kind == b"iTXt":
            key, _, rest = body.partition(b"\0")
            compressed, _method = rest[0], rest[1]
            _lang, _, rest = rest[2:].partition(b"\0")
            _translated, _, value = rest.partition(b"\0")
            texts[key.decode("latin-1")] = (zlib.decompress(value) if compressed else value).decode("utf-8")
        elif kind == b"IEND":
            break
    return texts


LAYOUT_KEY = "respop:layout"
"""The PNG text chunk in which respop.boards.figures.to_png writes a figure's layout report."""

LAYOUT_DEFECTS = {
    "legend_overlaps": "legend over a plotting area or outside the figure",
    "suppressed_on_numeric_axis": "suppression symbol on a numeric axis",
    "outside_figure": "text outside the figure",
    "overlapping_texts": "texts overlapping each other",
}


def figure_problems(png: bytes, name: str) -> list[str]:
    """What a figure's layout report (the PNG's ``respop:layout`` chunk) finds wrong, and the
    English of its texts; a PNG without a report is a problem too (it was not drawn by
    figures.to_png, or was re-encoded on its way to the browser)."""
    import json

    raw = png_text_chunks(png).get(LAYOUT_KEY)
    if raw is None:
        return [f"{name}: no {LAYOUT_KEY} report in the PNG (re-encoded, or not drawn by figures.to_png)"]
    report = json.loads(raw)
    problems = [f"{name}: {what}: {report[key]}" for key, what in LAYOUT_DEFECTS.items() if report.get(key)]
    english = english_words("\n".join(report.get("texts", [])))
    if english:
        problems.append(f"{name}: English or code in the figure's texts: {english}")
    return problems


@dataclass
class BoardPage:
    """One page of the board as BoardBrowser saw it."""

    url: str
    screenshot: Path
    title: str
    errors: list[str]
    text: str
    """What a reader sees: every visible text of the page, sidebar included (icon names left out)."""
    layout: list[str]
    """Boxes cutting their content, text overflowing its element, icons drawn as text."""
    english: list[str]
    """English words and code-like tokens of the page's text and title."""
    figures: list[str]
    """What the figures' layout reports find wrong (see :func:`figure_problems`)."""
    images: int
    """How many images the page shows."""

    def problems(self) -> list[str]:
        where = self.url.split("/", 3)[-1]
        return [
            *(f"{where}: error shown: {e}" for e in self.errors),
            *(f"{where}: {p}" for p in self.layout),
            *([f"{where}: English or code on the page: {self.english}"] if self.english else []),
            *(f"{where}: {p}" for p in self.figures),
        ]


@contextmanager
def chromium_browser(chromium: str | None = None):
    """One headless system Chromium (a Playwright ``Browser``) for :class:`BoardBrowser`; one per
    thread at a time (Playwright's sync API runs one event loop per thread)."""
    from playwright.sync_api import sync_playwright

    executable = chromium or chromium_path()
    if executable is None:
        raise RuntimeError(CHROMIUM_MISSING)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


class BoardBrowser:
    """One page of ``browser`` (:func:`chromium_browser`) at one viewport, in a context of its own
    (cookies, cache), on a closed network: requests to any origin but ``base_url``'s (and data:
    URIs) are recorded in :attr:`elsewhere` and refused. Use as a context manager; :meth:`visit`
    loads a page and reports on it."""

    def __init__(self, browser, base_url: str, viewport: tuple[int, int], timeout: float = 60.0) -> None:
        self.browser = browser
        self.base_url = base_url.rstrip("/")
        self.viewport = viewport
        self.timeout_ms = timeout * 1000
        self.elsewhere: list[str] = []
        """Every request the pages made to another host (refused)."""
        self.console_errors: list[str] = []

    def _own(self, url: str) -> bool:
        return url.startswith(("data:", "blob:")) or url == self.base_url or url.startswith(self.base_url + "/")

    def __enter__(self) -> BoardBrowser:
        self._context = self.browser.new_context(viewport={"width": self.viewport[0], "height": self.viewport[1]})
        self.page = self._context.new_page()
        self.page.on("pageerror", lambda exc: self.console_errors.append(str(exc)))
        self.page.on("request", lambda r: None if self._own(r.url) else self.elsewhere.append(r.url))
        self.page.route("**/*", lambda route: route.continue_() if self._own(route.request.url) else route.abort())
        return self

    def __exit__(self, *exc) -> None:
        self._context.close()

    def visit(self, path: str, screenshot: Path, *, open_expanders: bool = False) -> BoardPage:
        """Load ``base_url/path``, wait for the script to run to the end, grow the viewport to the
        content, save a full-page screenshot and report. ``open_expanders``: open every folded
        expander before the screenshot; otherwise the screenshot shows the page as it opens and
        the expanders are opened after it, so that what they hold is checked too."""
        page, (width, height) = self.page, self.viewport
        url = f"{self.base_url}/{path.lstrip('/')}"
        page.set_viewport_size({"width": width, "height": height})
        page.goto(url, timeout=self.timeout_ms)
        page.locator('[data-testid="stMain"]').wait_for(state="visible", timeout=self.timeout_ms)
        # settled, with no placeholder (skeleton) left and every image loaded (their height moves
        # what follows), twice a quarter of a second apart: a rerun can start just after the first
        deadline = time.monotonic() + self.timeout_ms / 1000
        while True:
            page.wait_for_function(_PAGE_DONE_JS, timeout=self.timeout_ms, polling=100)
            page.wait_for_timeout(250)
            if page.evaluate(_PAGE_DONE_JS) or time.monotonic() > deadline:
                break
        page.evaluate("document.fonts.ready.then(() => true)")
        if open_expanders:
            page.evaluate(_OPEN_EXPANDERS_JS)
        page.wait_for_timeout(250)
        self._grow()
        screenshot = Path(screenshot)
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(screenshot), full_page=True)
        if not open_expanders and page.evaluate(_OPEN_EXPANDERS_JS):
            page.wait_for_timeout(250)
            self._grow()
        text = page.evaluate(_VISIBLE_TEXT_JS)
        title = page.title()
        figures: list[str] = []
        # the page's own images (one from elsewhere is refused, and in self.elsewhere already)
        sources = [src for src in page.evaluate(_IMAGES_JS) if self._own(src)]
        for n, src in enumerate(sources, 1):
            import base64

            png = base64.b64decode(page.evaluate(_FETCH_BASE64_JS, src))
            figures += figure_problems(png, f"figure {n} ({src[:60]})")
        return BoardPage(
            url=url, screenshot=screenshot, title=title,
            errors=page.locator(ERROR_SELECTOR).evaluate_all(_ERROR_TEXTS_JS),
            text=text, layout=page.evaluate(_LAYOUT_PROBLEMS_JS),
            english=english_words(title + "\n" + text), figures=figures, images=len(sources),
        )  # fmt: skip

    def _grow(self) -> None:
        """Streamlit scrolls its main block inside a fixed-height app: the viewport grows to the
        content, so that the screenshot holds the whole page and nothing of the page scrolls."""
        width, height = self.viewport
        content = self.page.evaluate(_CONTENT_HEIGHT_JS)
        if content > self.page.viewport_size["height"] or content > height:
            self.page.set_viewport_size({"width": width, "height": min(max(content, height), MAX_HEIGHT)})
            self.page.wait_for_timeout(250)
