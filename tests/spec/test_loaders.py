"""The spec loaders: the open disease set (the spec files of the folder), the configured diseases,
the run's catalogue (frozen, written, read back) and its refusals."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from respop.config import load_config
from respop.errors import ConfigError
from respop.spec import freeze, read_catalogue
from respop.spec.catalogue import catalogue_path, write_catalogue
from respop.spec.features import case_feature
from respop.spec.loaders import available_diseases, configured_diseases, load_specs, shipped_algorithms_dir
from tests.spec.new_disease import NEW_DISEASE_TOML

SHIPPED = available_diseases()


def algorithms(tmp_path: Path, extra: dict[str, str] | None = None) -> Path:
    """A copy of the shipped algorithms folder, with extra spec files."""
    folder = tmp_path / "algorithms"
    shutil.copytree(shipped_algorithms_dir(), folder)
    for name, text in (extra or {}).items():
        (folder / f"{name}.toml").write_text(text, encoding="utf-8")
    return folder


def test_the_diseases_are_the_spec_files():
    assert "features" not in SHIPPED and {"diabetes", "heart_failure"} <= set(SHIPPED)
    assert SHIPPED == sorted(p.stem for p in shipped_algorithms_dir().glob("*.toml") if p.stem != "features")
    assert configured_diseases(None) == SHIPPED


def test_a_new_spec_file_is_a_new_disease(tmp_path):
    folder = algorithms(tmp_path, {"obesity": NEW_DISEASE_TOML})
    assert "obesity" in available_diseases(folder)
    (spec,) = load_specs(["obesity"], folder)
    assert spec.algorithm.name == "Obésité hospitalisée" and [t.name for t in spec.subtypes.types] == ["exces_calorique", "obesite_autre"]


def test_a_configured_disease_without_its_file_names_the_file(tmp_path):
    config = tmp_path / "t.toml"
    config.write_text('name = "t"\ndiseases = ["diabetes", "asthma"]\n[output]\ndir = "run"\n', encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_config(config)
    message = str(err.value)
    assert str(config) in message and str(shipped_algorithms_dir() / "asthma.toml") in message and "\n" not in message


def test_no_diseases_listed_takes_every_spec_of_the_folder(tmp_path):
    folder = algorithms(tmp_path, {"obesity": NEW_DISEASE_TOML})
    config = tmp_path / "t.toml"
    config.write_text('name = "t"\n[cases]\nalgorithms_dir = "algorithms"\n[output]\ndir = "run"\n', encoding="utf-8")
    assert load_config(config).diseases == available_diseases(folder)


def test_an_id_that_is_not_the_file_name(tmp_path):
    folder = algorithms(tmp_path, {"obesite": NEW_DISEASE_TOML})
    with pytest.raises(ConfigError, match=r"algorithm\.id.*'obesity'.*'obesite'"):
        load_specs(["obesite"], folder)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.permutations(SHIPPED).flatmap(lambda p: st.integers(1, len(p)).map(lambda n: list(p[:n]))))
def test_catalogue_round_trip_and_case_of_features(tmp_path, diseases):
    """Any configured subset, in any order: the catalogue keeps the order, gives each disease the
    case-of feature of every other one, and reads back equal from catalogue.json."""
    usable = [d for d in diseases if not _uses_other_diseases(d, diseases)]
    if not usable:
        return
    catalogue = freeze(usable, None)
    assert catalogue.diseases == usable
    for d in usable:
        assert catalogue.case_of(d) == [case_feature(o) for o in usable if o != d]
        names = [f["name"] for f in catalogue.feature_rows(d)]
        assert len(names) == len(set(names)) and set(catalogue.case_of(d)) <= set(names)
    out = tmp_path / f"run-{'-'.join(usable)}"
    write_catalogue(catalogue, out)
    assert read_catalogue(out) == catalogue
    written = json.loads(catalogue_path(out).read_text(encoding="utf-8"))
    assert [d["id"] for d in written["diseases"]] == usable
    assert all(d["name"] and d["version"] and d["sources"] for d in written["diseases"])


def _uses_other_diseases(disease: str, configured: list[str]) -> bool:
    (spec,) = load_specs([disease])
    used = set().union(*(lv.condition.features() for lv in spec.strata.levels if lv.condition is not None)) if spec.strata else set()
    return any(u.startswith("case_of_") and u.removeprefix("case_of_") not in configured for u in used)


def test_a_case_of_feature_of_a_disease_not_configured_is_refused(tmp_path):
    folder = algorithms(tmp_path, {"obesity": NEW_DISEASE_TOML})
    freeze(["obesity", "diabetes"], folder)  # its strata use case_of_diabetes
    with pytest.raises(ConfigError) as err:
        freeze(["obesity", "heart_failure"], folder)
    message = str(err.value)
    assert "obesity.toml" in message and "strata.levels.2.when" in message and "case_of_diabetes" in message


def test_the_case_of_feature_of_the_folder_only(tmp_path):
    """A condition may name the case-of feature of a disease of its folder, not of any name."""
    folder = algorithms(tmp_path, {"obesity": NEW_DISEASE_TOML.replace("case_of_diabetes", "case_of_measles")})
    with pytest.raises(ConfigError, match=r"strata\.levels\.2\.when.*case_of_measles"):
        load_specs(["obesity"], folder)


@pytest.mark.parametrize("damage", ["{", '{"format": 99}', '{"format": 1, "specs": []}', "[]"])
def test_a_damaged_catalogue_is_refused(tmp_path, damage):
    (tmp_path / "catalogue.json").write_text(damage, encoding="utf-8")
    with pytest.raises(ConfigError, match="not a respop catalogue"):
        read_catalogue(tmp_path)


def test_no_catalogue_is_none(tmp_path):
    assert read_catalogue(tmp_path) is None


def test_catalogue_rows_are_text_with_french_labels():
    catalogue = freeze(SHIPPED, None)
    rows = catalogue.rows()
    kinds = {r["kind"] for r in rows}
    assert {"disease", "source", "subtype", "branch", "feature", "stratum"} <= kinds
    for d in SHIPPED:
        (own,) = [r for r in rows if r["disease"] == d and r["kind"] == "disease"]
        assert own["label"] == catalogue.spec(d).algorithm.name and own["version"] == catalogue.spec(d).algorithm.version
        strata = [r for r in rows if r["disease"] == d and r["kind"] == "stratum"]
        assert strata and all(r["protocol"] and r["description"] for r in strata)
    assert all(isinstance(r["label"], str) and r["label"] for r in rows)
