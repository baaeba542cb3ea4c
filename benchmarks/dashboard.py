"""How fast do the board's pages open, on the demo store and on a national-scale store?

Goal (issue 7): a page of the national-scale store opens in under 2 seconds. Measured two ways:

- **script**: Streamlit's AppTest runs the page's script in this process, as the server would:
  *cold* after clearing ``st.cache_data`` (the first visitor of the page), *warm* on a second run
  (later visitors, cached queries and figures);
- **browser**: the board served on localhost (``streamlit run``) and the page loaded in headless
  Chromium until the script has finished and the page is drawn (tests/browser.py): cold on the first
  visit after the server starts, warm on a second visit. Skipped where Chromium is absent.

Peak memory: this process (AppTest) and the server process (VmHWM). The ratio column is seconds
against the 2-second goal.

    .venv/bin/python benchmarks/dashboard.py                       # demo and national
    .venv/bin/python benchmarks/dashboard.py --stores demo
    .venv/bin/python benchmarks/dashboard.py --build               # (re)build the national store first

The national store is built by ``respop run benchmarks/national.toml`` (the national world of
benchmarks/case_finding.py: 5,600 zones, 2019-2023) when it is missing or with ``--build``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from respop.config import load_config  # noqa: E402
from respop.store.db import Store  # noqa: E402

APP = ROOT / "dashboards" / "app.py"
GOAL_SECONDS = 2.0
CONFIGS = {"demo": ROOT / "territories" / "demo.toml", "national": ROOT / "benchmarks" / "national.toml"}
PAGES = ["territoire", "diabete", "insuffisance-cardiaque", "strates", "recours", "trajectoires", "qualite"]
OUT = ROOT / "benchmarks" / "out" / "dashboard"


def _peak_mb(pid: int | None = None) -> float:
    if pid is None:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def ensure_store(name: str, build: bool) -> None:
    config = load_config(CONFIGS[name])
    store = Store(config.store.url)
    try:
        present = store.latest_run(config.name) is not None
    finally:
        store.close()
    if present and not build:
        return
    print(f"building the {name} store: respop run {CONFIGS[name]} (minutes for national)", flush=True)
    subprocess.run([str(ROOT / ".venv" / "bin" / "respop"), "run", str(CONFIGS[name])], check=True)


def script_timings(name: str) -> list[dict]:
    import streamlit as st
    from streamlit.testing.v1 import AppTest
    from streamlit.util import calc_hash

    os.environ["RESPOP_CONFIG"] = str(CONFIGS[name])
    rows = []
    for page in PAGES:
        st.cache_data.clear()
        st.cache_resource.clear()
        timings = []
        for _ in range(2):
            at = AppTest.from_file(str(APP), default_timeout=300)
            at._page_hash = calc_hash(page)  # a callable page of st.navigation (tests/boards/test_app.py)
            start = time.perf_counter()
            at.run()
            timings.append(time.perf_counter() - start)
            if at.exception:
                raise RuntimeError(f"{name}/{page}: {at.exception[0].value}")
        rows.append({"store": name, "page": page, "how": "script", "cold": timings[0], "warm": timings[1], "peak_mb": _peak_mb()})
    return rows


def browser_timings(name: str) -> list[dict]:
    """Seconds from navigation to the page drawn (script finished, main block visible), in one
    Chromium session (the browser's start-up is not counted), plus a screenshot of each page."""
    from playwright.sync_api import sync_playwright

    from tests.browser import _APP_SETTLED_JS, CHROMIUM_ARGS, browser_skip_reason, chromium_path, serve_streamlit

    reason = browser_skip_reason()
    if reason:
        print(f"browser timings skipped: {reason}")
        return []
    rows = []
    shots = OUT / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    with serve_streamlit(APP, [str(CONFIGS[name])], cwd=ROOT, timeout=120) as base, sync_playwright() as pw:
        server_pid = _server_pid(base)
        browser = pw.chromium.launch(executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS)
        try:
            for page_path in PAGES:
                timings = []
                for visit in range(2):
                    page = browser.new_page(viewport={"width": 1600, "height": 1000})
                    start = time.perf_counter()
                    page.goto(f"{base}/{page_path}", timeout=300_000)
                    page.wait_for_function(_APP_SETTLED_JS, timeout=300_000, polling=50)
                    page.locator('[data-testid="stMain"]').wait_for(state="visible", timeout=300_000)
                    timings.append(time.perf_counter() - start)
                    errors = page.locator('[data-testid="stException"]').count()
                    if errors:
                        raise RuntimeError(f"{name}/{page_path}: the page shows an exception")
                    if visit:
                        page.screenshot(path=str(shots / f"{name}-{page_path}.png"))
                    page.close()
                rows.append({"store": name, "page": page_path, "how": "browser", "cold": timings[0], "warm": timings[1],
                             "peak_mb": _peak_mb(server_pid) if server_pid else float("nan")})
        finally:
            browser.close()
    return rows


def _server_pid(base: str) -> int | None:
    port = base.rsplit(":", 1)[1]
    out = subprocess.run(["pgrep", "-f", f"server.port {port}"], capture_output=True, text=True).stdout.split()
    return int(out[0]) if out else None


def store_size(name: str) -> str:
    config = load_config(CONFIGS[name])
    store = Store(config.store.url)
    try:
        run_id = store.latest_run(config.name)
        zones = store.read("zones", run_id).height
        rows = sum(store.read(t, run_id).height for t in store.tables())
    finally:
        store.close()
    return f"{zones:,} zones, {rows:,} rows"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stores", default="demo,national")
    parser.add_argument("--build", action="store_true", help="rebuild the national store first")
    parser.add_argument("--no-browser", action="store_true")
    args = parser.parse_args()
    rows = []
    sizes = {}
    for name in args.stores.split(","):
        ensure_store(name, args.build and name == "national")
        sizes[name] = store_size(name)
        rows += script_timings(name)
        if not args.no_browser:
            rows += browser_timings(name)
    print()
    print(f"{'store':<9} {'size':<28} {'page':<24} {'how':<8} {'cold s':>7} {'warm s':>7} {'peak MB':>8} {'cold / 2 s':>10}")
    for r in rows:
        print(f"{r['store']:<9} {sizes[r['store']]:<28} {r['page']:<24} {r['how']:<8} {r['cold']:>7.2f} {r['warm']:>7.2f} "
              f"{r['peak_mb']:>8.0f} {r['cold'] / GOAL_SECONDS:>10.2f}")
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "results.json").write_text(json.dumps({"sizes": sizes, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
