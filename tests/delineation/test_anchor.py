"""The anchor rule of the automatic count: a territory without a hospital of an anchor kind (CH,
CHU by default) fails the self-containment criterion and is merged; with a target it is checked,
not enforced; without a ``kind`` column it is off, and says so; an unknown kind is an error."""

from __future__ import annotations

import dataclasses

import polars as pl
import pytest

from respop.config import Config, load_config
from respop.delineation.flows import hospital_grouping
from respop.delineation.graph import anchored_groups, merge_uncontained, problem_index
from respop.delineation.leiden import AnchorWarning, Leiden
from respop.delineation.run import count_choice, fit, load_reference
from respop.errors import ConfigError, InputError
from tests.delineation.worlds import as_dict, grid, labels, problem

KINDS = {"A": ["CH"], "B": ["CHU"], "C": ["private"]}


def _strip(kinds: dict[str, list[str]] | None = KINDS):
    """1 × 6 zones: A (a CH) at z00 used by z00-z01, C (a private clinic) at z02 used by z02-z03,
    B (a CHU) at z05 used by z04-z05. C's zones are self-contained (ratio 90/10 and 80/25) and
    send more stays to B's territory (25) than to A's (10)."""
    flows = {("z00", "A"): 100, ("z01", "A"): 80, ("z01", "C"): 10, ("z02", "C"): 90, ("z02", "A"): 10,
             ("z03", "C"): 80, ("z03", "B"): 25, ("z04", "B"): 80, ("z04", "C"): 10, ("z05", "B"): 100}
    p = problem(grid(1, 6), flows, {"A": "z00", "B": "z05", "C": "z02"})
    if kinds is None:
        return p
    groups = p.groups.with_columns(
        pl.col("group").replace_strict(kinds, return_dtype=pl.List(pl.String)).alias("kinds"))
    return dataclasses.replace(p, groups=groups)


THREE = {"z00": 1, "z01": 1, "z02": 2, "z03": 2, "z04": 3, "z05": 3}


def test_a_territory_without_an_anchor_is_merged_into_its_strongest_neighbour():
    p = _strip()
    assert len(set(as_dict(merge_uncontained(labels(THREE), p, 1.5)).values())) == 3  # contained enough
    out = as_dict(merge_uncontained(labels(THREE), p, 1.5, anchor_kinds=("CH", "CHU")))
    assert out["z02"] == out["z03"] == out["z04"] == out["z05"] != out["z00"]  # into B's: 25 stays against 10
    # a clinic counts as an anchor when asked
    assert len(set(as_dict(merge_uncontained(labels(THREE), p, 1.5, anchor_kinds=("private", "CH"))).values())) == 2
    assert len(set(as_dict(merge_uncontained(labels(THREE), p, 1.5, anchor_kinds=("CH", "CHU", "private"))).values())) == 3
    # no kinds on the groups, or no kinds asked: the rule is off
    assert len(set(as_dict(merge_uncontained(labels(THREE), _strip(None), 1.5, anchor_kinds=("CH",))).values())) == 3
    assert len(set(as_dict(merge_uncontained(labels(THREE), p, 1.5, anchor_kinds=())).values())) == 3


def test_anchored_groups_follow_the_index_and_the_kinds():
    p = _strip()
    groups = problem_index(p).groups.tolist()
    anchor = anchored_groups(p, ("CH", "CHU"))
    assert dict(zip(groups, anchor.tolist())) == {"A": True, "B": True, "C": False}
    assert anchored_groups(p, ()) is None and anchored_groups(_strip(None), ("CH",)) is None


def test_the_default_merges_the_clinic_territory_and_a_target_only_warns():
    p = _strip()
    auto = Leiden().fit(p)
    assert auto.assignment_["territory_id"].n_unique() == 2
    assert auto.anchor_kinds_ == ("CH", "CHU") and auto.anchor_note_ is None
    assert auto.unanchored_ == [] and auto.warnings_ == []
    assert Leiden(anchor_kinds=()).fit(p).assignment_["territory_id"].n_unique() == 3
    # a target is the user's: the rule is checked, the territory of C kept, and a warning names it
    for kwargs in ({"target_count": 3}, {"resolution": 1.0}):
        with pytest.warns(AnchorWarning, match=r"1 territory without a hospital of kind CH or CHU, with the hospital "
                                               r"groups C \(zone z02…\): the anchor rule merges such territories only"):
            m = Leiden(**kwargs).fit(p)
        assert m.assignment_["territory_id"].n_unique() == 3
        assert m.unanchored_ == [["z02", "z03"]] and len(m.warnings_) == 1


def test_without_a_kind_column_the_rule_is_off_and_the_build_says_so(capsys):
    p = _strip(None)
    m = Leiden().fit(p)
    assert m.assignment_["territory_id"].n_unique() == 3
    assert m.anchor_kinds_ == () and "no kind column" in m.anchor_note_
    method, _ = fit(Config.model_validate({}), p)
    assert "respop: warning: territories: the hospitals' table has no kind column: the anchor rule" in capsys.readouterr().err
    choice = count_choice(Config.model_validate({}), method)
    assert choice["criterion"]["anchor_kinds"] == [] and "no kind column" in choice["criterion"]["anchor_note"]
    # switched off on purpose: nothing to say
    fit(Config.model_validate({"territories": {"anchor_kinds": []}}), p)
    assert "anchor" not in capsys.readouterr().err
    # kinds, but no anchor in the scope: off, with the reason
    only_clinics = _strip({"A": ["local"], "B": ["private"], "C": ["private"]})
    assert "no hospital of kind CH or CHU is located in the scope" in Leiden().fit(only_clinics).anchor_note_


def test_a_group_is_anchored_by_any_of_its_hospitals(tmp_path):
    hospitals = pl.DataFrame({"hospital_id": ["1", "2", "3"], "zone_code": ["a", "a", "b"], "town": ["X", "X", "Y"],
                              "kind": ["private", "CH", None]})
    _, by_town = hospital_grouping(hospitals, "town")
    assert dict(zip(by_town["group"], by_town["kinds"].to_list())) == {"X": ["CH", "private"], "Y": []}
    _, alone = hospital_grouping(hospitals, "establishment")
    assert alone["kinds"].to_list() == [["private"], ["CH"], []]
    assert "kinds" not in hospital_grouping(hospitals.drop("kind"), "establishment")[1].columns


def test_anchor_kinds_in_the_configuration(tmp_path):
    assert Config.model_validate({}).territories.anchor_kinds == ["CH", "CHU"]
    path = tmp_path / "territory.toml"
    path.write_text('[territories]\nanchor_kinds = ["CH", "chu", "clinic"]\n')
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert str(path) in message and "key 'territories.anchor_kinds'" in message
    assert "unknown hospital kind(s) 'chu', 'clinic'" in message and "CHU, CH, local, private" in message
    path.write_text('[territories]\nanchor_kinds = []\n')
    assert load_config(path).territories.anchor_kinds == []


def test_an_unknown_kind_in_the_hospitals_table_is_an_error(tmp_path):
    ref = tmp_path / "reference"
    ref.mkdir()
    grid(1, 2).to_parquet(ref / "zones.parquet")
    pl.DataFrame({"zone_code": ["z00", "z01"], "population": [10, 20]}).write_parquet(ref / "population.parquet")
    hospitals = pl.DataFrame({"hospital_id": ["1", "2"], "zone_code": ["z00", "z01"], "kind": ["CH", "Clinique"]})
    hospitals.write_parquet(ref / "hospitals.parquet")
    config = Config.model_validate({"input": {"reference_dir": str(ref)}})
    with pytest.raises(InputError, match="unknown hospital kind\\(s\\) 'Clinique' in the column kind") as caught:
        load_reference(config)
    assert caught.value.column == "kind" and caught.value.path.name == "hospitals.parquet"
    hospitals.with_columns(pl.lit(None, dtype=pl.String).alias("kind")).write_parquet(ref / "hospitals.parquet")
    assert load_reference(config).hospitals.height == 2  # unknown kinds left empty are fine
