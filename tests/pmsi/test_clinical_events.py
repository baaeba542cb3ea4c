"""Quality filters that keep clinical events (issue 18, item 3; docs/pmsi.md §5).

Hand-made SNDS tables with a known truth: the only heart-failure stay of a patient, and their
in-hospital death, on a stay whose residence code is abroad or invalid, or on an inter-hospital
service (SEJ_TYP = B). Such a stay is kept for case finding and outcomes (the case, the death, the
outcome events), and left out of the flows zone → hospital, the residence attachment and (for the
inter-hospital service) the care-use counts."""

from __future__ import annotations

import polars as pl
import pytest

from respop.case_finding.engine import attach_residence, find_cases
from respop.config import QualityConfig
from respop.delineation.flows import flows
from respop.pmsi import read_pmsi
from respop.pmsi.quality import counted_stays, residence_stays
from respop.spec.loaders import load_spec, spec_path
from respop.strata.engine import death_years, outcome_events
from tests.snds_builder import SndsYear

HOME = "010000024"  # the hospital of the clean stays
OTHER = "020000014"  # the hospital of the stays kept for clinical events only
KEYS = {
    "abroad": "ABROAD00000000001",
    "invalid": "INVALID0000000001",
    "service": "SERVICE0000000001",
    "clean": "CLEAN000000000001",
}


def _world(tmp_path):
    """2022: a clean stay (not heart failure) of each patient but 'invalid', at HOME, zone 01001.
    2023: each patient's only heart-failure stay (DP I50, at OTHER): 'abroad' lives in Spain
    (99134) and dies there; 'invalid' has the unknown code 99999 and dies; 'service' is an
    inter-hospital service (SEJ_TYP = B, zone 01002); 'clean' is a plain stay (zone 01003)."""
    y22, y23 = SndsYear(2022), SndsYear(2023)
    ids = {}
    for who in ("abroad", "service", "clean"):
        ids[f"{who}_2022"] = y22.stay(eta=HOME, DGN_PAL="K359", GRG_GHM="06C09T", BDI_COD="01001",
                                       c={"NIR_ANO_17": KEYS[who]})
    hf = {"DGN_PAL": "I500", "GRG_GHM": "05M09T"}
    ids["abroad"] = y23.stay(eta=OTHER, BDI_COD="99134", BDI_DEP="99", SOR_MOD="9", **hf, c={"NIR_ANO_17": KEYS["abroad"]})
    ids["invalid"] = y23.stay(eta=OTHER, BDI_COD="99999", BDI_DEP="99", SOR_MOD="9", **hf, c={"NIR_ANO_17": KEYS["invalid"]})
    ids["service"] = y23.stay(eta=OTHER, BDI_COD="01002", SEJ_TYP="B", ENT_MOD="0", SOR_MOD="0", **hf,
                              c={"NIR_ANO_17": KEYS["service"]})
    ids["clean"] = y23.stay(eta=OTHER, BDI_COD="01003", **hf, c={"NIR_ANO_17": KEYS["clean"]})
    y22.write(tmp_path, "csv")
    y23.write(tmp_path, "csv")
    return ids


@pytest.fixture
def world(tmp_path):
    ids = _world(tmp_path)
    data = read_pmsi(tmp_path).staged()
    yield ids, data
    data.close()


def test_the_stays_are_kept_with_their_uses(world):
    ids, data = world
    stays = data.stays.collect()
    uses = {k: (r, c) for k, r, c in stays.select("stay_id", "residence_used", "stay_counted").iter_rows()}
    assert uses[ids["abroad"]] == (False, True)
    assert uses[ids["invalid"]] == (False, True)
    assert uses[ids["service"]] == (False, False)
    assert uses[ids["clean"]] == (True, True)
    assert data.excluded_stays.collect().is_empty()
    # their diagnoses too: they are what case finding reads
    assert {ids["abroad"], ids["invalid"], ids["service"]} <= set(data.diagnoses.collect()["stay_id"])
    report = data.report()
    assert report.balanced and report.stays_loaded == report.stays_kept == 7
    assert (report.filter("residence_abroad").clinical_only, report.filter("invalid_residence").clinical_only,
            report.filter("inter_hospital_services").clinical_only) == (1, 1, 1)
    assert all(f.excluded == 0 for f in report.filters)


def test_the_only_heart_failure_stay_makes_a_case_and_its_death_counts(world):
    ids, data = world
    spec = load_spec(spec_path("heart_failure"))
    cases = find_cases(spec, data.stays, data.diagnoses, [2023]).collect()
    by_key = {row["patient_key"]: row for row in cases.iter_rows(named=True)}
    assert set(by_key) == set(KEYS.values())  # every one is a case: no clinical event was lost
    for who in ("abroad", "invalid", "service", "clean"):
        assert by_key[KEYS[who]]["is_case"] and by_key[KEYS[who]]["qualifying_stays"] == 1, who
    assert by_key[KEYS["abroad"]]["died_in_year"] and by_key[KEYS["invalid"]]["died_in_year"]
    assert not by_key[KEYS["service"]]["died_in_year"] and not by_key[KEYS["clean"]]["died_in_year"]
    # the in-hospital deaths are deaths for the strata and the survival events
    deaths = dict(death_years(data.stays).collect().iter_rows())
    assert deaths == {KEYS["abroad"]: 2023, KEYS["invalid"]: 2023}
    events = outcome_events(spec, data.stays, data.diagnoses).collect()
    assert set(events.filter(pl.col("kind") == "death")["patient_key"]) == {KEYS["abroad"], KEYS["invalid"]}
    assert set(events.filter(pl.col("kind") == "disease_stay")["patient_key"]) == set(KEYS.values())

    # the old behaviour, for the record: the same filters excluding the stays lose three cases
    # out of four and both deaths (the residence filters and the inter-hospital services off
    # here = their stays dropped by hand)
    old = data.stays.filter(pl.col("residence_used"))
    lost = find_cases(spec, old, data.diagnoses, [2023]).collect()
    assert lost["patient_key"].to_list() == [KEYS["clean"]]


def test_the_residence_comes_only_from_stays_whose_residence_is_used(world):
    _, data = world
    spec = load_spec(spec_path("heart_failure"))
    cases = find_cases(spec, data.stays, data.diagnoses, [2023])
    with_residence = attach_residence(cases, data.stays, spec.window.lookback_years).collect()
    zones = {k: (z, n) for k, z, n in with_residence.select("patient_key", "residence_zone", "residence_stays").iter_rows()}
    # 'abroad' and 'service': the 2022 stay at home gives the zone (not Spain, not the PIE's)
    assert zones[KEYS["abroad"]] == ("01001", 1)
    assert zones[KEYS["service"]] == ("01001", 1)
    # 'invalid' has no stay whose residence is used: no zone (the indicators leave it out)
    assert zones[KEYS["invalid"]] == (None, 0)
    # 'clean': one stay in 01001, one in 01003; the tie goes to the latest
    assert zones[KEYS["clean"]] == ("01003", 2)


def test_flows_count_only_stays_whose_residence_is_used(world):
    _, data = world
    got = flows(data.stays)
    rows = set(got.select("zone_code", "group", "stays").iter_rows())
    # the three 2022 stays at HOME from 01001 and the clean 2023 stay at OTHER from 01003: no
    # flow from Spain, from 99999 or from the PIE's zone 01002 to OTHER
    assert rows == {("01001", HOME, 3), ("01003", OTHER, 1)}
    assert residence_stays(data.stays).collect().height == 4


def test_an_inter_hospital_service_is_not_counted_as_a_stay(world):
    ids, data = world
    counted = set(counted_stays(data.stays).collect()["stay_id"])
    assert ids["service"] not in counted
    assert {ids["abroad"], ids["invalid"], ids["clean"]} <= counted


def test_switched_off_the_filters_withhold_nothing(tmp_path):
    ids = _world(tmp_path)
    quality = QualityConfig(invalid_residence=False, residence_abroad=False, inter_hospital_services=False)
    data = read_pmsi(tmp_path, quality=quality)
    stays = data.stays.collect()
    assert stays["residence_used"].all() and stays["stay_counted"].all()
    # then the flows count the abroad, invalid and PIE zones as any other
    rows = set(flows(data.stays).select("zone_code", "group").iter_rows())
    assert {("99134", OTHER), ("99999", OTHER), ("01002", OTHER)} <= rows
    assert ids["service"] in set(stays["stay_id"])
    data.close()


def test_a_clinical_event_sent_twice_is_still_one_stay(tmp_path):
    """A stay kept for clinical events only is a duplicate candidate like any kept stay: the copy
    is excluded, the first kept (with its residence still unused)."""
    y = SndsYear(2023)
    first = y.stay(eta=OTHER, BDI_COD="99134", BDI_DEP="99", c={"NIR_ANO_17": KEYS["abroad"]})
    copy = y.stay(eta=OTHER, BDI_COD="99134", BDI_DEP="99", c={"NIR_ANO_17": KEYS["abroad"]})
    y.write(tmp_path, "csv")
    data = read_pmsi(tmp_path)
    assert data.stays.select("stay_id", "residence_used").collect().rows() == [(first, False)]
    assert data.excluded_stays.select("stay_id", "excluded_by").collect().rows() == [(copy, "duplicate_stays")]
    report = data.report()
    assert report.balanced and report.filter("residence_abroad").clinical_only == 1
    assert report.filter("residence_abroad").flagged == 2
