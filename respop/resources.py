"""Paths to the files shipped inside the package: the SNDS reference data (see
respop/data/snds/ATTRIBUTION.md), the algorithm specs and the synthetic-data profiles.

The specs and the profiles are edited in the repository's top-level ``algorithms/`` and
``synthetic_data/`` folders; the build copies them into the wheel as ``respop/data/algorithms``
and ``respop/data/synthetic_data`` (pyproject.toml, ``[tool.setuptools.package-dir]``). Installed
from a wheel, respop reads that copy; installed editable from the repository (``make install``),
the package has no copy and reads the repository's folders, so an edit is seen at once.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

ATTRIBUTION = "Schéma et nomenclatures SNDS : Health Data Hub / DREES, Licence Ouverte 2.0"


def data_path(*parts: str) -> Path:
    """Return the path of a file shipped under ``respop/data``."""
    return Path(str(resources.files("respop").joinpath("data", *parts)))


def _shipped_folder(name: str) -> Path:
    """``respop/data/<name>`` in an installed wheel, else the repository's top-level ``<name>/``."""
    packaged = data_path(name)
    if packaged.is_dir():
        return packaged
    repository = Path(__file__).resolve().parents[1] / name
    return repository if repository.is_dir() else packaged


def algorithms_dir() -> Path:
    """Folder of the shipped algorithm specs (``<disease>.toml``, ``features.toml``)."""
    return _shipped_folder("algorithms")


def synthetic_profiles_dir() -> Path:
    """Folder of the shipped synthetic-data profiles (``tiny.toml``, ``demo.toml``, ``national.toml``)."""
    return _shipped_folder("synthetic_data")


def snds_schema_path(table: str) -> Path:
    """Table Schema JSON of an SNDS PMSI MCO table, e.g. ``snds_schema_path("B")``."""
    return data_path("snds", "schemas", f"T_MCOaa{table}.json")


def nomenclature_path(name: str) -> Path:
    """A shipped SNDS nomenclature, e.g. ``nomenclature_path("MS_CIM_V")``."""
    return data_path("snds", "nomenclatures", f"{name}.csv")


def hdh_sample_dir() -> Path:
    """Folder of the Health Data Hub's own synthetic PMSI MCO rows (messy on purpose)."""
    return data_path("snds", "synthetic")
