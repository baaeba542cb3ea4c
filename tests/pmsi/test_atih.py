"""The ATIH reader on hand-written RSA and ANO lines: every layout year, every variable zone,
every quarantine reason, the months of a hospital, and the offsets of the zones (property-based)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from respop.config import InputConfig
from respop.errors import InputError
from respop.pmsi import atih, layouts, read_pmsi
from tests.pmsi.atih_lines import Record, act_zone, ano_line, rsa_line, unit_zone, write

YEARS = list(range(2019, 2027))
FINESS = "010000024"
ROOT = Path(__file__).resolve().parents[2]


def test_every_shipped_layout_year_is_tested():
    assert list(layouts.years()) == YEARS


def _rows(lf: pl.LazyFrame) -> list[dict]:
    return lf.drop(atih.FILE, atih.LINE).collect().to_dicts()


@pytest.mark.parametrize("year", YEARS)
def test_one_year_fixed_part_and_every_zone(tmp_path, year):
    units = [
        unit_zone(year, NSEQRUM="01", DPUM="I500", DRUM="E119"),
        unit_zone(year, NSEQRUM="02", DPUM="J449"),
        unit_zone(year, NSEQRUM="03", DPUM="N184", DRUM="I10"),
    ]
    many = rsa_line(
        year,
        CLE_RSA="0000000001",
        AGEAN=74,
        SEXE="2",
        CDGEO="97411",
        DP="I110",
        DR="E119",
        ECHPMSI="8",
        PROV="5",
        SCHPMSI="9",
        DUREE=12,
        RSACMD="05",
        RSATYPE="M",
        RSANUM="09",
        RSACOMPX="4",
        TYPESEJ="B",
        aut=["03", "11"],
        rdth=["ABCDEFG"],
        um=units,
        das=["E119", "I10", "J449", "N184"],
        acte=[act_zone(year, CDCCAM="DEQP003", NBEXEC=1), act_zone(year, CDCCAM="YYYY600", PHASE="0", NBEXEC=2)],
    )
    none = rsa_line(year, CLE_RSA="0000000002", CDGEO="2A004", SEXE="1", DP="E119")
    ano = [
        ano_line(year, CLE_RSA="0000000001", NOANON="AAAAAAAAAAAAAAAA1", DTENT=f"0201{year}", DTSORT=f"1401{year}"),
        ano_line(year, CLE_RSA="0000000002", NOANON="BBBBBBBBBBBBBBBB2", CRSECU="1"),
    ]
    write(tmp_path, FINESS, year, 12, [many, none], ano)
    data = read_pmsi(tmp_path)
    raw = data.raw[year]
    assert _rows(raw["B"].drop("_row")) == [
        {
            "ETA_NUM": FINESS, "RSA_NUM": "0000000001", "AGE_ANN": "074", "COD_SEX": "2", "BDI_COD": "97411",
            "DGN_PAL": "I110  ", "DGN_REL": "E119", "ENT_MOD": "8", "ENT_PRV": "5", "SOR_MOD": "9", "SEJ_NBJ": "0012",
            "SEJ_TYP": "B", "GRG_GHM": "05M094", "BDI_DEP": "97",
        },
        {
            "ETA_NUM": FINESS, "RSA_NUM": "0000000002", "AGE_ANN": "067", "COD_SEX": "1", "BDI_COD": "2A004",
            "DGN_PAL": "E119  ", "DGN_REL": "", "ENT_MOD": "8", "ENT_PRV": "5", "SOR_MOD": "8", "SEJ_NBJ": "0005",
            "SEJ_TYP": " ", "GRG_GHM": "05M09T", "BDI_DEP": "2A",
        },
    ]
    assert raw["D"].select("RSA_NUM", "ASS_DGN", "_line").collect().rows() == [
        ("0000000001", code, 1) for code in ("E119", "I10", "J449", "N184")
    ]
    assert raw["UM"].select("RSA_NUM", "UM_ORD_NUM", "DGN_PAL", "DGN_REL").collect().rows() == [
        ("0000000001", "01", "I500", "E119"), ("0000000001", "02", "J449", ""), ("0000000001", "03", "N184", "I10"),
    ]
    c = raw["C"].select("RSA_NUM", "NIR_ANO_17", "EXE_SOI_DTD", "EXE_SOI_DTF", "NIR_RET", "DAT_RET").collect()
    assert c.rows() == [
        ("0000000001", "AAAAAAAAAAAAAAAA1", f"0201{year}", f"1401{year}", "0", "0"),
        ("0000000002", "BBBBBBBBBBBBBBBB2", f"0103{year}", f"0603{year}", "1", "0"),
    ]
    # the zones that enter no SNDS table are sliced as placed too
    parsed = atih.parse_rsa(atih.scan_lines([tmp_path / f"{FINESS}.{year}.12.rsa"]))
    zones = {z: atih.explode_zone(parsed, z, keep=(atih.LINE,)).select(atih.LINE, "_rank", "_zone").collect().rows()
             for z in ("aut", "rdth", "acte")}
    assert zones["aut"] == [(1, 0, "03"), (1, 1, "11")]
    assert zones["rdth"] == [(1, 0, "ABCDEFG")]
    assert [(line, rank, z[3:10]) for line, rank, z in zones["acte"]] == [(1, 0, "DEQP003"), (1, 1, "YYYY600")]

    staged = data.staged()
    stays = staged.stays.sort("rsa_num").collect()
    excluded = staged.excluded_stays.collect()
    assert stays["rsa_num"].to_list() == ["0000000001"]  # the other's return code excludes it (linkage)
    assert excluded["excluded_by"].to_list() == ["linkage"]
    stay = stays.row(0, named=True)
    assert (stay["patient_key"], stay["age"], stay["sex"], stay["died"], stay["via_emergency"]) == (
        "AAAAAAAAAAAAAAAA1", 74, 2, True, True
    )
    assert (str(stay["entry_date"]), str(stay["exit_date"]), stay["ghm"], stay["stay_type"]) == (
        f"{year}-01-02", f"{year}-01-14", "05M094", "B"
    )
    dx = staged.diagnoses.collect()
    assert sorted(dx.select("position", "code").rows(), key=str) == sorted(
        [("DP", "I110"), ("DR", "E119"), *[("DAS", c) for c in ("E119", "I10", "J449", "N184")],
         ("UM_DP", "I500"), ("UM_DP", "J449"), ("UM_DP", "N184"), ("UM_DR", "E119"), ("UM_DR", "I10")],
        key=str,
    )
    report = staged.report()
    assert report.balanced
    assert [(a.name, a.lines_read, a.lines_parsed) for a in report.atih_files] == [
        (f"{FINESS}.{year}.12.rsa", 2, 2), (f"{FINESS}.{year}.12.ano", 2, 2)
    ]
    data.close()


def test_a_line_of_another_layout_in_a_file_is_read_with_its_own(tmp_path):
    """The plan slices at the layout of the first line; a line of another shipped layout makes
    the year parsed again with every layout, each line with its own."""
    rsa = [
        rsa_line(2023, CLE_RSA="0000000001", das=["E119"], um=[unit_zone(2023, NSEQRUM="01", DPUM="I500")]),
        rsa_line(2019, CLE_RSA="0000000002", das=["J449", "I10"], um=[unit_zone(2019, NSEQRUM="01", DPUM="N184")]),
    ]
    ano = [ano_line(2023, CLE_RSA="0000000001"), ano_line(2019, CLE_RSA="0000000002", DTENT="01032023", DTSORT="06032023")]
    write(tmp_path, FINESS, 2023, 12, rsa, ano)
    data = read_pmsi(tmp_path)
    raw = data.raw[2023]
    assert raw["D"].select("RSA_NUM", "ASS_DGN").collect().rows() == [
        ("0000000001", "E119"), ("0000000002", "J449"), ("0000000002", "I10")
    ]
    assert raw["UM"].select("RSA_NUM", "DGN_PAL").collect().rows() == [("0000000001", "I500"), ("0000000002", "N184")]
    assert raw["C"].select("RSA_NUM").collect().to_series().to_list() == ["0000000001", "0000000002"]
    assert all(a.lines_quarantined == 0 for a in data.atih.counts)
    data.close()


# --- malformed lines: one per reason -----------------------------------------------------------


def _malformed_folder(folder: Path, year: int = 2023) -> None:
    good = rsa_line(year, CLE_RSA="0000000001", das=["E119"], um=[unit_zone(year, NSEQRUM="01", DPUM="I500")])
    rsa = [
        good,
        rsa_line(year, CLE_RSA="0000000002")[:100],  # shorter than the fixed part
        rsa_line(year, CLE_RSA="0000000003", format_number="999"),  # unknown format number
        rsa_line(year, CLE_RSA="0000000004", das=["E119"]) + "I10   ",  # one DAS more than NDAS says
        rsa_line(year, CLE_RSA="0000000005", NDAS="00x1"),  # a count that is not a number
        rsa_line(year, CLE_RSA="0000000006"),  # a stay without its ANO line
        rsa_line(year, CLE_RSA="0000000007"),  # return codes not all 0
    ]
    ano = [
        ano_line(year, CLE_RSA="0000000001", NOANON="SECRETKEY00000001"),
        ano_line(year, CLE_RSA="0000000002", NOANON="SECRETKEY00000002")[:-3],  # wrong length
        ano_line(year, CLE_RSA="0000000003", NOANON="SECRETKEY00000003", format_number="998"),  # unknown format
        ano_line(year, CLE_RSA="0000000009", NOANON="SECRETKEY00000009"),  # an ANO line without its stay
        ano_line(year, CLE_RSA="0000000007", NOANON="SECRETKEY00000007", CRFUSHOSP="1"),
    ]
    write(folder, FINESS, year, 12, rsa, ano)


def test_every_quarantine_reason_is_counted_with_its_file_and_line(tmp_path):
    _malformed_folder(tmp_path / "in")
    data = read_pmsi(tmp_path / "in")
    report = data.write(tmp_path / "out")
    assert report.balanced
    rsa, ano = report.atih_files
    assert (rsa.lines_read, rsa.lines_parsed, rsa.lines_quarantined) == (7, 3, 4)
    assert rsa.reasons == {
        "the zone counts do not fit the line": 2,
        "line length does not match its layout": 1,
        "unknown format number 999": 1,
    }
    assert (ano.lines_read, ano.lines_parsed, ano.lines_quarantined) == (5, 3, 2)
    assert ano.reasons == {"line length does not match its layout": 1, "unknown format number 998": 1}
    # the ANO line without its stay: quarantined by the same check as a C row without its B row
    c = report.table("T_MCO23C")
    assert c.rows_quarantined == 1 and list(c.reasons) == ["no loaded stay with this (ETA_NUM, RSA_NUM) in T_MCO23B"]
    # a stay without its ANO line and one with a return code: unlinked, counted by the linkage filter
    assert report.stays_loaded == 3 and report.filter("linkage").excluded == 2 and report.stays_kept == 1

    q = pl.read_parquet(tmp_path / "out" / "quarantine" / f"{FINESS}.2023.12.rsa.parquet")
    assert q.select("_source", "_line", "_reasons").rows() == [
        (f"{FINESS}.2023.12.rsa", 2, ["line length does not match its layout"]),
        (f"{FINESS}.2023.12.rsa", 3, ["unknown format number 999"]),
        (f"{FINESS}.2023.12.rsa", 4, ["the zone counts do not fit the line"]),
        (f"{FINESS}.2023.12.rsa", 5, ["the zone counts do not fit the line"]),
    ]
    assert q["_text"][1].startswith(FINESS)  # the line as read, for the DIM (private output)
    qa = pl.read_parquet(tmp_path / "out" / "quarantine" / f"{FINESS}.2023.12.ano.parquet")
    assert qa["_line"].to_list() == [2, 3]
    qc = pl.read_parquet(tmp_path / "out" / "quarantine" / "T_MCO23C.parquet")
    assert qc.select("_file", "_line", "RSA_NUM").rows() == [(f"{FINESS}.2023.12.ano", "4", "0000000009")]  # as text, as every quarantined row
    # the report (counts only) quotes no patient key
    written = (tmp_path / "out" / "report.json").read_text()
    assert "SECRETKEY" not in written and json.loads(written)["atih_files"][0]["lines_quarantined"] == 4
    data.close()


def test_an_ano_line_of_no_shipped_length_and_a_format_number_that_is_not_a_number(tmp_path):
    rsa = [
        rsa_line(2022, CLE_RSA="0000000001"),
        rsa_line(2022, CLE_RSA="0000000002", format_number="A2B"),
        "0100000242",  # a line too short to hold a format number
    ]
    ano = [ano_line(2022, CLE_RSA="0000000001") + "  "]
    write(tmp_path, FINESS, 2022, 12, rsa, ano)
    data = read_pmsi(tmp_path)
    rsa_count, ano_count = data.atih.counts
    assert rsa_count.reasons == {"line length does not match its layout": 1, "unknown format number (not a number)": 1}
    assert ano_count.reasons == {"line length does not match its layout": 1}
    data.close()


def test_an_empty_line_and_windows_line_ends(tmp_path):
    rsa = [rsa_line(2024, CLE_RSA="0000000001"), "", rsa_line(2024, CLE_RSA="0000000002")]
    (tmp_path / f"{FINESS}.2024.12.rsa").write_bytes("\r\n".join(rsa).encode() + b"\r\n")
    (tmp_path / f"{FINESS}.2024.12.ano").write_bytes(
        (ano_line(2024, CLE_RSA="0000000001") + "\r\n" + ano_line(2024, CLE_RSA="0000000002") + "\r\n").encode()
    )
    data = read_pmsi(tmp_path)
    rsa_count = data.atih.counts[0]
    assert (rsa_count.lines_read, rsa_count.lines_parsed) == (3, 2)
    assert data.atih.quarantine().select("_line").collect().to_series().to_list() == [2]
    assert data.raw[2024]["B"].select("RSA_NUM", "_line").collect().rows() == [("0000000001", 1), ("0000000002", 3)]
    data.close()


def test_a_line_with_a_character_that_is_not_ascii_keeps_its_positions(tmp_path):
    """A Latin-1 byte is one replacement character, a UTF-8 accent one character: positions hold
    (the plan that counts bytes sends such a line to the plan that counts characters)."""
    rsa = [
        rsa_line(2023, CLE_RSA="0000000001", NUMINNO="INNOVATION", das=["E119"]),
        rsa_line(2023, CLE_RSA="0000000002", NUMINNO="INNOVATION", das=["I10"]),
    ]
    raw = [rsa[0].replace("INNOVATION", "INNOVATI\u00c9N").encode("latin-1"),
           rsa[1].replace("INNOVATION", "INNOVATI\u00c9N").encode("utf-8")]
    (tmp_path / f"{FINESS}.2023.12.rsa").write_bytes(b"\n".join(raw) + b"\n")
    (tmp_path / f"{FINESS}.2023.12.ano").write_text(
        ano_line(2023, CLE_RSA="0000000001") + "\n" + ano_line(2023, CLE_RSA="0000000002") + "\n"
    )
    data = read_pmsi(tmp_path)
    assert data.atih.counts[0].lines_quarantined == 0
    assert data.raw[2023]["D"].select("RSA_NUM", "ASS_DGN").collect().rows() == [
        ("0000000001", "E119"), ("0000000002", "I10")
    ]
    data.close()


# --- files: months, hospitals, years, both layouts ----------------------------------------------


def test_latest_month_wins_and_superseded_files_are_listed(tmp_path):
    for month, n in ((3, 1), (11, 2), (12, 3)):
        rsa = [rsa_line(2023, CLE_RSA=f"{i:010d}") for i in range(1, n + 1)]
        ano = [ano_line(2023, CLE_RSA=f"{i:010d}") for i in range(1, n + 1)]
        write(tmp_path, FINESS, 2023, month, rsa, ano)
    other = "020000014"
    write(tmp_path, other, 2023, 6, [rsa_line(2023, NOFINESS=other)], [ano_line(2023, NOFINESS=other)], suffix=".TXT")
    write(tmp_path, FINESS, 2022, 12, [rsa_line(2022)], [ano_line(2022)])
    data = read_pmsi(tmp_path)
    report = data.report()
    assert sorted(report.superseded) == sorted(
        f"{FINESS}.2023.{m}.{k}" for m in (3, 11) for k in ("rsa", "ano")
    )
    assert [(a.name, a.month, a.lines_read) for a in report.atih_files if a.kind == "rsa"] == [
        (f"{FINESS}.2022.12.rsa", 12, 1), (f"{FINESS}.2023.12.rsa", 12, 3), (f"{other}.2023.6.rsa.TXT", 6, 1),
    ]
    assert report.table("T_MCO23B").rows_loaded == 4 and report.table("T_MCO22B").rows_loaded == 1
    # the files of a year are one scan; each file's lines are numbered from 1
    assert data.raw[2023]["B"].select(pl.col("_file").cast(pl.String), "_line", "_row").collect().rows() == [
        (f"{FINESS}.2023.12.rsa", 1, 1), (f"{FINESS}.2023.12.rsa", 2, 2), (f"{FINESS}.2023.12.rsa", 3, 3),
        (f"{other}.2023.6.rsa.TXT", 1, 4),
    ]
    data.close()
    only = read_pmsi(tmp_path, InputConfig(years=[2022]))
    assert only.years == [2022]
    only.close()


def test_a_latest_month_without_its_ano_file_is_an_error_naming_it(tmp_path):
    write(tmp_path, FINESS, 2023, 11, [rsa_line(2023)], [ano_line(2023)])
    (tmp_path / f"{FINESS}.2023.12.rsa").write_text(rsa_line(2023) + "\n")
    with pytest.raises(InputError, match=rf"expected {FINESS}\.2023\.12\.ano"):
        read_pmsi(tmp_path)


def test_asked_year_absent_and_no_files(tmp_path):
    write(tmp_path, FINESS, 2023, 12, [rsa_line(2023)], [ano_line(2023)])
    with pytest.raises(InputError, match=r"no ATIH files for year\(s\) \[2021\] \(years present: 2023\)"):
        read_pmsi(tmp_path, InputConfig(years=[2021]))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="no ATIH MCO files found"):
        read_pmsi(empty, InputConfig(format="atih"))


def test_a_folder_with_both_layouts_asks_to_choose(tmp_path):
    write(tmp_path, FINESS, 2023, 12, [rsa_line(2023)], [ano_line(2023)])
    pl.DataFrame({"ETA_NUM": ["1"]}).write_csv(tmp_path / "T_MCO23B.csv")
    with pytest.raises(InputError, match="holds both SNDS tables .* and ATIH files .*input.format = 'atih'"):
        read_pmsi(tmp_path)
    data = read_pmsi(tmp_path, InputConfig(format="atih"))
    assert data.years == [2023]
    data.close()
    (tmp_path / "T_MCO23B.csv").unlink()
    with pytest.raises(InputError, match="holds ATIH files .* input.format is 'parquet': set it to 'atih' or 'auto'"):
        read_pmsi(tmp_path, InputConfig(format="parquet"))


@pytest.mark.parametrize("table", ["rsa", "rsa_ano"])
def test_years_that_share_a_format_number_share_their_layout(table):
    by_number: dict[str, list[int]] = {}
    for year in YEARS:
        by_number.setdefault(layouts.format_number(table, year), []).append(year)
    for number, years in by_number.items():
        assert layouts.layout_year(table, number) == max(years)
        kinds = [table] + (["rsa_um", "rsa_actes"] if table == "rsa" else [])
        for kind in kinds:
            shapes = {tuple((f.name, f.start, f.length) for f in layouts.layout(kind, y).fields) for y in years}
            assert len(shapes) == 1, (number, kind, years)
        if table == "rsa":
            assert len({layouts.rsa_zones(y) for y in years}) == 1, number


def test_the_correspondence_uses_only_shipped_field_names():
    for year in YEARS:
        rsa, ano, um = (layouts.layout(t, year) for t in ("rsa", "rsa_ano", "rsa_um"))
        assert all(rsa.has(f) for f in (*atih.CORRESPONDENCE_B.values(), *atih.GHM_PARTS))
        assert all(ano.has(f) for f in atih.CORRESPONDENCE_C.values())
        assert all(um.has(f) for f in atih.CORRESPONDENCE_UM.values())


# --- the zone offsets, property-based ----------------------------------------------------------

ZONE_TEXT = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .-", min_size=1)


@st.composite
def _stays(draw):
    year = draw(st.sampled_from(YEARS))
    zones = layouts.rsa_zones(year)
    stays = []
    for _ in range(draw(st.integers(1, 4))):
        placed = {}
        for z in zones:
            # up to 9 zones of each kind (a one-character count field holds 9 at most)
            n = draw(st.integers(0, 9 if z.name in ("aut", "rdth") else 12))
            placed[z.name] = [draw(ZONE_TEXT.map(lambda t, n=z.length: t[:n].ljust(n))) for _ in range(n)]
        stays.append(placed)
    return year, stays


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=_stays())
def test_zone_offsets_give_back_exactly_the_zones_placed(tmp_path_factory, case):
    year, stays = case
    folder = tmp_path_factory.mktemp("zones")
    lines = [rsa_line(year, CLE_RSA=f"{i + 1:010d}", **placed) for i, placed in enumerate(stays)]
    path = folder / "lines.rsa"
    path.write_text("".join(line + "\n" for line in lines))
    parsed = atih.parse_rsa(atih.scan_lines([path]))
    assert parsed.select(atih.STATUS).collect().to_series().to_list() == [atih.OK] * len(stays)
    for zone in layouts.rsa_zones(year):
        got = atih.explode_zone(parsed, zone.name, keep=(atih.LINE,)).select(atih.LINE, "_rank", "_zone").collect().rows()
        want = [(i + 1, rank, text) for i, placed in enumerate(stays) for rank, text in enumerate(placed[zone.name])]
        assert got == want, zone.name
    # and the plan for the first line's layout alone (the year its number selects) finds the same
    only = (layouts.layout_year("rsa", layouts.format_number("rsa", year)),)
    fast = atih.parse_rsa(atih.scan_lines([path]), years=only)
    for zone in layouts.rsa_zones(year):
        assert (
            atih.explode_zone(fast, zone.name, keep=(atih.LINE,), years=only).select("_zone").collect().to_series().to_list()
            == [t for placed in stays for t in placed[zone.name]]
        )


def _byte_and_slow_paths(folder: Path) -> None:
    """Every file of ``folder`` read by the byte path gives the frames the polars plans give."""
    for kind in atih._KINDS:
        for f in (f for f in atih.atih_files(folder) if f.kind == kind.kind):
            enum = pl.Enum([f.name])
            frames, fast = kind.read(atih.read_batch([f]), enum)
            assert fast.all(), f.name
            slow = atih._slow(f.path, kind.plans)
            for table, frame in frames.items():
                got = frame.drop(atih.ORDER).with_columns(pl.col(atih.FILE).cast(pl.String))
                want = slow[table].with_columns(pl.col(atih.FILE).cast(pl.String))
                assert got.equals(want), (f.name, table)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=_stays(), crlf=st.booleans(), last_line_end=st.booleans())
def test_the_byte_path_reads_what_the_polars_plans_read(tmp_path_factory, case, crlf, last_line_end):
    """The byte path (fields gathered at byte offsets, zones per (line, rank)) and the polars
    plans of every layout give the same B, D, UM and C, whatever the zones, line ends and layout."""
    year, stays = case
    folder = tmp_path_factory.mktemp("bytes")
    end = "\r\n" if crlf else "\n"
    rsa = [rsa_line(year, CLE_RSA=f"{i + 1:010d}", **placed) for i, placed in enumerate(stays)]
    ano = [ano_line(year, CLE_RSA=f"{i + 1:010d}") for i in range(len(stays))]
    for kind, lines in (("rsa", rsa), ("ano", ano)):
        text = end.join(lines) + (end if last_line_end else "")
        (folder / f"{FINESS}.{year}.12.{kind}").write_bytes(text.encode())
    _byte_and_slow_paths(folder)


def test_a_file_read_the_slow_way_keeps_its_place_among_the_files_read_by_bytes(tmp_path, monkeypatch):
    """A file with a line that is not ASCII (or that is quarantined) is parsed by the polars plans;
    its rows come back in file and line order among the others', in one batch or one per file."""
    hospitals = ("010000024", "020000014", "030000012")
    for h in hospitals:
        rsa = [rsa_line(2023, NOFINESS=h, CLE_RSA=f"{i:010d}", das=["E119", "I10"], um=[unit_zone(2023, NSEQRUM="01", DPUM="I500")]) for i in (1, 2)]
        ano = [ano_line(2023, NOFINESS=h, CLE_RSA=f"{i:010d}") for i in (1, 2)]
        if h == hospitals[1]:
            rsa[0] = rsa_line(2023, NOFINESS=h, CLE_RSA="0000000001", NUMINNO="INNOVATION", das=["E119", "I10"],
                              um=[unit_zone(2023, NSEQRUM="01", DPUM="I500")])
            rsa.insert(1, rsa[1][:50])  # a line quarantined
        path, _ = write(tmp_path, h, 2023, 12, rsa, ano)
        if h == hospitals[1]:  # and a Latin-1 byte (one character): the file goes the slow way
            path.write_bytes(path.read_bytes().replace(b"INNOVATION", "INNOVATI\u00c9N".encode("latin-1")))
    tables = {}
    for batch_bytes in (atih.BATCH_BYTES, 1):
        monkeypatch.setattr(atih, "BATCH_BYTES", batch_bytes)
        data = read_pmsi(tmp_path)
        raw = data.raw[2023]
        tables[batch_bytes] = {t: raw[t].with_columns(pl.col("_file").cast(pl.String)).collect() for t in ("B", "C", "D", "UM")}
        assert [(c.name, c.lines_read, c.lines_parsed) for c in data.atih.counts if c.kind == "rsa"] == [
            (f"{hospitals[0]}.2023.12.rsa", 2, 2), (f"{hospitals[1]}.2023.12.rsa", 3, 2), (f"{hospitals[2]}.2023.12.rsa", 2, 2)
        ]
        assert data.atih.quarantine().select("_source", "_line").collect().rows() == [(f"{hospitals[1]}.2023.12.rsa", 2)]
        data.close()
    b = tables[atih.BATCH_BYTES]["B"]
    assert b.select("_file", "_line", "_row").rows() == [
        (f"{hospitals[0]}.2023.12.rsa", 1, 1), (f"{hospitals[0]}.2023.12.rsa", 2, 2),
        (f"{hospitals[1]}.2023.12.rsa", 1, 3), (f"{hospitals[1]}.2023.12.rsa", 3, 4),
        (f"{hospitals[2]}.2023.12.rsa", 1, 5), (f"{hospitals[2]}.2023.12.rsa", 2, 6),
    ]
    d = tables[atih.BATCH_BYTES]["D"]
    assert d["_row"].to_list() == list(range(1, 13)) and d["ASS_DGN"].to_list() == ["E119", "I10"] * 6
    assert d.select("_file", "_line").unique(maintain_order=True).rows() == b.select("_file", "_line").rows()
    for t in ("B", "C", "D", "UM"):  # one batch or one batch per file: the same tables
        assert tables[atih.BATCH_BYTES][t].equals(tables[1][t]), t


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    edits=st.lists(
        st.tuples(st.sampled_from(["rsa", "ano"]), st.integers(0, 10_000), st.binary(min_size=0, max_size=3)),
        min_size=1,
        max_size=6,
    )
)
def test_corrupted_files_are_counted_never_an_error_quoting_a_key(tmp_path_factory, edits):
    """Random bytes replacing, inserting or deleting bytes of the files: the read accounts for
    every line (balanced) and nothing it says quotes the chaining key."""
    folder = tmp_path_factory.mktemp("corrupt")
    units = [unit_zone(2023, NSEQRUM="01", DPUM="I500")]
    rsa = [rsa_line(2023, CLE_RSA=f"{i:010d}", das=["E119"], um=units) for i in range(1, 4)]
    ano = [ano_line(2023, CLE_RSA=f"{i:010d}", NOANON=f"SECRETKEY0000000{i}") for i in range(1, 4)]
    paths = dict(zip(("rsa", "ano"), write(folder, FINESS, 2023, 12, rsa, ano)))
    for kind, at, new in edits:
        data = bytearray(paths[kind].read_bytes())
        at %= len(data) + 1
        data[at : at + len(new)] = new
        paths[kind].write_bytes(bytes(data))
    try:
        pmsi = read_pmsi(folder)
    except InputError as exc:
        assert "SECRETKEY" not in str(exc)
        return
    report = pmsi.staged().report()
    assert report.balanced
    assert "SECRETKEY" not in json.dumps(report.to_dict())
    pmsi.close()


def test_a_record_builder_places_values_where_the_layout_says():
    r = Record("rsa", 2023).set("CDGEO", "75011").set("AGEAN", 7)
    f = layouts.layout("rsa", 2023).field("CDGEO")
    assert r.text()[f.start : f.end] == "75011"
    assert r.text()[layouts.layout("rsa", 2023).field("AGEAN").start :][:3] == "007"


# --- the command line ----------------------------------------------------------------------------


def test_pmsi_check_reads_an_atih_folder(tmp_path):
    _malformed_folder(tmp_path / "in")
    result = subprocess.run(
        [sys.executable, "-m", "respop", "pmsi", "check", str(tmp_path / "in"), "--json"],
        capture_output=True, text=True, cwd=ROOT, env={"COLUMNS": "200"},
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert [a["name"] for a in report["atih_files"]] == [f"{FINESS}.2023.12.rsa", f"{FINESS}.2023.12.ano"]
    assert report["tables"][0]["format"] == "atih" and report["balanced"] is True
    result = subprocess.run(
        [sys.executable, "-m", "respop", "pmsi", "check", str(tmp_path / "in")],
        capture_output=True, text=True, cwd=ROOT, env={"COLUMNS": "200"},
    )
    assert result.returncode == 0, result.stderr
    assert "unknown format number 999" in result.stdout and "every row is accounted for" in result.stdout
    assert "SECRETKEY" not in result.stdout + result.stderr
