"""A plain install works (issue 17): the wheel carries the shipped specs, synthetic-data profiles
and reference data.

The slow test builds a wheel from the project's own files, installs it (not editable) into a fresh
virtual environment and runs ``respop synth --profile tiny`` then ``respop run`` from a folder
outside the repository, so that nothing resolves through the checkout. The new environment takes
respop's dependencies from the current one (a ``.pth`` line naming its site-packages): nothing is
downloaded but the build backend, which pip fetches for its isolated build as ``make install`` does.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import pytest

from tests.store.conftest import CONFIG, TINY_STORE_YEARS

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
SETUPTOOLS = PYPROJECT["tool"]["setuptools"]

# What pip prints when it cannot get the build backend (setuptools, wheel) from any index.
NO_INDEX = ("Could not find a version that satisfies the requirement", "No matching distribution found",
            "Failed to establish a new connection", "Temporary failure in name resolution")


def test_every_package_is_listed() -> None:
    """pyproject.toml lists respop's packages (for its package-dir mapping): a package missing
    there is missing from the wheel although the editable install imports it."""
    found = {
        ".".join(init.parent.relative_to(REPO).parts)
        for init in (REPO / "respop").rglob("__init__.py")
        if "__pycache__" not in init.parts
    }
    duplicates = sorted({p for p in SETUPTOOLS["packages"] if SETUPTOOLS["packages"].count(p) > 1})
    assert duplicates == [], "[tool.setuptools] packages lists these twice"
    mapped = set(SETUPTOOLS["package-dir"])
    listed = set(SETUPTOOLS["packages"]) - mapped
    assert sorted(found - listed) == [], "add these packages to [tool.setuptools] packages in pyproject.toml"
    assert sorted(listed - found) == [], "[tool.setuptools] packages lists packages that do not exist"
    for package, folder in SETUPTOOLS["package-dir"].items():
        patterns = SETUPTOOLS["package-data"][package]
        assert any(f for p in patterns for f in (REPO / folder).glob(p)), f"{package}: nothing shipped from {folder}/"


def _source_copy(target: Path) -> Path:
    """The files the build reads, copied out of the checkout (an in-tree build would leave
    ``build/`` and egg-info behind in a checkout others work in)."""
    target.mkdir(parents=True)
    names = ["pyproject.toml", "README.md", "LICENSE", "MANIFEST.in", "respop", *SETUPTOOLS["package-dir"].values()]
    for name in dict.fromkeys(names):
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, target / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        elif source.is_file():
            shutil.copy2(source, target / name)
    return target


def _clean_env(venv: Path) -> dict[str, str]:
    """The environment of the installed respop: no PYTHONPATH, no store URL of the test session."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV") and not k.startswith("RESPOP_")}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return env


def _run(args: list, cwd: Path, env: dict[str, str] | None = None, timeout: int = 900) -> subprocess.CompletedProcess:
    done = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(map(str, args))} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    return done


@pytest.mark.slow
def test_wheel_runs_tiny_end_to_end(tmp_path: Path) -> None:
    import pip

    if tuple(int(p) for p in pip.__version__.split(".")[:2]) < (22, 3):
        pytest.skip(f"pip {pip.__version__} cannot install into another environment (--python needs pip 22.3)")

    # 1. The wheel, built from a copy of the project's files.
    source = _source_copy(tmp_path / "source")
    dist = tmp_path / "dist"
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", str(dist), str(source)],
        capture_output=True, text=True, timeout=900,
    )
    if build.returncode != 0 and any(s in build.stdout + build.stderr for s in NO_INDEX):
        pytest.skip("cannot build a wheel here: pip cannot fetch the build backend (setuptools, wheel) "
                    "for its isolated build\n" + build.stderr[-2000:])
    assert build.returncode == 0, f"building the wheel failed:\n{build.stdout}\n{build.stderr}"
    (wheel,) = dist.glob("respop-*.whl")

    # 2. A fresh virtual environment with the wheel installed, not editable. The wheel goes in
    # before the dependencies are made visible, so that pip never sees (nor touches) the
    # editable respop of the current environment.
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=tmp_path)
    python = venv / "bin" / "python"
    _run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index", wheel], cwd=tmp_path)
    site = Path(_run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=tmp_path).stdout.strip())
    ours = dict.fromkeys(sysconfig.get_paths()[k] for k in ("purelib", "platlib"))
    (site / "_respop_test_dependencies.pth").write_text("".join(f"{p}\n" for p in ours if Path(p) != REPO), encoding="utf-8")

    # 3. From a folder outside the repository: respop and its shipped files come from the wheel.
    work = tmp_path / "work"
    work.mkdir()
    env = _clean_env(venv)
    where = json.loads(_run([python, "-c", (
        "import json, respop, respop.resources as r; print(json.dumps([respop.__file__, "
        "str(r.algorithms_dir()), str(r.synthetic_profiles_dir()), str(r.data_path())]))"
    )], cwd=work, env=env).stdout)
    for path in where:
        assert Path(path).resolve().is_relative_to(site.resolve()), f"{path} is not in the installed wheel"
    assert (Path(where[1]) / "features.toml").is_file() and (Path(where[2]) / "tiny.toml").is_file()

    years = f"{TINY_STORE_YEARS[0]}-{TINY_STORE_YEARS[-1]}"
    _run([venv / "bin" / "respop", "synth", "--profile", "tiny", "--seed", "5", "--years", years, "--out", "data"],
         cwd=work, env=env)
    (work / "tiny.toml").write_text(CONFIG, encoding="utf-8")
    _run([venv / "bin" / "respop", "run", "tiny.toml"], cwd=work, env=env, timeout=1800)

    runs = json.loads(_run([python, "-c", (
        "import json; from respop.config import load_config; from respop.store.db import Store; "
        "s = Store(load_config('tiny.toml').store.url); "
        "print(json.dumps([[r['run_id'], r['name'], r['status']] for r in s.runs()])); s.close()"
    )], cwd=work, env=env).stdout)
    assert runs == [[runs[0][0], "tiny", "succeeded"]]
    assert (work / "run" / "respop.sqlite").is_file()
