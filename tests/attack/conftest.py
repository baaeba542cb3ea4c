"""Stores with several runs on the same generated data (``tiny``), for the attacker's tests.

``make_tiny_run`` (tests/store/conftest.py) generates ``tiny`` under a folder and runs the whole
pipeline on its configuration; further runs on the same data are configurations written next to
it (same ``data/``) with their own ``[output] dir`` and the same ``[store] url``, so that every
run lands in one store."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from respop.store.db import Store
from tests.store.conftest import make_tiny_run, tiny_run  # noqa: F401 (the fixture)

STORE_FILE = "store.sqlite"


def tiny_config(
    output_dir: str,
    *,
    min_population: int = 1000,
    method: str | None = None,
    pins: dict[str, str] | None = None,
    years: list[int] | None = None,
) -> str:
    """A ``tiny`` configuration (the one of tests/store/conftest.py) writing to ``output_dir``
    and to the shared store ``store.sqlite`` next to it."""
    lines = [
        'name = "tiny"',
        'description = "Territoire de test (données synthétiques)"',
        "[input]",
        'pmsi_dir = "data/pmsi"',
        'reference_dir = "data/reference"',
    ]
    if years is not None:
        lines.append(f"years = [{', '.join(str(y) for y in years)}]")
    lines += ["[quality]", 'zones_file = "data/reference/zones.parquet"', "[territories]", f"min_population = {min_population}"]
    if method is not None:
        lines.append(f'method = "{method}"')
    if pins:
        lines.append("pins = { " + ", ".join(f'"{z}" = "{t}"' for z, t in pins.items()) + " }")
    lines += ["[output]", f'dir = "{output_dir}"', "[store]", f'url = "sqlite:///{STORE_FILE}"']
    if years is None:  # the evaluation's tables in the store too (a run over fewer years has too few pre-period years)
        lines += ["[evaluation]", 'pilots = { "1" = 2022 }']
    return "\n".join(lines) + "\n"


@dataclass
class TinyStore:
    """A store holding several runs of ``tiny`` (one generated world): run id → output folder;
    ``refused``: the configurations (by position) whose publication disclosure control refused
    (``respop.errors.DisclosureError``: nothing of them is in the store)."""

    base: Path
    outputs: dict[int, Path] = field(default_factory=dict)
    refused: dict[int, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"sqlite:///{self.base / STORE_FILE}"

    def store(self) -> Store:
        return Store(self.url)


def tiny_store(base: Path, seed: int, configs: list[dict]) -> TinyStore:
    """Generate ``tiny`` (``seed``) under ``base`` and run the pipeline once per configuration
    (keyword arguments of :func:`tiny_config`), every run into one store (a run disclosure
    control refuses is recorded in ``refused``)."""
    out = TinyStore(base)
    first = make_tiny_run(base, tiny_config("run0", **configs[0]), seed)
    out.outputs[first.run_id] = first.config.output.dir
    for options in configs[1:]:
        add_run(out, **options)
    return out


def _refusal():
    """The error disclosure control raises when it refuses to publish a run (None before it existed)."""
    import respop.errors

    return getattr(respop.errors, "DisclosureError", None)


def add_run(tiny: TinyStore, **options) -> int | None:
    """One more run on the data of ``tiny`` (keyword arguments of :func:`tiny_config`) into its
    store; returns its id, or None when disclosure control refused to publish it (recorded in
    ``tiny.refused``)."""
    from respop.config import load_config
    from respop.pipeline import run

    k = len(tiny.outputs) + len(tiny.refused)
    path = tiny.base / f"tiny{k}.toml"
    path.write_text(tiny_config(f"run{k}", **options), encoding="utf-8")
    refusal = _refusal()
    try:
        result = run(path)
    except Exception as exc:
        if refusal is None or not isinstance(exc, refusal):
            raise
        tiny.refused[k] = f"{options}: {exc}"
        return None
    tiny.outputs[result.run_id] = load_config(path).output.dir
    return result.run_id


PIN = {"01013": "01014"}
"""Zone 01013 joins the territory of zone 01014 (on tiny, seed 5, it moves it to another
territory)."""


def from_tiny_run(tiny, folder: Path) -> TinyStore:
    """The session's ``tiny_run`` (tests/store/conftest.py: tiny, seed 5, the whole pipeline on
    the configuration :func:`tiny_config` writes with its defaults, but for the output folder and
    the store's file) copied to ``folder`` as the first run of a :class:`TinyStore`: its data, its
    outputs as ``run0`` and its store as ``store.sqlite``, as :func:`tiny_store` (seed 5, ``[{}]``)
    would have made them, without running the pipeline again."""
    import shutil
    import sqlite3

    shutil.copytree(tiny.base / "data", folder / "data", symlinks=True)
    shutil.copytree(tiny.config.output.dir, folder / "run0", symlinks=True)
    (folder / "tiny0.toml").write_text(tiny_config("run0"), encoding="utf-8")
    source = sqlite3.connect(tiny.config.store.url.removeprefix("sqlite:///"))
    target = sqlite3.connect(folder / STORE_FILE)
    try:
        source.backup(target)
    finally:
        source.close()
        target.close()
    return TinyStore(folder, {tiny.run_id: folder / "run0"})


@pytest.fixture(scope="session")
def pinned_store(tiny_run, tmp_path_factory) -> TinyStore:
    """tiny, seed 5: a run with the default territories (the session's ``tiny_run``, copied:
    :func:`from_tiny_run`), then one with zone 01013 pinned to the territory of 01014, in one store
    (finding 1 of issue 16). Built once per test session, shared by the workers (tests/shared.py):
    the tests read it; a test that adds a run works on a copy (:func:`copy_store`)."""
    from tests.shared import build_once

    def build(folder: Path) -> dict:
        made = from_tiny_run(tiny_run, folder)
        add_run(made, pins=PIN)
        return {"outputs": {str(k): str(v.relative_to(folder)) for k, v in made.outputs.items()}, "refused": made.refused}

    base, built = build_once(tmp_path_factory, "attack_pinned", build)
    return TinyStore(
        base, {int(k): base / v for k, v in built["outputs"].items()}, {int(k): v for k, v in built["refused"].items()}
    )


def copy_store(tiny: TinyStore, folder: Path) -> TinyStore:
    """``tiny`` copied to ``folder`` (its data, configurations, outputs and store), to add runs to."""
    import shutil

    shutil.copytree(tiny.base, folder, symlinks=True, ignore=shutil.ignore_patterns(".built.json"))
    return TinyStore(folder, {k: folder / v.relative_to(tiny.base) for k, v in tiny.outputs.items()}, dict(tiny.refused))


@pytest.fixture(scope="session")
def shorter_run(pinned_store, tmp_path_factory) -> tuple[TinyStore, int | None]:
    """A third run in a copy of that store, on the same data read over 2019-2022 only (None: refused)."""
    tiny = copy_store(pinned_store, tmp_path_factory.mktemp("attack_shorter") / "store")
    return tiny, add_run(tiny, years=[2019, 2020, 2021, 2022])


def judge_refusals(tiny: TinyStore) -> None:
    """A refused run must have left nothing visible: the store's succeeded runs are exactly the
    published ones. Warns (the scenario across runs is then not exercised: nothing of the refused
    run can be combined)."""
    import warnings

    visible = sorted(r["run_id"] for r in tiny.store().runs() if r["status"] == "succeeded")
    assert visible == sorted(tiny.outputs), (visible, tiny.outputs, tiny.refused)
    for message in tiny.refused.values():
        warnings.warn(f"disclosure control refused a run, judged without it: {message}", stacklevel=2)
