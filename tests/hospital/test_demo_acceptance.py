"""Issue 21's acceptance of hospital mode on the demo world (seed 1), for its university hospital:
benchmarks/hospital.py's checks asserted (about a minute: the world, three runs and the lists)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def benchmark():
    spec = importlib.util.spec_from_file_location("hospital_benchmark", ROOT / "benchmarks" / "hospital.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_the_lists_hold_exactly_the_persons_of_each_stratum_the_hospital_saw(tmp_path, monkeypatch):
    module = benchmark()
    monkeypatch.setattr(module, "OUT", tmp_path)
    result = module.one("demo", 1)
    assert result["hospital"]["stays_other_finess"] > 0 and not result["store_written"]
    assert all(result["atih_lists_equal_national"].values())  # the hospital's own ATIH files give the same lists
    for path in ("national", "atih"):
        for year, diseases in result[path].items():
            for disease, r in diseases.items():
                where = (path, year, disease)
                assert r["persons"] > 0, where
                # (a) every listed stay is the hospital's and maps to one truth person; every stay of a listed
                # person at the hospital is listed but those the quality filters exclude
                assert r["unmapped_stays"] == r["stays_of_other_finess"] == 0, where
                assert r["one_truth_person_per_listed_person"], where
                assert r["not_listed_without_excluding_fault"] == 0 and r["listed_with_excluding_fault"] == 0, where
                # (b) the persons of each stratum are those of the population path on the SNDS tables filtered to the FINESS
                assert r["strata_equal"], (where, r["strata"])
                # (c) every listed person had the disease, or had died before the year out of the hospital's sight
                assert r["false_positives"] == r["false_positives_dead_before_year"], where
