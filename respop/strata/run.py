"""``respop strata run``: strata, care use, transitions, survival and prediction of a configuration.

Reads the cases of ``respop cases run`` (``<output.dir>/cases/cases.parquet``) and the PMSI
(staged once), and writes ``<output.dir>/strata/`` atomically (docs/strata.md).
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from respop import __version__
from respop.case_finding.run import zone_territory
from respop.case_finding.spec import AlgorithmSpec, load_specs
from respop.config import Config
from respop.errors import ConfigError, InputError
from respop.fsutil import atomic_folder
from respop.strata.engine import assign, care_use, death_years, outcome_events, qualifying_ids, transitions
from respop.strata.features import OUTCOMES, compute_features, load_features, model_features

Progress = Callable[[str], None]
COMORBIDITIES = ("ckd", "copd", "other_disease")
"""Comorbidities of the Cox model (those present among the features)."""


@dataclass
class StrataResult:
    out: Path
    person_strata: pl.DataFrame = field(repr=False)
    summary: dict


def steps(config: Config) -> int:
    return 4 + 4 * len(config.diseases)


def cases_path(config: Config) -> Path:
    path = config.output.dir / "cases" / "cases.parquet"
    if not path.is_file():
        raise InputError("the cases are not there: run `respop cases run` on this configuration first", path)
    return path


def strata_specs(config: Config) -> list[AlgorithmSpec]:
    specs = load_specs(list(config.diseases), config.cases.algorithms_dir)
    missing = [s.disease for s in specs if s.strata is None]
    if missing:
        raise ConfigError(f"no [strata] part in the algorithm(s) of {missing} (docs/strata.md)")
    return specs


def run_strata(config: Config, progress: Progress | None = None, data=None, spark=None, models: bool = True) -> StrataResult:
    """Strata and everything that follows from them, for every configured disease.

    ``data``: the PMSI already read and made canonical by the caller, who closes it (``respop
    run``); otherwise read here. ``spark``: a SparkSession running the strata specs, care use and
    transitions (respop.spark); survival and prediction always run here, on the person-years.
    ``models`` false leaves out survival and prediction (benchmarks of the data steps only).
    """
    from respop.pmsi import read_pmsi
    from respop.strata.prediction import evaluate
    from respop.strata.survival import follow_up, survival

    step = progress or (lambda _label: None)
    started = time.perf_counter()
    timings: dict[str, float] = {}

    def lap(name: str, since: float) -> float:
        now = time.perf_counter()
        timings[name] = round(timings.get(name, 0.0) + now - since, 2)
        return now

    specs = strata_specs(config)
    features = load_features(config.cases.algorithms_dir)
    cases = pl.scan_parquet(cases_path(config))
    territories = zone_territory(config)
    years = sorted(cases.select(pl.col("index_year").unique()).collect()["index_year"].to_list())
    if not years:
        raise InputError("cases.parquet holds no case", cases_path(config))
    last_year = years[-1]
    order = {s.disease: [lv.name for lv in s.strata.levels] for s in specs}
    own = data is None
    if own:
        step("reading the PMSI")
        data = read_pmsi(None, config.input, config.quality)
    try:
        staged = data.canonical()
        t = lap("read", started)
        last_date = staged.stays.select(pl.col("exit_date").max()).collect().item() or dt.date(last_year, 12, 31)
        last_date = min(last_date, dt.date(last_year, 12, 31))
        if spark is None:
            frames, events = [], []
            for spec in specs:
                step(f"strata of {spec.algorithm.name.lower()}")
                ids = _collect(qualifying_ids(spec, staged.stays, staged.diagnoses), spec.disease).lazy()
                frames.append(_collect(assign(spec, compute_features(spec, cases, staged.stays, staged.diagnoses, features, ids)), spec.disease))
                t = lap("features", t)
                step(f"events of {spec.algorithm.name.lower()}")
                events.append(_collect(outcome_events(spec, staged.stays, staged.diagnoses, ids), spec.disease))
                t = lap("events", t)
            deaths = _collect(death_years(staged.stays), "deaths")
            person_strata = pl.concat(frames, how="vertical_relaxed").sort("disease", "year", "patient_key")
            t = lap("events", t)
            step("care use and transitions")
            use = care_use(person_strata, territories)
            t = lap("care_use", t)
            moves = transitions(person_strata, deaths, last_year, order)
            t = lap("transitions", t)
            all_events = pl.concat(events)
        else:
            from respop.spark.run import compute_strata

            step("strata, events, care use and transitions on Spark")
            person_strata, all_events, use, moves, spark_timings = compute_strata(
                spark, specs, features, cases_path(config), staged, territories, last_year, order
            )
            timings.update(spark_timings)
            t = time.perf_counter()
    finally:
        if own:
            data.close()
    comorbidities = [c for c in COMORBIDITIES if c in person_strata.columns]
    surv, reports = None, {}
    if models:
        step("survival")
        follow = follow_up(person_strata, all_events, last_date)
        surv = survival(follow, comorbidities, confidence=config.cases.confidence)
        t = lap("survival", t)
        for spec in specs:
            step(f"prediction for {spec.algorithm.name.lower()}")
            reports[spec.disease] = evaluate(
                person_strata, spec.disease, last_year, features=["female", "stratum_level", *model_features(features)],
                synthetic=_synthetic(config),
            )
        t = lap("prediction", t)
    summary = _summary(config, specs, person_strata, moves, surv, reports, last_date, time.perf_counter() - started)
    summary["engine"] = "spark" if spark is not None else "polars"
    summary["timings"] = timings
    step("writing the outputs")
    names = {s.disease: s.algorithm.name for s in specs}
    out = config.output.dir / "strata"
    with atomic_folder(out) as tmp:
        person_strata.write_parquet(tmp / "person_strata.parquet")
        use.write_parquet(tmp / "care_use.parquet")
        moves.write_parquet(tmp / "transitions.parquet")
        if surv is not None:
            (tmp / "survival").mkdir()
            surv.km.write_parquet(tmp / "survival" / "km.parquet")
            surv.logrank.write_csv(tmp / "survival" / "logrank.csv")
            surv.cox.write_csv(tmp / "survival" / "cox.csv")
            surv.ph_test.write_csv(tmp / "survival" / "cox_ph_test.csv")
        for disease, report in reports.items():
            folder = tmp / "prediction" / disease
            folder.mkdir(parents=True)
            report.metrics.write_csv(folder / "metrics.csv")
            report.calibration.write_csv(folder / "calibration.csv")
            report.importance.write_csv(folder / "importance.csv")
            (folder / "model_card.md").write_text(report.model_card(names[disease]), encoding="utf-8")
        (tmp / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False), encoding="utf-8")
    return StrataResult(out=out, person_strata=person_strata, summary=summary)


def _synthetic(config: Config) -> bool:
    """The PMSI folder was written by ``respop synth`` (the model card then says so)."""
    folder = config.input.pmsi_dir
    return folder is not None and (folder.parent / ".respop-synth").is_file()


def _summary(config, specs, person_strata, moves, surv, reports, last_date, seconds) -> dict:
    counts = person_strata.group_by("disease", "year", "stratum").len().sort("disease", "year", "stratum")
    return {
        "name": config.name,
        "respop_version": __version__,
        "written": dt.datetime.now().isoformat(timespec="seconds"),
        "seconds": round(seconds, 1),
        "end_of_follow_up": last_date.isoformat(),
        "algorithms": [{"id": s.disease, "version": s.algorithm.version, "levels": [lv.name for lv in s.strata.levels]} for s in specs],
        "person_years": counts.rename({"len": "people"}).to_dicts(),
        "survival_notes": list(surv.notes) if surv is not None else ["survival not run (models off)"],
        "prediction": {
            d: {
                "train_years": r.train_years,
                "test_year": r.test_year,
                "n_test": r.n_test,
                "metrics": r.metrics.to_dicts(),
            }
            for d, r in reports.items()
        },
        "outcomes": list(OUTCOMES),
    }


def _collect(lf: pl.LazyFrame, label: str) -> pl.DataFrame:
    try:
        return lf.collect(engine="streaming")
    except pl.exceptions.PolarsError as exc:
        raise InputError(f"could not compute the strata ({label}): {str(exc).strip().splitlines()[0]}") from None
