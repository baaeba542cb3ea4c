"""The death input (respop.pmsi.deaths): the SNDS referential IR_BEN_R read, checked and
quarantined as the PMSI tables are, on hand-written files whose every value is known, and a
hypothesis property on the values the reader parses."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from respop.config import InputConfig, QualityConfig
from respop.errors import InputError
from respop.pmsi.deaths import find_death_file, known_deaths, read_deaths

HEADER = "BEN_NIR_PSA;BEN_RNG_GEM;BEN_SEX_COD;BEN_NAI_ANN;BEN_DCD_DTE;BEN_DCD_AME;BEN_RES_DPT"
K = lambda c: c * 17  # noqa: E731  a 17-character key


def write(folder, *lines: str, header: str = HEADER, name: str = "IR_BEN_R.csv"):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text("\n".join([header, *lines]) + "\n", encoding="utf-8")
    return folder


def test_valid_rows_give_deaths_and_messy_rows_are_quarantined_with_their_reason(tmp_path):
    folder = write(
        tmp_path / "pmsi",
        f"{K('A')};1;1;1940;05MAR2022:00:00:00;202203;01",  # a death
        f"{K('B')};1;2;1950;01JAN1600:00:00:00;160001;01",  # the placeholder of the living
        f"{K('C')};1;2;1950;;;01",  # alive, empty
        f"{K('D')};1;1;1930;;202111;01",  # month only: the 15th
        f"{K('E')}X;1;1;1930;05MAR2022:00:00:00;202203;01",  # 18 characters
        f"{K('F')};1;1;1930;31FEB2022:00:00:00;202202;01",  # not a date
        f"{K('G')};1;1;1930;05MAR2022:00:00:00;202201;01",  # month disagrees
        f"{K('H')};1;1;1990;05MAR1985:00:00:00;198503;01",  # before birth
        f"{K('A')};1;1;1940;05MAR2022:00:00:00;202203;01",  # the key again
        f"{K('I')};1;1;1940;05MAR2022:00:00:00;202203;01",  # twins who disagree on the death
        f"{K('I')};2;1;1940;;;01",
        f";1;1;1940;;;01",  # no key
    )
    data = read_deaths(folder)
    report = data.report()
    t = report.table
    assert (t.rows_read, t.rows_loaded, t.rows_quarantined) == (12, 6, 6) and report.balanced
    assert t.reasons == {
        "BEN_NIR_PSA: longer than 17 characters": 1,
        "BEN_DCD_DTE: not a date": 1,
        "BEN_DCD_AME: not the year and month of BEN_DCD_DTE": 1,
        "BEN_DCD_DTE: death before the year of birth (BEN_NAI_ANN)": 1,
        "duplicate primary key (BEN_NIR_PSA, BEN_RNG_GEM): an earlier row has it": 1,
        "BEN_NIR_PSA: missing value": 1,
    }
    deaths = dict(data.deaths().iter_rows())
    assert deaths == {K("A"): dt.date(2022, 3, 5), K("D"): dt.date(2021, 11, 15)}
    assert report.deaths == 2 and report.ambiguous_keys == 1
    # the one-pass reading known_deaths uses gives the same deaths and report
    known = data.known()
    assert dict(known.deaths.iter_rows()) == deaths and known.report.to_dict() == report.to_dict()
    quarantine = data.quarantine.collect()
    assert quarantine.height == 6 and set(quarantine["_source"]) == {"IR_BEN_R"}
    assert "BEN_RES_DPT" in quarantine.columns  # every column of the raw row, as text


def test_a_missing_required_column_names_the_file_and_the_column(tmp_path):
    folder = write(tmp_path / "pmsi", f"{K('A')};1;1940", header="BEN_NIR_PSA;BEN_RNG_GEM;BEN_NAI_ANN")
    with pytest.raises(InputError) as caught:
        read_deaths(folder)
    assert caught.value.column == "BEN_DCD_DTE"
    assert "IR_BEN_R.csv" in str(caught.value) and "BEN_DCD_DTE" in str(caught.value)


def test_the_referential_is_optional_found_by_name_and_ignored_on_request(tmp_path):
    folder = tmp_path / "pmsi"
    folder.mkdir()
    assert find_death_file(folder) is None
    assert known_deaths(InputConfig(pmsi_dir=folder)).deaths is None
    assert known_deaths(InputConfig(pmsi_dir=folder)).report.known is False
    pl.DataFrame({"BEN_NIR_PSA": [K("A")], "BEN_DCD_DTE": [dt.date(2022, 1, 2)]}).write_parquet(folder / "ir_ben_r.parquet")
    got = known_deaths(InputConfig(pmsi_dir=folder))
    assert got.report.known and got.deaths.rows() == [(K("A"), dt.date(2022, 1, 2))]
    ignored = known_deaths(InputConfig(pmsi_dir=folder, deaths="ignore"))
    assert ignored.deaths is None and ignored.report.reason == "input.deaths = 'ignore'"
    write(folder, f"{K('A')};1;1;1940;;;01")
    with pytest.raises(InputError, match="more than once"):
        find_death_file(folder)


def test_a_death_after_quality_max_date_is_quarantined(tmp_path):
    folder = write(tmp_path / "pmsi", f"{K('A')};1;1;1940;05MAR2024:00:00:00;202403;01")
    data = read_deaths(folder, quality=QualityConfig(max_date=dt.date(2023, 12, 31)))
    assert data.report().table.reasons == {"BEN_DCD_DTE: date after 2023-12-31": 1}


VALUES = st.one_of(
    st.dates(dt.date(1500, 1, 1), dt.date(2100, 12, 31)).map(lambda d: d.strftime("%d%b%Y:00:00:00").upper()),
    st.text(alphabet="0123456789JANFEBMAR:/- ", max_size=20),
    st.just(""),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=st.lists(st.tuples(VALUES, st.one_of(st.just(""), st.from_regex(r"[0-9]{6}", fullmatch=True))), min_size=1, max_size=12))
def test_property_every_row_is_loaded_or_quarantined_and_deaths_are_real_dates(tmp_path_factory, values):
    folder = tmp_path_factory.mktemp("ben")
    lines = [f"{i:017d};1;1;1900;{d};{m};01" for i, (d, m) in enumerate(values)]
    data = read_deaths(write(folder, *lines))
    report = data.report()
    assert report.balanced and report.table.rows_read == len(values)
    deaths = data.deaths()
    assert deaths["death_date"].is_not_null().all()
    assert (deaths["death_date"] >= dt.date(1900, 1, 1)).all()
    loaded = set(data.loaded.collect()["BEN_NIR_PSA"])
    assert set(deaths["patient_key"]) <= loaded


ROWS = st.lists(
    st.tuples(
        st.sampled_from(["A", "B", "C", "D", ""]),  # few keys: twins, repeated rows, a missing key
        st.sampled_from(["1", "2", ""]),  # the birth rank (absent: 1)
        st.sampled_from(["", "05MAR2022:00:00:00", "06MAR2022:00:00:00", "01JAN1600:00:00:00", "31FEB2022:00:00:00"]),
        st.sampled_from(["", "202203", "202111", "160001"]),
    ),
    min_size=1,
    max_size=14,
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=ROWS)
def test_property_the_one_pass_reading_equals_the_lazy_reading(tmp_path_factory, rows):
    # known() groups only the keys whose hash repeats; deaths() and report() group every key
    folder = tmp_path_factory.mktemp("ben")
    lines = [f"{K(key) if key else ''};{rank};1;1900;{date};{ame};01" for key, rank, date, ame in rows]
    data = read_deaths(write(folder, *lines))
    known = data.known()
    assert known.deaths.equals(data.deaths())
    assert known.report.to_dict() == data.report().to_dict()
