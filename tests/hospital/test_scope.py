"""Hospital mode's configuration and scope (respop.config.HospitalConfig, respop.pmsi.scope): the
hospital's stays whatever the residence, other FINESS left out and counted."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from respop.config import load_config
from respop.errors import ConfigError, InputError
from respop.pmsi import read_pmsi
from respop.pmsi.scope import HospitalData, for_hospital, restrict_to_hospital
from respop.stages import active_stages, input_fingerprint, stage_inputs
from tests.snds_builder import SndsYear

MINE, OTHER, SECOND = "010000024", "020000040", "010000032"


def write_config(folder: Path, hospital: str | None = None, extra: str = "") -> Path:
    text = f'name = "h"\n[input]\npmsi_dir = "pmsi"\n[output]\ndir = "run"\n{extra}'
    if hospital is not None:
        text += f"[hospital]\n{hospital}\n"
    path = folder / "h.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_hospital_section(tmp_path):
    config = load_config(write_config(tmp_path, f'finess = "{MINE}"'))
    assert config.hospital.finess == [MINE]
    assert config.hospital.lists_dir == (tmp_path / "run" / "listes").resolve()
    # a hospital does not receive the SNDS death referential: the run behaves as on its own files
    assert config.input.deaths == "ignore"
    several = load_config(write_config(tmp_path, f'finess = ["{MINE}", "{SECOND}", "{MINE}"]\nlists_dir = "/secure/listes"\nyear = 2023'))
    assert several.hospital.finess == [MINE, SECOND] and several.hospital.lists_dir == Path("/secure/listes")
    assert several.hospital.year == 2023
    for bad in ('finess = "12345"', "finess = []", f'finess = "{MINE}"\nyear = 1990', "lists_dir = \"x\""):
        with pytest.raises(ConfigError):
            load_config(write_config(tmp_path, bad))
    population = load_config(write_config(tmp_path))
    assert population.hospital is None and population.input.deaths == "auto"


def test_hospital_mode_stages_and_fingerprints(tmp_path):
    population = load_config(write_config(tmp_path))
    hospital = load_config(write_config(tmp_path, f'finess = "{MINE}"'))
    assert active_stages(population) == ("input", "territories", "cases", "strata")
    assert active_stages(hospital) == ("input", "cases", "strata")
    # population mode's fingerprint has no hospital key (its manifests are unchanged); hospital mode's names the FINESS
    assert input_fingerprint(population)["settings"] != input_fingerprint(hospital)["settings"]
    # a territories folder left in the output folder is not read by hospital mode's cases
    (hospital.output.dir / "territories").mkdir(parents=True)
    assert stage_inputs(hospital, "cases")["territories"] is None
    assert stage_inputs(population, "cases")["territories"] == "unrecorded"


@pytest.fixture(scope="module")
def two_hospitals(tmp_path_factory) -> Path:
    """Two hospitals: mine sees patients from here, from another département and from abroad."""
    folder = tmp_path_factory.mktemp("scope") / "pmsi"
    year = SndsYear(2023)
    year.stay(eta=MINE, c={"NIR_ANO_17": "PATIENT0000000001"})
    year.stay(eta=MINE, BDI_COD="75056", BDI_DEP="75", das=("E119",), c={"NIR_ANO_17": "PATIENT0000000002"})
    year.stay(eta=MINE, BDI_COD="99134", BDI_DEP="99", c={"NIR_ANO_17": "PATIENT0000000003"})
    year.stay(eta=SECOND, c={"NIR_ANO_17": "PATIENT0000000003"})
    year.stay(eta=OTHER, c={"NIR_ANO_17": "PATIENT0000000001"})
    year.stay(eta=OTHER, das=("E119",), c={"NIR_ANO_17": "PATIENT0000000004"})
    year.write(folder)
    return folder


def test_the_scope_keeps_the_hospitals_stays_whatever_the_residence(two_hospitals):
    data = read_pmsi(two_hospitals)
    try:
        mine = restrict_to_hospital(data, [MINE])
        assert isinstance(mine, HospitalData)
        stays = mine.stays.collect()
        assert stays["hospital_id"].to_list() == [MINE] * 3
        assert sorted(stays["patient_key"].to_list()) == [f"PATIENT000000000{i}" for i in (1, 2, 3)]
        assert mine.scope == {"finess": [MINE], "stays_kept": {MINE: 3}, "stays_other_finess": 3, "other_finess": 2}
        # the diagnoses of the hospital's stays only
        assert set(mine.diagnoses.collect()["stay_id"].to_list()) == set(stays["stay_id"].to_list())
        assert restrict_to_hospital(mine, [MINE]) is mine  # once
        both = restrict_to_hospital(read_pmsi(two_hospitals), [MINE, SECOND])
        assert both.scope["stays_kept"] == {MINE: 3, SECOND: 1} and both.scope["stays_other_finess"] == 2
        assert for_hospital(data, None).stays.collect().height == 6
    finally:
        data.close()


def test_no_stay_of_the_finess_is_an_error_without_patient_data(two_hospitals):
    data = read_pmsi(two_hospitals)
    try:
        with pytest.raises(InputError) as error:
            restrict_to_hospital(data, ["990000011"])
    finally:
        data.close()
    message = str(error.value)
    assert "990000011" in message and "3 other FINESS" in message and "PATIENT" not in message
