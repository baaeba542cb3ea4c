"""The respop command line, run as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def respop(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    """``respop *args`` in an environment of its own, but for the test session's OpenMP threads (one
    per test process: tests/conftest.py; the gradient boosting of ``strata run`` and ``run``)."""
    threads = {k: os.environ[k] for k in ("OMP_NUM_THREADS",) if k in os.environ}
    return subprocess.run(
        [sys.executable, "-m", "respop", *args], capture_output=True, text=True, cwd=cwd, env={"COLUMNS": "200", **threads}
    )


def test_synth_then_pmsi_check_with_a_configuration(tmp_path):
    data = tmp_path / "data"
    result = respop("synth", "--profile", "tiny", "--seed", "2", "--years", "2022-2023", "--out", str(data), "--report")
    assert result.returncode == 0, result.stderr
    assert "persons" in result.stdout and "Calibration" in result.stdout
    config = tmp_path / "territory.toml"
    config.write_text(f'[input]\npmsi_dir = "data/pmsi"\n[quality]\nzones_file = "data/reference/zones.parquet"\n')
    out = tmp_path / "check"
    result = respop("pmsi", "check", "--config", str(config), "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "T_MCO23B" in result.stdout and "every row is accounted for" in result.stdout
    report = json.loads((out / "report.json").read_text())
    assert report["balanced"] is True and report["stays_kept"] > 0
    assert sorted(p.name for p in (out / "quarantine").iterdir()) == sorted(
        f"T_MCO{yy}{t}.parquet" for yy in ("22", "23") for t in ("B", "C", "D", "UM")
    )


def test_pmsi_check_json_output():
    result = respop("pmsi", "check", "respop/data/snds/synthetic", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert {t["label"]: t["rows_read"] for t in report["tables"]} == {
        "T_MCOaaB": 10, "T_MCOaaC": 10, "T_MCOaaD": 10, "T_MCOaaUM": 10
    }


def test_pmsi_check_removes_the_workspace_a_killed_reader_left(tmp_path):
    """A process reading the PMSI (``read_pmsi``'s own workspace) that dies without cleaning up
    leaves patient-level files; the next ``respop pmsi check`` removes them and says so, and
    leaves nothing of its own."""
    work = tmp_path / "work"
    killed = subprocess.run(
        [sys.executable, "-c", "import os, sys; from pathlib import Path; from respop.pmsi.files import Workspace; "
         "w = Workspace(Path(sys.argv[1])); (w.path() / 'typed_T_MCO23B.parquet').write_text('patient-level'); "
         "os._exit(0)", str(work)],
        capture_output=True, text=True, check=True, cwd=ROOT,
    )
    (left,) = work.iterdir()
    config = tmp_path / "t.toml"
    config.write_text(f'[input]\nworkspace_dir = "{work}"\n')
    result = respop("pmsi", "check", "respop/data/snds/synthetic", "--config", str(config), "--json")
    assert result.returncode == 0, result.stderr + killed.stderr
    assert "removed 1 temporary folder(s)" in result.stderr and left.name in result.stderr.replace("\n", "")
    assert json.loads(result.stdout)["tables"]  # the report on standard output is untouched
    assert list(work.iterdir()) == []


def test_bad_options_and_configuration_are_messages_not_tracebacks(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[input]\nunknown = 1\n")
    for args, message in [
        (("pmsi", "check", "respop/data/snds/synthetic", "--years", "20x9"), "--years"),
        (("pmsi", "check", "respop/data/snds/synthetic", "--encoding", "ebcdic"), "invalid option"),
        (("pmsi", "check", "--config", str(bad)), "unknown key 'input.unknown'"),
        (("pmsi", "check"), "no PMSI folder given"),
    ]:
        result = respop(*args)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert "Traceback" not in result.stdout + result.stderr
        assert message in result.stderr, (args, result.stderr)


def test_version():
    result = respop("version")
    assert result.returncode == 0 and result.stdout.startswith("respop ")


def test_run_engine_options_are_checked_before_any_work(tmp_path):
    config = tmp_path / "territory.toml"
    config.write_text('[input]\npmsi_dir = "nowhere"\n')
    result = respop("run", str(config), "--engine", "flink")
    assert result.returncode == 2 and "--engine must be polars or spark" in result.stderr
    assert "Traceback" not in result.stderr
    result = respop("run", str(config), "--no-models")
    assert result.returncode == 2 and "store step needs the survival and prediction" in result.stderr
    config.write_text('[engine]\nname = "hadoop"\n')
    result = respop("run", str(config))
    assert result.returncode == 2 and "engine.name" in result.stderr


# -- tables that fit an 80-column terminal or a pipe (issue 19) -------------------------------

from tests.store.conftest import tiny_run  # noqa: E402, F401 - the shared tiny run (a fixture)

TABLE_COMMANDS = [
    ("territories", "build"), ("territories", "compare"), ("cases", "run"), ("cases", "validate"),
    ("strata", "validate"), ("store", "runs"), ("pmsi", "check", "--config"),
]
"""The commands that print tables, on a configuration (``strata run`` prints the tables of
``cases run``'s kind and takes a minute: left out)."""


def test_every_table_fits_80_columns_without_an_ellipsis(tiny_run, tmp_path, monkeypatch):
    """At 80 columns (a terminal, or a pipe: Rich then assumes 80) no line is longer than 80 and
    no value is cut ("terri…", "plura…"): wrapped, or one record per line. One language per
    command's output: territories build in French."""
    import shutil

    from typer.testing import CliRunner

    from respop import cli

    shutil.copytree(tiny_run.base, tmp_path / "w", symlinks=True)  # some of the commands write outputs
    config = str(tmp_path / "w" / "tiny.toml")
    monkeypatch.setattr(cli.console, "width", 80)
    runner = CliRunner()
    outputs = {}
    for args in TABLE_COMMANDS:
        result = runner.invoke(cli.app, [*args, config], env={"COLUMNS": "80"})
        assert result.exit_code in (0, 1), (args, result.stdout, result.stderr, result.exception)  # 1: a check failed
        outputs[args] = out = result.stdout
        assert "┃" in out or "\n- " in out, (args, out)  # a table, or its records
        assert "…" not in out, (args, out)
        assert max(len(line) for line in out.splitlines()) <= 80, (args, out)
    for args in [(), *{a[:2] for a in TABLE_COMMANDS}, ("run",), ("report",), ("dashboard",), ("synth",)]:
        result = runner.invoke(cli.app, [*args, "--help"], env={"COLUMNS": "80"})
        assert result.exit_code == 0 and "…" not in result.stdout, (args, result.stdout)
        assert max(len(line) for line in result.stdout.splitlines()) <= 80, (args, result.stdout)
    compare = outputs[("territories", "compare")]
    assert "method: plurality" in compare and "territories: 4" in compare  # whole, one record per line
    build = outputs[("territories", "build")]
    assert "Carte : " in build and "Sorties : " in build and "LI moyen" in build
    assert not any(word in build for word in ("Map:", "Outputs:"))
    assert "Sorties : " in outputs[("cases", "run")] and "Outputs:" not in outputs[("cases", "run")]
