"""Runs of one store on the same data share their unknowns: the difference of two runs' territory
totals is the moved zones' counts (finding 1 of issue 16), and a year that two runs both cover
is the same unknown where its true value is the same."""

from __future__ import annotations

import polars as pl

from tests.attack.conftest import PIN, judge_refusals
from tests.attack.solver import solve
from tests.attack.viewer import attack, protection_width


def _territories(store, run_id) -> dict[str, int]:
    return dict(store.read("zones", run_id).select("zone_code", "territory_id").iter_rows())


def test_two_runs_differing_by_one_pin_give_away_no_count(pinned_store):
    """tiny, seed 5, two runs in one store, the second with zone 01013 pinned into the territory
    of 01014. Each territory total of the two runs is a sum of the same zone unknowns, so their
    difference is the moved zone's counts. On the code of ceeebeb (P = 1): in each run, 34 of the
    40 indicator cells of 1 to 10 of zone 01013 determined (heart failure 2019, all: 47 - 46 = 1)
    and 95 of its 126 care-use cells (7 per-zone deaths and 5 re-hospitalisations, never
    published, among them); 271 cells determined only with both runs. No count of 1 to 10 may
    have an interval narrower than P over both runs."""
    store = pinned_store.store()
    judge_refusals(pinned_store)
    if len(pinned_store.outputs) == 1:  # the pinned run refused: what is visible must hold alone
        result = solve(attack(store, pinned_store.outputs), protection_width())
        assert not result.unsolved and not result.findings, result.summary()
        return
    first, second = sorted(pinned_store.outputs)
    before, after = _territories(store, first), _territories(store, second)
    moved = {z for z in before if before[z] != after.get(z)}
    assert "01013" in moved and after["01013"] == after[PIN["01013"]], (before, after)
    both = attack(store, pinned_store.outputs)
    # the same zone unknowns in both runs: the moved zone's cells are one expression in each run
    zone_cells = {}
    for c in both.cells:
        key = dict(c.key)
        if c.table == "indicators" and c.column == "cases" and key["level"] == "zone" and key["unit"] == "01013":
            zone_cells.setdefault((key["year"], key["disease"], key["subtype"]), {})[c.run_id] = c.expr
    assert zone_cells and all(e[first] == e[second] for e in zone_cells.values())
    result = solve(both, protection_width())
    if result.findings or result.unsolved:
        alone = set()
        for run_id in (first, second):
            alone |= {(f.cell.run_id, f.cell.table, f.cell.column, f.cell.key)
                      for f in solve(attack(store, {run_id: pinned_store.outputs[run_id]}), protection_width()).findings}
        combined = [f for f in result.findings if (f.cell.run_id, f.cell.table, f.cell.column, f.cell.key) not in alone]
        per_table = pl.DataFrame({"cell": [f"{f.cell.table}.{f.cell.column}" for f in combined]}).group_by("cell").len().sort("cell") \
            if combined else None
        raise AssertionError(
            f"{len(combined)} findings only with both runs (moved zones {sorted(moved)}):\n"
            f"{per_table}\n" + "\n".join(f"  {f}" for f in combined[:40]) + f"\n\nall findings:\n{result.summary()}"
        )


def test_a_run_over_fewer_years_shares_only_the_unknowns_whose_value_is_the_same(shorter_run):
    """tiny, seed 5, the same data read over 2019-2023 and over 2019-2022 into one store. The
    zone counts of the years both cover are the same unknowns where their true values are equal
    (all of them on this seed); the flows (counted over the stays read) and the calibration (of
    another test year) differ, and are other unknowns. On the code of ceeebeb (P = 1), the run
    over 2019-2022 alone has 52 cells determined, and 4 more with the other run: the in-hospital
    deaths of 2022 in the area, which the longer run determines (its transitions from 2022)."""
    tiny, shorter = shorter_run
    judge_refusals(tiny)
    full = min(tiny.outputs)
    if shorter is None:  # refused: the first run must hold alone
        result = solve(attack(tiny.store(), {full: tiny.outputs[full]}), protection_width())
        assert not result.unsolved and not result.findings, result.summary()
        return
    outputs = {full: tiny.outputs[full], shorter: tiny.outputs[shorter]}
    system = attack(tiny.store(), outputs)
    cells: dict[int, dict[tuple, object]] = {full: {}, shorter: {}}
    for c in system.cells:
        if (c.table in ("indicators", "care_use") and dict(c.key)["level"] == "zone") or c.table == "flows":
            cells[c.run_id][(c.table, c.column, c.key)] = c
    common = set(cells[full]) & set(cells[shorter])
    zones = [k for k in common if k[0] != "flows"]
    assert zones and {dict(k[2])["year"] for k in zones} == {2019, 2020, 2021, 2022}
    shared = sum(cells[full][k].expr == cells[shorter][k].expr for k in zones)
    assert shared > len(zones) // 2, (shared, len(zones))
    for k in common:  # one unknown exactly where the true values agree
        a, b = cells[full][k], cells[shorter][k]
        assert (a.expr == b.expr) == (a.truth == b.truth) or len(a.expr) > 1, k
    assert any(cells[full][k].expr != cells[shorter][k].expr for k in common if k[0] == "flows")
    result = solve(system, protection_width())
    assert not result.unsolved and not result.findings, result.summary()
