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


# Duplicate stays in bounded memory: the hash pre-selection never changes the groups, even when
# every hash collides (modulus 1) or many do.
_stay = st.tuples(
    st.booleans(),  # candidate
    st.sampled_from(["P1", "P2", "P3"]),  # patient key
    st.sampled_from(["H1", "H2"]),  # hospital
    st.integers(0, 2),  # entry day
    st.integers(0, 1),  # days to exit
    st.sampled_from(["05M09T", "28Z04S"]),  # GHM
)


@settings(max_examples=80, deadline=None)
@given(st.lists(_stay, max_size=40), st.sampled_from([None, 1, 2, 7]))
def test_duplicate_groups_found_by_hash_are_the_exact_groups(stays, modulus):
    from respop.pmsi.quality import duplicate_groups, find_duplicate_groups

    start = dt.date(2022, 1, 1)
    flagged = pl.LazyFrame(
        {
            "stay_id": list(range(len(stays))),
            "_candidate": [s[0] for s in stays],
            "patient_key": [s[1] for s in stays],
            "hospital_id": [s[2] for s in stays],
            "entry_date": [start + dt.timedelta(days=s[3]) for s in stays],
            "exit_date": [start + dt.timedelta(days=s[3] + s[4]) for s in stays],
            "ghm": [s[5] for s in stays],
        },
        schema_overrides={"stay_id": pl.Int64, "_candidate": pl.Boolean, "entry_date": pl.Date, "exit_date": pl.Date},
    )
    exact = duplicate_groups(flagged).collect()
    found = find_duplicate_groups(flagged, modulus)
    key = list(exact.columns)
    assert found.sort(key).equals(exact.sort(key))
    # and the groups are what they mean: candidates sharing the five keys, first stay the smallest id
    groups: dict[tuple, list[int]] = {}
    for i, s in enumerate(stays):
        if s[0]:
            groups.setdefault(s[1:], []).append(i)
    assert len(found) == sum(1 for ids in groups.values() if len(ids) > 1)
    assert sorted(found["_first_stay_id"].to_list()) == sorted(min(ids) for ids in groups.values() if len(ids) > 1)


# Columns read as they are when the file needs no cleaning (validate.clean_columns): the same checks
# and loaded values as when every value is cleaned, whatever the values.
_SPACES = ["", " ", "  ", "\t", "\u00a0", "\u2003", "\n"]
_dirt = st.tuples(st.sampled_from(_SPACES), st.sampled_from(_SPACES))


def _written(values: st.SearchStrategy[str], lower: bool = False) -> st.SearchStrategy[str | None]:
    """Mostly clean values, sometimes padded with white space (or, with ``lower``, dotted or lower
    case: a CIM-10 code as a person may write it), empty, white space only or null."""
    dirty = st.tuples(values, _dirt).map(lambda v: v[1][0] + v[0] + v[1][1])
    if lower:
        dirty = st.one_of(dirty, values.map(str.lower), values.map(lambda c: c[:3] + "." + c[3:]))
    return st.one_of(values, values, values, dirty, st.sampled_from(["", " ", "\u00a0", None]), st.text(max_size=5))


_B_CLEANABLE = {
    "ETA_NUM": _written(st.sampled_from(["010000123", "10000123", "2A0001234", "2b0001234", "0100001234", "+10000123"])),
    "RSA_NUM": _written(st.integers(0, 10**11).map(str)),
    "AGE_ANN": _written(st.integers(-3, 130).map(str)),
    "COD_SEX": _written(st.sampled_from(["1", "2", "9", "3"])),
    "DGN_PAL": _written(st.sampled_from(CIM[:300] + ["A00.99", "XX99"]), lower=True),
    "DGN_REL": _written(st.sampled_from(CIM[-300:]), lower=True),
    "ENT_MOD": _written(st.sampled_from(["6", "7", "8", "N"])),
    "ENT_PRV": _written(st.sampled_from(["1", "5", "R", "x"])),
    "SOR_MOD": _written(st.sampled_from(["6", "7", "8", "9"])),
    "SEJ_NBJ": _written(st.integers(0, 400).map(str)),
    "SEJ_TYP": _written(st.sampled_from(["A", "B", "C"])),
}


def _b_frame(columns: dict[str, list[str | None]]) -> pl.LazyFrame:
    n = len(next(iter(columns.values())))
    return pl.LazyFrame(
        {
            ROW: pl.Series(range(1, n + 1), dtype=pl.UInt32),
            "ETA_NUM": ["010000123"] * n,
            "RSA_NUM": [f"{i:010d}" for i in range(1, n + 1)],
            "BDI_COD": ["01001"] * n,
            "GRG_GHM": ["05M09T"] * n,
            **columns,  # may replace ETA_NUM and RSA_NUM
        },
        schema_overrides={name: pl.String for name in columns},
    )


_B_PLAIN = {
    "ETA_NUM": st.sampled_from(["010000123", "2A0001234", "12", "2b0001234"]),
    "RSA_NUM": st.sampled_from(["1", "0000000002", "12345678901"]),
    "AGE_ANN": st.sampled_from(["3", "40", "+7"]),
    "SEJ_NBJ": st.sampled_from(["0", "12"]),
    "DGN_PAL": st.sampled_from(CIM[:100] + ["A00.99", "XX99", "a00.99"]),
    "DGN_REL": st.sampled_from(CIM[:100] + ["A00.99"]),
}


@st.composite
def _b_columns(draw):
    """Each column either plain (clean values, or codes absent from the CIM-10 either way: read as
    they are) or with anything (:data:`_B_CLEANABLE`)."""
    n = draw(st.integers(1, 25))
    columns = {}
    for name, values in _B_CLEANABLE.items():
        if draw(st.booleans()):
            values = _B_PLAIN.get(name, st.sampled_from(["1", "2", "8", "9", "A"]))
        columns[name] = draw(st.lists(values, min_size=n, max_size=n))
    return columns


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_b_columns())
def test_columns_read_as_they_are_validate_as_the_cleaned_ones(columns):
    from respop.pmsi.schema import table_schema
    from respop.pmsi.validate import CHECKS, clean_columns

    raw = _b_frame(columns)
    tf = TableFile("B", 2022, __file__, "parquet")
    fast = validate_table(tf, raw, WINDOW, find_clean=True).checked.collect()
    slow = validate_table(tf, raw, WINDOW).checked.collect()
    csv = validate_table(TableFile("B", 2022, __file__, "csv"), raw, WINDOW, find_clean=True).checked.collect()
    assert csv.equals(slow)  # a CSV file is always cleaned
    assert fast[CHECKS].to_list() == slow[CHECKS].to_list()
    assert fast.filter(pl.col(CHECKS) == 0).equals(slow.filter(pl.col(CHECKS) == 0))
    # a quarantined row is written out as it was read; its typed value is read by nothing, and may
    # differ only for a CIM-10 code that is no code either way
    icd = [r.name for r in table_schema("B").rules if r.kind == "icd10"]
    assert fast.drop(icd).equals(slow.drop(icd))

    # a column declared clean cleans to itself (a CIM-10 code: or to a non-empty code that is not
    # one of the CIM-10, like its raw text)
    clean = clean_columns(raw, "B")
    cim = set(CIM)
    for name in clean:
        values = [v for v in columns[name] if v is not None]
        trimmed = pl.Series(values, dtype=pl.String).str.strip_chars().to_list()
        if name in icd:
            for v, t in zip(values, trimmed, strict=True):
                code = t.upper().replace(".", "")
                assert code == v or (v not in cim and code not in cim and code != "")
        else:
            assert trimmed == values


def test_a_padded_code_makes_its_column_cleaned():
    from respop.pmsi.validate import clean_columns

    columns = {name: ["1"] * 3 for name in _B_CLEANABLE}
    columns.update(AGE_ANN=["40", " 41", "42"], DGN_PAL=["E119", "e11.9", "I10"], DGN_REL=["E119", "A00.99", None],
                   COD_SEX=["1", "2", "2\u00a0"])
    clean = clean_columns(_b_frame(columns), "B")
    assert "AGE_ANN" not in clean and "DGN_PAL" not in clean and "COD_SEX" not in clean
    assert "DGN_REL" in clean  # A00.99 is no code, cleaned or not
    assert "SOR_MOD" in clean  # 1 is not a code of SOR_MOD, but needs no trimming


@given(st.lists(st.one_of(st.text(max_size=3), st.sampled_from(["0", "9", "10", "0\n", " 1", "\u0661", "a"])), min_size=1, max_size=20))
def test_one_digit_pattern_is_the_ten_digits(values):
    from respop.pmsi.validate import _DIGITS, _ONE_DIGIT

    s = pl.Series(values, dtype=pl.String)
    assert s.str.contains(_ONE_DIGIT).to_list() == s.is_in(_DIGITS).to_list()


def test_return_codes_are_read_as_they_are_when_clean():
    from respop.pmsi.validate import clean_columns

    n = 4
    raw = pl.LazyFrame({ROW: pl.Series(range(1, n + 1), dtype=pl.UInt32), "ETA_NUM": ["010000123"] * n,
                        "RSA_NUM": ["1", "2", "3", "4"], "NIR_ANO_17": ["A" * 17] * n,
                        "EXE_SOI_DTD": ["2022-01-01"] * n, "EXE_SOI_DTF": ["2022-01-02"] * n,
                        "NIR_RET": ["0", "1", "x", None], "NAI_RET": ["0", " 0", "0", "0"], "SEX_RET": ["0"] * n,
                        "SEJ_RET": ["0"] * n, "FHO_RET": ["0"] * n, "PMS_RET": ["0"] * n, "DAT_RET": ["10", "0", "0", "0"]})
    clean = clean_columns(raw, "C")
    assert {"NIR_RET", "DAT_RET", "SEX_RET"} <= clean and "NAI_RET" not in clean
    tf = TableFile("C", 2022, __file__, "parquet")
    from respop.pmsi.validate import CHECKS

    fast = validate_table(tf, raw, WINDOW, find_clean=True).checked.collect()
    slow = validate_table(tf, raw, WINDOW).checked.collect()
    assert fast.equals(slow) and fast[CHECKS].to_list()[2] != 0


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), st.booleans()), max_size=30))
def test_duplicate_keys_found_by_sorting_are_those_of_the_group_by(rows):
    # materialize() sorts the valid rows' keys to find the repeated ones, then groups only these
    from respop.pmsi.validate import CHECKS, STAY_KEY, _duplicate_keys, _find_duplicate_keys

    checked = pl.LazyFrame(
        {ROW: pl.Series(range(1, len(rows) + 1), dtype=pl.UInt32),
         STAY_KEY: pl.Series([key for key, _ in rows], dtype=pl.UInt64),
         CHECKS: pl.Series([0 if valid else 4 for _, valid in rows], dtype=pl.Int64)}
    )
    expected = _duplicate_keys(checked).collect().sort(STAY_KEY)
    got = _find_duplicate_keys(checked).sort(STAY_KEY)
    assert got.equals(expected) and got.schema == expected.schema
