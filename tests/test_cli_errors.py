"""The command line's error policy (respop.cli.main, docs/architecture.md "Error policy"): a
RespopError is one line and status 2; a full disk is one line and leaves the previous results; any
other exception shows its type only, never its message (it may quote data rows), and the private
file holding its traceback, with status 3."""

from __future__ import annotations

import errno
import stat
import sys

import polars as pl
import pytest

from respop import cli
from respop.errors import DiskFullError, InputError
from respop.fsutil import atomic_folder

KEY = "JKQVWXZJKQVWXZJKQ"


def run_main(monkeypatch, capsys, *args: str) -> tuple[int, str]:
    monkeypatch.setattr(sys, "argv", ["respop", *args])
    monkeypatch.setenv("COLUMNS", "300")
    with pytest.raises(SystemExit) as exit_:
        cli.main()
    captured = capsys.readouterr()
    return exit_.value.code, captured.out + captured.err


def failing_read(exc: BaseException):
    def read_pmsi(*_args, **_kwargs):
        raise exc

    return read_pmsi


def test_a_respop_error_is_one_line_with_status_2(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr("respop.pmsi.read_pmsi", failing_read(InputError("malformed CSV: line 3", tmp_path / "T_MCO22B.csv")))
    code, output = run_main(monkeypatch, capsys, "pmsi", "check", str(tmp_path))
    assert code == 2
    assert output.strip() == f"Error: {tmp_path / 'T_MCO22B.csv'}: malformed CSV: line 3"  # one line, the path whole


def test_an_unexpected_error_shows_its_type_and_a_private_traceback_not_its_message(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    error = pl.exceptions.ComputeError(f"could not parse `{KEY};01Mar2022:10:00:00` as dtype i64")
    monkeypatch.setattr("respop.pmsi.read_pmsi", failing_read(error))
    code, output = run_main(monkeypatch, capsys, "pmsi", "check", str(tmp_path))
    assert code == cli.EXIT_UNEXPECTED == 3
    flat = " ".join(output.split())
    assert "Unexpected error (polars.exceptions.ComputeError)" in flat
    assert KEY not in output and "Mar2022" not in output and "Traceback" not in output
    written = sorted(tmp_path.glob("respop-error-*.txt"))
    assert len(written) == 1 and f"the full traceback is in {written[0]} (private" in output
    assert stat.S_IMODE(written[0].stat().st_mode) == 0o600
    text = written[0].read_text()
    assert "Traceback" in text and KEY in text and f"command: respop pmsi check {tmp_path}" in text


def test_the_traceback_goes_to_the_configured_workspace(monkeypatch, capsys, tmp_path):
    secure = tmp_path / "secure"
    config = tmp_path / "territory.toml"
    config.write_text(f'[input]\npmsi_dir = "pmsi"\nworkspace_dir = "{secure}"\n', encoding="utf-8")
    monkeypatch.setattr("respop.pmsi.read_pmsi", failing_read(RuntimeError(KEY)))
    code, output = run_main(monkeypatch, capsys, "pmsi", "check", "--config", str(config))
    assert code == 3 and KEY not in output
    assert len(list(secure.glob("respop-error-*.txt"))) == 1


def test_a_full_disk_met_anywhere_is_one_line(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr("respop.pmsi.read_pmsi", failing_read(OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "x"))))
    code, output = run_main(monkeypatch, capsys, "pmsi", "check", str(tmp_path))
    assert code == 2
    assert f"Error: disk full while writing {tmp_path / 'x'}: respop replaces results only once" in " ".join(output.split())
    assert "Traceback" not in output


def test_atomic_folder_on_a_full_disk_keeps_the_previous_content(tmp_path):
    target = tmp_path / "cases"
    with atomic_folder(target) as tmp:
        (tmp / "cases.parquet").write_text("previous")
    with pytest.raises(DiskFullError, match=rf"disk full while writing {target}: its previous content is intact"):
        with atomic_folder(target) as tmp:
            (tmp / "half.parquet").write_text("half")
            raise OSError(errno.ENOSPC, "No space left on device")
    assert [p.name for p in tmp_path.iterdir()] == ["cases"]  # the temporary sibling is removed
    assert [p.name for p in target.iterdir()] == ["cases.parquet"]
    assert (target / "cases.parquet").read_text() == "previous"
    # polars says it in words: the same
    with pytest.raises(DiskFullError):
        with atomic_folder(target):
            raise pl.exceptions.ComputeError("failed to write: No space left on device (os error 28)")
    # any other failure passes through unchanged
    with pytest.raises(ValueError, match="other"):
        with atomic_folder(target):
            raise ValueError("other")
    assert (target / "cases.parquet").read_text() == "previous"


def test_keyboard_interrupt_is_not_reported_as_a_bug(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr("respop.pmsi.read_pmsi", failing_read(KeyboardInterrupt()))
    code, output = run_main(monkeypatch, capsys, "pmsi", "check", str(tmp_path))
    assert code != 3 and "Unexpected error" not in output
