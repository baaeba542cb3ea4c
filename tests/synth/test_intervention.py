"""The planted intervention and the deprivation index of the synthetic world (issue 20).

tiny, seed 1 (2021-2023), generated twice: without an intervention, and with two pilots (planted
territories 1 and 2, from 2022 and 2023) where heart-failure stays are halved (-0.5: a large effect,
so that the ratio is checked without aggregating seeds) and COPD exacerbation stays raised by half
(+0.5). The intervention draws from its own stream after every other draw, so the world with it is
the world without it, minus (or plus) the pilots' stays.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from respop.errors import ConfigError, RespopError
from respop.resources import synthetic_profiles_dir
from respop.synth import generate, load_profile, stays
from respop.synth.profiles import InterventionProfile, load_intervention, with_intervention

PLANTED = InterventionProfile(pilots=[1, 2], start_years=[2022, 2023], effects={"heart_failure": -0.5, "copd": 0.5})
SEED = 1


@pytest.fixture(scope="module")
def worlds(tmp_path_factory):
    base = tmp_path_factory.mktemp("tiny_without")
    planted = tmp_path_factory.mktemp("tiny_with")
    generate(load_profile("tiny"), SEED, base)
    generate(with_intervention(load_profile("tiny"), PLANTED), SEED, planted)
    return base, planted


def _stays(out) -> pl.DataFrame:
    zones = pl.read_parquet(out / "truth" / "zone_territory.parquet").select(pl.col("zone_code").alias("true_zone"), "territory_id")
    return pl.read_parquet(out / "truth" / "stays.parquet").join(zones, on="true_zone", how="left")


def test_truth_of_the_intervention(worlds):
    _, planted = worlds
    truth = pl.read_parquet(planted / "truth" / "intervention.parquet")
    assert truth.select("territory_id", "start_year", "disease", "effect").sort("territory_id", "disease").rows() == [
        (1, 2022, "copd", 0.5), (1, 2022, "heart_failure", -0.5), (2, 2023, "copd", 0.5), (2, 2023, "heart_failure", -0.5)
    ]
    assert truth["territory_name"].null_count() == 0
    # the zones of each pilot are in the truth already
    zones = pl.read_parquet(planted / "truth" / "zone_territory.parquet")
    assert zones.filter(pl.col("territory_id").is_in([1, 2])).height > 0


def test_counted_stays_are_the_written_ones(worlds):
    """observed = the truth's stays of the kind (a duplicated stay once) per territory and year;
    avoided = counterfactual - observed."""
    for out in worlds:
        counts = pl.read_parquet(out / "truth" / "intervention_stays.parquet")
        assert (counts["counterfactual"] - counts["observed"]).equals(counts["avoided"], check_names=False)
        assert counts.height == 3 * 3 * 3  # territories × years × diseases, zeros included
        written = (
            _stays(out).filter(pl.col("kind").is_in(["heart_failure", "diabetes", "copd"]), pl.col("fault").ne("duplicate_stays").fill_null(True))
            .group_by("territory_id", pl.col("year").cast(pl.Int64), pl.col("kind").alias("disease")).agg(pl.len().cast(pl.Int64).alias("n"))
        )
        joined = counts.join(written, on=["territory_id", "year", "disease"], how="left").with_columns(pl.col("n").fill_null(0))
        assert (joined["observed"] == joined["n"]).all()
        # terminal: the in-hospital deaths with the disease's principal diagnosis, left by the intervention
        deaths = (
            _stays(out).filter(pl.col("kind") == "death", pl.col("fault").ne("duplicate_stays").fill_null(True))
            .with_columns(pl.when(pl.col("principal_diagnosis").str.starts_with("I50")).then(pl.lit("heart_failure"))
                          .when(pl.col("principal_diagnosis").str.starts_with("J44")).then(pl.lit("copd")).alias("disease"))
            .group_by("territory_id", pl.col("year").cast(pl.Int64), "disease").agg(pl.len().cast(pl.Int64).alias("deaths"))
        )
        joined = counts.join(deaths, on=["territory_id", "year", "disease"], how="left").with_columns(pl.col("deaths").fill_null(0))
        assert (joined["terminal"] == joined["deaths"]).all()
        assert counts.filter(pl.col("disease") == "heart_failure")["terminal"].sum() > 0
    assert pl.read_parquet(worlds[0] / "truth" / "intervention_stays.parquet")["terminal"].equals(
        pl.read_parquet(worlds[1] / "truth" / "intervention_stays.parquet")["terminal"])


def test_counterfactual_is_the_world_without_the_intervention(worlds):
    base, planted = worlds
    without = pl.read_parquet(base / "truth" / "intervention_stays.parquet")
    with_ = pl.read_parquet(planted / "truth" / "intervention_stays.parquet")
    assert (without["avoided"] == 0).all()
    assert with_["counterfactual"].equals(without["observed"], check_names=False)
    changed = with_.filter(pl.col("avoided") != 0).select("territory_id", "year", "disease").unique()
    allowed = {(1, 2022), (1, 2023), (2, 2023)}
    assert {(t, y) for t, y, _ in changed.rows()} <= allowed
    assert set(changed["disease"]) == {"heart_failure", "copd"}


def test_pilots_stays_move_by_the_effect(worlds):
    """Expected observed = (1 + effect) × counterfactual; here about 100 post-start stays a disease."""
    _, planted = worlds
    counts = pl.read_parquet(planted / "truth" / "intervention_stays.parquet")
    post = counts.filter(
        ((pl.col("territory_id") == 1) & (pl.col("year") >= 2022)) | ((pl.col("territory_id") == 2) & (pl.col("year") >= 2023))
    )
    for disease, effect in PLANTED.effects.items():
        rows = post.filter(pl.col("disease") == disease)
        ratio = rows["observed"].sum() / rows["counterfactual"].sum()
        n = rows["counterfactual"].sum()
        assert n > 40
        assert abs(ratio - (1 + effect)) < 3.5 * np.sqrt(abs(effect) * (1 - abs(effect)) / n), (disease, ratio, n)


def test_the_rest_of_the_world_is_unchanged(worlds):
    """Donors, the pilots before their start and the other diseases: the same stays, row for row;
    the persons and their diseases are the same (the course of the disease is unchanged)."""
    base, planted = worlds
    a, b = _stays(base), _stays(planted)
    unaffected = ~(
        pl.col("kind").is_in(["heart_failure", "copd"])
        & (((pl.col("territory_id") == 1) & (pl.col("year") >= 2022)) | ((pl.col("territory_id") == 2) & (pl.col("year") >= 2023)))
    )
    assert a.filter(unaffected).equals(b.filter(unaffected))
    for name in ("persons", "severity", "residence"):
        assert pl.read_parquet(base / "truth" / f"{name}.parquet").equals(pl.read_parquet(planted / "truth" / f"{name}.parquet")), name
    # the avoided heart-failure stays are gone, the added COPD stays are new and clean
    keys = ["year", "hospital_id", "rsa_num"]
    gone = a.join(b, on=keys, how="anti")
    new = b.join(a, on=keys, how="anti")
    assert set(gone["kind"]) == {"heart_failure"} and set(new["kind"]) == {"copd"}
    assert new["fault"].null_count() == new.height
    assert new.select(pl.col("exit_date").dt.year() == pl.col("year")).to_series().all()
    assert new.select(pl.col("entry_date") <= pl.col("exit_date")).to_series().all()
    # coded as the COPD stays are: J44 as DP, the second branch's DP, or a near miss
    codes = {c for c, _ in stays.COPD_DP} | set(stays.COPD_BRANCH_B_DP) | set(stays.COPD_NEAR_MISS_DP)
    assert set(new["principal_diagnosis"]) <= codes


def test_the_pmsi_tables_follow(worlds):
    _, planted = worlds
    truth = pl.read_parquet(planted / "truth" / "stays.parquet")
    for year in (2021, 2022, 2023):
        b = pl.read_parquet(planted / "pmsi" / f"T_MCO{year % 100}B.parquet")
        c = pl.read_parquet(planted / "pmsi" / f"T_MCO{year % 100}C.parquet")
        d = pl.read_parquet(planted / "pmsi" / f"T_MCO{year % 100}D.parquet")
        assert b.height == c.height == truth.filter(pl.col("year") == year).height
        assert b.select(pl.struct("ETA_NUM", "RSA_NUM").is_duplicated().any()).item() is False
        assert d.join(b, on=["ETA_NUM", "RSA_NUM"], how="anti").height == 0


@pytest.mark.parametrize(
    "text, message",
    [
        ("pilots = [1]\nstart_years = [2022]\n[effects]\nheart_failure = -1.0\n", "outside (-1, 1]"),
        ("pilots = [1]\nstart_years = [2022]\n[effects]\nheart_failure = 1.5\n", "outside (-1, 1]"),
        ("pilots = [1]\nstart_years = [2022]\n[effects]\ncancer = -0.2\n", "unknown disease"),
        ("pilots = [1, 2]\nstart_years = [2022]\n[effects]\nheart_failure = -0.2\n", "one per pilot"),
        ("pilots = [1]\nstart_years = [2022]\n", "effects"),
    ],
)
def test_invalid_intervention_files(tmp_path, text, message):
    path = tmp_path / "intervention.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("]", r"\]")):
        load_intervention(path)


def test_a_pilot_outside_the_world_or_a_start_outside_the_years(tmp_path):
    tiny = load_profile("tiny")  # 3 planted territories, 2021-2023 (simulated from 2019)
    with pytest.raises(ConfigError, match=r"pilots \[4\] are not planted territories of this world \(1 to 3\)"):
        with_intervention(tiny, InterventionProfile(pilots=[4], start_years=[2022], effects={"heart_failure": -0.2}))
    warm_up = with_intervention(tiny, InterventionProfile(pilots=[1], start_years=[2020], effects={"heart_failure": -0.2}))
    with pytest.raises(RespopError, match=r"start_years \[2020\] are outside the years generated \(2021-2023\)"):
        generate(warm_up, 1, tmp_path / "out")
    ok = with_intervention(tiny, InterventionProfile(pilots=[1], start_years=[2022], effects={"heart_failure": -0.2}))
    with pytest.raises(RespopError, match=r"outside the years generated \(2023-2023\)"):
        generate(ok, 1, tmp_path / "out", years=[2023])
    with pytest.raises(ConfigError, match="not planted territories"):
        load_profile_text(tmp_path, "[intervention]\npilots = [0]\nstart_years = [2022]\neffects = { heart_failure = -0.2 }\n")


def load_profile_text(tmp_path, extra: str):
    """tiny's profile file with ``extra`` appended."""
    path = tmp_path / "custom.toml"
    path.write_text((synthetic_profiles_dir() / "tiny.toml").read_text(encoding="utf-8") + "\n" + extra, encoding="utf-8")
    return load_profile(path)


def test_synth_command_option(tmp_path):
    from respop import cli

    path = tmp_path / "intervention.toml"
    path.write_text("[intervention]\npilots = [3]\nstart_years = [2023]\n[intervention.effects]\ndiabetes = -0.3\n", encoding="utf-8")
    out = tmp_path / "world"
    result = CliRunner().invoke(cli.app, ["synth", "--profile", "tiny", "--seed", "2", "--out", str(out), "--intervention", str(path)])
    assert result.exit_code == 0, result.output
    truth = pl.read_parquet(out / "truth" / "intervention.parquet")
    assert truth.select("territory_id", "start_year", "disease", "effect").rows() == [(3, 2023, "diabetes", -0.3)]
    bad = tmp_path / "bad.toml"
    bad.write_text("pilots = [9]\nstart_years = [2023]\n[effects]\ndiabetes = -0.3\n", encoding="utf-8")
    result = CliRunner().invoke(cli.app, ["synth", "--profile", "tiny", "--out", str(tmp_path / "w2"), "--intervention", str(bad)])
    assert isinstance(result.exception, ConfigError)  # respop.cli.main prints it on one line, status 2
    assert "pilots [9] are not planted territories of this world (1 to 3)" in str(result.exception)
    assert not (tmp_path / "w2").exists()


def test_deprivation_index_of_every_zone_correlated_with_the_diseases(worlds):
    """reference/deprivation.parquet: every zone, standardised (population weights); the zones'
    age-standardised ratio of cases (type 2 diabetes, heart failure, COPD, every year) rises with it
    (the generator multiplies their risk by exp(0.15 z); seeds 1-5 of tiny give r = 0.85-0.95 and a
    slope of 0.10-0.18)."""
    base, planted = worlds
    dep = pl.read_parquet(base / "reference" / "deprivation.parquet")
    zones = pl.read_parquet(base / "reference" / "zones.parquet", columns=["zone_code"])
    assert dep.columns == ["zone_code", "deprivation"]
    assert sorted(dep["zone_code"]) == sorted(zones["zone_code"])
    assert dep["deprivation"].null_count() == 0 and dep["deprivation"].std() > 0.5
    assert pl.read_parquet(planted / "reference" / "deprivation.parquet").equals(dep)  # its own stream
    residence = pl.read_parquet(base / "truth" / "residence.parquet")
    persons = pl.read_parquet(base / "truth" / "persons.parquet").select("person_key", "birth_year")
    severity = pl.read_parquet(base / "truth" / "severity.parquet")
    people = (
        residence.join(persons, on="person_key")
        .with_columns(((pl.col("year") - pl.col("birth_year")) // 10).clip(0, 9).alias("band"))
        .join(severity.select("person_key", "year", "diabetes_type", "hf_stage", "copd_stage"), on=["person_key", "year"], how="left")
        .with_columns(
            (
                (pl.col("diabetes_type") == 2).fill_null(False).cast(pl.Int64)
                + (pl.col("hf_stage") > 0).fill_null(False).cast(pl.Int64)
                + (pl.col("copd_stage") > 0).fill_null(False).cast(pl.Int64)
            ).alias("cases")
        )
    )
    rates = people.group_by("band").agg((pl.col("cases").sum() / pl.len()).alias("rate"))
    by_zone = (
        people.join(rates, on="band").group_by("zone_code")
        .agg(pl.col("cases").sum().alias("observed"), pl.col("rate").sum().alias("expected"))
        .join(dep, on="zone_code")
    )
    ratio = np.log(by_zone["observed"].to_numpy() / by_zone["expected"].to_numpy())
    z = by_zone["deprivation"].to_numpy()
    assert np.corrcoef(ratio, z)[0, 1] > 0.6
    assert 0.05 < np.polyfit(z, ratio, 1)[0] < 0.3
