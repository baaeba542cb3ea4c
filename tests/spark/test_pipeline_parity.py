"""``respop run --engine spark`` against ``respop run`` (polars) on the same data: the private
outputs (cases, indicators, person strata, care use, transitions, survival, prediction) are
identical, and so is what reaches the store (its results fingerprint).

``tiny`` (5 years) runs the whole pipeline on both engines; ``demo`` (slow) runs the data steps
(models left out: they run on the driver with the same code whatever the engine).
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from tests.store.conftest import CONFIG, tiny_run  # noqa: F401 (the fixture)

ENGINES = ("polars", "spark")
PRIVATE = [
    ("cases", "cases.parquet", ["disease", "index_year", "patient_key"]),
    ("cases", "indicators.parquet", None),
    ("strata", "person_strata.parquet", ["disease", "year", "patient_key"]),
    ("strata", "care_use.parquet", None),
    ("strata", "transitions.parquet", None),
]


def _config(engine: str, base_config: str, store: bool) -> str:
    text = base_config.replace('dir = "run"', f'dir = "run-{engine}"')
    if store:
        text += f'\n[store]\nurl = "sqlite:///store-{engine}.sqlite"\n'
    return text + f'\n[engine]\nname = "{engine}"\nspark_master = "local[2]"\n'


def _run_both(base: Path, base_config: str, models: bool) -> dict[str, object]:
    from respop.pipeline import STEPS, run

    steps = STEPS if models else tuple(s for s in STEPS if s != "store")
    results = {}
    for engine in ENGINES:
        path = base / f"{engine}.toml"
        path.write_text(_config(engine, base_config, store=models), encoding="utf-8")
        results[engine] = run(path, steps=steps, models=models)
    return results


def _assert_outputs_equal(results) -> None:
    polars_out, spark_out = (results[e].config.output.dir for e in ENGINES)
    for folder, name, keys in PRIVATE:
        expected = pl.read_parquet(polars_out / folder / name)
        got = pl.read_parquet(spark_out / folder / name)
        assert expected.height > 0, f"{name}: empty on polars"
        if keys:  # the same rows first (a clearer failure), then the same order too
            assert_frame_equal(got.sort(keys), expected.sort(keys), check_exact=True)
        assert_frame_equal(got, expected, check_exact=True)


@pytest.fixture(scope="module")
def tiny_runs(spark, tiny_run, tmp_path_factory):
    """The polars side is the session's ``tiny_run`` (tests/store/conftest.py: the same world,
    tiny seed 5 over TINY_STORE_YEARS, the same configuration, the whole pipeline with models and
    its store; built once per session for the store and board tests); the Spark side runs here on
    a copy of its data (the shared run is never written to)."""
    import shutil

    from respop.pipeline import run

    base = tmp_path_factory.mktemp("parity_tiny")
    shutil.copytree(tiny_run.base / "data", base / "data")
    path = base / "spark.toml"
    path.write_text(_config("spark", CONFIG, store=True), encoding="utf-8")
    polars = SimpleNamespace(config=tiny_run.config, run_id=tiny_run.run_id)
    return {"polars": polars, "spark": run(path, models=True)}


def test_tiny_private_outputs_are_identical(tiny_runs):
    _assert_outputs_equal(tiny_runs)
    polars_out, spark_out = (tiny_runs[e].config.output.dir for e in ENGINES)
    for path in ["strata/survival/km.parquet"]:
        assert_frame_equal(pl.read_parquet(spark_out / path), pl.read_parquet(polars_out / path))
    for disease in tiny_runs["polars"].config.diseases:  # every shipped spec (the configuration lists none)
        metrics = f"strata/prediction/{disease}/metrics.csv"
        assert_frame_equal(pl.read_csv(spark_out / metrics), pl.read_csv(polars_out / metrics))


def test_tiny_published_results_are_identical(tiny_runs):
    from respop.store.db import Store

    shas = {}
    for engine, result in tiny_runs.items():
        store = Store(result.config.store.url)
        try:
            run = store.run(result.run_id)
        finally:
            store.close()
        assert run["status"] == "succeeded"
        shas[engine] = run["results_sha256"]
    assert shas["spark"] == shas["polars"]


def test_timings_say_which_engine_ran(tiny_runs):
    for engine, result in tiny_runs.items():
        record = json.loads((result.config.output.dir / "timings.json").read_text())
        assert record["engine"] == engine
        assert set(record["steps"]) == {"input", "territories", "cases", "strata", "evaluation", "store"}
        assert record["details"]["strata"]["features"] >= 0
        # staged by this run (each run has its own output folder): the staging's phases (the deaths
        # referential staged last, respop.pmsi.stage), then the report
        assert set(record["details"]["input"]) == {"validate", "filters", "canonical", "quarantine", "counts", "deaths", "report"}
        assert record["details"]["staged_input"]["reused"] is False
        assert record["details"]["input"]["filters"] > 0  # the filters' mark was seen


@pytest.mark.slow
def test_demo_outputs_are_identical(spark, tmp_path_factory):
    from respop.synth import generate, load_profile

    base = tmp_path_factory.mktemp("parity_demo")
    generate(load_profile("demo"), seed=1, out=base / "data")
    config = CONFIG.replace('name = "tiny"', 'name = "demo"').replace("min_population = 1000", "min_population = 20000")
    _assert_outputs_equal(_run_both(base, config, models=False))
