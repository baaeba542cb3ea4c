"""Reading the spec files of an algorithms folder: ``<disease>.toml`` and ``features.toml``.

The diseases are open: the diseases of a folder are its ``<disease>.toml`` files (every ``.toml``
but ``features.toml``); a configuration lists some of them (``diseases``) or takes them all.
Errors are :class:`~respop.errors.ConfigError` naming the file, the key and the value.
"""

from __future__ import annotations

from pathlib import Path

from respop.errors import ConfigError
from respop.spec.algorithm import DISEASE_ID, AlgorithmSpec
from respop.spec.conditions import ConditionError, check

FEATURES_FILE = "features.toml"


def shipped_algorithms_dir() -> Path:
    """The algorithms folder respop ships (the default of ``[cases] algorithms_dir``): the
    wheel's copy, or the repository's ``algorithms/`` (respop.resources.algorithms_dir)."""
    from respop.resources import algorithms_dir

    return algorithms_dir()


def algorithms_folder(folder: str | Path | None) -> Path:
    """``folder``, or the shipped one when None."""
    return Path(folder) if folder is not None else shipped_algorithms_dir()


def spec_path(disease: str, folder: str | Path | None = None) -> Path:
    return algorithms_folder(folder) / f"{disease}.toml"


def available_diseases(folder: str | Path | None = None) -> list[str]:
    """The diseases of an algorithms folder: its ``<disease>.toml`` files, sorted by name."""
    root = algorithms_folder(folder)
    if not root.is_dir():
        raise ConfigError(f"algorithms folder not found: {root}")
    return sorted(p.stem for p in root.glob("*.toml") if p.name != FEATURES_FILE and p.is_file())


def configured_diseases(diseases: list[str] | None, folder: str | Path | None = None) -> list[str]:
    """The diseases a configuration runs: those it lists, each with its spec file, or every spec
    file of the folder. A listed disease without its file is a :class:`ConfigError` naming it."""
    import re

    if diseases is None:
        found = available_diseases(folder)
        if not found:
            raise ConfigError(f"no algorithm spec (<disease>.toml) in {algorithms_folder(folder)}")
        return found
    for disease in diseases:
        if not re.match(DISEASE_ID, disease):
            raise ConfigError(f"key 'diseases': {disease!r} is not a disease identifier (lower case, digits, _)")
        path = spec_path(disease, folder)
        if not path.is_file():
            raise ConfigError(
                f"key 'diseases': no algorithm spec for {disease!r}: {path} not found "
                f"(specs there: {', '.join(available_diseases(folder)) or 'none'})"
            )
    return list(diseases)


def load_spec(path: str | Path) -> AlgorithmSpec:
    """Read and validate an algorithm spec; errors name the file, the key and the value. Strata
    conditions may use the computed and code features and the case-of feature of any disease of
    the spec's folder (the run's catalogue checks them against the configured diseases)."""
    from respop.tomlfiles import load_toml_model
    from respop.spec.features import known_features, load_features

    path = Path(path)
    spec = load_toml_model(path, AlgorithmSpec, "algorithm spec")
    if spec.strata is not None:
        diseases = available_diseases(path.parent) if path.parent.is_dir() else []
        known = known_features(load_features(path.parent), diseases)
        for i, level in enumerate(spec.strata.levels):
            if level.condition is not None:
                try:
                    check(level.condition, known)
                except ConditionError as exc:
                    raise ConfigError(
                        f"{path}: invalid algorithm spec:\n  - key 'strata.levels.{i}.when' ({level.name}): {exc} "
                        f"(value {level.when!r})"
                    ) from None
    return spec


def load_specs(diseases: list[str], folder: str | Path | None = None) -> list[AlgorithmSpec]:
    """The specs of the configured diseases; the file's ``algorithm.id`` must match its name."""
    specs = []
    for disease in diseases:
        path = spec_path(disease, folder)
        spec = load_spec(path)
        if spec.disease != disease:
            raise ConfigError(f"{path}: key 'algorithm.id' is {spec.disease!r}, expected {disease!r} (the file's name)")
        specs.append(spec)
    return specs
