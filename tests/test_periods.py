"""What each part of a run needs of the data's period (respop.periods): unit tests on
configurations and file names, no pipeline (tests/store/test_any_period.py runs it)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from respop import periods, stages
from respop.config import load_config
from respop.pipeline import file_years

CONFIG = """
name = "t"
[input]
pmsi_dir = "data/pmsi"
{input}
[output]
dir = "run"
{extra}
"""


def config(tmp_path: Path, input: str = "", extra: str = "", files: tuple[str, ...] = ()):
    (tmp_path / "data" / "pmsi").mkdir(parents=True, exist_ok=True)
    for name in files:
        (tmp_path / "data" / "pmsi" / name).write_text("x")
    path = tmp_path / "t.toml"
    path.write_text(CONFIG.format(input=input, extra=extra))
    return load_config(path)


def snds(*years: int) -> tuple[str, ...]:
    return tuple(f"T_MCO{y % 100:02d}{t}.csv" for y in years for t in ("B", "C", "D", "UM"))


def parts(skips) -> list[str]:
    return [s.part for s in skips]


def test_one_year_leaves_out_transitions_survival_and_prediction(tmp_path):
    skips = periods.skipped(config(tmp_path), [2023])
    assert parts(skips) == ["transitions", "survival", "prediction"]
    survival = skips[1]
    assert survival.step == "strata" and survival.min_years == 2 and survival.years == (2023,)
    assert survival.fr.startswith("Survie non estimée : il faut au moins deux années de données (cette exécution en a une)")
    assert survival.en.startswith("survival not estimated: it needs at least two years of data (this run has one: 2023)")
    assert skips[2].fr.startswith("Prédiction non estimée : il faut au moins trois années de données (cette exécution en a une)")
    assert skips[0].fr.startswith("Trajectoires non calculées : il faut au moins deux années de données")
    assert all(s.fr.endswith(".") and not s.en.endswith(".") for s in skips)


def test_two_years_leave_out_prediction_only(tmp_path):
    skips = periods.skipped(config(tmp_path), [2022, 2023])
    assert parts(skips) == ["prediction"]
    assert "(cette exécution en a deux : 2022, 2023)" in skips[0].fr
    assert "(this run has two: 2022, 2023)" in skips[0].en


def test_three_years_run_everything(tmp_path):
    assert periods.skipped(config(tmp_path), [2021, 2022, 2023]) == []
    assert periods.skipped(config(tmp_path), range(2014, 2024)) == []


def test_years_that_do_not_follow_each_other(tmp_path):
    """Survival needs two years, any; transitions a year and the next; prediction its test year
    (the last but one) and a training year with its next year (respop.strata.prediction.evaluate)."""
    cfg = config(tmp_path)
    assert parts(periods.skipped(cfg, [2019, 2023])) == ["transitions", "prediction"]
    gap = periods.skipped(cfg, [2019, 2021, 2023])
    assert parts(gap) == ["transitions", "prediction"]
    assert "trois années de données qui se suivent" in gap[1].fr and "that follow each other" in gap[1].en
    assert periods.skipped(cfg, [2019, 2020, 2022, 2023]) == []  # trained on 2019 (→ 2020), tested on 2022
    assert parts(periods.skipped(cfg, [2020, 2021, 2023])) == ["prediction"]  # 2022, the test year, is absent


def test_models_off_and_hospital_mode_leave_survival_and_prediction_to_their_own_rule(tmp_path):
    """--no-models is the user's choice (the store refuses it, respop.stages), and hospital mode
    fits no model: neither is a limit of the period."""
    assert parts(periods.skipped(config(tmp_path), [2023], models=False)) == ["transitions"]
    hospital = config(tmp_path, extra='[hospital]\nfiness = "750712184"\n')
    assert parts(periods.skipped(hospital, [2023])) == ["transitions"]


def test_steps_asked(tmp_path):
    cfg = config(tmp_path, extra='[evaluation]\npilots = { "1" = 2023 }\n')
    assert parts(periods.skipped(cfg, [2023], steps=["input", "store"])) == []
    assert parts(periods.skipped(cfg, [2023], steps=["evaluation"])) == ["evaluation"]
    assert periods.skipped(cfg, None) == []  # years unknown before reading: the steps will say


def test_the_evaluation_needs_min_pre_years_before_each_start(tmp_path):
    cfg = config(tmp_path, extra='[evaluation]\npilots = { "1" = 2022, "Nord" = 2023 }\nmin_pre_years = 2\n')
    assert periods.evaluation_skip(cfg, [2020, 2021, 2022, 2023]) is None
    skip = periods.evaluation_skip(cfg, [2021, 2022, 2023])
    assert skip is not None and skip.part == skip.step == "evaluation" and skip.min_years == 3
    assert skip.fr == ("Évaluation non réalisée : il faut l'année de début de chaque territoire pilote et au moins "
                       "deux années de données avant elle (cette exécution en a trois : 2021, 2022, 2023 ; début de "
                       "« 1 » en 2022).")
    assert skip.en.startswith("evaluation not run: it needs each pilot's start year in the data and at least two years")
    late = periods.evaluation_skip(cfg, [2018, 2019, 2020, 2021])  # both start after the data
    assert "« 1 » en 2022, « Nord » en 2023" in late.fr
    assert periods.evaluation_skip(config(tmp_path), [2023]) is None  # no [evaluation]


def test_records_round_trip(tmp_path):
    skips = periods.skipped(config(tmp_path), [2022, 2023])
    assert periods.from_dicts([s.to_dict() for s in skips]) == skips
    assert periods.from_dicts([{"part": "survival"}, "text", None]) == []  # what cannot be read is left out
    assert periods.from_dicts(None) == []


def test_data_years_from_the_configuration_then_the_file_names(tmp_path):
    cfg = config(tmp_path, files=snds(2022, 2023))
    assert file_years(cfg) == [2022, 2023] and periods.data_years(cfg, file_years(cfg)) == [2022, 2023]
    assert periods.data_years(config(tmp_path, input="years = [2023]"), [2022, 2023]) == [2023]
    cases_years = config(tmp_path, extra="[cases]\nyears = [2022]\n")
    assert periods.data_years(cases_years, [2022, 2023]) == [2022]
    assert periods.data_years(cfg, None) is None


def test_data_years_of_atih_files(tmp_path):
    names = [f"750712184.{y}.12.{kind}" for y in (2021, 2022, 2023) for kind in ("rsa", "ano")]
    assert file_years(config(tmp_path, files=tuple(names))) == [2021, 2022, 2023]


@pytest.mark.parametrize("files", [(), ("T_MCOAAB.csv", "T_MCOAAC.csv", "T_MCOAAD.csv", "T_MCOAAUM.csv"),
                                   ("T_MCO23B.csv",)])
def test_years_unknown_before_reading(tmp_path, files):
    """No file, names without a year, a table missing: unknown (the input step says what is wrong)."""
    assert file_years(config(tmp_path, files=files)) is None


def report(cfg, years: list[int]) -> None:
    (cfg.output.dir / "input").mkdir(parents=True, exist_ok=True)
    (cfg.output.dir / "input" / "report.json").write_text(json.dumps({"years": years}))


def test_an_evaluation_the_period_does_not_allow_is_not_part_of_the_build(tmp_path):
    """Its folder, left by an earlier build on more years, is neither checked nor published: the
    years are those of the outputs (the input report), read by respop.stages."""
    cfg = config(tmp_path, extra='[evaluation]\npilots = { "1" = 2023 }\n')
    assert periods.output_years(cfg) is None and "evaluation" in stages.active_stages(cfg)  # unknown: kept
    report(cfg, [2022, 2023])
    assert periods.output_years(cfg) == [2022, 2023]
    assert "evaluation" not in stages.active_stages(cfg) and not periods.allowed(cfg, "evaluation")
    report(cfg, [2019, 2020, 2021, 2022, 2023])
    assert "evaluation" in stages.active_stages(cfg) and periods.allowed(cfg, "evaluation")
