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

from respop import __version__, periods
from respop.case_finding.run import zone_territory
from respop.spec.algorithm import AlgorithmSpec
from respop.spec.catalogue import Catalogue, run_catalogue
from respop.config import Config
from respop.errors import ConfigError, InputError
from respop.pmsi.scope import for_hospital
from respop.stages import stage_folder, stage_inputs
from respop.strata.engine import assign, care_use, death_years, outcome_events, qualifying_ids, transitions
from respop.spec.features import OUTCOMES, case_feature, model_features
from respop.strata.features import code_flags, compute_features, person_strata_columns

Progress = Callable[[str], None]


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


def strata_specs(config: Config, catalogue: Catalogue | None = None) -> list[AlgorithmSpec]:
    """The configured diseases' specs, from the run's catalogue; each needs its ``[strata]``."""
    specs = (catalogue if catalogue is not None else run_catalogue(config)).specs
    missing = [s.disease for s in specs if s.strata is None]
    if missing:
        raise ConfigError(f"no [strata] part in the algorithm(s) of {missing} (docs/strata.md)")
    return specs


def polars_strata(
    catalogue: Catalogue, staged, cases_file: Path, territories: pl.DataFrame | None, last_year: int,
    order: dict[str, list[str]], progress: Progress | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame, pl.DataFrame, dict[str, float]]:
    """The strata step's engine part on polars (``respop.pipeline.Engine.strata``): person-years
    with their strata, survival events, care use and transitions, with the seconds of each part."""
    step = progress or (lambda _label: None)
    timings: dict[str, float] = {}

    def lap(name: str, since: float) -> float:
        now = time.perf_counter()
        timings[name] = round(timings.get(name, 0.0) + now - since, 2)
        return now

    from respop.pmsi.deaths import deaths_of

    known = deaths_of(staged)  # deaths out of hospital (the SNDS referential), when the run has it
    cases = pl.scan_parquet(cases_file)
    t = time.perf_counter()
    frames, events = [], []
    # the code features' flags per stay, the same for every disease: one pass over the diagnoses
    flags = _collect(code_flags(staged.diagnoses, catalogue.features), "code features") if catalogue.features.codes else None
    for spec in catalogue.specs:
        step(f"strata of {spec.algorithm.name.lower()}")
        ids = _collect(qualifying_ids(spec, staged.stays, staged.diagnoses), spec.disease).lazy()
        person = compute_features(
            spec, cases, staged.stays, staged.diagnoses, catalogue.features, ids, catalogue.case_of(spec.disease), flags
        )
        frames.append(_collect(assign(spec, person), spec.disease))
        t = lap("features", t)
        step(f"events of {spec.algorithm.name.lower()}")
        # only the events of the disease's own patients can end one of its follow-ups (survival):
        # not every death of the referential (5.7 M on the national data, 8 GB held through
        # survival over three diseases and five years)
        own = frames[-1].lazy().select("patient_key").unique()
        disease_events = outcome_events(spec, staged.stays, staged.diagnoses, ids, known)
        events.append(_compact(_collect(disease_events.join(own, on="patient_key", how="semi"), spec.disease)))
        t = lap("events", t)
    deaths = _collect(death_years(staged.stays, known), "deaths")
    columns = person_strata_columns(catalogue.features, catalogue.diseases)
    person_strata = pl.concat(frames, how="diagonal_relaxed").select(columns).sort("disease", "year", "patient_key")
    t = lap("events", t)
    step("care use and transitions")
    use = care_use(person_strata, territories)
    t = lap("care_use", t)
    moves = transitions(person_strata, deaths, last_year, order)
    lap("transitions", t)
    return person_strata, pl.concat(events), use, moves, timings


def run_strata(
    config: Config, progress: Progress | None = None, data=None, engine=None, models: bool = True,
    input_fingerprint: dict | None = None, catalogue: Catalogue | None = None,
) -> StrataResult:
    """Strata and everything that follows from them, for every configured disease.

    ``data``: the PMSI already read and made canonical by the caller, who closes it (``respop
    run``); otherwise read here. ``engine``: what runs the strata specs, care use and transitions
    (``respop.pipeline.Engine``, chosen by the pipeline; None: polars); survival and prediction
    always run here, on the person-years. ``catalogue``: the run's specs (respop.spec.catalogue;
    None: the one ``<output.dir>/catalogue.json`` holds, frozen now when there is none).
    ``models`` false leaves out survival and prediction (benchmarks of the data steps only).
    ``input_fingerprint``: the PMSI's, taken by the caller before reading it (respop.stages);
    the manifest of ``strata/`` records it with the cases and territories read.
    """
    from respop.pmsi.stage import for_step
    from respop.strata.prediction import evaluate
    from respop.strata.survival import follow_up, survival

    step = progress or (lambda _label: None)
    started = time.perf_counter()
    timings: dict[str, float] = {}

    def lap(name: str, since: float) -> float:
        now = time.perf_counter()
        timings[name] = round(timings.get(name, 0.0) + now - since, 2)
        return now

    # hospital mode (docs/hospital.md): the hospital's patients are not a population; survival and
    # prediction, which describe one, are not fitted there, and there are no territories
    models = models and config.hospital is None
    catalogue = catalogue if catalogue is not None else run_catalogue(config)
    specs = strata_specs(config, catalogue)
    features = catalogue.features
    inputs = stage_inputs(config, "strata", input_fingerprint, models=models)
    cases = pl.scan_parquet(cases_path(config))
    territories = zone_territory(config) if config.hospital is None else None
    years = sorted(cases.select(pl.col("index_year").unique()).collect()["index_year"].to_list())
    if not years:
        raise InputError("cases.parquet holds no case", cases_path(config))
    last_year = years[-1]
    order = {s.disease: [lv.name for lv in s.strata.levels] for s in specs}
    own = data is None
    if own:
        step("reading the PMSI")
        data = for_step(config)  # the staged input, as respop run reads it
    try:
        staged = for_hospital(data, config.hospital)
        t = lap("read", started)
        last_date = staged.stays.select(pl.col("exit_date").max()).collect().item() or dt.date(last_year, 12, 31)
        last_date = min(last_date, dt.date(last_year, 12, 31))
        compute = engine.strata if engine is not None else polars_strata
        person_strata, all_events, use, moves, engine_timings = compute(
            catalogue, staged, cases_path(config), territories, last_year, order, step
        )
        timings.update(engine_timings)
        t = time.perf_counter()
    finally:
        if own:
            data.close()
    # the Cox model adjusts for the code features marked comorbidity in features.toml and for the
    # other configured diseases (case-of features; null, hence dropped, on a disease's own rows)
    comorbidities = [
        *[n for n, f in features.codes.items() if f.comorbidity], *[case_feature(d) for d in catalogue.diseases]
    ]
    comorbidities = [c for c in comorbidities if c in person_strata.columns]
    surv, reports = None, {}
    # the parts the years of the cases do not allow are left out and recorded (respop.periods)
    left_out = periods.skipped(config, years, models=models, steps=["strata"])
    fitted = {"survival", "prediction"} - {s.part for s in left_out} if models else set()
    if "survival" in fitted:
        step("survival")
        follow = follow_up(person_strata, all_events, last_date)
        surv = survival(follow, comorbidities, confidence=config.cases.confidence)
        del follow
        t = lap("survival", t)
    # the events and the follow-up are not read after survival: freed before the prediction (on
    # five national years the prediction of diabetes adds about 7.5 GB to what is held then)
    del all_events
    if "prediction" in fitted:
        for spec in specs:
            step(f"prediction for {spec.algorithm.name.lower()}")
            reports[spec.disease] = evaluate(
                person_strata, spec.disease, last_year,
                features=["female", "stratum_level", *model_features(features, catalogue.case_of(spec.disease))],
                synthetic=_synthetic(config),
            )
        t = lap("prediction", t)
    summary = _summary(config, specs, person_strata, moves, surv, reports, last_date, time.perf_counter() - started)
    summary["skipped"] = [s.to_dict() for s in left_out]
    if models and surv is None:
        summary["survival_notes"] = [s.en for s in left_out if s.part == "survival"]
    summary["engine"] = engine.name if engine is not None else "polars"
    summary["timings"] = timings
    step("writing the outputs")
    names = {s.disease: s.algorithm.name for s in specs}
    out = config.output.dir / "strata"
    with stage_folder(config, "strata", inputs) as tmp:
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
            labels = {r["name"]: r["label"] for r in catalogue.feature_rows(disease)}  # the run's, not the shipped
            (folder / "model_card.md").write_text(report.model_card(names[disease], labels), encoding="utf-8")
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


def _compact(frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` with its text in buffers of its own. Rows gathered from a larger table (a join, a
    filter) keep polars' string views into that table's buffers, and so the whole of them: on five
    national years, the events of the three diseases held the patient keys of every stay they were
    read from (about 8 GB through survival, for 0.5 GB of events)."""
    return pl.from_arrow(frame.to_arrow(compat_level=pl.CompatLevel.oldest()))


def _collect(lf: pl.LazyFrame, label: str) -> pl.DataFrame:
    try:
        return lf.collect(engine="streaming")
    except pl.exceptions.PolarsError as exc:
        raise InputError(f"could not compute the strata ({label}): {str(exc).strip().splitlines()[0]}") from None
