"""The reader on small hand-written SNDS tables: the canonical model is exactly what they say."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from respop.config import InputConfig, QualityConfig
from respop.pmsi import DIAGNOSIS_SCHEMA, STAY_SCHEMA, read_pmsi
from respop.pmsi.report import LINKAGE_CAUSES
from tests.snds_builder import SndsYear


def _two_years(tmp_path, fmt_2021="parquet", fmt_2022="csv"):
    y21 = SndsYear(2021)
    k1 = y21.stay(
        eta="010000024",
        AGE_ANN="74",
        COD_SEX="2",
        BDI_COD="01053",
        DGN_PAL="I110",
        DGN_REL=None,
        ENT_PRV="5",
        SOR_MOD="9",
        SEJ_NBJ="12",
        GRG_GHM="05M09T",
        das=("I500", "E119", "E119"),  # duplicated DAS, as T_MCOaaD often has
        units=(("I110", None), ("I500", "E119")),
        c={"NIR_ANO_17": "AAAAAAAAAAAAAAAA1", "EXE_SOI_DTD": "02Jan2021:22:12:17", "EXE_SOI_DTF": "14Jan2021:08:00:00"},
    )
    k2 = y21.stay(
        eta="010000024",
        AGE_ANN="0",
        COD_SEX="1",
        BDI_COD="01004",
        DGN_PAL="E119",
        ENT_MOD="N",
        ENT_PRV=None,
        SOR_MOD="8",
        SEJ_NBJ="0",
        GRG_GHM="10M13T",
        c={"NIR_ANO_17": "BBBBBBBBBBBBBBBB2", "EXE_SOI_DTD": "03Feb2021:00:00:00", "EXE_SOI_DTF": "03Feb2021:00:00:00"},
    )
    y22 = SndsYear(2022)
    # same RSA number as k1 in another year: a different stay
    k3 = y22.stay(
        eta="2A0000014",
        rsa="0000000001",
        AGE_ANN="75",
        COD_SEX="2",
        BDI_COD="2A004",
        BDI_DEP="2A",
        DGN_PAL="I500",
        DGN_REL="E119",
        ENT_MOD="7",
        ENT_PRV="1",
        SOR_MOD="8",
        SEJ_NBJ="4",
        GRG_GHM="05M09T",
        das=("N184",),
        c={"NIR_ANO_17": "AAAAAAAAAAAAAAAA1", "EXE_SOI_DTD": "10Dec2022:00:00:00", "EXE_SOI_DTF": "14Dec2022:00:00:00"},
    )
    y21.write(tmp_path, fmt_2021)
    y22.write(tmp_path, fmt_2022, separator=";")
    return k1, k2, k3


@pytest.mark.parametrize("fmt_2021", ["parquet", "csv"])
def test_canonical_stays_are_exactly_the_tables(tmp_path, fmt_2021):
    # 2022 holds a Corsican hospital (2A…), which an SNDS integer column cannot hold: always CSV
    k1, k2, k3 = _two_years(tmp_path, fmt_2021, "csv")
    data = read_pmsi(tmp_path)
    stays = data.stays.sort("stay_id").collect()
    expected = pl.DataFrame(
        [
            dict(stay_id=k1, source_year=2021, hospital_id="010000024", rsa_num="0000000001",
                 patient_key="AAAAAAAAAAAAAAAA1", residence_zone="01053", residence_departement="01", age=74, sex=2,
                 entry_date=dt.date(2021, 1, 2), exit_date=dt.date(2021, 1, 14), length_of_stay=12,
                 entry_mode="8", provenance="5", via_emergency=True, exit_mode="9", died=True, ghm="05M09T",
                 stay_type=None, is_session=False, principal_diagnosis="I110", related_diagnosis=None),
            dict(stay_id=k2, source_year=2021, hospital_id="010000024", rsa_num="0000000002",
                 patient_key="BBBBBBBBBBBBBBBB2", residence_zone="01004", residence_departement="01", age=0, sex=1,
                 entry_date=dt.date(2021, 2, 3), exit_date=dt.date(2021, 2, 3), length_of_stay=0,
                 entry_mode="N", provenance=None, via_emergency=False, exit_mode="8", died=False, ghm="10M13T",
                 stay_type=None, is_session=False, principal_diagnosis="E119", related_diagnosis=None),
            dict(stay_id=k3, source_year=2022, hospital_id="2A0000014", rsa_num="0000000001",
                 patient_key="AAAAAAAAAAAAAAAA1", residence_zone="2A004", residence_departement="2A", age=75, sex=2,
                 entry_date=dt.date(2022, 12, 10), exit_date=dt.date(2022, 12, 14), length_of_stay=4,
                 entry_mode="7", provenance="1", via_emergency=False, exit_mode="8", died=False, ghm="05M09T",
                 stay_type=None, is_session=False, principal_diagnosis="I500", related_diagnosis="E119"),
        ],
        schema=STAY_SCHEMA,
    ).with_columns(residence_used=pl.lit(True), stay_counted=pl.lit(True))  # no filter withholds a use
    assert_frame_equal(stays, expected)

    diagnoses = data.diagnoses.sort("stay_id", "position", "code").collect()
    expected_dx = pl.DataFrame(
        [
            (k1, "I110", "DP", None), (k1, "I500", "DAS", None), (k1, "E119", "DAS", None),
            (k1, "I110", "UM_DP", 1), (k1, "I500", "UM_DP", 2), (k1, "E119", "UM_DR", 2),
            (k2, "E119", "DP", None),
            (k3, "I500", "DP", None), (k3, "E119", "DR", None), (k3, "N184", "DAS", None),
        ],
        schema=DIAGNOSIS_SCHEMA,
        orient="row",
    ).sort("stay_id", "position", "code")
    assert_frame_equal(diagnoses, expected_dx)

    # the canonical files (written once, read by every later step) hold exactly the same rows
    canonical = data.canonical()
    assert canonical.canonical_paths is not None
    assert all(p.is_file() for p in canonical.canonical_paths.values())
    assert_frame_equal(canonical.stays.sort("stay_id").collect(), expected)
    assert_frame_equal(canonical.diagnoses.sort("stay_id", "position", "code").collect(), expected_dx)
    assert data.canonical() is canonical

    report = data.report()
    assert report.balanced
    assert report.stays_loaded == report.stays_kept == 3
    assert [t.rows_quarantined for t in report.tables] == [0] * 8
    assert report.diagnoses == {"DP": 3, "DR": 1, "DAS": 3, "UM_DP": 2, "UM_DR": 1}


def test_integer_finess_gets_its_leading_zero_back(tmp_path):
    y = SndsYear(2022)
    key = y.stay(eta="010000024", das=("E119",))
    y.write(tmp_path, "parquet")  # ETA_NUM written as the integer 10000024
    assert pl.read_parquet(tmp_path / "T_MCO22B.parquet")["ETA_NUM"].dtype == pl.Int64
    data = read_pmsi(tmp_path)
    assert data.stays.collect()["hospital_id"].to_list() == ["010000024"]
    assert data.diagnoses.filter(pl.col("position") == "DAS").collect()["stay_id"].to_list() == [key]


def test_years_option_reads_only_those_years(tmp_path):
    _two_years(tmp_path)
    data = read_pmsi(tmp_path, InputConfig(years=[2022]))
    assert data.stays.collect()["source_year"].to_list() == [2022]


def _filtered_world(tmp_path):
    """One stay caught by each filter, one séance, and two clean stays."""
    y = SndsYear(2022)
    keys = {
        "clean": y.stay(c={"NIR_ANO_17": "CLEAN000000000001"}),
        "linkage_return_code": y.stay(c={"NIR_ANO_17": "RET00000000000001", "NIR_RET": "1"}),
        "linkage_no_c_row": y.stay(with_c=False),
        "linkage_placeholder_key": y.stay(c={"NIR_ANO_17": "xxxxxxxxxxxxxxxxx"}),
        "legal_entity_duplicates": y.stay(eta="750100042", c={"NIR_ANO_17": "APHP0000000000001"}),
        "inter_hospital_services": y.stay(SEJ_TYP="B", c={"NIR_ANO_17": "PIE00000000000001"}),
        "error_ghm": y.stay(GRG_GHM="90Z00Z", c={"NIR_ANO_17": "ERR00000000000001"}),
        "invalid_residence_missing": y.stay(BDI_COD=None, c={"NIR_ANO_17": "RES00000000000001"}),
        "invalid_residence_unknown": y.stay(BDI_COD="99999", c={"NIR_ANO_17": "RES00000000000002"}),
        "invalid_residence_format": y.stay(BDI_COD="1X", c={"NIR_ANO_17": "RES00000000000003"}),
        "residence_abroad": y.stay(BDI_COD="99134", c={"NIR_ANO_17": "ABR00000000000001"}),
        "duplicate_original": y.stay(c={"NIR_ANO_17": "DUP00000000000001"}),
        "duplicate_stays": y.stay(c={"NIR_ANO_17": "DUP00000000000001"}),
        "session": y.stay(GRG_GHM="28Z04Z", SEJ_NBJ=None, NBR_SEA="1", c={"NIR_ANO_17": "SEA00000000000001"}),
        # caught by two filters: counted once, under the first (linkage)
        "two_filters": y.stay(GRG_GHM="90Z00Z", c={"NIR_ANO_17": "TWO00000000000001", "FHO_RET": "1"}),
    }
    y.write(tmp_path, "csv")
    return keys


@pytest.mark.parametrize("modulus", [None, 1, 3])
def test_every_filtered_stay_is_counted_under_its_filter(tmp_path, monkeypatch, modulus):
    # modulus: the duplicate stays' hashes folded so that they collide (1: all of them)
    import functools

    from respop.pmsi import quality

    monkeypatch.setattr("respop.pmsi.reader.find_duplicate_stays", functools.partial(quality.find_duplicate_stays, modulus=modulus))
    keys = _filtered_world(tmp_path)
    data = read_pmsi(tmp_path).staged()
    report = data.report()
    excluded = dict(data.excluded_stays.select("stay_id", "excluded_by").collect().iter_rows())
    expected_by = {
        keys["linkage_return_code"]: "linkage",
        keys["linkage_no_c_row"]: "linkage",
        keys["linkage_placeholder_key"]: "linkage",
        keys["two_filters"]: "linkage",
        keys["legal_entity_duplicates"]: "legal_entity_duplicates",
        keys["error_ghm"]: "error_ghm",
        keys["duplicate_stays"]: "duplicate_stays",
    }
    assert excluded == expected_by
    assert {f.name: f.excluded for f in report.filters} == {
        "linkage": 4,
        "legal_entity_duplicates": 1,
        "inter_hospital_services": 0,
        "error_ghm": 1,
        "invalid_residence": 0,
        "residence_abroad": 0,
        "duplicate_stays": 1,
    }
    # the residence filters and the inter-hospital services keep the stay for clinical events only
    assert {f.name: f.clinical_only for f in report.filters} == {
        "linkage": 0,
        "legal_entity_duplicates": 0,
        "inter_hospital_services": 1,
        "error_ghm": 0,
        "invalid_residence": 3,
        "residence_abroad": 1,
        "duplicate_stays": 0,
    }
    assert report.stays_clinical_only == 5
    assert report.filter("error_ghm").flagged == 2  # the two-filter stay is flagged by both
    # the linkage filter's causes, each stay under its first one (no C row, return codes, key)
    assert report.filter("linkage").causes == dict(zip(LINKAGE_CAUSES, (1, 2, 1)))
    assert all(not f.causes for f in report.filters if f.name != "linkage")
    clinical_only = ["inter_hospital_services", "invalid_residence_missing", "invalid_residence_unknown",
                     "invalid_residence_format", "residence_abroad"]
    stays = data.stays.collect()
    assert sorted(stays["stay_id"]) == sorted([keys["clean"], keys["duplicate_original"], *[keys[k] for k in clinical_only]])
    uses = {k: (r, c) for k, r, c in stays.select("stay_id", "residence_used", "stay_counted").iter_rows()}
    assert uses == {
        keys["clean"]: (True, True),
        keys["duplicate_original"]: (True, True),
        keys["inter_hospital_services"]: (False, False),
        keys["invalid_residence_missing"]: (False, True),
        keys["invalid_residence_unknown"]: (False, True),
        keys["invalid_residence_format"]: (False, True),
        keys["residence_abroad"]: (False, True),
    }
    assert data.sessions.collect()["stay_id"].to_list() == [keys["session"]]
    assert report.sessions_kept == 1
    assert report.stays_loaded == len(keys) and report.stays_kept == 7
    assert report.balanced
    assert report.to_dict()["stays_clinical_only"] == 5
    # diagnoses follow their stays: none of an excluded stay, those of the stays kept for clinical events
    assert set(data.diagnoses.collect()["stay_id"]) == {
        keys["clean"], keys["duplicate_original"], keys["session"], *[keys[k] for k in clinical_only]
    }


def test_disabled_filters_keep_the_stays(tmp_path):
    keys = _filtered_world(tmp_path)
    quality = QualityConfig(error_ghm=False, residence_abroad=False, sessions_apart=False)
    data = read_pmsi(tmp_path, quality=quality)
    kept = set(data.stays.collect()["stay_id"])
    assert {keys["error_ghm"], keys["residence_abroad"], keys["session"]} <= kept
    report = data.report()
    assert report.filter("error_ghm").excluded == 0 and report.filter("error_ghm").flagged == 2
    assert report.sessions_kept == 0
    assert report.balanced


def test_zone_list_makes_unknown_zones_invalid(tmp_path):
    y = SndsYear(2022)
    inside = y.stay(BDI_COD="01001", c={"NIR_ANO_17": "IN000000000000001"})
    outside = y.stay(BDI_COD="75056", c={"NIR_ANO_17": "OUT00000000000001"})
    y.write(tmp_path / "pmsi", "csv")
    zones = tmp_path / "zones.csv"
    pl.DataFrame({"zone_code": ["01001", "01002"]}).write_csv(zones)
    data = read_pmsi(tmp_path / "pmsi", quality=QualityConfig(zones_file=zones))
    # a zone outside the list: kept for clinical events, its residence not used
    stays = data.stays.sort("stay_id").collect()
    assert stays.select("stay_id", "residence_used").rows() == [(inside, True), (outside, False)]
    assert data.excluded_stays.collect().is_empty()


def test_write_outputs_and_keep_previous_results_on_failure(tmp_path, monkeypatch):
    _filtered_world(tmp_path / "pmsi")
    data = read_pmsi(tmp_path / "pmsi")
    out = tmp_path / "out"
    report = data.write(out)
    staged = pl.read_parquet(out / "staged" / "stays.parquet")
    assert staged.height == report.stays_kept
    assert (out / "report.json").is_file()
    assert pl.read_parquet(out / "staged" / "excluded_stays.parquet").height == sum(f.excluded for f in report.filters)

    # a failure during a second write leaves the first outputs as they were
    def boom(self, progress=None, diagnoses=None):
        raise RuntimeError("interrupted")

    monkeypatch.setattr(type(data), "report", boom)
    with pytest.raises(RuntimeError):
        data.write(out)
    assert pl.read_parquet(out / "staged" / "stays.parquet").equals(staged)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out")] == []


def test_stays_with_unknown_identifiers_are_not_duplicates_of_each_other(tmp_path):
    y = SndsYear(2022)
    a = y.stay(c={"NIR_ANO_17": "xxxxxxxxxxxxxxxxx"})
    b = y.stay(c={"NIR_ANO_17": "xxxxxxxxxxxxxxxxx"})
    c = y.stay(c={"NIR_ANO_17": None})
    d = y.stay(c={"NIR_ANO_17": None})
    y.write(tmp_path, "csv")
    data = read_pmsi(tmp_path, quality=QualityConfig(linkage=False))
    assert sorted(data.stays.collect()["stay_id"]) == sorted([a, b, c, d])
    assert data.report().filter("duplicate_stays").flagged == 0


def test_workspace_goes_where_the_configuration_says(tmp_path):
    _two_years(tmp_path / "pmsi")
    private = tmp_path / "secure" / "work"
    data = read_pmsi(tmp_path / "pmsi", InputConfig(workspace_dir=private))
    data.report()
    staged = list(private.glob("respop-*/typed_*.parquet"))
    assert len(staged) == 8
    data.close()
    assert list(private.iterdir()) == []
