"""The staged input (respop.pmsi.stage, docs/pmsi.md "Staged input") on one year of ``tiny``:
a run from the staged input gives the outputs of a run that validates the raw files itself; a
second run reuses it without validating; a changed file, setting or respop version rebuilds it,
saying why; a staging that fails leaves the previous one; the folder is private; ``respop pmsi
stage`` prints counts only."""

from __future__ import annotations

import hashlib
import json
import stat
from pathlib import Path

import polars as pl
import pytest

from respop.config import load_config
from respop.pipeline import run_config
from respop.pmsi import stage
from respop.pmsi.reader import PmsiData

CONFIG = """
name = "tiny1"
[input]
pmsi_dir = "{data}/pmsi"
reference_dir = "{data}/reference"
{input}
[quality]
zones_file = "{data}/reference/zones.parquet"
{quality}
[territories]
min_population = 1000
[output]
dir = "{out}"
"""

STEPS = ("input", "territories", "cases", "strata")


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    """One year of tiny (seed 3), generated once for the module."""
    from respop.synth import generate, load_profile

    base = tmp_path_factory.mktemp("stage_world")
    generate(load_profile("tiny"), seed=3, out=base / "data", years=[2023])
    return base / "data"


def configure(base: Path, data: Path, out: str = "run", input: str = "", quality: str = "") -> Path:
    path = base / f"{out}.toml"
    path.write_text(CONFIG.format(data=data, out=out, input=input, quality=quality), encoding="utf-8")
    return path


def notices(config) -> tuple[stage.StagedInput, list[str]]:
    said: list[str] = []
    data = stage.staged_input(config, notice=said.append)
    data.close()
    return data, said


def digests(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def step_outputs(out: Path) -> dict[str, str]:
    """SHA-256 of every output of the steps (summaries and manifests, which hold times, apart;
    the manifests' outputs fingerprints compared instead)."""
    found = {}
    for step in STEPS:
        for name, digest in digests(out / step).items():
            if name not in ("summary.json", "manifest.json"):
                found[f"{step}/{name}"] = digest
        found[f"{step}/outputs"] = json.loads((out / step / "manifest.json").read_text())["outputs"]
    return found


def validated(config, progress=None, notice=None, state=None):
    """The run's PMSI as it was before the staged input: read, staged and made canonical in the
    run's private workspace (a stand-in for :func:`respop.pmsi.stage.staged_input`)."""
    from respop.pmsi import read_pmsi

    data = read_pmsi(None, config.input, config.quality).staged().canonical()
    data.location, data.seconds, data.reused, data.reasons, data.fingerprint = None, {}, False, [], ""
    return data


def test_a_run_from_the_staged_input_gives_the_outputs_of_a_run_that_validates(world, tmp_path, monkeypatch, capsys):
    with monkeypatch.context() as patch:
        patch.setattr(stage, "staged_input", validated)
        run_config(load_config(configure(tmp_path, world, "plain")), steps=STEPS, models=False)
    assert not (tmp_path / "plain" / stage.DEFAULT_NAME).exists()

    config = load_config(configure(tmp_path, world, "staged"))
    staged = stage.staged_input(config)  # as `respop pmsi stage` does
    staged.close()
    assert not staged.reused and staged.reasons == ["none yet"]
    capsys.readouterr()
    run_config(config, steps=STEPS, models=False)
    assert "staged input reused" in capsys.readouterr().err
    assert step_outputs(tmp_path / "staged") == step_outputs(tmp_path / "plain")
    # what the staged folder holds is what `respop pmsi check --out` writes
    folder = tmp_path / "staged" / stage.DEFAULT_NAME
    stored = json.loads((folder / "report.json").read_text())
    published = json.loads((tmp_path / "staged" / "input" / "report.json").read_text())
    assert published["tables"][: len(stored["tables"])] == stored["tables"]  # then the deaths referential's, if any
    assert {k: v for k, v in published.items() if k not in ("tables", "balanced", "deaths")} == {
        k: v for k, v in stored.items() if k not in ("tables", "balanced")}
    assert sorted(p.name for p in (folder / "staged").iterdir()) == sorted(f"{t}.parquet" for t in stage.TABLES)
    assert {p.stem for p in (folder / "quarantine").iterdir()} == {t["label"] for t in json.loads((folder / "report.json").read_text())["tables"]}


def test_a_second_run_reuses_the_staged_input_without_validating(world, tmp_path, monkeypatch, capsys):
    config = load_config(configure(tmp_path, world))
    run_config(config, steps=("input",), models=False)
    timings = json.loads((tmp_path / "run" / "timings.json").read_text())
    assert timings["details"]["staged_input"]["reused"] is False
    assert "staged input built" in capsys.readouterr().err
    report = (tmp_path / "run" / "input" / "report.json").read_bytes()

    def no_validation(*args, **kwargs):
        raise AssertionError("the raw PMSI was validated again")

    monkeypatch.setattr("respop.pmsi.reader.read_pmsi", no_validation)
    monkeypatch.setattr("respop.pmsi.deaths.read_deaths", no_validation)  # the referential is staged too
    monkeypatch.setattr("respop.pmsi.deaths._CACHE", {})
    monkeypatch.setattr(PmsiData, "staged", no_validation)
    monkeypatch.setattr("respop.pmsi.stage.build", no_validation)
    run_config(config, steps=("input", "territories", "cases"), models=False)
    timings = json.loads((tmp_path / "run" / "timings.json").read_text())
    assert timings["details"]["staged_input"]["reused"] is True
    assert timings["details"]["staged_input"]["reasons"] == []
    assert "reuse" in timings["details"]["input"]
    assert "staged input reused (fingerprint " in capsys.readouterr().err
    assert (tmp_path / "run" / "input" / "report.json").read_bytes() == report
    assert json.loads(report)["deaths"]["known"]  # tiny has IR_BEN_R: read from the staged input
    assert (tmp_path / "run" / stage.DEFAULT_NAME / "deaths.parquet").is_file()


def test_the_stored_report_is_the_input_report(world, tmp_path):
    config = load_config(configure(tmp_path, world))
    data = stage.staged_input(config)
    try:
        stored = json.loads((data.location / "report.json").read_text())
        assert data.report().to_dict() == stored
        assert data.years == [2023]
        assert data.stays.collect().height == stored["stays_kept"]
        assert data.sessions.collect().height == stored["sessions_kept"]
        assert data.diagnoses.collect().height == sum(stored["diagnoses"].values())
        assert data.excluded_stays.collect().height == sum(f["excluded"] for f in stored["filters"])
        assert set(data.quarantine()) == {t["label"] for t in stored["tables"]}
        assert set(data.quarantine("C")) == {"T_MCO23C"}
        # the steps read links in the run's workspace, not the staged folder itself
        assert all(data.workspace.path() in p.parents for p in data.canonical_paths.values())
    finally:
        data.close()


def test_a_changed_file_setting_or_version_rebuilds_it_saying_why(world, tmp_path, monkeypatch):
    path = configure(tmp_path, world)
    first, said = notices(load_config(path))
    assert said[0].startswith("staged input built (fingerprint ")
    again, said = notices(load_config(path))
    assert again.reused and said[0].startswith(f"staged input reused (fingerprint {first.fingerprint[:12]})")

    # a file's modification time
    b = world / "pmsi" / "T_MCO23B.parquet"
    st = b.stat()
    try:
        import os

        os.utime(b, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
        touched, said = notices(load_config(path))
        assert not touched.reused and said[0].startswith("staged input rebuilt: T_MCO23B.parquet changed")
    finally:
        os.utime(b, ns=(st.st_atime_ns, st.st_mtime_ns))
    back, said = notices(load_config(path))
    assert said[0].startswith("staged input rebuilt: T_MCO23B.parquet changed")
    assert back.fingerprint == first.fingerprint

    # a [quality] setting
    path = configure(tmp_path, world, quality="duplicate_stays = false")
    changed, said = notices(load_config(path))
    assert not changed.reused and "[quality] duplicate_stays changed" in said[0]
    assert changed.fingerprint != first.fingerprint
    kept = json.loads((changed.location / "report.json").read_text())
    assert not next(f for f in kept["filters"] if f["name"] == "duplicate_stays")["enabled"]

    # respop's version
    monkeypatch.setattr(stage, "__version__", "999.0")
    newer, said = notices(load_config(path))
    assert not newer.reused and "→ 999.0" in said[0] and said[0].startswith("staged input rebuilt: respop ")

    # a setting the staging does not read keeps it
    path = configure(tmp_path, world, input='deaths = "ignore"', quality="duplicate_stays = false")
    same, said = notices(load_config(path))
    assert same.reused


def test_a_failed_staging_leaves_the_previous_staged_input(world, tmp_path, monkeypatch):
    config = load_config(configure(tmp_path, world))
    data, _ = notices(config)
    folder = data.location
    before = digests(folder)

    def killed(self, *args, **kwargs):
        raise KeyboardInterrupt  # half-way: the staged tables are written, the report is not

    monkeypatch.setattr(PmsiData, "report", killed)
    touched = config.model_copy(update={"quality": config.quality.model_copy(update={"duplicate_stays": False})})
    with pytest.raises(KeyboardInterrupt):
        stage.staged_input(touched)
    assert digests(folder) == before
    assert [p.name for p in folder.parent.iterdir() if p.name.startswith(".")] in ([], [".respop-output"])
    monkeypatch.undo()
    again, said = notices(config)
    assert again.reused


def test_the_folder_is_private_and_configurable(world, tmp_path):
    config = load_config(configure(tmp_path, world, input='staged_dir = "elsewhere/staged"'))
    assert config.input.staged_dir == tmp_path / "elsewhere" / "staged"
    data, _ = notices(config)
    assert data.location == tmp_path / "elsewhere" / "staged"
    assert stat.S_IMODE(data.location.stat().st_mode) == 0o700
    # not an input: a staged folder inside the PMSI folder does not change its fingerprint
    inside = config.model_copy(update={"input": config.input.model_copy(update={"staged_dir": world / "pmsi" / "staged"})})
    assert stage.staging_state(inside)["files"] == stage.staging_state(config)["files"]


def test_pmsi_stage_prints_counts_only(world, tmp_path):
    from typer.testing import CliRunner

    from respop import cli

    path = configure(tmp_path, world)
    first = CliRunner().invoke(cli.app, ["pmsi", "stage", str(path)], env={"COLUMNS": "200"})
    assert first.exit_code == 0, first.output
    second = CliRunner().invoke(cli.app, ["pmsi", "stage", str(path)], env={"COLUMNS": "200"})
    assert second.exit_code == 0, second.output
    assert "staged input built" in first.output and "Up to date: staged input reused" in second.output
    report = json.loads((tmp_path / "run" / stage.DEFAULT_NAME / "report.json").read_text())
    assert f"Stays loaded: {report['stays_loaded']:,}; kept: {report['stays_kept']:,}" in second.output
    keys = set(pl.read_parquet(world / "pmsi" / "T_MCO23C.parquet", columns=["NIR_ANO_17"])["NIR_ANO_17"].drop_nulls())
    stays = pl.read_parquet(world / "pmsi" / "T_MCO23B.parquet", columns=["RSA_NUM"])["RSA_NUM"].drop_nulls()
    words = set((first.output + second.output).replace(",", " ").replace(";", " ").split())
    assert keys and not keys & words
    assert not {s for s in stays if len(str(s)) > 4} & words


def test_hospital_mode_restricts_the_staged_input(world, tmp_path, monkeypatch, capsys):
    """[hospital] is not part of the staged input: a hospital configuration reads the population's
    staged folder and keeps its FINESS's stays after (respop.pmsi.scope), as it did from the raw files."""
    population = load_config(configure(tmp_path, world, "population"))
    notices(population)
    finess = pl.read_parquet(world / "reference" / "hospitals.parquet").filter(pl.col("kind") == "CHU")["hospital_id"][0]
    hospital = f'staged_dir = "{tmp_path / "population" / stage.DEFAULT_NAME}"\n'
    steps = ("input", "cases", "strata")
    for out, patched in (("plain", True), ("staged", False)):
        path = configure(tmp_path, world, out, input=hospital)
        path.write_text(path.read_text() + f'[hospital]\nfiness = "{finess}"\n', encoding="utf-8")
        with monkeypatch.context() as patch:
            if patched:
                patch.setattr(stage, "staged_input", validated)
            capsys.readouterr()
            run_config(load_config(path), steps=steps, models=False)
    assert "staged input reused" in capsys.readouterr().err
    report = json.loads((tmp_path / "staged" / "input" / "report.json").read_text())
    assert report["hospital"]["finess"] == [finess] and report["hospital"]["stays_other_finess"] > 0
    for step in steps:
        plain = {k: v for k, v in digests(tmp_path / "plain" / step).items() if k not in ("summary.json", "manifest.json")}
        assert plain and plain == {
            k: v for k, v in digests(tmp_path / "staged" / step).items() if k not in ("summary.json", "manifest.json")}


def test_the_store_records_whether_the_run_reused_the_staged_input(world, tmp_path):
    from respop.pipeline import run
    from respop.store.db import Store

    path = configure(tmp_path, world)
    config = load_config(path)
    notices(config)  # staged first (respop pmsi stage)
    result = run(path)  # one year: the parts the period does not allow are left out (respop.periods)
    store = Store(config.store.url)
    try:
        recorded = store.run(result.run_id)["timings"]["staged_input"]
    finally:
        store.close()
    assert recorded["reused"] is True and recorded["reasons"] == []
    assert recorded["fingerprint"] == json.loads((tmp_path / "run" / stage.DEFAULT_NAME / "manifest.json").read_text())["fingerprint"]


def test_steps_run_on_their_own_read_the_staged_input(world, tmp_path, monkeypatch, capsys):
    """``respop territories build``, ``cases run`` and ``strata run`` read the staged input as
    ``respop run`` does: after a run, they validate nothing and give the same outputs; with no
    staged input, ``cases run`` stages it, and ``territories build`` reads the raw files of its
    flow years without staging the rest."""
    from respop.case_finding.run import run_cases
    from respop.pipeline import build_territories
    from respop.strata.run import run_strata

    config = load_config(configure(tmp_path, world))
    run_config(config, steps=STEPS, models=False)
    before = step_outputs(tmp_path / "run")
    capsys.readouterr()

    def no_validation(*args, **kwargs):
        raise AssertionError("the raw PMSI was validated again")

    with monkeypatch.context() as patch:
        patch.setattr("respop.pmsi.reader.read_pmsi", no_validation)
        patch.setattr("respop.pmsi.read_pmsi", no_validation)
        patch.setattr("respop.pmsi.deaths.read_deaths", no_validation)
        patch.setattr("respop.pmsi.deaths._CACHE", {})
        patch.setattr(PmsiData, "staged", no_validation)
        patch.setattr("respop.pmsi.stage.build", no_validation)
        build_territories(config)
        run_cases(config)
        run_strata(config, models=False)
    assert capsys.readouterr().err.count("staged input reused (fingerprint ") == 3  # territories, cases, strata
    assert step_outputs(tmp_path / "run") == before

    fresh = load_config(configure(tmp_path, world, "fresh"))
    build_territories(fresh)
    assert not (tmp_path / "fresh" / stage.DEFAULT_NAME).exists()
    run_cases(fresh)
    assert "staged input built" in capsys.readouterr().err
    assert (tmp_path / "fresh" / stage.DEFAULT_NAME / "manifest.json").is_file()
