"""The same world through its SNDS tables and through its ATIH files (respop.synth.atih, read back by
respop.pmsi.atih): identical canonical stays and diagnoses, identical counts, and identical
results downstream (the whole pipeline, its outputs and the store).

Stays are matched on (source_year, hospital_id, rsa_num): stay_id is built from the row of the stay
in B, which the two layouts need not share. On the generator's worlds they do share it (B is
written in hospital then exit-date order, the ATIH files are read in FINESS order, one per
hospital), and the tests say so: a difference there is a change of order worth knowing about.
The results downstream do not depend on that order: tiny seed 5 with the rows of its four SNDS
tables shuffled (every stay_id changed) gave the same outputs and store tables (checked once, by
hand, for issue 21)."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from respop.pmsi import read_pmsi
from respop.synth import generate, load_profile
from respop.synth.atih import write_folder
from respop.synth.generate import ATIH_FOLDER, MARKER, REFERENTIAL
from tests.store.conftest import CONFIG, TinyRun, tiny_run  # noqa: F401 - the fixture, shared with the store tests

KEY = ["source_year", "hospital_id", "rsa_num"]


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    """tiny (seed 7) generated with ``--format both``, read through each layout."""
    out = tmp_path_factory.mktemp("tiny_both")
    generate(load_profile("tiny"), seed=7, out=out, fmt="both")
    snds = read_pmsi(out / "pmsi").staged()
    atih = read_pmsi(out / ATIH_FOLDER).staged()
    yield out, snds, atih
    snds.close()
    atih.close()


def test_both_formats_write_the_files_of_each_layout(both):
    out, _, _ = both
    names = {p.name for p in (out / ATIH_FOLDER).iterdir()}
    assert f"{REFERENTIAL}.parquet" in names
    files = names - {f"{REFERENTIAL}.parquet"}
    assert files and all(n.endswith((".rsa", ".ano")) and n.split(".")[1] in ("2021", "2022", "2023") for n in files)
    assert {n[:-4] for n in files if n.endswith(".rsa")} == {n[:-4] for n in files if n.endswith(".ano")}
    assert not any(p.name.startswith("T_MCO") for p in (out / ATIH_FOLDER).iterdir())


def test_the_reports_count_the_same(both):
    _, snds, atih = both
    a, b = snds.report(), atih.report()
    assert b.atih_files and all(f.lines_quarantined == 0 and f.lines_read == f.lines_parsed for f in b.atih_files)
    assert not b.superseded
    rsa_lines = sum(f.lines_read for f in b.atih_files if f.kind == "rsa")
    assert rsa_lines == a.stays_loaded
    assert [(t.label, t.rows_read, t.rows_loaded, t.rows_quarantined, t.reasons) for t in a.tables] == [
        (t.label, t.rows_read, t.rows_loaded, t.rows_quarantined, t.reasons) for t in b.tables
    ]
    assert (a.stays_loaded, a.stays_kept, a.sessions_kept) == (b.stays_loaded, b.stays_kept, b.sessions_kept)
    assert [(f.name, f.excluded, f.flagged, f.clinical_only) for f in a.filters] == [
        (f.name, f.excluded, f.flagged, f.clinical_only) for f in b.filters
    ]
    assert a.diagnoses == b.diagnoses
    assert a.balanced and b.balanced


@pytest.mark.parametrize("frame", ["stays", "sessions", "excluded_stays"])
def test_canonical_stays_are_identical(both, frame):
    _, snds, atih = both
    a = getattr(snds, frame).collect().sort(KEY)
    b = getattr(atih, frame).collect().sort(KEY)
    assert a.height > 0
    assert_frame_equal(a.drop("stay_id"), b.drop("stay_id"))
    assert a["stay_id"].equals(b["stay_id"]), "the two layouts no longer give the stays in the same order"


def test_canonical_diagnoses_are_identical(both):
    _, snds, atih = both

    def keyed(data) -> pl.DataFrame:
        keys = data.flagged_stays.select("stay_id", *KEY).collect()
        dx = data.diagnoses.collect().join(keys, on="stay_id", how="left")
        assert dx[KEY[1]].null_count() == 0
        return dx.select(*KEY, "position", "code", "unit_rank", "stay_id").sort(*KEY, "position", "code")

    a, b = keyed(snds), keyed(atih)
    assert a.height > 0 and set(a["position"].cast(pl.String)) >= {"DP", "DAS", "UM_DP"}
    assert_frame_equal(a.drop("stay_id"), b.drop("stay_id"))
    assert a["stay_id"].equals(b["stay_id"])


def test_respop_synth_format_atih_replaces_the_snds_tables(tmp_path):
    from typer.testing import CliRunner

    from respop import cli

    runner = CliRunner()
    out = tmp_path / "w"
    refused = runner.invoke(cli.app, ["synth", "--profile", "tiny", "--format", "atih", "--report", "--out", str(out)])
    assert refused.exit_code != 0 and "--format both" in str(refused.exception) and not out.exists()
    result = runner.invoke(cli.app, ["synth", "--profile", "tiny", "--seed", "3", "--years", "2023", "--format", "atih",
                                     "--out", str(out)])
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in (out / "pmsi").iterdir())
    assert f"{REFERENTIAL}.parquet" in names
    assert not any(n.startswith("T_MCO") for n in names)
    assert all(n.endswith((".rsa", ".ano")) and ".2023.12." in n for n in names if n != f"{REFERENTIAL}.parquet")


# --- downstream: the whole pipeline on both layouts -------------------------------------------

DIFFERENT_BY_NATURE = {
    # the input's path, format and the ATIH files it read; every other figure is compared above
    "input/report.json",
    # when each step ran and how long it took, and the hashes of the inputs and outputs that hold them
    "timings.json", "input/manifest.json", "territories/manifest.json", "cases/manifest.json",
    "cases/summary.json", "strata/manifest.json", "strata/summary.json", "evaluation/manifest.json",
    "evaluation/summary.json",
}
"""Outputs that differ between the two runs by nature (paths, clocks, input hashes)."""

RUN_COLUMNS_BY_NATURE = {"config_path", "config_toml", "config_sha256", "started_at", "finished_at", "timings", "input_report"}
"""Columns of the store's ``runs`` table that differ by nature (the configuration, the clock, the
input report and its paths)."""


@pytest.fixture(scope="module")
def atih_run(tiny_run: TinyRun, tmp_path_factory) -> TinyRun:  # noqa: F811 - the imported fixture
    """The store fixture's world (tiny, seed 5, 2019-2023) written as ATIH files, run with the same
    configuration."""
    from respop.config import load_config
    from respop.pipeline import run

    base = tmp_path_factory.mktemp("tiny_atih_run")
    source = tiny_run.base / "data"
    write_folder(source / "pmsi", base / "data" / "pmsi", seed=5)
    shutil.copy2(source / "pmsi" / f"{REFERENTIAL}.parquet", base / "data" / "pmsi")
    shutil.copytree(source / "reference", base / "data" / "reference")
    shutil.copy2(source / MARKER, base / "data")  # a synthetic world: the model cards say so
    config_path = base / "tiny.toml"
    config_path.write_text(CONFIG, encoding="utf-8")
    result = run(config_path)
    return TinyRun(base=base, config_path=config_path, config=load_config(config_path), run_id=result.run_id)


SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")
"""SQLite's transient files beside a store: present while another test of the session (on the
same worker) holds the shared tiny store open; the store's rows are compared by _same_store."""


STAGED_INPUT = "staged-input"
"""The PMSI validated once (respop.pmsi.stage): an input, not a result; its quarantine is one file
per ATIH file on one side, per SNDS table on the other (its tables are compared above)."""


NOT_RUN_OUTPUTS = (STAGED_INPUT, "dossiers")
"""Folders of ``<output.dir>`` that are not the run's results: the staged input, and the meeting
dossiers ``respop report`` writes there on demand (tests/boards/test_report.py writes one into the
session's shared tiny run, before or after this test depending on the workers' order)."""


def _outputs(folder: Path) -> dict[str, Path]:
    return {
        str(p.relative_to(folder)): p
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != ".respop-output" and not p.name.endswith(SQLITE_SIDE_FILES)
        and p.relative_to(folder).parts[0] not in NOT_RUN_OUTPUTS
    }


def test_downstream_results_are_identical(tiny_run, atih_run):  # noqa: F811
    a_dir, b_dir = tiny_run.config.output.dir, atih_run.config.output.dir
    a, b = _outputs(a_dir), _outputs(b_dir)
    assert set(a) == set(b)
    assert any(name.startswith("cases/") for name in a) and any(name.startswith("strata/") for name in a)
    stores = [name for name in a if name.endswith(".sqlite")]
    assert stores
    compared = 0
    for name, path in a.items():
        if name in DIFFERENT_BY_NATURE or name in stores:
            continue
        if path.suffix == ".parquet":
            assert pl.read_parquet(path).equals(pl.read_parquet(b[name])), name
        else:
            assert path.read_bytes() == b[name].read_bytes(), name
        compared += 1
    assert compared > 20
    for name in stores:
        _same_store(a[name], b[name])


def _same_store(a: Path, b: Path) -> None:
    """Every table of the two SQLite stores holds the same rows (order aside), the runs' columns
    that differ by nature apart."""
    ca, cb = sqlite3.connect(a), sqlite3.connect(b)
    try:
        tables = [t for (t,) in ca.execute("select name from sqlite_master where type = 'table' order by name")]
        assert tables == [t for (t,) in cb.execute("select name from sqlite_master where type = 'table' order by name")]
        for table in tables:
            columns = [r[1] for r in ca.execute(f'pragma table_info("{table}")')]
            if table == "runs":
                columns = [c for c in columns if c not in RUN_COLUMNS_BY_NATURE]
            query = f'select {", ".join(chr(34) + c + chr(34) for c in columns)} from "{table}"'
            rows_a = sorted(map(repr, ca.execute(query).fetchall()))
            rows_b = sorted(map(repr, cb.execute(query).fetchall()))
            assert rows_a == rows_b, table
    finally:
        ca.close()
        cb.close()
