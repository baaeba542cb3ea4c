"""``respop run``: the whole pipeline of a configuration, then the store.

Steps, in order (each one writes its outputs atomically under ``<output.dir>``):

1. ``input``: read the PMSI tables and write the input report (``input/report.json``: counts only);
2. ``territories``: build the health territories (docs/territories.md);
3. ``cases``: case finding, residence, indicators (docs/case_finding.md);
4. ``strata``: strata, care use, transitions, survival, prediction (docs/strata.md);
5. ``store``: publish the aggregated, disclosure-controlled results as one run of the store
   (docs/store.md).

The raw PMSI is parsed and checked **once** per run: the first step that needs it stages it and
writes the canonical stays and diagnoses to the private workspace (``PmsiData.canonical``); the
later steps scan those files. ``engine`` ``spark`` runs the specs of the cases and strata steps
on Spark (respop.spark, docs/spark.md); everything else is the same code.

The seconds of every step (and of the parts of the cases and strata steps) are written to
``<output.dir>/timings.json``.

A step that fails stops the run: the outputs of the steps before it are written, the store keeps
its previous runs as they were (the failed run is marked ``failed``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from respop.config import Config, load_config
from respop.errors import ConfigError
from respop.fsutil import atomic_folder

Progress = Callable[[str], None]
STEPS = ("input", "territories", "cases", "strata", "store")


@dataclass
class PipelineResult:
    config: Config
    run_id: int
    timings: dict[str, float]
    summaries: dict[str, object]


def input_report(config: Config, progress: Progress | None = None, data=None) -> dict:
    """Read the PMSI input once and write ``<output.dir>/input/report.json`` (counts only).
    ``data``: the PMSI already read by the caller (who closes it)."""
    from respop.pmsi import read_pmsi

    own = data is None
    data = data if data is not None else read_pmsi(None, config.input, config.quality)
    try:
        report = data.report(progress).to_dict()
    finally:
        if own:
            data.close()
    with atomic_folder(config.output.dir / "input") as tmp:
        (tmp / "report.json").write_text(json.dumps(report, ensure_ascii=False, indent=2, default=str), encoding="utf-8")
    return report


def build_territories(config: Config, progress: Progress | None = None, data=None):
    from respop.delineation.run import build, territory_inputs

    reference, problem = territory_inputs(config, progress, data)
    if progress:
        progress(f"fitting {config.territories.method}")
    return build(config, problem, reference)


def publish(config: Config, config_path: Path | None, timings: dict | None = None) -> int:
    """Publish the configuration's outputs as one run of its store; returns the run id."""
    from respop.store.db import Store
    from respop.store.publish import collect

    store = Store(config.store.url)
    try:
        return store.write(collect(config, config_path, timings))
    finally:
        store.close()


def run(
    config_path: str | Path,
    progress: Progress | None = None,
    steps: tuple[str, ...] = STEPS,
    engine: str | None = None,
    spark_master: str | None = None,
    models: bool = True,
) -> PipelineResult:
    """Run ``steps`` of the pipeline on a configuration file (module docstring). ``engine`` and
    ``spark_master`` override the configuration's ``[engine]``; ``models`` false leaves survival
    and prediction out of the strata step (then the store step cannot run)."""
    from respop.case_finding.run import run_cases
    from respop.pmsi import read_pmsi
    from respop.pmsi.reader import FILTERS_STEP
    from respop.strata.run import run_strata

    config_path = Path(config_path)
    config = load_config(config_path)
    updates = {k: v for k, v in {"name": engine, "spark_master": spark_master}.items() if v is not None}
    if updates:
        config = config.model_copy(update={"engine": config.engine.model_copy(update=updates)})
    if not models and "store" in steps:
        raise ConfigError("the store step needs the survival and prediction results: run it with the models")
    say = progress or (lambda _message: None)
    timings: dict[str, float] = {}
    details: dict[str, dict] = {}
    summaries: dict[str, object] = {}
    opened: dict[str, object] = {}

    def pmsi():
        """The PMSI of the run, read, staged and made canonical once (first use)."""
        if "data" not in opened:
            parts = details.setdefault("input", {})
            start = time.perf_counter()
            raw = read_pmsi(None, config.input, config.quality)
            opened["data"] = raw
            filters_started: list[float] = []  # when the staging moved from checking files to the filters

            def staging(label: str) -> None:
                if label == FILTERS_STEP:
                    filters_started.append(time.perf_counter())

            staged = raw.staged(staging)
            end = time.perf_counter()
            middle = filters_started[0] if filters_started else end
            parts["validate"] = round(middle - start, 2)
            parts["filters"] = round(end - middle, 2)
            start = time.perf_counter()
            opened["data"] = staged.canonical()
            parts["canonical"] = round(time.perf_counter() - start, 2)
        return opened["data"]

    def spark():
        if config.engine.name != "spark":
            return None
        if "spark" not in opened:
            from respop.spark.session import session

            start = time.perf_counter()
            opened["spark"] = session(config.engine.spark_master, {k: str(v) for k, v in config.engine.spark_conf.items()})
            details.setdefault("spark", {})["start"] = round(time.perf_counter() - start, 2)
        return opened["spark"]

    def timed(name: str, fn):
        start = time.perf_counter()
        say(name)
        out = fn()
        timings[name] = round(time.perf_counter() - start, 2)
        return out

    try:
        if "input" in steps:
            summaries["input"] = timed("input", lambda: input_report(config, data=pmsi()))
            parts = details.get("input", {})
            parts["report"] = round(timings["input"] - sum(parts.values()), 2)
        if "territories" in steps:
            summaries["territories"] = timed("territories", lambda: build_territories(config, data=pmsi()))
        if "cases" in steps:
            result = timed("cases", lambda: run_cases(config, data=pmsi(), spark=spark()))
            summaries["cases"] = result.summary
            details["cases"] = result.summary.get("timings", {})
        if "strata" in steps:
            result = timed("strata", lambda: run_strata(config, data=pmsi(), spark=spark(), models=models))
            summaries["strata"] = result.summary
            details["strata"] = result.summary.get("timings", {})
    finally:
        if "data" in opened:
            opened["data"].close()
    run_id = -1
    if "store" in steps:
        run_id = timed("store", lambda: publish(config, config_path, dict(timings)))
    _write_timings(config, timings, details)
    return PipelineResult(config=config, run_id=run_id, timings=timings, summaries=summaries)


def _write_timings(config: Config, timings: dict[str, float], details: dict[str, dict]) -> None:
    out = config.output.dir
    out.mkdir(parents=True, exist_ok=True)
    record = {"engine": config.engine.name, "spark_master": config.engine.spark_master, "steps": timings, "details": details}
    tmp = out / ".timings.json.tmp"
    tmp.write_text(json.dumps(record, indent=2), encoding="utf-8")
    tmp.replace(out / "timings.json")
