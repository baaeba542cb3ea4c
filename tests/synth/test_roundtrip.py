"""Round trip on `tiny`: generated SNDS tables → the foundation's reader → the canonical stays are
what the generator emitted, per year, and every stay made faulty on purpose is caught and counted
by the filter of the same name: excluded, or kept for clinical events only (residence invalid or
abroad, inter-hospital services: respop.pmsi.quality)."""

from __future__ import annotations

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from respop.pmsi import read_pmsi
from respop.pmsi.quality import CLINICAL_ONLY, CLINICAL_ONLY_BY, EXCLUDED_BY, FILTERS
from respop.synth import FAULTS, generate, load_profile

COMPARED = [
    "patient_key", "residence_zone", "age", "sex", "entry_date", "exit_date", "length_of_stay",
    "via_emergency", "died", "ghm", "principal_diagnosis", "related_diagnosis",
]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny")
    result = generate(load_profile("tiny"), seed=7, out=out)
    data = read_pmsi(out / "pmsi").staged()
    truth = pl.read_parquet(out / "truth" / "stays.parquet")
    return result, data, truth


def test_every_row_is_read_and_none_is_quarantined(tiny):
    result, data, truth = tiny
    report = data.report()
    assert report.balanced
    assert all(t.rows_quarantined == 0 for t in report.tables), [t.reasons for t in report.tables]
    assert report.stays_loaded == truth.height == sum(result.stays.values())


def test_planted_faults_are_caught_by_their_filter(tiny):
    _, data, truth = tiny
    report = data.report()
    planted = dict(truth.group_by("fault").len().drop_nulls().iter_rows())
    assert set(planted) == set(FAULTS)
    assert {f.name: f.excluded + f.clinical_only for f in report.filters} == {
        **{k: 0 for k in planted}, **planted, "legal_entity_duplicates": 0
    }
    clinical = {f.name for f in FILTERS if f.effect == CLINICAL_ONLY}
    assert all(f.excluded == 0 for f in report.filters if f.name in clinical)
    assert all(f.clinical_only == 0 for f in report.filters if f.name not in clinical)
    caught = data.flagged_stays.select(
        pl.col("source_year").alias("year"), "hospital_id", "rsa_num",
        pl.coalesce(EXCLUDED_BY, CLINICAL_ONLY_BY).alias("caught_by"),
    ).collect()
    joined = truth.filter(pl.col("fault").is_not_null()).join(caught, on=["year", "hospital_id", "rsa_num"], how="left")
    assert (joined["fault"] == joined["caught_by"]).all()


@pytest.mark.parametrize("frame", ["stays", "sessions"])
def test_canonical_stays_match_what_was_emitted(tiny, frame):
    _, data, truth = tiny
    # clean stays, and those kept for clinical events only (their residence or count withheld)
    clinical = [f.name for f in FILTERS if f.effect == CLINICAL_ONLY]
    expected = truth.filter(pl.col("fault").is_null() | pl.col("fault").is_in(clinical))
    expected = expected.filter((pl.col("kind") == "session") == (frame == "sessions"))
    got = getattr(data, frame).collect()
    assert got.height == expected.height
    for year in expected["year"].unique():
        e = expected.filter(pl.col("year") == year).sort("hospital_id", "rsa_num")
        g = got.filter(pl.col("source_year") == year).sort("hospital_id", "rsa_num")
        assert_frame_equal(
            g.select("hospital_id", "rsa_num", *COMPARED),
            e.select("hospital_id", "rsa_num", *COMPARED),
            check_dtypes=False,
        )


def test_generation_is_deterministic(tmp_path):
    a = generate(load_profile("tiny"), seed=3, out=tmp_path / "a", years=[2022])
    b = generate(load_profile("tiny"), seed=3, out=tmp_path / "b", years=[2022])
    assert a.stays == b.stays
    for table in ("B", "C", "D", "UM"):
        assert pl.read_parquet(tmp_path / "a" / "pmsi" / f"T_MCO22{table}.parquet").equals(
            pl.read_parquet(tmp_path / "b" / "pmsi" / f"T_MCO22{table}.parquet")
        )


def test_demo_is_calibrated_to_the_published_figures(tmp_path):
    from respop.synth.calibration import calibration

    generate(load_profile("demo"), seed=11, out=tmp_path, years=[2021, 2022, 2023])
    figures = calibration(tmp_path, 2023)
    assert {f.name for f in figures} == {
        "stays_per_inhabitant", "hf_hospitalised_per_100k_adults", "hf_prevalence_adults", "diabetes_prevalence",
        "copd_prevalence_40plus", "copd_admissions_per_100k_25plus",
    }
    # demo has about 240,000 adults, so about 800 of them hospitalised for heart failure a year:
    # a yearly figure moves by several percent from seed to seed. The 10% target of the issue is
    # checked on the national profile (respop synth --report; see benchmarks/README.md).
    for f in figures:
        assert abs(f.relative_difference) < 0.15, f


def test_synth_never_replaces_a_folder_it_did_not_write(tmp_path):
    from respop.errors import RespopError

    precious = tmp_path / "extract"
    (precious / "pmsi").mkdir(parents=True)
    (precious / "pmsi" / "T_MCO22B.csv").write_text("real data")
    with pytest.raises(RespopError, match="not a respop synth output"):
        generate(load_profile("tiny"), seed=1, out=precious, years=[2022])
    assert (precious / "pmsi" / "T_MCO22B.csv").read_text() == "real data"
    generate(load_profile("tiny"), seed=1, out=tmp_path / "synth", years=[2022])
    generate(load_profile("tiny"), seed=2, out=tmp_path / "synth", years=[2022])  # its own output: replaced


@pytest.mark.parametrize("years", [[2021, 2021], [2021, 2023]])
def test_years_must_be_consecutive_and_distinct(tmp_path, years):
    from respop.errors import RespopError

    with pytest.raises(RespopError, match="consecutive and distinct"):
        generate(load_profile("tiny"), seed=1, out=tmp_path, years=years)


def test_no_stay_after_death_and_disease_stays_after_onset(tiny):
    result, _, truth = tiny
    persons = pl.read_parquet(result.out / "truth" / "persons.parquet").rename({"person_key": "patient_key"})
    stays = truth.join(persons, on="patient_key", how="left")
    assert stays.filter(pl.col("exit_date") > pl.col("death_date")).height == 0
    assert stays.filter((pl.col("kind") == "heart_failure") & (pl.col("exit_date") < pl.col("hf_onset"))).height == 0
    assert stays.filter((pl.col("kind") == "diabetes") & (pl.col("exit_date") < pl.col("diabetes_onset"))).height == 0
    assert stays.filter((pl.col("kind") == "copd") & (pl.col("exit_date") < pl.col("copd_onset"))).height == 0
    assert stays.filter((pl.col("kind") == "copd") & pl.col("copd_onset").is_null()).height == 0
    assert persons.filter(pl.col("hf_onset") > pl.col("death_date")).height == 0
    # only the terminal stay ends in hospital on the day of death
    on_death_day = stays.filter((pl.col("exit_date") == pl.col("death_date")) & ~pl.col("died"))
    assert on_death_day.height < 0.01 * stays.height
