"""Runs that belong together (respop.stages), safe output folders (respop.config, respop.fsutil)
and what killed processes leave (respop.fsutil): unit tests on small folders, no pipeline."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from respop import stages
from respop.config import load_config
from respop.errors import ConfigError
from respop.fsutil import (
    OUTPUT_MARKER,
    WORKSPACE_PREFIX,
    atomic_folder,
    host_tag,
    leftovers,
    owner_token,
    process_alive,
    run_workspace,
)
from respop.stages import StageError, check_chain, stage_folder, stage_inputs

CONFIG = """
name = "t"
[input]
pmsi_dir = "data/pmsi"
reference_dir = "data/reference"
[territories]
min_population = 1000
{territories}
[output]
dir = "run"
"""


@pytest.fixture
def world(tmp_path) -> Path:
    """A configuration over two small 'PMSI' and 'reference' files (their content is not read here)."""
    (tmp_path / "data" / "pmsi").mkdir(parents=True)
    (tmp_path / "data" / "reference").mkdir()
    (tmp_path / "data" / "pmsi" / "T_MCO23B.csv").write_text("ETA_NUM;RSA_NUM\n1;1\n")
    (tmp_path / "data" / "reference" / "zones.parquet").write_bytes(b"zones")
    write_config(tmp_path)
    return tmp_path


def write_config(base: Path, territories: str = "") -> Path:
    path = base / "t.toml"
    path.write_text(CONFIG.format(territories=territories))
    return path


def build(base: Path, stage: str, content: str = "v1", models: bool = True) -> dict:
    """Write a step's folder as the step would (its inputs read first, then its outputs)."""
    config = load_config(base / "t.toml")
    inputs = stage_inputs(config, stage, models=models)
    with stage_folder(config, stage, inputs) as tmp:
        (tmp / f"{stage}.parquet").write_text(f"{stage} {content}")
        (tmp / "summary.json").write_text(json.dumps({"written": time.time_ns()}))
        if stage == "strata":
            (tmp / "survival").mkdir()
            (tmp / "survival" / "km.parquet").write_text("km")
    return json.loads((config.output.dir / stage / stages.MANIFEST).read_text())


def build_all(base: Path) -> None:
    for stage in stages.active_stages(load_config(base / "t.toml")):
        build(base, stage)


def refusal(base: Path) -> str:
    with pytest.raises(StageError) as info:
        check_chain(load_config(base / "t.toml"), "t.toml")
    return str(info.value)


def test_a_full_build_chains_and_its_manifests_record_what_each_step_read(world):
    build_all(world)
    check_chain(load_config(world / "t.toml"), "t.toml")
    out = world / "run"
    territories = json.loads((out / "territories" / "manifest.json").read_text())
    cases = json.loads((out / "cases" / "manifest.json").read_text())
    strata = json.loads((out / "strata" / "manifest.json").read_text())
    assert cases["inputs"]["territories"] == territories["outputs"]
    assert strata["inputs"]["cases"] == cases["outputs"] and strata["inputs"]["territories"] == territories["outputs"]
    assert strata["inputs"]["models"] is True
    assert set(strata["files"]) == {"strata.parquet", "summary.json", "survival/km.parquet"}
    assert cases["inputs"]["input"] == territories["inputs"]["input"] == strata["inputs"]["input"]
    assert (out / OUTPUT_MARKER).is_file()


def test_the_same_outputs_give_the_same_fingerprint_whatever_the_summary(world):
    first = build(world, "territories")
    again = build(world, "territories")  # another summary.json (time of writing), same outputs
    assert first["outputs"] == again["outputs"]
    assert first["files"]["summary.json"] != again["files"]["summary.json"]
    other = build(world, "territories", "v2")
    assert other["outputs"] != first["outputs"]


def test_new_territories_and_cases_without_strata_are_refused_with_the_command(world):
    """The finding: `--steps territories,cases,store` left strata (care use) on the old territories."""
    build_all(world)
    build(world, "territories", "pinned")
    build(world, "cases", "on pinned territories")
    message = refusal(world)
    assert "strata was built on territories of an earlier build" in message
    assert "strata was built on cases of an earlier build" in message
    assert "respop run t.toml --steps strata,store" in message
    assert "cases was built" not in message and "territories was built" not in message
    build(world, "strata", "on pinned territories")
    check_chain(load_config(world / "t.toml"), "t.toml")


def test_new_territories_alone_make_cases_and_strata_stale(world):
    build_all(world)
    build(world, "territories", "pinned")
    message = refusal(world)
    assert "cases was built on territories of an earlier build" in message
    assert "--steps cases,strata,store" in message


def test_changed_settings_make_the_step_and_those_after_it_stale(world):
    build_all(world)
    write_config(world, 'pins = { "01013" = "01014" }')
    message = refusal(world)
    assert "territories was built with other [territories] settings" in message
    assert "--steps territories,cases,strata,store" in message
    assert "input was built" not in message


def test_changed_pmsi_files_make_every_step_stale(world):
    build_all(world)
    pmsi = world / "data" / "pmsi" / "T_MCO23B.csv"
    os.utime(pmsi, ns=(pmsi.stat().st_atime_ns, pmsi.stat().st_mtime_ns + 1_000_000_000))
    message = refusal(world)
    for stage in stages.active_stages(load_config(world / "t.toml")):
        assert f"{stage} was built on other PMSI files" in message
    assert "run `respop run t.toml`" in message


def test_a_step_without_manifest_is_refused(world):
    build_all(world)
    (world / "run" / "cases" / "manifest.json").unlink()
    message = refusal(world)
    assert "cases has no manifest" in message
    assert "--steps cases,strata,store" in message


def test_strata_on_removed_cases_names_both_steps(world):
    build_all(world)
    import shutil

    shutil.rmtree(world / "run" / "cases")
    message = refusal(world)
    assert "strata was built on cases that are no longer there" in message
    assert "--steps cases,strata,store" in message  # strata cannot run without the cases


def test_strata_without_the_models_are_not_published(world):
    build_all(world)
    build(world, "strata", models=False)
    assert "without survival and prediction" in refusal(world)


def test_changed_or_foreign_files_are_refused_and_never_replaced(world):
    build_all(world)
    (world / "run" / "cases" / "cases.parquet").write_text("edited by hand, longer")
    assert "cases.parquet was changed since respop wrote it" in refusal(world)
    build(world, "cases")
    notes = world / "run" / "territories" / "notes.txt"
    notes.write_text("mine")
    assert "holds files respop did not write (notes.txt)" in refusal(world)
    with pytest.raises(StageError, match="holds files respop did not write"):
        build(world, "territories")
    assert notes.read_text() == "mine"


def test_a_failed_step_leaves_its_previous_folder_and_no_temporary(world):
    build_all(world)
    config = load_config(world / "t.toml")
    before = (world / "run" / "cases" / "manifest.json").read_text()
    with pytest.raises(RuntimeError):
        with stage_folder(config, "cases", stage_inputs(config, "cases")) as tmp:
            (tmp / "cases.parquet").write_text("half")
            raise RuntimeError("killed step (simulated)")
    assert (world / "run" / "cases" / "manifest.json").read_text() == before
    assert sorted(p.name for p in (world / "run").iterdir()) == [OUTPUT_MARKER, "cases", "input", "strata", "territories"]
    check_chain(config, "t.toml")


# -- output folders ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "piece"),
    [
        ('name = "t"\n[output]\ndir = "/"\n', "root of the file system"),
        ('name = "t"\n[output]\ndir = "../../../../../../../../../../.."\n', "root of the file system"),
        ('name = "../escape"\n', "key 'name'"),
        ('name = "a/b"\n', "key 'name'"),
        ('name = "a\\\\b"\n', "key 'name'"),
        ('name = ".."\n', "key 'name'"),
    ],
)
def test_dangerous_output_folders_and_names_are_refused(tmp_path, text, piece):
    path = tmp_path / "t.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match="output|name") as info:
        load_config(path)
    assert piece in str(info.value) and str(path) in str(info.value)


def test_the_home_folder_is_refused(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    path = tmp_path / "t.toml"
    path.write_text(f'name = "t"\n[output]\ndir = "{home}"\n')
    with pytest.raises(ConfigError, match="is your home folder"):
        load_config(path)


def test_an_existing_folder_respop_did_not_create_is_refused(tmp_path):
    path = tmp_path / "t.toml"
    path.write_text('name = "t"\n[output]\ndir = "."\n')  # the configuration's own folder
    with pytest.raises(ConfigError, match=r"key 'output.dir'.*not empty \(t.toml\).*not created by respop"):
        load_config(path)
    # empty, marked, or holding only what respop writes (before the marker): accepted
    path.write_text('name = "t"\n[output]\ndir = "run"\n')
    (tmp_path / "run").mkdir()
    load_config(path)
    (tmp_path / "run" / "cases").mkdir()
    (tmp_path / "run" / "timings.json").write_text("{}")
    load_config(path)
    (tmp_path / "run" / "photos").mkdir()
    with pytest.raises(ConfigError, match=r"not empty \(photos\)"):
        load_config(path)
    (tmp_path / "run" / OUTPUT_MARKER).write_text("")
    load_config(path)


def test_a_step_refuses_an_output_folder_given_in_code(world):
    """A Config built in code skips load_config's check: the step checks again before writing."""
    config = load_config(world / "t.toml")
    foreign = world / "data"
    config = config.model_copy(update={"output": config.output.model_copy(update={"dir": foreign})})
    with pytest.raises(StageError, match="not created by respop"):
        with stage_folder(config, "input", {}) as tmp:
            (tmp / "report.json").write_text("{}")
    assert sorted(p.name for p in foreign.iterdir()) == ["pmsi", "reference"]


def test_atomic_folder_replaces_a_link_not_what_it_points_to(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep.txt").write_text("keep")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "cases").symlink_to(elsewhere)
    with atomic_folder(tmp_path / "out" / "cases") as tmp:
        (tmp / "cases.parquet").write_text("new")
    assert (elsewhere / "keep.txt").read_text() == "keep"
    assert not (tmp_path / "out" / "cases").is_symlink()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["cases"]


# -- what killed processes leave ------------------------------------------------------------------

CHILD = """
import sys, time
from pathlib import Path
from respop.fsutil import atomic_folder, run_workspace
from respop.pmsi.files import Workspace
base = Path(sys.argv[1])
workspace = Workspace(base / "ws")  # the reader's own (respop pmsi check, read_pmsi)
with run_workspace(base / "ws") as ws, atomic_folder(base / "out" / "cases") as tmp:
    (ws / "stays.parquet").write_text("patient-level")
    (workspace.path() / "typed_T_MCO23B.parquet").write_text("patient-level")
    (tmp / "cases.parquet").write_text("patient-level")
    print("ready", flush=True)
    time.sleep(120)
"""


def test_leftovers_of_a_killed_process_are_found_and_a_live_ones_are_not(tmp_path):
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "ready"
        folders = [tmp_path / "ws", tmp_path / "out"]
        alive = sorted(p.name for f in folders for p in f.iterdir())
        assert len(alive) == 3 and alive[0].startswith(".cases.tmp-")
        assert all(name.startswith(WORKSPACE_PREFIX) for name in alive[1:])
        assert leftovers(folders) == []  # the process still runs
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
        child.stdout.close()
    found = leftovers([tmp_path / "ws", tmp_path / "out"])
    assert sorted(p.name for p in found) == alive
    with run_workspace(tmp_path / "ws") as mine:  # this process's: never listed
        assert mine not in leftovers([tmp_path / "ws"]) and len(leftovers([tmp_path / "ws"])) == 2
    assert not mine.exists()


def test_another_hosts_and_a_reused_pids_temporaries(tmp_path):
    pid = os.getpid()
    assert process_alive(pid, host_tag(), owner_token().rsplit("-", 1)[1]) is True
    assert process_alive(pid, "0badc0de" if host_tag() != "0badc0de" else "0badc0df") is None
    if Path("/proc/self/stat").is_file():
        assert process_alive(pid, host_tag(), "deadbeef") is False  # same pid, another process
    other = tmp_path / f".cases.tmp-{pid}-{'0badc0de' if host_tag() != '0badc0de' else '0badc0df'}-0-abc"
    other.mkdir()
    assert leftovers([tmp_path]) == []


def test_an_evaluation_folder_belongs_to_the_build_only_with_an_evaluation_section(world):
    build_all(world)
    assert "evaluation" not in stages.active_stages(load_config(world / "t.toml"))
    build(world, "evaluation")  # left by an earlier build: ignored, the chain holds
    check_chain(load_config(world / "t.toml"))
    text = (world / "t.toml").read_text()
    (world / "t.toml").write_text(text + '\n[evaluation]\npilots = { "1" = 2023 }\nmin_pre_years = 2\n')
    message = refusal(world)
    assert "evaluation was built with other [evaluation]" in message
    assert "--steps evaluation,store" in message
    build(world, "evaluation")
    check_chain(load_config(world / "t.toml"))
    build(world, "strata", "v2")
    assert "evaluation was built on strata of an earlier build" in refusal(world)
