"""Runs that belong together and interrupted runs, end to end on ``tiny`` (the whole pipeline):

- the finding of issue 16: `respop run CONFIG --steps territories,cases,store` after moving a zone
  would publish indicators on the new territories and care use on the old ones (their shared
  counts differing by the moved zone's count); it is refused, naming the command that rebuilds
  the stale step, and that command publishes;
- a `respop run` killed in a step leaves its private workspace and the step's half-written
  folder (patient-level): the next run removes them and says so on stderr; a live run's are kept;
- a store write killed in its transaction leaves its run `running`: the next write marks it
  `interrupted`, and leaves alone a run whose process still runs or that another host writes.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest
from sqlalchemy import insert

from respop.fsutil import WORKSPACE_PREFIX, process_identity, run_workspace
from respop.pipeline import run
from respop.stages import StageError
from respop.store import schema
from respop.store.db import PAUSE_ENV, Store
from respop.store.publish import collect
from tests.store.conftest import CONFIG
from tests.test_cli import respop

PIN = '[territories]\npins = { "01013" = "01014" }\n'
"""On tiny seed 5 (the tiny run), zone 01013 leaves territory 3 for 01014's territory 2."""


def copy_run(tiny_run, folder: Path, config_text: str) -> Path:
    """A copy of the tiny run (data, outputs and store; file times kept) with its own configuration."""
    shutil.copytree(tiny_run.base, folder, symlinks=True)
    path = folder / "tiny.toml"
    path.write_text(config_text, encoding="utf-8")
    return path


def shared_counts(out: Path) -> pl.DataFrame:
    """Per disease, year and territory: the cases (indicators) and the people of the all stratum
    (care use), the same count in two tables."""
    keys = ["disease", "year", "unit"]
    ind = pl.read_parquet(out / "cases" / "indicators.parquet").filter(
        (pl.col("level") == "territory") & (pl.col("subtype") == "all")
    ).select(*keys, "cases")
    use = pl.read_parquet(out / "strata" / "care_use.parquet").filter(
        (pl.col("level") == "territory") & (pl.col("stratum") == "all")
    ).select(*keys, "people")
    return ind.join(use, on=keys, how="full", coalesce=True).sort(keys)


def test_new_territories_without_new_strata_are_refused_then_rebuilt(tiny_run, tmp_path):
    # a store of its own: the tiny run's store shows the old territories, and disclosure control
    # (rightly) refuses a second release that moves a zone under them
    text = CONFIG.replace("[territories]\n", PIN) + '[store]\nurl = "sqlite:///pinned.sqlite"\n'
    config = copy_run(tiny_run, tmp_path / "w", text)
    out = tmp_path / "w" / "run"
    before = pl.read_parquet(out / "territories" / "zone_territory.parquet")
    zone = dict(before.select("zone_code", "territory_id").iter_rows())
    assert zone["01013"] != zone["01014"]
    assert (shared_counts(out)["cases"] == shared_counts(out)["people"]).all()
    store = Store(f"sqlite:///{tmp_path / 'w' / 'pinned.sqlite'}")

    with pytest.raises(StageError) as info:
        run(config, steps=("territories", "cases", "store"))
    message = str(info.value)
    assert "strata was built on territories of an earlier build" in message
    assert "strata was built on cases of an earlier build" in message
    assert "evaluation was built on" in message  # tiny's configuration has [evaluation]
    assert f"respop run {config} --steps strata,evaluation,store" in message
    # what would have been published: the shared counts of the moved zone's territories differ by its cases
    after = pl.read_parquet(out / "territories" / "zone_territory.parquet")
    zone = dict(after.select("zone_code", "territory_id").iter_rows())
    assert zone["01013"] == zone["01014"]
    counts = shared_counts(out)
    moved = pl.read_parquet(out / "cases" / "indicators.parquet").filter(
        (pl.col("level") == "zone") & (pl.col("unit") == "01013") & (pl.col("subtype") == "all")
    ).select("disease", "year", pl.col("cases").alias("moved"))
    gained = counts.filter(pl.col("unit") == str(zone["01014"])).join(moved, on=["disease", "year"])
    assert gained.height and (gained["cases"] - gained["people"] == gained["moved"]).all()
    assert gained["moved"].sum() > 0
    try:
        assert store.runs() == []  # nothing published, not even a failed run

        # the command of the message publishes, with the shared counts equal again
        result = run(config, steps=("strata", "evaluation", "store"))
        assert [(r["run_id"], r["status"]) for r in store.runs()] == [(result.run_id, "succeeded")]
        # the steps not run this time are marked reused, with when their outputs were written
        timings = store.run(result.run_id)["timings"]
        assert set(timings["reused"]) == {"input", "territories", "cases"} and all(timings["reused"].values())
        assert set(timings["clock"]) == {"strata", "evaluation", "store"} and "cases" not in timings and timings["strata"] > 0
    finally:
        store.close()
    counts = shared_counts(out)
    assert (counts["cases"] == counts["people"]).all()


def test_the_cli_prints_the_refusal_without_traceback(tiny_run, tmp_path):
    config = copy_run(tiny_run, tmp_path / "w", CONFIG.replace("[territories]\n", PIN))
    result = respop("territories", "build", str(config))
    assert result.returncode == 0, result.stderr
    result = respop("store", "publish", str(config))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "cases was built on territories of an earlier build" in result.stderr
    assert "--steps cases,strata,evaluation,store" in result.stderr


STUCK_RUN = """
import sys, time
import respop.strata.run as strata_run
from respop.stages import stage_folder


def stuck(config, *args, **kwargs):
    with stage_folder(config, "strata", {}) as tmp:
        (tmp / "person_strata.parquet").write_text("patient-level rows")
        print("writing strata", flush=True)
        time.sleep(300)


strata_run.run_strata = stuck
from respop.pipeline import run

run(sys.argv[1], steps=("input", "territories", "cases", "strata"))
"""


def test_a_killed_run_leaves_patient_level_folders_that_the_next_run_removes(tiny_run, tmp_path):
    text = CONFIG.replace("[input]\n", '[input]\nworkspace_dir = "ws"\n')
    config = copy_run(tiny_run, tmp_path / "w", text)
    ws, out = tmp_path / "w" / "ws", tmp_path / "w" / "run"
    child = subprocess.Popen([sys.executable, "-c", STUCK_RUN, str(config)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, cwd=Path(__file__).resolve().parents[2])
    try:
        line = child.stdout.readline()
        assert line.strip() == "writing strata", child.stderr.read()
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
        child.stdout.close()
        child.stderr.close()
    left = sorted(ws.iterdir()) + sorted(p for p in out.iterdir() if p.name.startswith(".strata.tmp-"))
    assert len(left) == 2 and left[0].name.startswith(WORKSPACE_PREFIX)
    staged = [p for p in left[0].rglob("*.parquet")]
    assert staged, "the killed run's workspace holds its staged PMSI"
    assert (left[1] / "person_strata.parquet").is_file()

    with run_workspace(ws) as live:  # a run of this process, still going: kept
        (live / "stays.parquet").write_text("in use")
        result = respop("run", str(config), "--steps", "input")
        assert result.returncode == 0, result.stderr
        assert "removed 2 temporary folder(s) left by interrupted runs" in result.stderr
        for path in left:
            assert path.name in result.stderr.replace("\n", "")
            assert not path.exists()
        assert (live / "stays.parquet").read_text() == "in use"
    assert sorted(ws.iterdir()) == []
    assert not [p for p in out.iterdir() if p.name.startswith(".") and p.name != ".respop-output"]
    assert (out / "strata" / "manifest.json").is_file()  # the previous strata stayed as they were


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.sqlite'}"
    return request.getfixturevalue("fresh_postgres_url")


@pytest.fixture(scope="module")
def publication(tiny_run):
    return collect(tiny_run.config, tiny_run.config_path)


def test_a_killed_store_write_is_marked_interrupted_by_the_next_one(store_url, tiny_run, publication):
    store = Store(store_url)
    try:
        first = store.write(publication)
        code = (
            "import sys; from pathlib import Path; from respop.config import load_config; "
            "from respop.store.db import Store; from respop.store.publish import collect; "
            "c = load_config(sys.argv[1]); Store(sys.argv[2]).write(collect(c, Path(sys.argv[1])))"
        )
        child = subprocess.Popen([sys.executable, "-c", code, str(tiny_run.config_path), store_url],
                                 env={**os.environ, PAUSE_ENV: "120"}, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                if any(r["status"] == "running" for r in store.runs()):
                    break
                assert child.poll() is None, child.stderr.read().decode()
                time.sleep(0.2)
            else:
                pytest.fail("the child never started its write")
            killed = max(r["run_id"] for r in store.runs())
            assert store.run(killed)["timings"]["process"]["pid"] == child.pid
            child.send_signal(signal.SIGKILL)
            child.wait(timeout=60)
        finally:
            if child.poll() is None:
                child.kill()
            child.stdout.close()
            child.stderr.close()
        assert store.run(killed)["status"] == "running"

        # runs left running that must stay so: this live process's, another host's, one without record
        row = {k: v for k, v in store.run(killed).items() if k != "run_id"}
        others = {}
        for label, process in {"live": process_identity(),
                               "elsewhere": {"host": "another-host.example", "pid": child.pid, "start": "0"},
                               "unrecorded": None}.items():
            timings = {k: v for k, v in row["timings"].items() if k != "process"}
            if process is not None:
                timings["process"] = process
            with store.engine.begin() as connection:
                others[label] = connection.execute(
                    insert(schema.runs).values(**{**row, "timings": timings}).returning(schema.runs.c.run_id)
                ).scalar_one()

        second = store.write(publication)
        assert store.run(second)["status"] == "succeeded"
        assert "process" not in store.run(second)["timings"]
        interrupted = store.run(killed)
        assert interrupted["status"] == "interrupted" and interrupted["finished_at"] is not None
        assert f"process {child.pid}" in interrupted["error"] and "interrupted" in interrupted["error"]
        assert {label: store.run(run_id)["status"] for label, run_id in others.items()} == {
            "live": "running", "elsewhere": "running", "unrecorded": "running"
        }
        assert store.latest_run("tiny") == second and first < killed < second
        for table in schema.RESULT_TABLES:
            assert store.read(table.name, killed).is_empty(), table.name
    finally:
        store.close()
