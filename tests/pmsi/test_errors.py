"""Errors while reading PMSI files name the file, the line and the column, never a row's content
(patient keys, dates), and never end in a traceback (docs/pmsi.md, "Errors"); a failed write
leaves the previous output as it was."""

from __future__ import annotations

import errno
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from respop.config import InputConfig
from respop.errors import DiskFullError, InputError
from respop.pmsi import read_pmsi
from respop.pmsi.files import describe_failure, first_invalid_utf8, locate_csv_problem, read_failure
from respop.pmsi.validate import ValidatedTable
from tests.snds_builder import SndsYear

TABLES = ("B", "C", "D", "UM")


def patient_keys(n: int, seed: int = 3) -> list[str]:
    """NIR_ANO_17 values from letters no message word uses, so that any 8 of them in a row in a
    message can only come from the file."""
    rng = random.Random(seed)
    return ["".join(rng.choice("JKQVWXZ") for _ in range(17)) for _ in range(n)]


def world(folder: Path, stays: int = 4, year: int = 2023, fmt: str = "csv") -> list[str]:
    """An SNDS year of ``stays`` stays, one patient each; returns the patient keys."""
    keys = patient_keys(stays)
    y = SndsYear(year)
    for key in keys:
        y.stay(das=("E119",), units=(("I500", None),), c={"NIR_ANO_17": key})
    y.write(folder, fmt)
    return keys


def leaks(message: str, keys: list[str]) -> list[str]:
    """The patient keys (or 8 characters in a row of one) a message holds."""
    return [k for k in keys if any(k[i : i + 8] in message for i in range(len(k) - 7))]


def edit_line(path: Path, line: int, old: str, new: str) -> None:
    """Replace ``old`` by ``new`` once in line ``line`` (1-based, the header is line 1)."""
    lines = path.read_text(encoding="utf-8").split("\n")
    assert old in lines[line - 1], (old, lines[line - 1])
    lines[line - 1] = lines[line - 1].replace(old, new, 1)
    path.write_text("\n".join(lines), encoding="utf-8")


def read_error(folder: Path, **input_options) -> InputError:
    with pytest.raises(InputError) as err:
        data = read_pmsi(folder, InputConfig(**input_options))
        try:
            data.report()
        finally:
            data.close()
    return err.value


# --- unbalanced quotes ----------------------------------------------------------------------------


def test_an_unbalanced_quote_names_the_file_and_the_line_not_the_row(tmp_path):
    """3,000 stays: the quote opened on line 1,501 would make one field of the 1,500 lines after
    it (over the csv module's field limit: it used to end in `_csv.Error` and a traceback)."""
    keys = world(tmp_path, stays=3000)
    path = tmp_path / "T_MCO23C.csv"
    edit_line(path, 1501, keys[1499], '"' + keys[1499])
    error = read_error(tmp_path)
    assert error.path == path
    assert "malformed CSV: line 1501: a quote (\") opens a quoted field that does not close on this line" in str(error)
    assert leaks(str(error), keys) == [] and "Mar2023" not in str(error)


@pytest.mark.parametrize(
    ("table", "line", "old", "new"),
    [
        ("B", 3, ";67;", ';"67;'),  # opens a field, closes nowhere
        ("B", 5, "I500", 'I5"00'),  # in the middle of a field: polars opens a quoted part there too
        ("D", 5, "E119", 'E119"'),  # on the last line: never closes
        ("UM", 1, "DGN_PAL", '"DGN_PAL'),  # in the header
    ],
)
def test_a_quote_anywhere_is_located(tmp_path, table, line, old, new):
    keys = world(tmp_path)
    path = tmp_path / f"T_MCO23{table}.csv"
    edit_line(path, line, old, new)
    error = read_error(tmp_path)
    assert error.path == path and f"line {line}" in str(error), str(error)
    assert leaks(str(error), keys) == []


def test_balanced_quotes_are_read(tmp_path):
    world(tmp_path)
    edit_line(tmp_path / "T_MCO23B.csv", 2, ";67;", ';"67";')
    data = read_pmsi(tmp_path)
    assert data.report().table("T_MCO23B").rows_loaded == 4
    data.close()


def test_locate_streams_and_counts_fields_as_polars_does(tmp_path):
    path = tmp_path / "T_MCO23D.csv"
    path.write_bytes(b'ETA_NUM;RSA_NUM;ASS_DGN\r\n1;"a;b";E11\r\n1;2;E11;x\r\n')
    assert locate_csv_problem(path) == "line 3 has 4 fields where the header has 3"
    path.write_bytes(b"ETA_NUM;RSA_NUM;ASS_DGN\n1;2;E11\n")
    assert locate_csv_problem(path) is None


# --- other malformed files ------------------------------------------------------------------------


def test_a_header_merged_with_its_first_row_shows_no_value(tmp_path):
    keys = world(tmp_path)
    path = tmp_path / "T_MCO23C.csv"
    path.write_bytes(path.read_bytes().replace(b"\n", b";", 1))  # the header's end of line lost
    error = read_error(tmp_path)
    assert error.path == path and "fields" in str(error)
    assert leaks(str(error), keys) == [] and "Mar2023" not in str(error)


def test_a_misspelt_column_is_named_as_such(tmp_path):
    world(tmp_path)
    path = tmp_path / "T_MCO23B.csv"
    edit_line(path, 1, "AGE_ANN", "AGE_ANNN")
    error = read_error(tmp_path)
    assert error.column == "AGE_ANN"
    assert "required column(s) missing from T_MCO23B: AGE_ANN" in str(error)
    assert "field 3 ('AGE_ANNN') looks like a misspelt AGE_ANN" in str(error)


def test_a_first_line_that_is_not_a_header_is_not_quoted(tmp_path):
    keys = world(tmp_path)
    path = tmp_path / "T_MCO23C.csv"
    path.write_text("\n".join(path.read_text().split("\n")[1:]))  # no header line
    error = read_error(tmp_path)
    assert "of the header line hold the same text (not an SNDS column name, not shown): is the first line the header?" in str(error)
    assert leaks(str(error), keys) == []


def test_a_bad_byte_past_the_sniffed_megabyte_is_located(tmp_path):
    world(tmp_path, stays=20000)
    path = tmp_path / "T_MCO23B.csv"
    assert path.stat().st_size > 1 << 20
    lines = path.read_bytes().split(b"\n")
    lines[19000] = lines[19000].replace(b"I500", b"I5\xe90", 1)
    path.write_bytes(b"\n".join(lines))
    error = read_error(tmp_path)
    assert error.path == path and "not UTF-8 text: line 19001" in str(error) and "cp1252" in str(error)
    assert first_invalid_utf8(path)[0] == 19001


def test_first_invalid_utf8_across_chunks(tmp_path):
    path = tmp_path / "x.csv"
    head = b"a\n" * ((1 << 20) // 2 - 1) + b"x"  # a two-byte character cut by the 1 MiB chunk
    path.write_bytes(head + "é".encode() + b"\nok\n\xff\n")
    assert first_invalid_utf8(path) == (head.count(b"\n") + 3, len(head) + 2 + 4)
    path.write_bytes(head + "é".encode() + b"\n")
    assert first_invalid_utf8(path) is None


def test_a_byte_with_no_character_in_the_declared_encoding(tmp_path):
    world(tmp_path)
    path = tmp_path / "T_MCO23B.csv"
    path.write_bytes(path.read_bytes().replace(b"I500", b"I5\x810", 1))  # 0x81: no cp1252 character
    with pytest.raises(InputError, match=r"T_MCO23B.csv: not cp1252 text: byte 0x81"):
        read_pmsi(tmp_path, InputConfig(encoding="cp1252"))


# --- the reader's own messages are never passed on ------------------------------------------------


def test_a_polars_message_quoting_a_value_is_described_not_passed_on(tmp_path):
    message = "could not parse `JKQVWXZJKQVWXZJKQ;01Mar2023:10:00:00` as dtype i64 at column 'NIR_ANO_17' (column number 3)"
    error = read_failure(tmp_path / "T_MCO23C.parquet", "parquet", "C", pl.exceptions.ComputeError(message))
    assert "JKQVWXZ" not in str(error) and "Mar2023" not in str(error)
    assert error.column == "NIR_ANO_17" and "a value could not be read (column NIR_ANO_17)" in str(error)
    assert "not shown" in describe_failure(pl.exceptions.SchemaError("x `ABC` y"))


def test_staging_failures_are_input_errors_without_the_message(tmp_path, monkeypatch):
    keys = world(tmp_path)

    def failing(self, folder):
        raise pl.exceptions.InvalidOperationError(f"conversion from `str` to `i64` failed in column 'AGE_ANN' for 1 out of 4 values: [\"{keys[0]}\"]")

    monkeypatch.setattr(ValidatedTable, "materialize", failing)
    error = read_error(tmp_path)
    assert error.path == tmp_path / "T_MCO23B.csv" and error.column == "AGE_ANN"
    assert leaks(str(error), keys) == []


# --- full disks: the previous results stay ---------------------------------------------------------


def no_space(*_args, **_kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_disk_while_staging_is_one_line(tmp_path, monkeypatch):
    world(tmp_path)
    monkeypatch.setattr(ValidatedTable, "materialize", no_space)
    with pytest.raises(DiskFullError, match=r"disk full while writing the private workspace \(input.workspace_dir\) \(staging T_MCO23B.csv\): the input files and previous outputs are intact"):
        read_pmsi(tmp_path).report()


def test_a_full_disk_while_writing_out_keeps_the_previous_output(tmp_path, monkeypatch):
    pmsi, out = tmp_path / "pmsi", tmp_path / "out"
    world(pmsi)
    data = read_pmsi(pmsi)
    data.write(out)
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    original = pl.LazyFrame.sink_parquet

    def full_in_out(self, path, *args, **kwargs):
        if "quarantine" in str(path):
            raise pl.exceptions.ComputeError("No space left on device (os error 28)")
        return original(self, path, *args, **kwargs)

    monkeypatch.setattr(pl.LazyFrame, "sink_parquet", full_in_out)
    with pytest.raises(DiskFullError, match=rf"disk full while writing {out}: its previous content is intact"):
        data.write(out)
    data.close()
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "pmsi"]  # no temporary sibling left


# --- the command line -----------------------------------------------------------------------------


def test_cli_unbalanced_quote_is_one_line_without_the_row(tmp_path):
    keys = world(tmp_path / "pmsi", stays=3000)
    edit_line(tmp_path / "pmsi" / "T_MCO23C.csv", 2000, keys[1998], '"' + keys[1998])
    for command in (["pmsi", "check", str(tmp_path / "pmsi")], ["pmsi", "check", str(tmp_path / "pmsi"), "--out", str(tmp_path / "out")]):
        result = subprocess.run([sys.executable, "-m", "respop", *command], capture_output=True, text=True, env={"COLUMNS": "300"})
        output = result.stdout + result.stderr
        assert result.returncode == 2, output
        assert "Traceback" not in output and "_csv.Error" not in output
        assert "T_MCO23C.csv: malformed CSV: line 2000" in " ".join(result.stderr.split())
        assert leaks(output, keys) == []
    assert not (tmp_path / "out").exists()


# --- property: corrupted bytes ----------------------------------------------------------------------


KEYS = patient_keys(4)
edits = st.lists(
    st.tuples(
        st.sampled_from(TABLES),
        st.floats(0, 1, exclude_max=True),
        st.sampled_from(["replace", "insert", "delete"]),
        st.one_of(st.sampled_from([b'"', b";", b",", b"\n", b"\r", b"\x00", b"\xff", b"\xc3", b"\t"]), st.binary(min_size=1, max_size=1)),
    ),
    min_size=1,
    max_size=3,
)


@pytest.fixture(scope="module")
def clean_files(tmp_path_factory) -> dict[str, bytes]:
    folder = tmp_path_factory.mktemp("clean")
    assert world(folder) == KEYS
    return {t: (folder / f"T_MCO23{t}.csv").read_bytes() for t in TABLES}


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(changes=edits)
def test_corrupted_bytes_give_an_input_error_without_a_key_or_are_quarantined(clean_files, changes):
    contents = {t: bytearray(b) for t, b in clean_files.items()}
    for table, where, op, byte in changes:
        data = contents[table]
        pos = min(int(where * (len(data) + 1)), len(data))
        if op == "replace" and pos < len(data):
            data[pos : pos + 1] = byte
        elif op == "delete" and pos < len(data):
            del data[pos]
        else:
            data[pos:pos] = byte
    folder = Path(tempfile.mkdtemp(prefix="corrupt-"))
    try:
        for table, data in contents.items():
            (folder / f"T_MCO23{table}.csv").write_bytes(bytes(data))
        try:
            pmsi = read_pmsi(folder)
            try:
                report = pmsi.report()
            finally:
                pmsi.close()
        except InputError as error:
            assert leaks(str(error), KEYS) == [], str(error)
            assert error.path is not None and error.path.parent == folder, str(error)
        else:
            assert report.balanced  # every row read is loaded or quarantined
    finally:
        shutil.rmtree(folder, ignore_errors=True)
