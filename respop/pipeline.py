"""``respop run``: the whole pipeline of a configuration, then the store.

Steps, in order (each one writes its outputs atomically under ``<output.dir>``):

1. ``input``: read the PMSI tables and write the input report (``input/report.json``: counts only);
2. ``territories``: build the health territories (docs/territories.md);
3. ``cases``: case finding, residence, indicators (docs/case_finding.md);
4. ``strata``: strata, care use, transitions, survival, prediction (docs/strata.md);
5. ``store``: publish the aggregated, disclosure-controlled results as one run of the store
   (docs/store.md).

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
from respop.fsutil import atomic_folder

Progress = Callable[[str], None]
STEPS = ("input", "territories", "cases", "strata", "store")


@dataclass
class PipelineResult:
    config: Config
    run_id: int
    timings: dict[str, float]
    summaries: dict[str, object]


def input_report(config: Config, progress: Progress | None = None) -> dict:
    """Read the PMSI input once and write ``<output.dir>/input/report.json`` (counts only)."""
    from respop.pmsi import read_pmsi

    data = read_pmsi(None, config.input, config.quality)
    try:
        report = data.report(progress).to_dict()
    finally:
        data.close()
    with atomic_folder(config.output.dir / "input") as tmp:
        (tmp / "report.json").write_text(json.dumps(report, ensure_ascii=False, indent=2, default=str), encoding="utf-8")
    return report


def build_territories(config: Config, progress: Progress | None = None):
    from respop.delineation.run import build, territory_inputs

    reference, problem = territory_inputs(config, progress)
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


def run(config_path: str | Path, progress: Progress | None = None, steps: tuple[str, ...] = STEPS) -> PipelineResult:
    """Run ``steps`` of the pipeline on a configuration file (module docstring)."""
    from respop.case_finding.run import run_cases
    from respop.strata.run import run_strata

    config_path = Path(config_path)
    config = load_config(config_path)
    say = progress or (lambda _message: None)
    timings: dict[str, float] = {}
    summaries: dict[str, object] = {}

    def timed(name: str, fn):
        start = time.perf_counter()
        say(name)
        out = fn()
        timings[name] = round(time.perf_counter() - start, 2)
        return out

    if "input" in steps:
        summaries["input"] = timed("input", lambda: input_report(config))
    if "territories" in steps:
        summaries["territories"] = timed("territories", lambda: build_territories(config))
    if "cases" in steps:
        summaries["cases"] = timed("cases", lambda: run_cases(config)).summary
    if "strata" in steps:
        summaries["strata"] = timed("strata", lambda: run_strata(config)).summary
    run_id = -1
    if "store" in steps:
        run_id = timed("store", lambda: publish(config, config_path, dict(timings)))
    return PipelineResult(config=config, run_id=run_id, timings=timings, summaries=summaries)
