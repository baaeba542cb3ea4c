"""The Health Data Hub's own synthetic PMSI rows (messy on purpose) are read end to end and every
row is accounted for."""

from __future__ import annotations

import polars as pl

from respop.pmsi import read_pmsi
from respop.pmsi.validate import REASONS, SOURCE
from respop.resources import hdh_sample_dir


def test_every_row_of_the_hdh_sample_is_accounted_for():
    sample = hdh_sample_dir()
    data = read_pmsi(sample)
    report = data.report()
    assert [t.label for t in report.tables] == ["T_MCOaaB", "T_MCOaaC", "T_MCOaaD", "T_MCOaaUM"]
    for t in report.tables:
        on_disk = pl.read_csv(sample / f"{t.label}.csv", infer_schema=False).height
        assert t.rows_read == on_disk == 10
        assert t.rows_read == t.rows_loaded + t.rows_quarantined, t.label
        if t.rows_quarantined:
            assert t.reasons, f"{t.label}: quarantined rows without reasons"
    assert report.balanced


def test_quarantined_rows_keep_their_raw_values_and_reasons():
    data = read_pmsi(hdh_sample_dir())
    quarantine = data.quarantine("B")["T_MCOaaB"].collect()
    raw = pl.read_csv(hdh_sample_dir() / "T_MCOaaB.csv", infer_schema=False)
    assert quarantine.height == raw.height  # every B row of the sample has a non-FINESS ETA_NUM
    assert set(raw.columns) <= set(quarantine.columns)  # the whole original row is kept
    assert quarantine["ETA_NUM"].to_list() == raw["ETA_NUM"].to_list()
    assert (quarantine[SOURCE] == "T_MCOaaB").all()
    assert all(any(r.startswith("ETA_NUM:") for r in reasons) for reasons in quarantine[REASONS])


def test_sample_dates_and_codes_parse_and_fail_only_on_their_constraints():
    report = read_pmsi(hdh_sample_dir()).report()
    c_reasons = report.table("T_MCOaaC").reasons
    # SAS datetimes such as 02Jan2007:22:12:17 parse: dates fail on their range, never on their format
    assert not any("not a date" in r for r in c_reasons)
    assert any(r.startswith("EXE_SOI_DTD: date before") for r in c_reasons)
    # ICD-10 codes without dots (G972, G971…) are CIM-10 codes
    b_reasons = report.table("T_MCOaaB").reasons
    assert not any(r.startswith(("DGN_PAL", "DGN_REL")) for r in b_reasons)
