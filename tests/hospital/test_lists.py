"""The list writer (respop.hospital.build_lists) on hand-made person-years and stays."""

from __future__ import annotations

import datetime as dt

import polars as pl

from respop.hospital import COLUMNS, build_lists
from respop.spec.loaders import load_specs


class Specs:
    def __init__(self, specs):
        self.specs = specs


def test_the_list_holds_every_stay_of_the_stratum_persons_and_no_patient_key():
    spec = load_specs(["heart_failure"], None)[0]
    levels = [lv.name for lv in spec.strata.levels]  # most severe first
    person_strata = pl.LazyFrame({
        "patient_key": ["K1", "K2", "K3", "K1"],
        "disease": ["heart_failure"] * 4,
        "year": [2023, 2023, 2023, 2022],
        "stratum": [levels[-1], levels[0], levels[-1], levels[0]],
    }, schema_overrides={"year": pl.Int16})
    d = dt.date
    stays = pl.LazyFrame({
        "stay_id": [1, 2, 3, 4, 5],
        "source_year": [2021, 2023, 2023, 2023, 2023],
        "hospital_id": ["010000024"] * 5,
        "rsa_num": ["0000000007", "0000000001", "0000000002", "0000000003", "0000000004"],
        "patient_key": ["K1", "K1", "K2", "K2", "K9"],
        "entry_date": [d(2021, 3, 1), d(2023, 1, 5), d(2023, 2, 1), d(2023, 6, 1), d(2023, 7, 1)],
        "exit_date": [d(2021, 3, 4), d(2023, 1, 9), d(2023, 2, 3), d(2023, 6, 9), d(2023, 7, 2)],
        "qualifying": [["heart_failure"], [], ["heart_failure", "other"], ["heart_failure"], ["heart_failure"]],
    }, schema_overrides={"source_year": pl.Int16})
    lists = build_lists(Specs([spec]), person_strata, stays, 2023)
    frame = lists["heart_failure"]
    assert frame.columns == list(COLUMNS)
    assert "patient_key" not in frame.columns
    assert not {"K1", "K2", "K3", "K9"} & {str(v) for col in frame.columns for v in frame[col].to_list()}
    # K2 (the most severe stratum) first, as person 1; K1's two stays, 2021 and 2023; K3 has no stay here; K9 no stratum
    assert frame.select("personne", "annee_pmsi", "numero_rsa", "sejour_qualifiant").rows() == [
        (1, 2023, "0000000002", "oui"), (1, 2023, "0000000003", "oui"),
        (2, 2021, "0000000007", "oui"), (2, 2023, "0000000001", "non"),
    ]
    assert frame["strate"].to_list() == [levels[0]] * 2 + [levels[-1]] * 2
    assert frame["strate_libelle"][0] == spec.strata.levels[0].label
    assert frame["protocole"][0].startswith(spec.strata.levels[0].protocol.split()[0]) and "\n" not in frame["protocole"][0]
    assert frame["maladie"].unique().to_list() == [spec.algorithm.name] and frame["annee"].unique().to_list() == [2023]
    assert frame["niveau"][0] == len(levels) and frame["niveau"][-1] == 1
