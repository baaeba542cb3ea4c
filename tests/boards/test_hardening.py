"""The board hardened: ``respop dashboard``'s command line (loopback, nothing sent outside, no
static files, host names), the served endpoints, the rate limit on passwords, and no secret of the
configuration stored or shown (in Chromium: the Qualité page, and every byte sent to the browser)."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest
from typer.testing import CliRunner

from respop.boards import access
from respop.boards.access import AttemptLimiter, hash_password
from respop.boards.app import CONFIG_ENV, TITLE
from respop.boards.serve import streamlit_command
from respop.config import PASSWORD_HASH_ENV, STORE_URL_ENV
from tests.boards.conftest import BOARD_PASSWORD, write_config
from tests.browser import _APP_SETTLED_JS, CHROMIUM_ARGS, serve_streamlit

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "dashboards" / "app.py"
SERVE = ROOT / "respop" / "boards" / "serve.py"
PASSWORD = "S3cretPass"
PG_URL = f"postgresql+psycopg://respop:{PASSWORD}@127.0.0.1:5432/x"


def options(command: list[str]) -> dict[str, list[str]]:
    """``--name value`` pairs of a streamlit command line (before ``--``), values listed per name."""
    found: dict[str, list[str]] = {}
    own = command[: command.index("--")]
    for i, arg in enumerate(own):
        if arg.startswith("--"):
            found.setdefault(arg[2:], []).append(own[i + 1])
    return found


# -------------------------------------------------------------------------- the command line


def test_the_board_command_listens_on_loopback_and_sends_nothing_out():
    command = streamlit_command("territories/demo.toml", 8501)
    assert command[:5] == [sys.executable, "-m", "streamlit", "run", str(SERVE)]
    assert command[command.index("--") + 1:] == [str((Path("territories/demo.toml")).resolve())]
    o = options(command)
    assert o["server.address"] == ["127.0.0.1"] and o["server.port"] == ["8501"]
    assert o["browser.gatherUsageStats"] == ["false"]
    # set by hand, the served address spares Streamlit its look-up of the machine's public address
    assert o["browser.serverAddress"] == ["localhost"]
    assert o["server.enableStaticServing"] == ["false"] and o["server.enableAgentApi"] == ["false"]
    assert o["server.enableXsrfProtection"] == ["true"] and o["server.enableCORS"] == ["true"]
    assert o["client.showErrorDetails"] == ["none"] and o["client.toolbarMode"] == ["viewer"]
    assert o["global.developmentMode"] == ["false"] and o["server.fileWatcherType"] == ["none"]
    assert sorted(o["server.allowedHosts"]) == sorted(["127.0.0.1", "localhost", "::1"])

    proxied = options(streamlit_command("c.toml", 8600, "0.0.0.0", 3, ("tableau.chu.example",)))
    assert proxied["server.address"] == ["0.0.0.0"] and proxied["browser.serverAddress"] == ["tableau.chu.example"]
    assert "tableau.chu.example" in proxied["server.allowedHosts"] and "0.0.0.0" not in proxied["server.allowedHosts"]
    assert "server.allowedHosts" not in options(streamlit_command("c.toml", 8600, "0.0.0.0"))  # names unknown
    assert streamlit_command("c.toml", 8600, run=3)[-2:] == ["--run", "3"]


def test_respop_dashboard_runs_that_command(tmp_path, monkeypatch):
    from respop.cli import app

    config = tmp_path / "t.toml"
    config.write_text('name = "t"\n[output]\ndir = "out"\n', encoding="utf-8")
    calls = []
    monkeypatch.setattr(subprocess, "call", lambda command: calls.append(command) or 0)
    result = CliRunner().invoke(app, ["dashboard", str(config)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert calls == [streamlit_command(config, 8501)]
    assert "Board of t: http://localhost:8501/" in result.output

    result = CliRunner().invoke(app, ["dashboard", str(config), "--address", "0.0.0.0", "--port", "8600"],
                                env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert options(calls[-1])["server.address"] == ["0.0.0.0"]
    assert "without HTTPS" in result.output and "--host-name" in result.output


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, headers: dict | None = None) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _listening(port: int) -> set[str]:
    """Local addresses listening on ``port`` (Linux /proc/net/tcp and tcp6, hex)."""
    found = set()
    for name in ("tcp", "tcp6"):
        table = Path("/proc/net") / name
        for line in table.read_text().splitlines()[1:] if table.exists() else []:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.rsplit(":", 1)
            if state == "0A" and int(hex_port, 16) == port:
                found.add(address)
    return found


def _upgrade_status(port: int, host: str) -> int:
    """HTTP status of a WebSocket upgrade to the board's stream with this Host header."""
    import base64
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.putrequest("GET", "/_stcore/stream", skip_host=True)
        for key, value in {"Host": f"{host}:{port}", "Origin": f"http://{host}:{port}", "Upgrade": "websocket",
                           "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
                           "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(),
                           "Sec-WebSocket-Protocol": "streamlit"}.items():
            connection.putheader(key, value)
        connection.endheaders()
        return connection.getresponse().status
    finally:
        connection.close()


def test_the_served_board_without_a_password(tmp_path):
    """What each endpoint gives someone without the password, on the command respop dashboard
    runs; the server listens on 127.0.0.1 only and asks nothing outside at start."""
    password_hash = hash_password(BOARD_PASSWORD)
    config = tmp_path / "t.toml"
    config.write_text(f'name = "t"\n[output]\ndir = "out"\n[store]\nurl = "{PG_URL}"\n[dashboard]\naccess = "password"\n'
                      f'password_hash = "{password_hash}"\n', encoding="utf-8")
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryFile("w+") as log:
        process = subprocess.Popen(streamlit_command(config, port), cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if _get(f"{base}/_stcore/health") == (200, b"ok"):
                        break
                except OSError:
                    pass
                assert process.poll() is None and time.monotonic() < deadline, "the board did not start"
                time.sleep(0.2)
            if Path("/proc/net/tcp").exists():
                assert _listening(port) == {"0100007F"}  # 127.0.0.1, nothing else
            pages = {path: _get(base + path) for path in
                     ("/", "/qualite", "/_stcore/host-config", "/_stcore/metrics", "/app/static/respop.sqlite",
                      "/static/../../respop/boards/app.py", "/media/0123456789abcdef.png", "/component/x/index.html",
                      "/_stcore/agent/openapi.json")}
            assert _upgrade_status(port, "localhost") == 101
            assert _upgrade_status(port, "attacker.example") == 403  # DNS rebinding refused
        finally:
            process.terminate()
            process.wait(timeout=30)
        log.seek(0)
        output = log.read()
    index = pages["/"][1]
    for path, (status, body) in pages.items():
        assert PASSWORD.encode() not in body and password_hash.encode() not in body, path
        assert b"tiny" not in body and b"Qualit" not in body, path  # no data, no page of the board
    assert pages["/qualite"] == (200, index)  # every page address is the same empty shell
    assert pages["/app/static/respop.sqlite"] == (200, index)  # no static files: the shell again
    assert pages["/static/../../respop/boards/app.py"][1] in (index, b"") or pages["/static/../../respop/boards/app.py"][0] >= 400
    assert pages["/media/0123456789abcdef.png"][0] == 404 and pages["/component/x/index.html"][0] == 404
    host_config = json.loads(pages["/_stcore/host-config"][1])
    assert host_config["metricsUrl"] == "" and host_config["enableCustomParentMessages"] is False
    assert b"switched off" in pages["/_stcore/agent/openapi.json"][1]
    assert b"session_events_total" in pages["/_stcore/metrics"][1]  # counters only (blocked by the proxy: README)
    assert "URL: http://localhost:" in output and "External URL" not in output and "external IP" not in output
    assert PASSWORD not in output


# --------------------------------------------------------------------------- the rate limit


def test_the_limiter_pauses_a_client_after_five_wrong_passwords():
    now = [1000.0]
    limiter = AttemptLimiter(free=5, first=30, longest=120, forget_after=3600, clock=lambda: now[0])
    for _ in range(4):
        limiter.failed("ip:192.0.2.7")
        assert limiter.wait("ip:192.0.2.7") == 0
    limiter.failed("ip:192.0.2.7")
    assert limiter.wait("ip:192.0.2.7") == 30
    assert limiter.wait("ip:198.51.100.1") == 0  # another client tries freely
    now[0] += 10
    assert limiter.wait("ip:192.0.2.7") == 20  # attempts refused meanwhile are not counted
    now[0] += 20
    assert limiter.wait("ip:192.0.2.7") == 0
    limiter.failed("ip:192.0.2.7")
    assert limiter.wait("ip:192.0.2.7") == 60  # doubled
    now[0] += 60
    limiter.failed("ip:192.0.2.7")
    assert limiter.wait("ip:192.0.2.7") == 120
    now[0] += 120
    limiter.failed("ip:192.0.2.7")
    assert limiter.wait("ip:192.0.2.7") == 120  # at most `longest`
    limiter.succeeded("ip:192.0.2.7")
    assert limiter.wait("ip:192.0.2.7") == 0  # the right password forgets
    for _ in range(5):
        limiter.failed("ip:192.0.2.8")
    now[0] += 3601
    assert limiter.wait("ip:192.0.2.8") == 0  # forgotten a while after the last wrong one
    limiter.failed("ip:192.0.2.8")
    assert limiter.wait("ip:192.0.2.8") == 0


def test_the_limiter_is_bounded_and_thread_safe():
    import threading

    limiter = AttemptLimiter(free=5, first=30, max_clients=100)
    for i in range(1000):
        limiter.failed(f"ip:{i}")
    assert len(limiter._failures) == 100 and "ip:999" in limiter._failures and "ip:0" not in limiter._failures

    shared = AttemptLimiter(free=10_000, first=1)
    threads = [threading.Thread(target=lambda: [shared.failed("ip:x") for _ in range(500)]) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert shared._failures["ip:x"].count == 4000


def test_the_board_pauses_password_attempts_in_french(tmp_path, monkeypatch):
    from respop.boards import app as board_app

    now = [0.0]
    monkeypatch.setattr(access, "LIMITER", AttemptLimiter(clock=lambda: now[0]))
    monkeypatch.setattr(board_app, "client_key", lambda: "ip:192.0.2.7")  # every session: one client
    monkeypatch.delenv(PASSWORD_HASH_ENV, raising=False)
    config = tmp_path / "t.toml"
    config.write_text(f'name = "t"\n[output]\ndir = "out"\n[dashboard]\naccess = "password"\n'
                      f'password_hash = "{hash_password(BOARD_PASSWORD)}"\n', encoding="utf-8")
    monkeypatch.setenv(CONFIG_ENV, str(config))
    at = AppTest.from_file(str(APP), default_timeout=60).run()
    second = AppTest.from_file(str(APP), default_timeout=60).run()  # the same client, in another tab
    for attempt in range(1, 6):
        at.text_input(key="respop_password").input(f"essai {attempt}").run()
        assert at.text_input(key="respop_password").value == ""  # emptied after each try
        if attempt < 5:
            assert [e.value for e in at.error] == ["Mot de passe incorrect."]
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and errors[0].startswith("Mot de passe incorrect. Trop de mots de passe erronés : "
                                                     "les essais sont suspendus pendant 30 secondes.")
    assert at.text_input(key="respop_password").disabled  # a browser cannot type during the pause
    assert not at.image and not at.dataframe

    # the other tab still shows its field: its right password is refused too, during the pause
    second.text_input(key="respop_password").input(BOARD_PASSWORD).run()
    assert [t.value for t in second.title] == [TITLE] and not second.warning
    assert [e.value for e in second.error] == [
        "Trop de mots de passe erronés : les essais sont suspendus pendant 30 secondes. "
        "Rechargez la page ensuite pour réessayer."]

    now[0] += 31
    at.run()
    assert not at.error and not at.text_input(key="respop_password").disabled
    at.text_input(key="respop_password").input(BOARD_PASSWORD).run()
    assert not at.error and at.warning  # in: "no published results" (this store is empty)
    assert at.warning[0].value.startswith("Aucun résultat publié pour « t »")


@pytest.mark.slow
def test_behind_a_proxy_the_pause_holds_for_the_address_in_every_tab(chromium_executable, tmp_path):
    """In Chromium, through a (simulated) reverse proxy on this machine: uvicorn takes the client's
    address from X-Forwarded-For, so a new tab from the same address is paused too, and another
    address is not."""
    from playwright.sync_api import sync_playwright

    config = tmp_path / "t.toml"
    config.write_text(f'name = "t"\n[output]\ndir = "out"\n[dashboard]\naccess = "password"\n'
                      f'password_hash = "{hash_password(BOARD_PASSWORD)}"\n', encoding="utf-8")
    with serve_streamlit(SERVE, [str(config)], cwd=ROOT) as base, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_executable, headless=True, args=CHROMIUM_ARGS)
        try:
            def tab(address: str):
                page = browser.new_page(extra_http_headers={"X-Forwarded-For": address})
                page.goto(f"{base}/qualite", timeout=60_000)
                page.wait_for_function(_APP_SETTLED_JS, timeout=60_000, polling=100)
                return page

            first = tab("203.0.113.9")
            for attempt in range(5):
                field = first.get_by_label("Mot de passe")
                field.fill(f"essai {attempt}")
                field.press("Enter")
                first.wait_for_timeout(300)
                first.wait_for_function(_APP_SETTLED_JS, timeout=60_000, polling=100)
            first.get_by_text("les essais sont suspendus").wait_for(timeout=30_000)
            assert first.get_by_label("Mot de passe").is_disabled()
            again = tab("203.0.113.9")
            again.get_by_text("Trop de mots de passe erronés").wait_for(timeout=30_000)
            assert again.get_by_label("Mot de passe").is_disabled()
            other = tab("198.51.100.4")
            assert not other.get_by_label("Mot de passe").is_disabled()
            assert "suspendus" not in other.locator('[data-testid="stMain"]').inner_text()
        finally:
            browser.close()


def test_a_client_is_its_address_else_its_session(monkeypatch):
    from respop.boards import app as board_app

    assert board_app.client_key().startswith("session:")  # no address outside a served page
    monkeypatch.setattr(type(board_app.st.context), "ip_address", property(lambda self: "203.0.113.5"))
    assert board_app.client_key() == "ip:203.0.113.5"


# ------------------------------------------------------------------ no secret stored or shown


def _open_quality(base: str, run_id: int, chromium: str, screenshot: Path) -> tuple[str, str, list[bytes], list[str]]:
    """The Qualité page of ``run_id`` with its configuration unfolded: (visible text, HTML, every
    WebSocket frame the browser received, every URL the page requested)."""
    from playwright.sync_api import sync_playwright

    frames: list[bytes] = []
    requests: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("request", lambda request: requests.append(request.url))
            page.on("websocket", lambda ws: ws.on(
                "framereceived", lambda payload: frames.append(payload if isinstance(payload, bytes) else payload.encode())))
            page.goto(f"{base}/qualite?run={run_id}", timeout=60_000)
            page.wait_for_function(_APP_SETTLED_JS, timeout=60_000, polling=100)
            page.get_by_text("Fichier de configuration de l'exécution").click()
            code = page.locator('[data-testid="stCode"]').first
            code.wait_for(state="visible", timeout=30_000)
            code.scroll_into_view_if_needed()
            page.wait_for_timeout(300)
            page.screenshot(path=str(screenshot), full_page=False)
            return page.locator('[data-testid="stMain"]').inner_text(), page.content(), frames, requests
        finally:
            browser.close()


@pytest.mark.slow
def test_no_secret_of_the_configuration_is_stored_or_shown(chromium_executable, tiny_run, tmp_path, monkeypatch):
    from respop.config import load_config
    from respop.pipeline import publish

    password_hash = hash_password(BOARD_PASSWORD)
    copy = tmp_path / "respop.sqlite"
    source, target = sqlite3.connect(tiny_run.config.store.url.removeprefix("sqlite:///")), sqlite3.connect(copy)
    source.backup(target)
    source.close()
    target.close()
    store_url = f"sqlite:///{copy.as_posix()}"
    # the configuration names a PostgreSQL store with its password; the real one comes from the environment
    config_path = write_config(tmp_path / "tiny.toml", tiny_run, f'[dashboard]\npassword_hash = "{password_hash}"\n',
                               store_url=PG_URL)
    clear_text = config_path.read_text(encoding="utf-8")
    assert PASSWORD in clear_text and password_hash in clear_text
    monkeypatch.setenv(STORE_URL_ENV, store_url)
    config = load_config(config_path)
    assert config.store.url == store_url
    redacted_run = publish(config, config_path)
    older_run = tiny_run.run_id  # in the copy too
    with sqlite3.connect(copy) as db:
        stored = dict(db.execute("select run_id, config_toml from runs").fetchall())
        fingerprint = db.execute("select config_sha256 from runs where run_id = ?", (redacted_run,)).fetchone()[0]
        # a run stored before the redaction: its text in clear, redacted by the board when shown
        db.execute("update runs set config_toml = ? where run_id = ?", (clear_text, older_run))
    assert PASSWORD not in stored[redacted_run] and password_hash not in stored[redacted_run]
    assert 'url = "postgresql+psycopg://respop:***@127.0.0.1:5432/x"' in stored[redacted_run]
    assert 'password_hash = "***"' in stored[redacted_run]
    # the fingerprint too is the redacted text's: the clear text's would let a guessed password be checked
    assert fingerprint == hashlib.sha256(stored[redacted_run].encode()).hexdigest()

    with serve_streamlit(SERVE, [str(config_path)], env={STORE_URL_ENV: store_url}, cwd=ROOT) as base:
        for run_id in (redacted_run, older_run):
            text, html, frames, requests = _open_quality(base, run_id, chromium_executable, tmp_path / f"qualite-{run_id}.png")
            assert "Qualité des données" in text and f"n° {run_id}" in text
            assert "postgresql+psycopg://respop:***@127.0.0.1:5432/x" in text, text[-2000:]
            assert 'password_hash = "***"' in text
            for shown in (text, html):
                assert PASSWORD not in shown and password_hash not in shown
            assert frames and not any(PASSWORD.encode() in f or password_hash.encode() in f for f in frames)
            assert requests and all(url.startswith(base) or url.startswith("data:") for url in requests), \
                [u for u in requests if not u.startswith(base)]
