"""Bad input: each case gives a clear error naming the file (and column), or a quarantined row
with its reason; never a traceback or a silent loss."""

from __future__ import annotations

import subprocess
import sys

import polars as pl
import pytest

from respop.config import InputConfig, QualityConfig
from respop.errors import InputError
from respop.pmsi import read_pmsi
from respop.pmsi.validate import REASONS
from tests.snds_builder import SndsYear


def _world(tmp_path, fmt="csv", **stay):
    y = SndsYear(2022)
    y.stay(das=("E119",), units=(("I500", None),))
    bad = y.stay(**stay) if stay else None
    y.write(tmp_path, fmt)
    return bad


def _reasons(data, label):
    return {r for rs in data.quarantine()[label].collect()[REASONS] for r in rs}


# --- clear errors ---------------------------------------------------------------------------


def test_missing_column_names_the_file_and_the_column(tmp_path):
    _world(tmp_path)
    path = tmp_path / "T_MCO22B.csv"
    pl.read_csv(path, separator=";", infer_schema=False).drop("DGN_PAL").write_csv(path, separator=";")
    with pytest.raises(InputError) as err:
        read_pmsi(tmp_path)
    assert err.value.path == path and err.value.column == "DGN_PAL"
    assert "T_MCO22B.csv" in str(err.value) and "DGN_PAL" in str(err.value)


def test_missing_table_names_the_expected_file(tmp_path):
    _world(tmp_path)
    (tmp_path / "T_MCO22UM.csv").unlink()
    with pytest.raises(InputError, match=r"T_MCO22UM .*missing.*T_MCO22UM\.parquet or T_MCO22UM\.csv"):
        read_pmsi(tmp_path)


def test_folder_without_pmsi_tables(tmp_path):
    with pytest.raises(InputError, match="no PMSI MCO tables found"):
        read_pmsi(tmp_path)
    with pytest.raises(InputError, match="folder not found"):
        read_pmsi(tmp_path / "nowhere")


def test_empty_csv_file(tmp_path):
    _world(tmp_path)
    (tmp_path / "T_MCO22D.csv").write_bytes(b"")
    with pytest.raises(InputError, match="T_MCO22D.csv: empty file"):
        read_pmsi(tmp_path)


def test_header_only_csv_is_an_empty_table_not_an_error(tmp_path):
    _world(tmp_path)
    (tmp_path / "T_MCO22D.csv").write_text("ETA_NUM;RSA_NUM;ASS_DGN\n")
    report = read_pmsi(tmp_path).report()
    assert report.table("T_MCO22D").rows_read == 0
    assert report.diagnoses.get("DAS", 0) == 0 and report.balanced


@pytest.mark.parametrize("size", [0, 100, -8])
def test_truncated_or_empty_parquet(tmp_path, size):
    _world(tmp_path, fmt="parquet")
    path = tmp_path / "T_MCO22C.parquet"
    content = path.read_bytes()
    path.write_bytes(content[:size] if size >= 0 else content[:size])
    with pytest.raises(InputError, match=r"T_MCO22C\.parquet: (empty file|not a readable Parquet file)"):
        read_pmsi(tmp_path)


def test_wrong_separator_is_detected_or_reported(tmp_path):
    _world(tmp_path)  # written with ';'
    assert read_pmsi(tmp_path).report().stays_kept == 1  # detected
    with pytest.raises(InputError, match=r"T_MCO22B.csv: the header line has no ',' separator; it looks ';'-separated"):
        read_pmsi(tmp_path, InputConfig(separator=","))


def test_single_column_header_is_an_error(tmp_path):
    _world(tmp_path)
    (tmp_path / "T_MCO22B.csv").write_text("ETA_NUM RSA_NUM AGE_ANN\n1 2 3\n")
    with pytest.raises(InputError, match="cannot find the field separator"):
        read_pmsi(tmp_path)


def test_wrong_encoding_is_a_clear_error_and_can_be_read_when_declared(tmp_path):
    _world(tmp_path)
    path = tmp_path / "T_MCO22B.csv"
    # add a free-text column with an accent, encoded in Windows-1252
    lines = path.read_text(encoding="utf-8").splitlines()
    lines = [lines[0] + ";COMMENT"] + [line + ";séjour" for line in lines[1:]]
    path.write_bytes(("\n".join(lines) + "\n").encode("cp1252"))
    with pytest.raises(InputError, match=r"T_MCO22B.csv: not UTF-8 text \(byte 0xE9 at offset \d+ is invalid\).*cp1252"):
        read_pmsi(tmp_path)
    data = read_pmsi(tmp_path, InputConfig(encoding="cp1252"))
    assert data.report().stays_kept == 1
    data.close()


def test_ragged_csv_line_names_the_line(tmp_path):
    _world(tmp_path)
    path = tmp_path / "T_MCO22D.csv"
    path.write_text(path.read_text() + "010000024;0000000001;E119;EXTRA\n")
    data = read_pmsi(tmp_path)
    with pytest.raises(InputError, match=r"T_MCO22D.csv: malformed CSV: line 3 has 4 fields where the header has 3"):
        data.report()


def test_duplicate_column_in_header(tmp_path):
    _world(tmp_path)
    path = tmp_path / "T_MCO22D.csv"
    path.write_text("ETA_NUM;RSA_NUM;ass_dgn;ASS_DGN\n")
    with pytest.raises(InputError, match="column ASS_DGN appears twice"):
        read_pmsi(tmp_path)


def test_same_table_twice_in_two_formats(tmp_path):
    _world(tmp_path)
    SndsYear(2022).write(tmp_path / "pq", "parquet")
    (tmp_path / "pq" / "T_MCO22B.parquet").rename(tmp_path / "T_MCO22B.parquet")
    with pytest.raises(InputError, match=r"T_MCO22B is present more than once"):
        read_pmsi(tmp_path)
    assert read_pmsi(tmp_path, InputConfig(format="csv")).report().stays_kept == 1


def test_year_asked_but_absent(tmp_path):
    _world(tmp_path)
    with pytest.raises(InputError, match=r"no PMSI tables for year\(s\) \[2019\] \(years present: 2022\)"):
        read_pmsi(tmp_path, InputConfig(years=[2019]))


# --- quarantined rows -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stay", "label", "reason"),
    [
        ({"AGE_ANN": "soixante"}, "T_MCO22B", "AGE_ANN: not an integer"),
        ({"AGE_ANN": "130"}, "T_MCO22B", "AGE_ANN: above the maximum 120"),
        ({"AGE_ANN": None}, "T_MCO22B", "AGE_ANN: missing value"),
        ({"COD_SEX": "M"}, "T_MCO22B", "COD_SEX: not a code of {1, 2, 7, 8, 9}"),
        ({"eta": "12345678X"}, "T_MCO22B", "ETA_NUM: not a 9-character FINESS number"),
        ({"rsa": "12AB"}, "T_MCO22B", "RSA_NUM: not an RSA index (1 to 10 digits)"),
        ({"DGN_PAL": "E99"}, "T_MCO22B", "DGN_PAL: code absent from the French CIM-10"),
        ({"DGN_REL": "XYZ"}, "T_MCO22B", "DGN_REL: code absent from the French CIM-10"),
        ({"GRG_GHM": "5M09T"}, "T_MCO22B", "GRG_GHM: not a GHM code (2 digits, a letter, 2 digits, a level)"),
        ({"SOR_MOD": "4"}, "T_MCO22B", "SOR_MOD: not a code of MS_SOR_V"),
        ({"BDI_COD": "010010"}, "T_MCO22B", "BDI_COD: longer than 5 characters"),
        ({"c": {"EXE_SOI_DTD": "32Jan2022:00:00:00"}}, "T_MCO22C", "EXE_SOI_DTD: not a date"),
        ({"c": {"EXE_SOI_DTD": "01Mar1999:00:00:00"}}, "T_MCO22C", "EXE_SOI_DTD: date before 2005-01-01"),
        ({"c": {"EXE_SOI_DTF": "01Mar2023:00:00:00"}}, "T_MCO22C", "EXE_SOI_DTF: date after 2022-12-31"),
        ({"c": {"EXE_SOI_DTD": "10Mar2022:00:00:00"}}, "T_MCO22C", "EXE_SOI_DTD: entry date after the exit date"),
        ({"c": {"NIR_ANO_17": "SHORT"}}, "T_MCO22C", "NIR_ANO_17: shorter than 17 characters"),
        ({"c": {"NIR_RET": "X"}}, "T_MCO22C", "NIR_RET: not a one-digit return code"),
        ({"das": ("E11.9", "ZZZ9")}, "T_MCO22D", "ASS_DGN: code absent from the French CIM-10"),
        ({"units": (("I50.0", "Q999X"),)}, "T_MCO22UM", "DGN_REL: code absent from the French CIM-10"),
    ],
)
def test_bad_values_are_quarantined_with_their_reason(tmp_path, stay, label, reason):
    _world(tmp_path, **stay)
    data = read_pmsi(tmp_path)
    report = data.report()
    assert reason in _reasons(data, label)
    assert report.table(label).reasons[reason] == 1
    assert report.table(label).rows_quarantined == 1
    assert report.balanced


def test_dates_out_of_range_follow_the_configured_window(tmp_path):
    _world(tmp_path, c={"EXE_SOI_DTD": "01Mar2022:00:00:00", "EXE_SOI_DTF": "06Mar2022:00:00:00"})
    import datetime as dt

    data = read_pmsi(tmp_path, quality=QualityConfig(min_date=dt.date(2022, 3, 2)))
    assert "EXE_SOI_DTD: date before 2022-03-02" in _reasons(data, "T_MCO22C")


def test_dotted_icd_codes_are_normalised_not_quarantined(tmp_path):
    _world(tmp_path, DGN_PAL="e11.9 ", das=(" I50.0",))
    data = read_pmsi(tmp_path)
    assert data.report().table("T_MCO22B").rows_quarantined == 0
    assert {"E119", "I500"} <= set(data.diagnoses.collect()["code"])


def test_stay_whose_linkage_row_is_quarantined_is_counted_by_the_linkage_filter(tmp_path):
    _world(tmp_path, c={"EXE_SOI_DTD": "garbage"})
    report = read_pmsi(tmp_path).report()
    assert report.table("T_MCO22C").rows_quarantined == 1
    assert report.filter("linkage").excluded == 1
    assert report.stays_loaded == 2 and report.stays_kept == 1 and report.balanced


def test_duplicate_primary_key_is_quarantined_once(tmp_path):
    y = SndsYear(2022)
    y.stay(rsa="0000000007")
    y.stay(rsa="0000000007", AGE_ANN="50")  # same (ETA_NUM, RSA_NUM): the second row is quarantined
    y.write(tmp_path, "csv")
    data = read_pmsi(tmp_path)
    report = data.report()
    assert report.table("T_MCO22B").rows_quarantined == 1
    assert report.table("T_MCO22C").rows_quarantined == 1
    assert data.stays.collect()["age"].to_list() == [67]


def test_diagnosis_without_a_stay_is_quarantined(tmp_path):
    _world(tmp_path)
    path = tmp_path / "T_MCO22D.csv"
    path.write_text(path.read_text() + "010000024;0000000099;E119\n")
    data = read_pmsi(tmp_path)
    assert "no loaded stay with this (ETA_NUM, RSA_NUM) in T_MCO22B" in _reasons(data, "T_MCO22D")


def test_short_csv_line_is_quarantined_not_lost(tmp_path):
    _world(tmp_path)
    path = tmp_path / "T_MCO22D.csv"
    path.write_text(path.read_text() + "010000024\n\n")
    report = read_pmsi(tmp_path).report()
    d = report.table("T_MCO22D")
    assert d.rows_read == 3 and d.rows_quarantined == 2 and d.balanced


# --- the command line ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda p: None, "no PMSI MCO tables found"),
        (lambda p: (_world(p), (p / "T_MCO22C.csv").write_bytes(b"")), "empty file"),
        (lambda p: (_world(p), (p / "T_MCO22D.csv").write_text("ETA_NUM;RSA_NUM\n")), "required column(s) missing"),
    ],
)
def test_cli_prints_a_message_not_a_traceback(tmp_path, setup, message):
    setup(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "respop", "pmsi", "check", str(tmp_path)],
        capture_output=True,
        text=True,
        env={"COLUMNS": "200", "PATH": ""},
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr + result.stdout
    assert "Error:" in result.stderr and message in result.stderr


def test_a_lone_dot_as_diagnosis_is_quarantined_not_emptied(tmp_path):
    _world(tmp_path, DGN_PAL=".")
    data = read_pmsi(tmp_path)
    assert "DGN_PAL: code absent from the French CIM-10" in _reasons(data, "T_MCO22B")


def test_unknown_exit_mode_code_of_the_nomenclature_loads(tmp_path):
    _world(tmp_path, SOR_MOD="-1")
    report = read_pmsi(tmp_path).report()
    assert report.table("T_MCO22B").rows_quarantined == 0


def test_linkage_row_without_a_stay_is_quarantined(tmp_path):
    _world(tmp_path)
    path = tmp_path / "T_MCO22C.csv"
    lines = path.read_text().splitlines()
    path.write_text("\n".join([*lines, lines[1].replace("0000000001", "0000000077", 1)]) + "\n")
    data = read_pmsi(tmp_path)
    report = data.report()
    assert "no loaded stay with this (ETA_NUM, RSA_NUM) in T_MCO22B" in _reasons(data, "T_MCO22C")
    assert report.table("T_MCO22C").rows_loaded == 1 and report.balanced


def test_cli_error_messages_keep_their_square_brackets(tmp_path):
    _world(tmp_path)
    path = tmp_path / "T_MCO22B.csv"
    path.write_bytes(path.read_bytes().replace(b"01001", "0100é".encode("cp1252"), 1))
    result = subprocess.run(
        [sys.executable, "-m", "respop", "pmsi", "check", str(tmp_path)],
        capture_output=True, text=True, env={"COLUMNS": "300"},
    )
    assert result.returncode == 2
    assert "under [input]" in " ".join(result.stderr.split())


def test_cli_out_with_a_ragged_csv_is_a_message_and_keeps_nothing_half_written(tmp_path):
    pmsi = tmp_path / "pmsi"
    _world(pmsi)
    path = pmsi / "T_MCO22D.csv"
    path.write_text(path.read_text() + "010000024;0000000001;E119;EXTRA\n")
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "-m", "respop", "pmsi", "check", str(pmsi), "--out", str(out)],
        capture_output=True, text=True, env={"COLUMNS": "300"},
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "line 3 has 4 fields" in " ".join(result.stderr.split())
    assert not out.exists()


def test_write_refuses_to_replace_a_folder_that_is_not_a_respop_output(tmp_path):
    _world(tmp_path / "pmsi")
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.docx").write_text("years of work")
    with pytest.raises(InputError, match="is not a respop output folder"):
        read_pmsi(tmp_path / "pmsi").write(precious)
    assert (precious / "thesis.docx").read_text() == "years of work"


def test_typed_parquet_columns_are_checked_by_value(tmp_path):
    import datetime as dt

    y = SndsYear(2022)
    y.stay(c={"NIR_ANO_17": "AAAAAAAAAAAAAAAA1"})
    y.stay(c={"NIR_ANO_17": "AAAAAAAAAAAAAAAA2"})
    y.write(tmp_path, "parquet")
    b_path, c_path = tmp_path / "T_MCO22B.parquet", tmp_path / "T_MCO22C.parquet"
    # AGE_ANN as floats (one not whole), dates as real Date and Datetime columns
    pl.read_parquet(b_path).with_columns(pl.Series("AGE_ANN", [67.0, 67.5])).write_parquet(b_path)
    pl.read_parquet(c_path).with_columns(
        pl.Series("EXE_SOI_DTD", [dt.date(2022, 3, 1)] * 2),
        pl.Series("EXE_SOI_DTF", [dt.datetime(2022, 3, 6, 12, 30)] * 2),
    ).write_parquet(c_path)
    data = read_pmsi(tmp_path)
    report = data.report()
    assert report.table("T_MCO22B").reasons == {"AGE_ANN: not an integer": 1}
    # the C row of the quarantined stay follows it; the other C row, with typed dates, loads
    assert report.table("T_MCO22C").reasons == {"no loaded stay with this (ETA_NUM, RSA_NUM) in T_MCO22B": 1}
    stays = data.stays.collect()
    assert stays["age"].to_list() == [67]
    assert stays["exit_date"].to_list() == [dt.date(2022, 3, 6)]


def test_out_pointing_at_a_file_is_a_clear_error(tmp_path):
    _world(tmp_path / "pmsi")
    target = tmp_path / "report.txt"
    target.write_text("x")
    with pytest.raises(InputError, match="is a file, not a folder"):
        read_pmsi(tmp_path / "pmsi").write(target)


def test_staging_happens_once_per_data(tmp_path):
    _world(tmp_path)
    data = read_pmsi(tmp_path)
    assert data.staged() is data.staged()
    assert data.report().to_dict() == data.report().to_dict()
