"""Property-based tests of the parsers and of the validation rules."""

from __future__ import annotations

import datetime as dt
import re

import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from respop.pmsi.files import ROW, TableFile
from respop.pmsi.nomenclatures import codes, normalize_icd10
from respop.pmsi.validate import REASONS, DateWindow, parse_sas_date, validate_table

CIM = sorted(codes("MS_CIM_V"))
WINDOW = DateWindow(dt.date(2005, 1, 1), dt.date(2022, 12, 31))


@given(st.datetimes(min_value=dt.datetime(1900, 1, 1), max_value=dt.datetime(2099, 12, 31)), st.sampled_from([str.upper, str.lower, str.title]))
def test_sas_datetimes_parse_to_their_date(moment, case):
    text = moment.strftime("%d") + case(moment.strftime("%b")) + moment.strftime("%Y:%H:%M:%S")
    parsed = pl.select(parse_sas_date(pl.lit(text))).item()
    assert parsed == moment.date()


@given(st.text(max_size=20))
def test_date_parser_never_raises_and_returns_a_date_or_null(text):
    parsed = pl.select(parse_sas_date(pl.lit(text, pl.String))).item()
    assert parsed is None or isinstance(parsed, dt.date)


@given(st.sampled_from(CIM), st.booleans(), st.sampled_from(["", " ", "  "]), st.sampled_from([str.upper, str.lower]))
def test_icd10_normalisation_recovers_the_code(code, dotted, pad, case):
    written = code[:3] + "." + code[3:] if dotted and len(code) > 3 else code
    raw = pad + case(written) + pad
    assert pl.select(normalize_icd10(pl.lit(raw))).item() == code


# Random values for three B columns; the oracle says which rows must load.
finess = st.one_of(st.from_regex(r"[0-9]{9}", fullmatch=True), st.from_regex(r"2[AB][0-9]{7}", fullmatch=True),
                   st.text(max_size=10), st.integers(1, 10**8).map(str))
age = st.one_of(st.integers(-5, 200).map(str), st.text(max_size=4), st.just(""))
sex = st.one_of(st.sampled_from(["1", "2", "7", "8", "9", "3", "M", ""]), st.text(max_size=2))
dp = st.one_of(st.sampled_from(CIM[:200]), st.text(max_size=6))


def _strip(v: str) -> str:
    return v.strip()


def _oracle(eta: str, age_: str, sex_: str, dp_: str) -> bool:
    e = _strip(eta)
    if re.fullmatch(r"[0-9]{1,8}", e):
        e = e.zfill(9)
    ok_eta = bool(re.fullmatch(r"[0-9]{9}|2[AB][0-9]{7}", e))
    a = _strip(age_)
    ok_age = bool(re.fullmatch(r"[+-]?[0-9]+", a)) and 0 <= int(a) <= 120
    ok_sex = _strip(sex_) in {"1", "2", "7", "8", "9"}
    d = _strip(dp_).upper().replace(".", "")
    ok_dp = d in codes("MS_CIM_V")
    return ok_eta and ok_age and ok_sex and ok_dp


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(finess, age, sex, dp), min_size=1, max_size=30))
def test_rows_load_exactly_when_valid_and_none_is_lost(rows):
    n = len(rows)
    raw = pl.LazyFrame(
        {
            ROW: pl.Series(range(1, n + 1), dtype=pl.UInt32),
            "ETA_NUM": [r[0] for r in rows],
            "RSA_NUM": [f"{i:010d}" for i in range(1, n + 1)],
            "AGE_ANN": [r[1] for r in rows],
            "COD_SEX": [r[2] for r in rows],
            "BDI_COD": ["01001"] * n,
            "DGN_PAL": [r[3] for r in rows],
            "DGN_REL": [None] * n,
            "ENT_MOD": ["8"] * n,
            "ENT_PRV": ["5"] * n,
            "SOR_MOD": ["8"] * n,
            "SEJ_NBJ": ["3"] * n,
            "GRG_GHM": ["05M09T"] * n,
        },
        schema_overrides={"DGN_REL": pl.String},
    )
    table = validate_table(TableFile("B", 2022, __file__, "csv"), raw, WINDOW)
    loaded = table.loaded.collect()
    quarantined = table.quarantine.collect()
    assert loaded.height + quarantined.height == n
    # primary keys are all distinct here, so the oracle alone decides
    expected = [i + 1 for i, r in enumerate(rows) if _oracle(*r)]
    assert sorted(loaded[ROW].to_list()) == expected
    assert all(len(reasons) > 0 for reasons in quarantined[REASONS])
