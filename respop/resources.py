"""Paths to the reference files shipped inside the package (see respop/data/snds/ATTRIBUTION.md)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

ATTRIBUTION = "Schéma et nomenclatures SNDS : Health Data Hub / DREES, Licence Ouverte 2.0"


def data_path(*parts: str) -> Path:
    """Return the path of a file shipped under ``respop/data``."""
    return Path(str(resources.files("respop").joinpath("data", *parts)))


def snds_schema_path(table: str) -> Path:
    """Table Schema JSON of an SNDS PMSI MCO table, e.g. ``snds_schema_path("B")``."""
    return data_path("snds", "schemas", f"T_MCOaa{table}.json")


def nomenclature_path(name: str) -> Path:
    """A shipped SNDS nomenclature, e.g. ``nomenclature_path("MS_CIM_V")``."""
    return data_path("snds", "nomenclatures", f"{name}.csv")


def hdh_sample_dir() -> Path:
    """Folder of the Health Data Hub's own synthetic PMSI MCO rows (messy on purpose)."""
    return data_path("snds", "synthetic")
