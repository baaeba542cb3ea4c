"""A run's catalogue: the specs it used, loaded once at its start and frozen with its outputs.

:func:`freeze` reads the configured diseases' specs and ``features.toml`` from the algorithms
folder (the one time a run reads them), checks the strata conditions against the configured
diseases (a ``case_of_<disease>`` of a disease not configured is refused), and
:func:`write_catalogue` writes ``<output.dir>/catalogue.json``. The later steps (cases, strata,
the store) read that file (:func:`read_catalogue`), not the TOML files: what the store publishes
about the diseases (names, sub-types, features, strata, versions, sources: the ``catalogue`` and
``strata_levels`` tables) is what the steps computed with.

``catalogue.json`` holds ``specs`` (each algorithm as parsed, the machine's copy) and
``features`` (the code features), and, for readers, ``diseases``: per disease its id, version,
date, French name, description, sources, sub-types, branches, features (the computed, case-of
and code features with their French labels) and strata (descriptions, conditions, protocols).
"""

from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError

from respop.errors import ConfigError
from respop.spec.algorithm import AlgorithmSpec, _Model
from respop.spec.conditions import ConditionError, check
from respop.spec.features import (
    COMPUTED,
    COMPUTED_LABELS,
    FeaturesSpec,
    case_features,
    case_label,
    known_features,
    load_features,
)

if TYPE_CHECKING:
    from respop.config import Config

CATALOGUE_FILE = "catalogue.json"
FORMAT = 1


class Catalogue(_Model):
    """The frozen specs of a run: the configured diseases' algorithms, in the configured order,
    and the code features."""

    algorithms_dir: str
    specs: list[AlgorithmSpec]
    features: FeaturesSpec

    @property
    def diseases(self) -> list[str]:
        return [s.disease for s in self.specs]

    def spec(self, disease: str) -> AlgorithmSpec:
        for s in self.specs:
            if s.disease == disease:
                return s
        raise KeyError(disease)

    def case_of(self, disease: str) -> list[str]:
        """The case-of features of ``disease``'s person-years (one per other configured disease)."""
        return case_features(disease, self.diseases)

    @cached_property
    def names(self) -> dict[str, str]:
        """Disease id → French name."""
        return {s.disease: s.algorithm.name for s in self.specs}

    def feature_rows(self, disease: str) -> list[dict]:
        """The features of ``disease``'s strata and model: name, kind, French label, meaning, codes."""
        rows = [{"name": n, "kind": "computed", "label": COMPUTED_LABELS[n], "description": m, "codes": None}
                for n, m in COMPUTED.items()]
        for other, name in zip([d for d in self.diseases if d != disease], self.case_of(disease), strict=True):
            rows.append({"name": name, "kind": "case_of", "label": case_label(self.names[other]),
                         "description": f"a case of {other} the same year", "codes": None})
        for name, f in self.features.codes.items():
            rows.append({"name": name, "kind": "code", "label": f.label or name,
                         "description": f"{', '.join(f.positions)}; look-back {f.lookback_years} year(s)",
                         "codes": " ".join(f.codes)})
        return rows

    def describe(self) -> list[dict]:
        """The readable part of ``catalogue.json``: one entry per disease (module docstring)."""
        out = []
        for s in self.specs:
            a = s.algorithm
            out.append({
                "id": a.id, "name": a.name, "version": a.version, "date": a.date.isoformat(),
                "description": a.description.strip(), "sources": list(a.sources),
                "population": {"min_age": s.population.min_age, "max_age": s.population.max_age},
                "window": {"lookback_years": s.window.lookback_years, "min_stays": s.window.min_stays},
                "subtypes": [{"name": t.name, "label": t.label, "description": t.description} for t in s.subtypes.types],
                "branches": [{"name": b.name, "label": b.label, "source": b.source} for b in s.branches],
                "features": self.feature_rows(s.disease),
                "strata": None if s.strata is None else {
                    "description": s.strata.description.strip(), "sources": list(s.strata.sources),
                    "levels": [{"name": lv.name, "level": s.strata.level_of(lv.name), "label": lv.label,
                                "description": lv.description.strip(), "condition": lv.when, "protocol": lv.protocol.strip()}
                               for lv in s.strata.levels],
                },
            })
        return out

    def rows(self) -> list[dict]:
        """The catalogue as rows of text (the store's ``catalogue`` table): per disease, its own row
        (``kind`` disease: French name, description, version), its population and look-back
        (``window``: rank = look-back years, label = what an incident case is), then its sources, sub-types,
        branches, features and strata, each with its rank in the spec's order."""
        rows: list[dict] = []

        def add(disease, kind, name, rank, label, description=None, **more):
            rows.append({"disease": disease, "kind": kind, "name": name, "rank": rank, "label": label,
                         "description": description, "protocol": more.get("protocol"), "condition": more.get("condition"),
                         "codes": more.get("codes"), "version": more.get("version")})

        for entry in self.describe():
            d = entry["id"]
            add(d, "disease", d, 0, entry["name"], entry["description"], version=entry["version"])
            ages = entry.get("population") or {}
            add(d, "population", "population", 0, ages_label(ages.get("min_age"), ages.get("max_age")),
                "the rates' denominator: inhabitants of these ages in the year")
            lookback = (entry.get("window") or {}).get("lookback_years")
            if lookback is not None:
                add(d, "window", "lookback_years", lookback, lookback_label(lookback),
                    "years before the index year in which a stay counts (incident: none in them)")
            for i, source in enumerate(entry["sources"], 1):
                add(d, "source", f"source_{i}", i, source)
            for i, t in enumerate(entry["subtypes"], 1):
                add(d, "subtype", t["name"], i, t["label"], t["description"] or None)
            for i, b in enumerate(entry["branches"], 1):
                add(d, "branch", b["name"], i, b["label"], b["source"] or None)
            for i, f in enumerate(entry["features"], 1):
                add(d, "feature", f["name"], i, f["label"], f["description"], codes=f["codes"])
            if entry["strata"] is not None:
                for i, source in enumerate(entry["strata"]["sources"], 1):
                    add(d, "strata_source", f"strata_source_{i}", i, source)
                for lv in entry["strata"]["levels"]:
                    add(d, "stratum", lv["name"], lv["level"], lv["label"], lv["description"],
                        protocol=lv["protocol"], condition=lv["condition"])
        return rows

    def to_json(self) -> dict:
        return {"format": FORMAT, "algorithms_dir": self.algorithms_dir, "diseases": self.describe(),
                **self.model_dump(mode="json", exclude={"algorithms_dir"})}


def lookback_label(years: int) -> str:
    """What an incident case of a spec with this look-back is, in French: the first stay found in
    the index year and the ``years`` before it ("premier séjour repéré depuis 5 ans")."""
    if years <= 0:
        return "séjour dans l'année (pas de recul)"
    return f"premier séjour repéré depuis {years} an{'s' if years > 1 else ''}"


def ages_label(min_age: int | None, max_age: int | None) -> str:
    """The ages of a spec's ``[population]`` in French, as the boards state the rates'
    denominator ("habitants de 18 ans et plus"): "de 18 ans et plus", "de 0 à 64 ans",
    "de 64 ans ou moins", "de tous âges"."""
    if min_age and max_age is not None:
        return f"de {min_age} à {max_age} ans"
    if min_age:
        return f"de {min_age} ans et plus"
    if max_age is not None:
        return f"de {max_age} ans ou moins"
    return "de tous âges"


def freeze(diseases: list[str], folder: str | Path | None) -> Catalogue:
    """Load the specs of ``diseases`` and the features of ``folder`` once (module docstring)."""
    from respop.spec.loaders import algorithms_folder, load_specs

    specs = load_specs(list(diseases), folder)
    features = load_features(folder)
    for spec in specs:
        if spec.strata is None:
            continue
        others = [d for d in diseases if d != spec.disease]
        known = known_features(features, others)
        for i, level in enumerate(spec.strata.levels):
            if level.condition is None:
                continue
            try:
                check(level.condition, known)
            except ConditionError:
                unknown = sorted(level.condition.features() - known)
                raise ConfigError(
                    f"{algorithms_folder(folder) / (spec.disease + '.toml')}: key 'strata.levels.{i}.when' ({level.name}) "
                    f"uses {unknown}, not a feature of this run: a case-of feature needs its disease among the "
                    f"configured diseases ({', '.join(diseases)})"
                ) from None
    return Catalogue(algorithms_dir=str(algorithms_folder(folder)), specs=specs, features=features)


def config_catalogue(config: Config) -> Catalogue:
    """:func:`freeze` on a configuration's diseases and algorithms folder."""
    from respop.spec.loaders import configured_diseases

    return freeze(configured_diseases(config.diseases, config.cases.algorithms_dir), config.cases.algorithms_dir)


def catalogue_path(output_dir: Path) -> Path:
    return Path(output_dir) / CATALOGUE_FILE


def write_catalogue(catalogue: Catalogue, output_dir: Path) -> Path:
    """Write ``<output_dir>/catalogue.json`` (replaced whole: a temporary file renamed) in an
    output folder respop may write into (respop.fsutil.claim_output_folder)."""
    from respop.fsutil import claim_output_folder

    path = catalogue_path(output_dir)
    try:
        claim_output_folder(path.parent)
    except ValueError as exc:
        raise ConfigError(f"output.dir: {exc}") from None
    tmp = path.with_name(f".{CATALOGUE_FILE}.tmp")
    tmp.write_text(json.dumps(catalogue.to_json(), ensure_ascii=False, indent=2), encoding="utf-8")
    tmp.replace(path)
    return path


def read_catalogue(output_dir: Path) -> Catalogue | None:
    """The catalogue a run wrote, None when there is none; a damaged one is a :class:`ConfigError`."""
    path = catalogue_path(output_dir)
    if not path.is_file():
        return None
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(raw, dict) or raw.get("format") != FORMAT:
            raise ValueError(f"format {raw.get('format') if isinstance(raw, dict) else None!r}, expected {FORMAT}")
        return Catalogue.model_validate({k: raw[k] for k in ("algorithms_dir", "specs", "features")})
    except (OSError, ValueError, KeyError, TypeError, ValidationError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"{path}: not a respop catalogue ({first}); run the pipeline again (respop run)") from None


def start_catalogue(config: Config) -> Catalogue:
    """At the start of a run: the specs loaded, frozen and written under ``output.dir``."""
    catalogue = config_catalogue(config)
    write_catalogue(catalogue, config.output.dir)
    return catalogue


def run_catalogue(config: Config) -> Catalogue:
    """The catalogue of the run in ``output.dir``: the one written at its start, or, for outputs
    that have none (a step run on its own), frozen now and written."""
    catalogue = read_catalogue(config.output.dir)
    if catalogue is None or catalogue.diseases != list(config.diseases or catalogue.diseases):
        return start_catalogue(config)
    return catalogue
