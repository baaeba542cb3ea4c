"""Fixtures of the board tests: the tiny store built by the whole pipeline (``tiny_run``, shared
with tests/store) and configurations over it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tests.store.conftest import CONFIG, TinyRun, evaluation_run, tiny_run  # noqa: F401

BOARD_PASSWORD = "réunion-clinique-2024"


def write_config(path: Path, tiny: TinyRun, extra: str = "", store_url: str | None = None) -> Path:
    """A configuration named like tiny's (so it sees tiny's runs) whose paths point at tiny's
    data, outputs and store; ``extra``: more TOML (e.g. a [dashboard] section)."""
    base = tiny.base.as_posix()
    text = CONFIG.replace('"data/', f'"{base}/data/').replace('dir = "run"', f'dir = "{base}/run"')
    text += f'[store]\nurl = "{store_url or tiny.config.store.url}"\n' + extra
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def two_runs(tiny_run, tmp_path_factory) -> tuple[Path, list[int]]:  # noqa: F811
    """A copy of tiny's store with a second run published from the same outputs: (config, run ids
    oldest first). The shared tiny store is left as it is."""
    from respop.config import load_config
    from respop.pipeline import publish

    folder = tmp_path_factory.mktemp("two_runs")
    copy = folder / "respop.sqlite"
    source = sqlite3.connect(tiny_run.config.store.url.removeprefix("sqlite:///"))
    target = sqlite3.connect(copy)
    source.backup(target)
    source.close()
    target.close()
    config_path = write_config(folder / "tiny.toml", tiny_run, store_url=f"sqlite:///{copy.as_posix()}")
    second = publish(load_config(config_path), config_path)
    return config_path, [tiny_run.run_id, second]
