"""COPD in the synthetic world (tiny, seed 7): its truth is where respop's validation looks for it,
every J44 written in the PMSI tables belongs to a person with COPD at that date, the generator's
codes are codes of the French CIM-10, and adding COPD left the other diseases' draws in place."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

from respop.pmsi.nomenclatures import codes
from respop.synth import generate, load_profile
from respop.synth import stays as synth_stays
from respop.synth.generate import TRUTH_DISEASES
from respop.synth.people import COPD_TARGET_40PLUS, initial_people


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny_copd")
    generate(load_profile("tiny"), seed=7, out=out)
    truth = out / "truth"
    return (
        out,
        pl.read_parquet(truth / "persons.parquet"),
        pl.read_parquet(truth / "severity.parquet"),
        pl.read_parquet(truth / "stays.parquet"),
    )


def test_truth_says_where_each_disease_is(tiny):
    out, persons, severity, stays = tiny
    described = json.loads((out / "truth" / "diseases.json").read_text(encoding="utf-8"))
    assert described == TRUTH_DISEASES
    assert set(described) == {"diabetes", "heart_failure", "copd"}
    for disease, where in described.items():
        assert where["severity_column"] in severity.columns, disease
        assert where["onset_column"] in persons.columns, disease
        assert stays.filter(pl.col("kind") == where["stay_kind"]).height > 0, disease
        # everyone with the disease in a year has an onset before that year ends
        ill = severity.filter(pl.col(where["severity_column"]) > 0).join(persons, on="person_key")
        assert ill.height > 0
        assert ill.filter(pl.col(where["onset_column"]).is_null()).height == 0, disease
        assert ill.filter(pl.col(where["onset_column"]).dt.year() > pl.col("year")).height == 0, disease


def test_copd_prevalence_and_stages(tiny):
    _, persons, severity, _ = tiny
    first = severity.filter(pl.col("year") == 2021).join(persons, on="person_key")
    copd = first.filter(pl.col("copd_stage") > 0)
    assert set(copd["copd_stage"].unique()) == {1, 2, 3}
    assert copd.filter(2021 - pl.col("birth_year") < 35).height == 0
    assert copd.filter(pl.col("sex") == 1).height > copd.filter(pl.col("sex") == 2).height  # men more often
    # the 40+ prevalence at the start is the target (all ages are in severity only when ill: use residence)
    out_ages = copd.filter(2021 - pl.col("birth_year") >= 40).height
    residents = pl.read_parquet(tiny[0] / "truth" / "residence.parquet").filter(pl.col("year") == 2021)
    over_40 = residents.join(persons, on="person_key").filter(2021 - pl.col("birth_year") >= 40).height
    assert abs(out_ages / over_40 - COPD_TARGET_40PLUS) < 0.01


def _stays_with_j44(out) -> pl.DataFrame:
    """Every stay of the SNDS tables with J44 as DP, DR or DAS, with its patient and exit year."""
    frames = []
    for year in (2021, 2022, 2023):
        yy = f"{year % 100:02d}"
        b = pl.read_parquet(out / "pmsi" / f"T_MCO{yy}B.parquet")
        c = pl.read_parquet(out / "pmsi" / f"T_MCO{yy}C.parquet").select("ETA_NUM", "RSA_NUM", "NIR_ANO_17")
        d = pl.read_parquet(out / "pmsi" / f"T_MCO{yy}D.parquet")
        das = d.filter(pl.col("ASS_DGN").str.starts_with("J44")).select("ETA_NUM", "RSA_NUM").unique()
        coded = b.filter(pl.col("DGN_PAL").str.starts_with("J44") | pl.col("DGN_REL").str.starts_with("J44").fill_null(False))
        keys = pl.concat([coded.select("ETA_NUM", "RSA_NUM"), das]).unique()
        frames.append(keys.join(c, on=["ETA_NUM", "RSA_NUM"]).with_columns(pl.lit(year, pl.Int16).alias("year")))
    return pl.concat(frames)


def test_j44_is_written_only_for_people_with_copd(tiny):
    out, persons, _, stays = tiny
    j44 = _stays_with_j44(out)
    assert j44.height > 50
    with_truth = j44.join(
        stays.select("year", pl.col("hospital_id").alias("ETA_NUM"), pl.col("rsa_num").alias("RSA_NUM"), "exit_date", "patient_key"),
        on=["year", "ETA_NUM", "RSA_NUM"],
    ).join(persons.rename({"person_key": "patient_key"}), on="patient_key")
    assert with_truth.height == j44.height
    assert with_truth.filter(pl.col("copd_onset").is_null() | (pl.col("copd_onset") > pl.col("exit_date"))).height == 0


def test_the_generator_writes_codes_of_the_french_cim10():
    m = synth_stays
    written = {
        *(c for c, _ in m.HF_DP), *m.HF_BRANCH_B_DP, *m.HF_NEAR_MISS_DP, *m.T2_DAS, *m.T1_DAS,
        *(v for pair in m.COMPLICATION_STAY.values() for v in pair), *m.UNCOMPLICATED_DIABETES_DP,
        *(c for c, _, _ in m.BACKGROUND_DP), m.DELIVERY[0], *m.NEAR_MISS_DAS, *m.COMORBIDITY_DAS,
        *(c for c, _ in m.COPD_DP), *m.COPD_BRANCH_B_DP, *m.COPD_NEAR_MISS_DP,
        # written inline in stays.py
        "I500", "I501", "I509", "E149", "N183", "N184", "N185", "J449", "J96110", "Z511", "Z491",
    }
    assert sorted(written - set(codes("MS_CIM_V"))) == []


def test_copd_draws_leave_the_other_diseases_in_place():
    """COPD has its own random stream: the persons and their diabetes and heart failure at the start
    are what the chunk's stream alone gives."""
    profile = load_profile("tiny")
    from respop.synth.geography import make_world

    world = make_world(profile.geography, np.random.default_rng(7))
    zone_index = {z: i for i, z in enumerate(world.zones["zone_code"].to_list())}
    a = initial_people(np.random.default_rng([7, 0]), world.population, zone_index, 2021, np.random.default_rng([7, 0, 1]))
    b = initial_people(np.random.default_rng([7, 0]), world.population, zone_index, 2021, np.random.default_rng([7, 0, 99]))
    for field in ("key", "sex", "birth_year", "diabetes_type", "hf_stage", "complications"):
        assert np.array_equal(getattr(a, field), getattr(b, field)), field
    assert not np.array_equal(a.copd_stage, b.copd_stage)
