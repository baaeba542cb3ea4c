"""A store built by the whole pipeline (``respop run``) on ``tiny`` data, shared by the store and
board tests (tests/boards/conftest.py imports the fixture)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from respop.config import Config, load_config

TINY_STORE_YEARS = [2019, 2020, 2021, 2022, 2023]

CONFIG = """
name = "tiny"
description = "Territoire de test (données synthétiques)"
[input]
pmsi_dir = "data/pmsi"
reference_dir = "data/reference"
[quality]
zones_file = "data/reference/zones.parquet"
[territories]
min_population = 1000
[output]
dir = "run"
[evaluation]
pilots = { "1" = 2022 }
"""


@dataclass(frozen=True)
class TinyRun:
    base: Path
    config_path: Path
    config: Config
    run_id: int


def make_tiny_run(base: Path, config_text: str = CONFIG, seed: int = 5) -> TinyRun:
    """Generate ``tiny`` (5 years) under ``base``, write its configuration, run the pipeline."""
    from respop.pipeline import run
    from respop.synth import generate, load_profile

    generate(load_profile("tiny"), seed=seed, out=base / "data", years=TINY_STORE_YEARS)
    config_path = base / "tiny.toml"
    config_path.write_text(config_text, encoding="utf-8")
    result = run(config_path)
    return TinyRun(base=base, config_path=config_path, config=load_config(config_path), run_id=result.run_id)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> TinyRun:
    """The pipeline run once on tiny (once per test session, shared by the workers: tests read it
    and never change it; tests/shared.py): outputs and a SQLite store with one run."""
    from tests.shared import build_once

    base, built = build_once(tmp_path_factory, "tiny_run", lambda folder: {"run_id": make_tiny_run(folder).run_id})
    config_path = base / "tiny.toml"
    return TinyRun(base=base, config_path=config_path, config=load_config(config_path), run_id=built["run_id"])


@pytest.fixture(scope="session")
def evaluation_run(tiny_run, tmp_path_factory):
    """tiny copied with a fabricated evaluation of the experiment (tests/store/evaluation_outputs.py)
    and published to a store of its own, once per session."""
    from tests.store.evaluation_outputs import make_evaluation_run

    return make_evaluation_run(tiny_run.base, tmp_path_factory.mktemp("evaluation_run"))
