"""``respop run``: the whole pipeline of a configuration, then the store.

Steps, in order (each one writes its outputs atomically under ``<output.dir>``):

1. ``input``: read the PMSI tables and write the input report (``input/report.json``: counts only);
2. ``territories``: build the health territories (docs/territories.md);
3. ``cases``: case finding, residence, indicators (docs/case_finding.md);
4. ``strata``: strata, care use, transitions, survival, prediction (docs/strata.md);
5. ``evaluation``: when the configuration has ``[evaluation]``, the effect of the intervention in
   the pilot territories (docs/evaluation.md); skipped without it;
6. ``store``: publish the aggregated, disclosure-controlled results as one run of the store
   (docs/store.md).

The raw PMSI is parsed and checked **once** per set of inputs (respop.pmsi.stage, docs/pmsi.md
"Staged input"): the first step that needs it opens the staged input (``input.staged_dir``,
default ``<output.dir>/staged-input``: kept stays, séances, excluded stays, diagnoses,
quarantine, input report, and the fingerprint of the PMSI files, the ``[input]``/``[quality]``
settings and respop's version). When that fingerprint is the current one the run reads it and
validates nothing; otherwise it validates and stages the input again first (``respop pmsi
stage`` does the same on its own). Standard error says which, and why; ``timings.json`` records
it (``details.staged_input``). The later steps scan the same staged files. The engine that runs the specs of the cases and strata steps is
chosen here, once (:func:`choose_engine`: polars, or ``engine`` ``spark``: respop.spark,
docs/spark.md); the domain runners call it and never import Spark; everything else is the same
code.

At its start, the run loads the configured diseases' specs once, freezes them and writes them
with its outputs (``<output.dir>/catalogue.json``, respop.spec.catalogue); the cases, strata and
store steps read that catalogue, not the TOML files.

The run's start (the moment ``respop run`` started, or :func:`run` was called) and the seconds of
every step (and of the parts of the cases and strata steps) are written to
``<output.dir>/timings.json`` and recorded by the store step in the run's row: ``started_at`` is
the run's start, ``finished_at`` the end of its store step, ``timings`` each step's seconds, when
each step started and ended (``clock``) and the steps whose outputs the run reused from an earlier
run (``reused``: ``--steps`` left them out; respop.store.schema, ``runs.timings``).

Any period (respop.periods): before anything is read, the run checks what its years allow (those
the configuration names, else those of the PMSI files' names) and says on standard error which parts
it leaves out and why: transitions (a year and the next), survival (two years), prediction (three),
the evaluation (``min_pre_years`` before each pilot's start; the step is then skipped). Everything
else runs and is published; the strata step leaves out the parts the years of its cases do not allow
and records them, and the store records them in the run's row (``runs.timings["skipped"]``).

A step that fails stops the run: the outputs of the steps before it are written, the store keeps
its previous runs as they were (the failed run is marked ``failed``).

Each step's folder carries a manifest of what it was built on (respop.stages); the store step
refuses outputs that do not belong to one build (e.g. ``--steps territories,cases,store`` with
strata built on the previous territories) and says which steps to run again.

Hospital mode (``[hospital]``, docs/hospital.md): the steps are ``input``, ``cases`` and ``strata``
(:data:`HOSPITAL_STEPS`; the others asked for are returned in ``skipped``). The input report counts
the whole input and, under ``hospital``, the stays kept per FINESS and those of other FINESS left
out; every step reads the hospital's stays only (respop.pmsi.scope), whatever the patients'
residence; there are no territories, no population denominators, no survival or prediction, and
nothing is published (the store refuses a hospital configuration). ``respop liste``
(respop.hospital) writes the private lists from these outputs.

The run's patient-level temporary files live in a private workspace named after its process
(``respop-run-…`` in ``input.workspace_dir`` or the system's temporary folder), removed at the
end. A run that is killed leaves it, and perhaps a step's half-written folder
(``<output.dir>/.<step>.tmp-…``): the next run (or step command) removes those whose process is
gone, and says so on standard error (:func:`private_workspace`).
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from respop import stages
from respop.config import Config, load_config
from respop.errors import ConfigError
from respop.fsutil import leftovers, remove, run_workspace

Progress = Callable[[str], None]
STEPS = ("input", "territories", "cases", "strata", "evaluation", "store")
HOSPITAL_STEPS = ("input", "cases", "strata")
"""The steps of hospital mode (``[hospital]``, docs/hospital.md): the scope is the hospital's own
patients (no territories, no evaluation), survival and prediction are not fitted, and nothing is
published (no store step; the store refuses a hospital configuration)."""


@dataclass(frozen=True)
class Engine:
    """What runs the specs of the cases and strata steps (chosen by :func:`choose_engine`).

    ``cases(config, specs, staged, years, first_year, territories, progress)`` → the cases with
    residence and the rows the indicators count; ``strata(catalogue, staged, cases_file,
    territories, last_year, order, progress)`` → person strata, survival events, care use,
    transitions and the seconds of each part."""

    name: str
    cases: Callable
    strata: Callable


def polars_engine() -> Engine:
    from respop.case_finding.run import polars_cases
    from respop.strata.run import polars_strata

    return Engine("polars", polars_cases, polars_strata)


def spark_engine(session: Callable[[], object]) -> Engine:
    """The Spark engine over a session started at first use (``session()``)."""

    def cases(*args, **kwargs):
        from respop.spark.run import compute_cases

        return compute_cases(session(), *args, **kwargs)

    def strata(*args, **kwargs):
        from respop.spark.run import compute_strata

        return compute_strata(session(), *args, **kwargs)

    return Engine("spark", cases, strata)


def choose_engine(config: Config, session: Callable[[], object]) -> Engine:
    """The configuration's engine (``[engine] name``); ``session`` starts Spark when needed."""
    return spark_engine(session) if config.engine.name == "spark" else polars_engine()


@dataclass
class PipelineResult:
    config: Config
    run_id: int
    timings: dict[str, float]
    summaries: dict[str, object]
    skipped: tuple[str, ...] = ()
    """Steps asked for but not run (hospital mode: :data:`HOSPITAL_STEPS`)."""
    left_out: tuple = ()
    """The parts of the steps run that the data's period did not allow (respop.periods.Skip:
    transitions, survival, prediction, the evaluation), as said on standard error at the start."""


def input_report(
    config: Config, progress: Progress | None = None, data=None, input_fingerprint: dict | None = None,
    hospital: dict | None = None,
) -> dict:
    """Read the PMSI input once and write ``<output.dir>/input/report.json`` (counts only).
    ``data``: the PMSI already read by the caller (who closes it); ``input_fingerprint``: the
    PMSI's, taken before it was read (respop.stages). ``hospital``: in hospital mode, what the
    scope kept and left out (respop.pmsi.scope; counts only), written under ``hospital``."""
    from respop.pmsi import read_pmsi

    inputs = stages.stage_inputs(config, "input", input_fingerprint)
    own = data is None
    data = data if data is not None else read_pmsi(None, config.input, config.quality)
    try:
        report = data.report(progress).to_dict()
    finally:
        if own:
            data.close()
    # the SNDS referential's deaths (respop.pmsi.deaths): its file counted with the PMSI's, and
    # whether the run knows the deaths out of hospital (the boards say so when it does not)
    from respop.pmsi.deaths import known_deaths

    deaths = known_deaths(config.input, config.quality).report
    if deaths.table is not None:
        report["tables"].append(deaths.to_dict()["table"])
        report["balanced"] = report["balanced"] and deaths.balanced
    report["deaths"] = {k: v for k, v in deaths.to_dict().items() if k != "table"}
    if hospital is not None:
        report["hospital"] = hospital
    with stages.stage_folder(config, "input", inputs) as tmp:
        (tmp / "report.json").write_text(json.dumps(report, ensure_ascii=False, indent=2, default=str), encoding="utf-8")
    return report


def build_territories(config: Config, progress: Progress | None = None, data=None, input_fingerprint: dict | None = None):
    from respop.delineation.run import build, territory_inputs

    input_fingerprint = input_fingerprint or stages.input_fingerprint(config)
    reference, problem = territory_inputs(config, progress, data)
    if progress:
        progress(f"fitting {config.territories.method}")
    return build(config, problem, reference, input_fingerprint=input_fingerprint)


def _notice(message: str) -> None:
    print(f"respop: {message}", file=sys.stderr, flush=True)


def remove_leftovers(config: Config, notice: Callable[[str], None] = _notice) -> list[Path]:
    """Remove what killed runs left: private workspaces (``respop-run-…`` in
    ``input.workspace_dir`` or the system's temporary folder) and half-written step folders
    (``<output.dir>/.<step>.tmp-…``, ``.<step>.old-…``) whose process has ended on this host.
    Says how many and where (``notice``: standard error), and which could not be removed;
    returns those removed."""
    base = config.input.workspace_dir or Path(tempfile.gettempdir())
    found = leftovers([base, config.output.dir])
    left = remove(found)
    removed = [p for p in found if p not in left]
    for paths, said in ((removed, "removed"), (left, "could not remove")):
        if paths:
            places: dict[Path, list[str]] = {}
            for path in paths:
                places.setdefault(path.parent, []).append(path.name)
            where = "; ".join(f"in {folder}: {', '.join(names)}" for folder, names in places.items())
            notice(f"{said} {len(paths)} temporary folder(s) left by interrupted runs (patient-level data) {where}")
    return removed


@contextmanager
def private_workspace(config: Config, notice: Callable[[str], None] = _notice) -> Iterator[Config]:
    """The configuration with ``input.workspace_dir`` set to a private folder of this process,
    removed at the end, after removing what killed runs left (:func:`remove_leftovers`)."""
    remove_leftovers(config, notice)
    with run_workspace(config.input.workspace_dir) as folder:
        yield config.model_copy(update={"input": config.input.model_copy(update={"workspace_dir": folder})})


def publish(
    config: Config, config_path: Path | None, timings: dict | None = None, started_at: dt.datetime | None = None,
    clock: dict[str, list[str]] | None = None, staged_input: dict | None = None,
) -> int:
    """Publish the configuration's outputs as one run of its store; returns the run id.

    ``timings``: the seconds of the steps this run did (the steps whose outputs are there but not
    in ``timings`` are recorded as reused); ``clock``: when each of them started and ended (ISO);
    ``started_at``: when the run started. Without them (``respop store publish``: outputs of
    earlier runs published on their own) the run's ``started_at`` is the moment publishing started
    and every step is reused (respop.store.schema, ``runs.timings``). ``staged_input``: whether
    the run reused its staged input, and why not (respop.pmsi.stage), recorded there too."""
    from respop.store.db import Store
    from respop.store.publish import collect
    from respop.store.releases import visible_runs

    store_started = dt.datetime.now()
    store = Store(config.store.url)
    try:
        # protected together with every run a viewer can already see (docs/store.md)
        publication = collect(config, config_path, timings, visible=visible_runs(store),
                              started_at=started_at or store_started, clock=clock, store_started=store_started,
                              staged_input=staged_input)
        return store.write(publication)
    finally:
        store.close()


def run(
    config_path: str | Path,
    progress: Progress | None = None,
    steps: tuple[str, ...] = STEPS,
    engine: str | None = None,
    spark_master: str | None = None,
    models: bool = True,
    started_at: dt.datetime | None = None,
) -> PipelineResult:
    """Run ``steps`` of the pipeline on a configuration file (module docstring). ``engine`` and
    ``spark_master`` override the configuration's ``[engine]``; ``models`` false leaves survival
    and prediction out of the strata step (then the store step cannot run). ``started_at``: when
    the command started (default: now), the run's start in the store."""
    started_at = started_at or dt.datetime.now()
    config_path = Path(config_path)
    config = load_config(config_path)
    updates = {k: v for k, v in {"name": engine, "spark_master": spark_master}.items() if v is not None}
    if updates:
        config = config.model_copy(update={"engine": config.engine.model_copy(update=updates)})
    return run_config(config, config_path, progress, steps, models, started_at)


def run_config(
    config: Config,
    config_path: Path | None = None,
    progress: Progress | None = None,
    steps: tuple[str, ...] = STEPS,
    models: bool = True,
    started_at: dt.datetime | None = None,
) -> PipelineResult:
    """:func:`run` on a configuration already loaded (``respop strata validate --seeds`` runs the
    user's configuration on worlds it generates). ``config_path``: the file it came from, which the
    store step records (None: no store step); ``started_at``: the run's start (default: now)."""
    started_at = started_at or dt.datetime.now()
    skipped: tuple[str, ...] = ()
    if config.hospital is not None:  # hospital mode: its steps only, no models, nothing published
        skipped = tuple(s for s in steps if s not in HOSPITAL_STEPS)
        steps, models = tuple(s for s in steps if s in HOSPITAL_STEPS), False
    if not models and "store" in steps:
        raise ConfigError("the store step needs the survival and prediction results: run it with the models")
    if "store" in steps and config_path is None:
        raise ConfigError("the store step records the configuration file: give its path")
    left_out = period_check(config, steps, models)
    if any(s.part == "evaluation" for s in left_out):
        steps = tuple(s for s in steps if s != "evaluation")
    say = progress or (lambda _message: None)
    with private_workspace(config) as private:
        result = _run(private, config_path, say, steps, models, started_at)
    return PipelineResult(config=config, run_id=result.run_id, timings=result.timings, summaries=result.summaries,
                          skipped=skipped, left_out=tuple(left_out))


def period_check(config: Config, steps: tuple[str, ...], models: bool, notice: Callable[[str], None] = _notice) -> list:
    """What the data's period leaves out of ``steps`` (respop.periods: the years the configuration
    names or the PMSI files' names give, known before anything is read), each said on standard
    error (``notice``) before the run starts; the steps run all the rest."""
    from respop import periods

    left_out = periods.skipped(config, periods.data_years(config, file_years(config)), models=models, steps=steps)
    for skip in left_out:
        notice(skip.en)
    return left_out


def file_years(config: Config) -> list[int] | None:
    """The exit years in the names of the PMSI files of ``input.pmsi_dir`` (SNDS tables
    ``T_MCOaaB…``, ATIH ``<finess>.<year>.<month>.rsa``), nothing read; None when they cannot be
    known so (no folder, names without a year, a table missing: the input step says what is wrong)."""
    from respop.pmsi import atih
    from respop.pmsi.files import discover
    from respop.pmsi.reader import detect_layout

    folder = config.input.pmsi_dir
    if folder is None:
        return None
    try:
        if detect_layout(folder, config.input.format) == "atih":
            return sorted({f.year for f in atih.atih_files(Path(folder))}) or None
        found = discover(folder, None, config.input.format)
    except Exception:  # noqa: BLE001 - the input step reports what is wrong with the folder
        return None
    return None if None in found else sorted(y for y in found if y is not None) or None


def _run(
    config: Config, config_path: Path | None, say: Progress, steps: tuple[str, ...], models: bool, started_at: dt.datetime
) -> PipelineResult:
    from respop.case_finding.run import run_cases
    from respop.evaluation.run import run_evaluation
    from respop.spec.catalogue import start_catalogue
    from respop.strata.run import run_strata

    source = stages.input_fingerprint(config)  # before the PMSI is read
    timings: dict[str, float] = {}
    clock: dict[str, list[str]] = {}  # step → [start, end], ISO
    details: dict[str, dict] = {}
    summaries: dict[str, object] = {}
    opened: dict[str, object] = {}

    def pmsi():
        """The PMSI of the run (first use): the staged input (respop.pmsi.stage), reused when
        its files, settings and respop's version are those it was staged from, else validated
        and staged once; standard error says which, and why."""
        if "data" not in opened:
            from respop.pmsi.stage import staged_input

            parts = details.setdefault("input", {})
            start = time.perf_counter()
            data = staged_input(config, notice=_notice)
            opened["data"] = data
            parts.update(data.seconds if not data.reused else {"reuse": round(time.perf_counter() - start, 2)})
            details["staged_input"] = {"reused": data.reused, "reasons": data.reasons, "fingerprint": data.fingerprint,
                                       "folder": str(data.location)}
            if config.hospital is not None:
                # hospital mode: the input report counts the whole input; every step reads the
                # hospital's stays only (respop.pmsi.scope)
                from respop.pmsi.scope import restrict_to_hospital

                start = time.perf_counter()
                opened["input"] = opened["data"]
                opened["data"] = restrict_to_hospital(opened["data"], config.hospital.finess)
                parts["hospital"] = round(time.perf_counter() - start, 2)
        return opened["data"]

    def pmsi_input():
        """The PMSI the input report counts: the whole input (hospital mode too)."""
        data = pmsi()
        return opened.get("input", data)

    def hospital_scope() -> dict | None:
        """Hospital mode: what the scope kept and left out (counts); None in population mode."""
        return pmsi().scope if config.hospital is not None else None

    def spark():
        if "spark" not in opened:
            from respop.spark.session import session

            start = time.perf_counter()
            opened["spark"] = session(config.engine.spark_master, {k: str(v) for k, v in config.engine.spark_conf.items()})
            details.setdefault("spark", {})["start"] = round(time.perf_counter() - start, 2)
        return opened["spark"]

    def timed(name: str, fn):
        # wall-clock times, so that the steps' seconds and their start and end agree with the
        # run's started_at and finished_at (respop.store.schema, runs.timings)
        start = dt.datetime.now()
        say(name)
        out = fn()
        end = dt.datetime.now()
        timings[name] = round((end - start).total_seconds(), 2)
        clock[name] = [start.isoformat(), end.isoformat()]
        return out

    engine = choose_engine(config, spark)
    # the specs, loaded once, frozen and written with the outputs; every later step reads them
    catalogue = start_catalogue(config) if {"cases", "strata", "evaluation", "store"} & set(steps) else None
    try:
        if "input" in steps:
            summaries["input"] = timed("input", lambda: input_report(
                config, data=pmsi_input(), input_fingerprint=source, hospital=hospital_scope()
            ))
            parts = details.get("input", {})
            parts["report"] = round(timings["input"] - sum(parts.values()), 2)
        if "territories" in steps:
            summaries["territories"] = timed("territories", lambda: build_territories(config, data=pmsi(), input_fingerprint=source))
        if "cases" in steps:
            result = timed("cases", lambda: run_cases(config, data=pmsi(), engine=engine, input_fingerprint=source, catalogue=catalogue))
            summaries["cases"] = result.summary
            details["cases"] = result.summary.get("timings", {})
        if "strata" in steps:
            result = timed("strata", lambda: run_strata(
                config, data=pmsi(), engine=engine, models=models, input_fingerprint=source, catalogue=catalogue
            ))
            summaries["strata"] = result.summary
            details["strata"] = result.summary.get("timings", {})
        if "evaluation" in steps and config.evaluation is not None:
            result = timed("evaluation", lambda: run_evaluation(config, input_fingerprint=source, catalogue=catalogue))
            summaries["evaluation"] = result.summary
    finally:
        if "data" in opened:
            opened["data"].close()
    run_id = -1
    if "store" in steps:
        run_id = timed("store", lambda: publish(config, config_path, dict(timings), started_at, dict(clock),
                                                details.get("staged_input")))
    _write_timings(config, timings, details, started_at, clock)
    return PipelineResult(config=config, run_id=run_id, timings=timings, summaries=summaries)


def _write_timings(
    config: Config, timings: dict[str, float], details: dict[str, dict], started_at: dt.datetime, clock: dict[str, list[str]]
) -> None:
    out = config.output.dir
    out.mkdir(parents=True, exist_ok=True)
    record = {"engine": config.engine.name, "spark_master": config.engine.spark_master, "started_at": started_at.isoformat(),
              "steps": timings, "clock": clock, "details": details}
    tmp = out / ".timings.json.tmp"
    tmp.write_text(json.dumps(record, indent=2), encoding="utf-8")
    tmp.replace(out / "timings.json")
