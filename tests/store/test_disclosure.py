"""Disclosure control: small counts masked, complementary suppression, no masked cell recoverable."""

from __future__ import annotations

import os

import numpy as np
import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from respop.store.disclosure import (
    THRESHOLD,
    Relation,
    mask_rates,
    recoverable,
    relations_from_keys,
    relations_from_mapping,
    suppress,
)


def grid(cells: list[list[int]]) -> tuple[list[int], list[Relation]]:
    """A two-way table with row totals, column totals and the grand total, and its relations."""
    rows, cols = len(cells), len(cells[0])
    values, index = [], {}
    for i in range(rows):
        for j in range(cols):
            index[i, j] = len(values)
            values.append(cells[i][j])
    for i in range(rows):
        index["r", i] = len(values)
        values.append(sum(cells[i]))
    for j in range(cols):
        index["c", j] = len(values)
        values.append(sum(cells[i][j] for i in range(rows)))
    index["g"] = len(values)
    values.append(sum(map(sum, cells)))
    relations = [Relation(index["r", i], tuple(index[i, j] for j in range(cols))) for i in range(rows)]
    relations += [Relation(index["c", j], tuple(index[i, j] for i in range(rows))) for j in range(cols)]
    relations += [
        Relation(index["g"], tuple(index["r", i] for i in range(rows))),
        Relation(index["g"], tuple(index["c", j] for j in range(cols))),
    ]
    return values, relations


def independent_recoverable(masked: list[bool], relations: list[Relation]) -> list[int]:
    """Masked cells determined by the relations: rank test, one cell at a time (slow, simple)."""
    cells = [i for i, m in enumerate(masked) if m]
    if not cells:
        return []
    pos = {c: k for k, c in enumerate(cells)}
    a = np.zeros((len(relations), len(cells)))
    for r, rel in enumerate(relations):
        for p in rel.parts:
            if p in pos:
                a[r, pos[p]] += 1
        if rel.total in pos:
            a[r, pos[rel.total]] -= 1
    rank = np.linalg.matrix_rank(a)
    out = []
    for c in cells:
        e = np.zeros(len(cells))
        e[pos[c]] = 1
        if np.linalg.matrix_rank(np.vstack([a, e])) == rank:
            out.append(c)
    return out


def test_one_small_cell_masks_a_rectangle():
    values, relations = grid([[5, 40], [30, 60]])
    masked = suppress(values, relations)
    assert masked[0]  # the 5
    for rel in relations:
        assert sum(masked[c] for c in (*rel.parts, rel.total)) != 1
    assert recoverable(masked, relations) == []
    assert sum(masked) >= 4


def test_zeros_are_published_unless_asked():
    values, relations = grid([[0, 40], [30, 60]])
    assert not any(suppress(values, relations))
    assert suppress(values, relations, mask_zeros=True)[0]


def test_recoverable_finds_a_cell_fixed_by_subtraction_and_by_combination():
    # a = b + c with only b masked: b = a - c
    assert recoverable([False, True, False], [Relation(0, (1, 2))]) == [1]
    # x + y = t1 and x = t2: y fixed through x although each relation has... x appears alone in one
    relations = [Relation(2, (0, 1)), Relation(3, (0,))]
    assert recoverable([True, True, False, False], relations) == [0, 1]
    # a rectangle in a two-way table is not recoverable
    values, rel = grid([[20, 40], [30, 60]])
    masked = [i in (0, 1, 2, 3) for i in range(len(values))]
    assert recoverable(masked, rel) == []


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.lists(st.sampled_from([0, 1, 2, 3, 5, 8, 10, 11, 12, 15, 20, 40, 100, 1000]), min_size=2, max_size=5),
        min_size=2,
        max_size=5,
    ).filter(lambda rows: len({len(r) for r in rows}) == 1)
)
def test_suppression_properties_on_random_two_way_tables(cells):
    values, relations = grid(cells)
    masked = suppress(values, relations)
    # primary: no published count of 1 to 10
    assert not any(1 <= v < THRESHOLD and not m for v, m in zip(values, masked, strict=True))
    # complementary: no relation with exactly one masked member
    for rel in relations:
        assert sum(masked[c] for c in (*rel.parts, rel.total)) != 1
    # no masked cell can be recovered, by any combination of the relations
    assert independent_recoverable(masked, relations) == []
    assert recoverable(masked, relations) == []
    # nothing masked without a reason
    if not any(1 <= v < THRESHOLD for v in values):
        assert not any(masked)


def test_relations_from_a_table_with_sub_totals():
    table = pl.DataFrame(
        {
            "level": ["zone", "zone", "zone", "zone", "territory", "territory"],
            "unit": ["z1", "z1", "z2", "z2", "t1", "t1"],
            "territory": ["t1", "t1", "t1", "t1", None, None],
            "stratum": ["a", "all", "a", "all", "a", "all"],
            "people": [4, 30, 50, 60, 54, 90],
        }
    )
    strata = relations_from_keys(table, ["level", "unit"], "stratum", "all")
    assert sorted((r.total, r.parts) for r in strata) == [(1, (0,)), (3, (2,)), (5, (4,))]
    zones = relations_from_mapping(
        table,
        child=pl.when(pl.col("level") == "zone").then(pl.col("territory")),
        parent=pl.when(pl.col("level") == "territory").then(pl.col("unit")),
        same=["stratum"],
    )
    assert sorted((r.total, r.parts) for r in zones) == [(4, (0, 2)), (5, (1, 3))]
    masked = suppress(table["people"].to_list(), [*strata, *zones])
    assert masked[0] and recoverable(masked, [*strata, *zones]) == []


def test_rates_on_masked_counts_are_masked():
    table = pl.DataFrame({"cases": [5, 50], "cases_masked": [True, False], "rate": [0.1, 0.2], "low": [0.0, 0.1]})
    out = mask_rates(table, {"cases": "cases_masked"}, {"cases": ["rate", "low"]})
    assert out["rate"].to_list() == [None, 0.2] and out["low"].to_list() == [None, 0.1]


@st.composite
def hierarchical_tables(draw):
    """Zones of territories of one area, each with strata and an 'all' row, for two measures
    (people, stays) whose totals are sums — the shape of the care-use table."""
    n_territories = draw(st.integers(1, 3))
    strata = ["s1", "s2", "s3"][: draw(st.integers(1, 3))]
    small = st.one_of(st.integers(0, 12), st.integers(0, 200))
    rows, zone_territory = [], []
    zone_no = 0
    for t in range(1, n_territories + 1):
        for _ in range(draw(st.integers(1, 3))):
            zone_no += 1
            code = f"z{zone_no}"
            zone_territory.append((code, t))
            for s in strata:
                people = draw(small)
                rows.append(("zone", code, s, people, people * draw(st.integers(0, 3))))
    table = pl.DataFrame(rows, schema=["level", "unit", "stratum", "people", "stays"], orient="row")
    zone_all = table.group_by("level", "unit").agg(pl.lit("all").alias("stratum"), pl.col("people", "stays").sum())
    table = pl.concat([table, zone_all.select(table.columns)])
    zt = pl.DataFrame(zone_territory, schema=["zone_code", "territory_id"], orient="row")
    terr = (
        table.join(zt, left_on="unit", right_on="zone_code")
        .group_by("territory_id", "stratum")
        .agg(pl.col("people", "stays").sum())
        .select(pl.lit("territory").alias("level"), pl.col("territory_id").cast(pl.String).alias("unit"), "stratum", "people", "stays")
    )
    area = terr.group_by("stratum").agg(pl.col("people", "stays").sum()).select(
        pl.lit("area").alias("level"), pl.lit("all").alias("unit"), "stratum", "people", "stays"
    )
    table = pl.concat([table, terr, area]).with_columns(pl.lit(2023).alias("year"), pl.lit("d").alias("disease"))
    table = table.with_columns((pl.col("stays") / pl.col("people")).alias("stays_per_person"))
    return table.sort("level", "unit", "stratum"), zt.with_columns(pl.col("territory_id").cast(pl.Int64))


@settings(max_examples=int(os.environ.get("RESPOP_PROPERTY_EXAMPLES", "60")), deadline=None)
@given(hierarchical_tables())
def test_protect_on_hierarchical_tables(case):
    """protect(), as the store uses it: no published count of 1 to 10, no relation with exactly one
    masked member, no masked cell recoverable (independent check), a group under 11 people
    publishes no measure, rates masked with their counts, nothing else changed."""
    from respop.store.disclosure import protect
    from respop.store.publish import geographic_relations

    table, zt = case
    relations = geographic_relations(table, "stratum", ["year", "disease"], zt)
    out = protect(table, ["people", "stays"], relations, rates={"stays": ["stays_per_person"]}, whole_row="people")
    assert out.height == table.height and out.columns == table.columns
    for column in ("people", "stays"):
        published = out[column].to_list()
        assert not any(v is not None and 1 <= v < THRESHOLD for v in published), column
        masked = [v is None for v in published]
        values = table[column].to_list()
        for rel in relations:
            assert values[rel.total] == sum(values[p] for p in rel.parts)
            assert sum(masked[c] for c in (*rel.parts, rel.total)) != 1, (column, rel)
        assert independent_recoverable(masked, relations) == []
        # a published count is the true count
        assert all(p is None or p == v for p, v in zip(published, values, strict=True))
    small_groups = table["people"].is_between(1, THRESHOLD - 1)
    assert out.filter(small_groups)["stays"].null_count() == int(small_groups.sum())
    assert out.filter(pl.col("stays").is_null() & pl.col("stays_per_person").is_not_null()).is_empty()
