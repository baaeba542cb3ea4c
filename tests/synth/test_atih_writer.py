"""The ATIH writer (respop.synth.atih): hand-made SNDS rows written as RSA and ANO lines, read back
field by field with the layouts (respop.pmsi.layouts) and a plain Python slicer, independent of the
reader."""

from __future__ import annotations

import re

import polars as pl
import pytest

from respop.pmsi.layouts import format_number, layout, rsa_zones
from respop.synth.atih import RETURN_CODE_FIELDS, write_year

H1, H2, H3 = "290000017", "2A0000012", "350000013"


def _tables() -> dict[str, pl.DataFrame]:
    b = pl.DataFrame(
        {
            "ETA_NUM": [H1, H1, H2],
            "RSA_NUM": ["0000000001", "0000000002", "0000000007"],
            "AGE_ANN": ["72", "0", "101"],
            "COD_SEX": ["2", "1", "1"],
            "BDI_COD": ["29019", None, "97105"],
            "BDI_DEP": ["29", None, "971"],
            "DGN_PAL": ["I500", "P070", "Z511"],
            "DGN_REL": [None, "J441", None],
            "ENT_MOD": ["8", "8", "8"],
            "ENT_PRV": ["5", None, None],
            "SOR_MOD": ["9", "8", "8"],
            "SEJ_NBJ": ["12", "3", None],
            "GRG_GHM": ["05M09T", "15M05A", "28Z07Z"],
            "SEJ_TYP": [None, "B", None],
            "SOR_ANN": ["2023", "2023", "2023"],
            "SOR_MOI": ["03", "11", "12"],
        }
    )
    c = pl.DataFrame(
        {
            # the second stay of H1 has no C row; H3's C row has no B row
            "ETA_NUM": [H1, H2, H3],
            "RSA_NUM": ["0000000001", "0000000007", "0000000009"],
            "NIR_ANO_17": ["ABCDEFGHIJKLMNOPQ", "0123456789ABCDEFG", "ZZZZZZZZZZZZZZZZZ"],
            "EXE_SOI_DTD": ["02MAR2023:00:00:00", "31DEC2023:00:00:00", "01JAN2023:00:00:00"],
            "EXE_SOI_DTF": ["14MAR2023:00:00:00", "31DEC2023:00:00:00", "N/A"],
            **{col: ["0", "0", "0"] for col in RETURN_CODE_FIELDS.values()},
        }
    ).with_columns(pl.Series("SEX_RET", ["0", "1", "0"]))
    d = pl.DataFrame(
        {
            "ETA_NUM": [H1, H1, H1, H2, H2],
            "RSA_NUM": ["0000000001", "0000000001", "0000000002", "0000000007", "0000000099"],
            "ASS_DGN": ["E119", "N183", "Z380", "C509", "I10"],
        }
    )
    um = pl.DataFrame(
        {
            "ETA_NUM": [H1, H1, H1, H2],
            "RSA_NUM": ["0000000001", "0000000001", "0000000002", "0000000007"],
            "DGN_PAL": ["I500", "J449", "P070", "Z511"],
            "DGN_REL": [None, None, "J441", None],
            "UM_ORD_NUM": ["2", "1", "1", "1"],
        }
    )
    return {"B": b, "C": c, "D": d, "UM": um}


def _slice(line: str, lay) -> dict[str, str]:
    return {f.name: line[f.start : f.end] for f in lay.fields}


def _parse_rsa(line: str, year: int) -> tuple[dict[str, str], dict[str, list[str]]]:
    """An RSA line: its fixed fields and its zones (by kind), checking the line's length."""
    rsa = layout("rsa", year)
    fixed = _slice(line, rsa)
    pos = rsa.fixed_length
    zones = {}
    for z in rsa_zones(year):
        k = int(fixed[z.count_field])
        zones[z.name] = [line[pos + i * z.length : pos + (i + 1) * z.length] for i in range(k)]
        pos += k * z.length
    assert pos == len(line), "the zone counts do not fit the line"
    return fixed, zones


def _blank_ok(lay, values: dict[str, str], written: set[str]) -> None:
    """Every field we have no value for is zeros (numbers) or spaces (text)."""
    for f in lay.fields:
        if f.name in written:
            continue
        expected = "0" * f.length if f.kind in ("i", "n") else " " * f.length
        assert values[f.name] == expected, (lay.table, f.name, values[f.name])


@pytest.mark.parametrize("year", [2019, 2023, 2026])
def test_lines_field_by_field(tmp_path, year):
    tables = _tables()
    w = write_year(tables, year, tmp_path, seed=1)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted([f"{H1}.{year}.12.rsa", f"{H1}.{year}.12.ano", f"{H2}.{year}.12.rsa",
                            f"{H2}.{year}.12.ano", f"{H3}.{year}.12.ano"])
    assert (w.rsa_lines, w.ano_lines, w.rsa_without_ano, w.ano_without_rsa, w.zones_without_stay) == (3, 3, 1, 1, 1)
    assert w.truncated == {}

    rsa_lines = (tmp_path / f"{H1}.{year}.12.rsa").read_text().splitlines()
    assert len(rsa_lines) == 2
    fixed, zones = _parse_rsa(rsa_lines[0], year)
    assert fixed["NOFINESS"] == H1
    assert fixed["NOVRSA"] == format_number("rsa", year)
    assert fixed["CLE_RSA"] == "0000000001"
    assert fixed["AGEAN"] == "072"
    assert fixed["SEXE"] == "2"
    assert fixed["CDGEO"] == "29019"
    assert fixed["DP"] == "I500  "
    assert fixed["DR"] == "      "
    assert (fixed["ECHPMSI"], fixed["PROV"], fixed["SCHPMSI"], fixed["TYPESEJ"]) == ("8", "5", "9", " ")
    assert fixed["DUREE"] == "0012"
    assert fixed["RSACMD"] + fixed["RSATYPE"] + fixed["RSANUM"] + fixed["RSACOMPX"] == "05M09T"
    assert (fixed["MOISSOR"], fixed["ANSOR"]) == ("03", "2023")
    assert (fixed["NBRUM"], fixed["NDAS"]) == ("02", "0002")
    mapped = {"NOFINESS", "NOVRSA", "CLE_RSA", "AGEAN", "SEXE", "CDGEO", "DP", "DR", "ECHPMSI", "PROV",
              "SCHPMSI", "DUREE", "TYPESEJ", "MOISSOR", "ANSOR", "NBRUM", "NDAS", "NA", "NBAUTPGV",
              "NB_RDTH", "NOSEQRUM", *{p + part for p in ("RSA", "GP") for part in ("CMD", "TYPE", "NUM", "COMPX")}}
    _blank_ok(layout("rsa", year), fixed, mapped)

    # medical units in their order, the DAS all under the first
    lay_um = layout("rsa_um", year)
    units = [_slice(z, lay_um) for z in zones["um"]]
    assert [u["NSEQRUM"] for u in units] == ["01", "02"]
    assert [u["DPUM"] for u in units] == ["J449  ", "I500  "]
    assert [u["DRUM"] for u in units] == ["      ", "      "]
    assert [u["NOHOP1"] for u in units] == [H1, H1]
    assert [u["NBDIAGAS"] for u in units] == ["02", "00"]
    assert int(units[0]["NBACTE"]) == len(zones["acte"]) and int(units[1]["NBACTE"]) == 0
    for u in units:
        _blank_ok(lay_um, u, {"NSEQRUM", "NOHOP1", "DPUM", "DRUM", "NBDIAGAS", "NBACTE"})
    assert zones["das"] == ["E119  ", "N183  "]
    lay_acte = layout("rsa_actes", year)
    for z in zones["acte"]:
        acte = _slice(z, lay_acte)
        assert re.fullmatch(r"[A-Z]{4}[0-9]{3}", acte["CDCCAM"])
        _blank_ok(lay_acte, acte, {"CDCCAM", "PHASE", "ACT", "NBEXEC"})
    assert all(re.fullmatch(r"[0-9]{2}", z) for z in zones["aut"])
    assert all(re.fullmatch(r"[0-9]{7}", z) for z in zones["rdth"])
    assert all(0 <= len(zones[k]) <= 3 for k in ("aut", "rdth", "acte"))

    fixed2, zones2 = _parse_rsa(rsa_lines[1], year)
    assert (fixed2["CLE_RSA"], fixed2["AGEAN"], fixed2["CDGEO"], fixed2["DR"], fixed2["TYPESEJ"]) == (
        "0000000002", "000", "     ", "J441  ", "B")
    assert zones2["das"] == ["Z380  "] and [z[:2] for z in zones2["um"]] == ["01"]

    fixed3, zones3 = _parse_rsa((tmp_path / f"{H2}.{year}.12.rsa").read_text().splitlines()[0], year)
    assert (fixed3["NOFINESS"], fixed3["AGEAN"], fixed3["CDGEO"], fixed3["DUREE"]) == (H2, "101", "97105", "    ")
    assert zones3["das"] == ["C509  "]  # the orphan D row (0000000099) has no line to go in

    # ANO lines: fixed length, dates ddmmyyyy, return codes
    ano = layout("rsa_ano", year)
    for h in (H1, H2, H3):
        (line,) = (tmp_path / f"{h}.{year}.12.ano").read_text().splitlines()
        assert len(line) == ano.fixed_length
    a1 = _slice((tmp_path / f"{H1}.{year}.12.ano").read_text().splitlines()[0], ano)
    assert (a1["NOFINESS"], a1["CLE_RSA"], a1["NOANON"]) == (H1, "0000000001", "ABCDEFGHIJKLMNOPQ")
    assert (a1["DTENT"], a1["DTSORT"], a1["MOISSORT"], a1["ANNEESORT"]) == ("02032023", "14032023", "03", "2023")
    assert a1["NOFORMAT"] == format_number("rsa_ano", year)
    assert all(a1[f] == "0" for f in RETURN_CODE_FIELDS)
    _blank_ok(ano, a1, {"NOFINESS", "NOFORMAT", "CLE_RSA", "NOANON", "DTENT", "DTSORT", "MOISSORT", "ANNEESORT",
                        *RETURN_CODE_FIELDS})
    a2 = _slice((tmp_path / f"{H2}.{year}.12.ano").read_text(), ano)
    assert a2["CRSEXE"] == "1" and a2["DTSORT"] == "31122023"
    a3 = _slice((tmp_path / f"{H3}.{year}.12.ano").read_text(), ano)
    assert a3["DTSORT"] == "N/A     " and a3["MOISSORT"] == "  "  # written as the file would show it


def test_same_seed_same_bytes_other_seed_other_zones(tmp_path):
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        write_year(_tables(), 2023, tmp_path / name, seed=seed)
    rsa = f"{H1}.2023.12.rsa"
    assert (tmp_path / "a" / rsa).read_bytes() == (tmp_path / "b" / rsa).read_bytes()
    assert (tmp_path / "a" / rsa).read_bytes() != (tmp_path / "c" / rsa).read_bytes()


def test_too_long_values_are_cut_and_counted(tmp_path):
    tables = _tables()
    tables["B"] = tables["B"].with_columns(pl.Series("DGN_PAL", ["I500ABCD", "P070", "Z511"]))
    w = write_year(tables, 2023, tmp_path, seed=1)
    assert w.truncated == {"rsa.DP": 1}
    fixed, _ = _parse_rsa((tmp_path / f"{H1}.2023.12.rsa").read_text().splitlines()[0], 2023)
    assert fixed["DP"] == "I500AB"
