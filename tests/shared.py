"""Session fixtures built once per test session, not once per pytest-xdist worker.

``make test`` runs pytest with ``-n auto``: each worker is its own process with its own session
fixtures, so an expensive fixture used by tests on both workers was built twice (the whole
pipeline on ``tiny``: minutes on a loaded CI machine). :func:`build_once` builds it in a folder
shared by the workers (the parent of each worker's base temporary folder), under a file lock: the
first worker builds it, the others wait for it and read it. Only for fixtures the tests read and
never change; a fixture that tests modify stays per worker (``--dist loadscope`` keeps a module's
tests on one worker, so a module fixture is built once).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

DONE = ".built.json"


def build_once(tmp_path_factory: pytest.TempPathFactory, name: str, build: Callable[[Path], dict]) -> tuple[Path, dict]:
    """``build(folder)`` run once across the workers of this session; returns the folder and what
    ``build`` returned (JSON: it is read back by the workers that did not build). A failed build
    leaves nothing marked built: the next worker that needs it builds it again."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # shared by the workers of this session (pytest-of-<user>/pytest-<n>/)
    folder, done = root / name, root / name / DONE
    with open(root / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if not done.is_file():
                if folder.exists():
                    shutil.rmtree(folder)
                folder.mkdir()
                result = build(folder)
                done.write_text(json.dumps(result), encoding="utf-8")
            return folder, json.loads(done.read_text(encoding="utf-8"))
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
