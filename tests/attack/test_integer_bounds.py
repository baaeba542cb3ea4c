"""Finding 2 of issue 16: within one run, the masked parts of a published total add up to a
known number, and each is at least 1 (zeros are published): when that number is small, the
parts are pinned (demo, seed 1, zone 10011, 2019, diabetes: all 36, type 2 34, so type 1 and
unspecified are 1 each). The real-valued audit of the suppression code did not see it.

Checked here without the solver: one relation at a time, read from the published tables only
(the solver's own test is tests/attack/test_solver.py). With ``k`` masked parts summing to
``r`` = total - published parts, each part is in [1, r - (k - 1)], a width of r - k."""

from __future__ import annotations

from collections import defaultdict

import polars as pl

from tests.attack.viewer import protection_width

CASES = [("indicators", "subtype", ["cases", "incident_cases"]), ("care_use", "stratum", ["people"])]


def _relations(table: pl.DataFrame, category: str, zones: dict[str, int | None]):
    """(name, total row, part rows) of a zone / territory / area table: categories → all per
    unit; zones → territory and territories → area per category."""
    rows = table.with_row_index("_i")
    key = ["year", "disease"]
    for (level, unit, *rest), group in rows.group_by("level", "unit", *key, maintain_order=True):
        totals = group.filter(pl.col(category) == "all")["_i"].to_list()
        if totals:
            yield (f"{category}s of {level} {unit} {rest}", totals[0], group.filter(pl.col(category) != "all")["_i"].to_list())
    by_territory = defaultdict(list)
    for z, t in zones.items():
        if t is not None:
            by_territory[str(t)].append(z)
    for (*rest,), group in rows.group_by(*key, category, maintain_order=True):
        index = {(lv, u): i for lv, u, i in group.select("level", "unit", "_i").iter_rows()}
        for t, members in by_territory.items():
            if ("territory", t) in index:
                yield (f"zones of territory {t} {rest}", index[("territory", t)], [index[("zone", z)] for z in members if ("zone", z) in index])
        if ("area", "all") in index:
            yield (f"territories of the area {rest}", index[("area", "all")], [index[("territory", t)] for t in by_territory if ("territory", t) in index])


def _pinned_parts(store, run_id: int, truth_dir, width: int) -> list[str]:
    zones = dict(store.read("zones", run_id).select("zone_code", "territory_id").iter_rows())
    found = []
    for name, category, columns in CASES:
        published = store.read(name, run_id)
        private = pl.read_parquet(truth_dir / ("cases/indicators.parquet" if name == "indicators" else "strata/care_use.parquet"))
        true = {(lv, u, int(y), d, c): row for lv, u, y, d, c, row in private.select(
            "level", "unit", "year", "disease", category, pl.struct(columns).alias("row")).iter_rows()}
        keys = published.select("level", "unit", "year", "disease", category).rows()
        for column in columns:
            values = published[column].to_list()
            for relation, total, parts in _relations(published, category, zones):
                if values[total] is None:
                    continue
                masked = [p for p in parts if values[p] is None]
                if not masked:
                    continue
                if any(true[keys[p]][column] == 0 for p in masked):
                    continue  # a masked 0: "each part is at least 1" does not hold, the viewer cannot use it
                rest = values[total] - sum(values[p] for p in parts if values[p] is not None)
                if rest - len(masked) >= width:
                    continue
                for p in masked:
                    value = true[keys[p]][column]
                    if 1 <= value <= 10:
                        found.append(f"{name}.{column} {keys[p]}: true {value}, in [1, {rest - len(masked) + 1}] "
                                     f"({len(masked)} masked parts of {relation} add up to {rest})")
    return found


def test_masked_parts_of_a_published_total_are_not_pinned_by_their_number(pinned_store):
    """tiny, seed 5, one run: no masked count of 1 to 10 is pinned by the published total of one
    of its relations to an interval narrower than P. On the code of ceeebeb (P = 1): 34 cells (6
    cases, 28 incident cases), e.g. zone 01011, 2019, diabetes: all and type 2 published, type 1
    and unspecified masked and adding up to 2, so 1 each (the solver, combining relations, finds
    44 indicator cells of the run)."""
    run_id = min(pinned_store.outputs)
    found = _pinned_parts(pinned_store.store(), run_id, pinned_store.outputs[run_id], protection_width())
    assert not found, f"{len(found)} masked parts pinned by their total:\n" + "\n".join(found[:40])
