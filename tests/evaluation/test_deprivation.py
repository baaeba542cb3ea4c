"""The zone-level deprivation index (respop.evaluation.deprivation): reading and quarantine, the
aggregation of a commune-level index, population-weighted quintiles, outcomes by quintile."""

from __future__ import annotations

import polars as pl
import pytest

from respop.errors import InputError
from respop.evaluation.deprivation import (
    BY_QUINTILE_COLUMNS, REASONS_FR, aggregate_communes, by_quintile, quintiles, read_deprivation,
)
from respop.evaluation.outcomes import build_panel
from tests.evaluation.test_outcomes import HF, PEOPLE, POP


def test_read_deprivation_quarantines_invalid_rows(tmp_path):
    path = tmp_path / "deprivation.csv"
    path.write_text(
        "zone_code;deprivation\n"
        "01001;0,5\n"      # row 1: French decimal comma
        ";1.0\n"           # row 2: no zone
        "01002;abc\n"      # row 3: not a number
        "01003;NaN\n"      # row 4: not a finite number
        "01004;1.0\n"      # rows 5 and 6: the same zone twice
        "01004;2.0\n"
        " 01005 ; -1.25 \n",  # row 7: spaces around
        encoding="utf-8",
    )
    table, quarantine = read_deprivation(path)
    assert table.to_dicts() == [{"zone_code": "01001", "deprivation": 0.5}, {"zone_code": "01005", "deprivation": -1.25}]
    assert table.schema == pl.Schema({"zone_code": pl.String, "deprivation": pl.Float64})
    assert quarantine["_row"].to_list() == [2, 3, 4, 5, 6]
    assert quarantine["_reasons"].to_list() == [
        ["zone_code: missing"], ["deprivation: not a number"], ["deprivation: not a number"],
        ["zone_code: given more than once"], ["zone_code: given more than once"],
    ]
    assert quarantine["deprivation"].to_list() == ["1.0", "abc", "NaN", "1.0", "2.0"]  # as read
    assert set(quarantine["_source"]) == {"deprivation"}
    assert all(reason in REASONS_FR for reasons in quarantine["_reasons"] for reason in reasons)


def test_read_deprivation_parquet_and_errors(tmp_path):
    path = tmp_path / "deprivation.parquet"
    pl.DataFrame({"zone_code": ["A", "B", None], "deprivation": [1.0, float("nan"), 2.0]}).write_parquet(path)
    table, quarantine = read_deprivation(path)
    assert table.to_dicts() == [{"zone_code": "A", "deprivation": 1.0}]
    assert quarantine.height == 2
    wrong = tmp_path / "wrong.parquet"
    pl.DataFrame({"zone_code": ["A"], "index": [1.0]}).write_parquet(wrong)
    with pytest.raises(InputError, match="lacks the column.s. deprivation") as error:
        read_deprivation(wrong)
    assert error.value.column == "deprivation" and error.value.path == wrong
    with pytest.raises(InputError, match="not found"):
        read_deprivation(tmp_path / "missing.parquet")
    empty = tmp_path / "empty.parquet"
    pl.DataFrame({"zone_code": [None], "deprivation": [1.0]}, schema={"zone_code": pl.String, "deprivation": pl.Float64}).write_parquet(empty)
    with pytest.raises(InputError, match="no valid row"):
        read_deprivation(empty)


def test_aggregate_communes_weights_by_population_and_reports_what_it_cannot_use(tmp_path):
    index = pl.DataFrame({
        "commune_code": ["c1", "c2", "c3", "c5", "c6"],
        "deprivation": ["1", "3", "x", "10", "2"],  # c3: no valid index; c5: in no zone
    })
    correspondence = pl.DataFrame({
        "commune_code": ["c1", "c2", "c3", "c4", "c6", "c6"],
        "zone_code": ["z1", "z1", "z2", "z3", "z3", "z4"],  # c6 split between z3 and z4
        "population": [100, 300, 50, 80, 20, 60],
    })
    result = aggregate_communes(index, correspondence)
    assert result.table.to_dicts() == [
        {"zone_code": "z1", "deprivation": pytest.approx(2.5), "population": 400.0, "communes": 2},
        {"zone_code": "z3", "deprivation": pytest.approx(2.0), "population": 20.0, "communes": 1},
        {"zone_code": "z4", "deprivation": pytest.approx(2.0), "population": 60.0, "communes": 1},
    ]
    assert result.communes_without_zone["commune_code"].to_list() == ["c5"]
    assert result.zones_without_index["zone_code"].to_list() == ["z2"]
    assert result.communes_without_index["commune_code"].to_list() == ["c3", "c4"]
    assert result.summary() == {
        "zones": 3, "communes_used": 4, "communes_without_zone": 1, "zones_without_index": 1,
        "communes_without_index": 2, "invalid_index_rows": 1,
    }
    # the same from files, with a published index's own column names
    index.rename({"commune_code": "codgeo", "deprivation": "fdep"}).write_csv(tmp_path / "fdep.csv", separator=";")
    correspondence.write_parquet(tmp_path / "correspondence.parquet")
    from_files = aggregate_communes(tmp_path / "fdep.csv", tmp_path / "correspondence.parquet", index_columns=("codgeo", "fdep"))
    assert from_files.table.equals(result.table)
    assert from_files.summary() == result.summary()
    with pytest.raises(InputError, match="commune-level index lacks the column.s. commune_code, deprivation") as error:
        aggregate_communes(tmp_path / "fdep.csv", tmp_path / "correspondence.parquet")
    assert error.value.path == tmp_path / "fdep.csv"


def test_aggregate_communes_refuses_ambiguous_weights():
    index = pl.DataFrame({"commune_code": ["c1", "c1"], "deprivation": [1.0, 2.0]})
    correspondence = pl.DataFrame({"commune_code": ["c1"], "zone_code": ["z1"], "population": [10]})
    with pytest.raises(InputError, match="commune 'c1' more than once"):
        aggregate_communes(index, correspondence)
    with pytest.raises(InputError, match="non-negative population"):
        aggregate_communes(index.head(1), correspondence.with_columns(pl.lit(-1).alias("population")))


def test_quintiles_hold_a_fifth_of_the_population_each():
    deprivation = pl.DataFrame({"zone_code": [f"z{i}" for i in range(10)], "deprivation": [float(i) for i in range(10)]})
    even = pl.DataFrame({"zone_code": [f"z{i}" for i in range(10)], "population": [100] * 10})
    q = quintiles(deprivation, even)
    assert dict(zip(q["zone_code"], q["quintile"], strict=True)) == {f"z{i}": i // 2 + 1 for i in range(10)}
    # one zone holding 60% of the people fills the middle quintiles; a population by year is averaged
    uneven = pl.DataFrame({
        "zone_code": [f"z{i}" for i in range(5)] * 2, "year": [2022] * 5 + [2023] * 5,
        "population": [10, 10, 60, 10, 10, 10, 10, 60, 10, 10],
    })
    q = quintiles(deprivation.head(5), uneven)
    assert q.sort("zone_code")["quintile"].to_list() == [1, 1, 3, 5, 5]
    # ties share a quintile; a zone without population weighs nothing
    tied = pl.DataFrame({"zone_code": ["a", "b", "c", "d"], "deprivation": [1.0, 1.0, 2.0, 3.0]})
    q = quintiles(tied, pl.DataFrame({"zone_code": ["a", "b", "c"], "population": [10, 10, 20]}))
    assert dict(zip(q["zone_code"], q["quintile"], strict=True)) == {"a": 2, "b": 2, "c": 4, "d": 5}


def test_by_quintile_is_the_panel_grouped_by_quintile():
    deprivation = pl.DataFrame({"zone_code": ["A", "B"], "deprivation": [-1.0, 1.0]})
    q = quintiles(deprivation, POP)
    assert q.sort("zone_code")["quintile"].to_list() == [1, 4]  # A: 38% of the people, B: 62%
    table = by_quintile(PEOPLE, POP, deprivation, [HF], ["heart_failure.hospitalised", "heart_failure.emergency_per_case"])
    assert table.columns == BY_QUINTILE_COLUMNS
    assert sorted(table["quintile"].unique().to_list()) == [1, 4]
    # the quintiles already computed give the same; the values are the territories' (same standard)
    assert table.equals(by_quintile(PEOPLE, POP, q, [HF], ["heart_failure.hospitalised", "heart_failure.emergency_per_case"]))
    zones = pl.DataFrame({"zone_code": ["A", "B"], "territory_id": [1, 2]})
    panel = build_panel(PEOPLE, POP, zones, [HF], ["heart_failure.hospitalised", "heart_failure.emergency_per_case"])
    for quintile, territory in ((1, 1), (4, 2)):
        mine = table.filter(pl.col("quintile") == quintile).sort("outcome")
        theirs = panel.filter(pl.col("territory_id") == territory).sort("outcome")
        assert mine["value"].to_list() == pytest.approx(theirs["value"].to_list())
        assert mine["events"].to_list() == theirs["events"].to_list()
