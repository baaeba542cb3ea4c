"""Disclosure control: small counts masked, complementary suppression, no masked cell recoverable."""

from __future__ import annotations

import os

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from respop.privacy.disclosure import (
    THRESHOLD,
    CrossRelation,
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


def narrow(
    values: list[int], masked: list[bool], relations: list[Relation], sensitive: list[bool] | None = None,
    unsigned: list[bool] | None = None,
) -> list[tuple[int, float, float]]:
    """Sensitive masked cells (1 to 10 by default) whose integer feasible interval is narrower than
    PROTECTION_WIDTH: one mixed-integer program per cell and direction over every masked cell
    (written here apart from respop.privacy.audit; small tables only). A masked cell is at least 1
    (zeros are published) unless ``unsigned`` (masked with its group: it may be 0)."""
    from scipy.optimize import Bounds, LinearConstraint, milp

    from respop.privacy.disclosure import PROTECTION_WIDTH

    cells = [i for i, m in enumerate(masked) if m]
    if not cells:
        return []
    pos = {c: k for k, c in enumerate(cells)}
    rows, rhs = [], []
    for rel in relations:
        row = np.zeros(len(cells))
        b = 0.0
        for p in rel.parts:
            if p in pos:
                row[pos[p]] += 1
            else:
                b -= values[p]
        if rel.total in pos:
            row[pos[rel.total]] -= 1
        else:
            b += values[rel.total]
        if row.any():
            rows.append(row)
            rhs.append(b)
    lower = np.array([1.0 if values[c] >= 1 and not (unsigned and unsigned[c]) else 0.0 for c in cells])
    sensitive = sensitive or [1 <= v < THRESHOLD for v in values]
    out = []
    for c in cells:
        if not sensitive[c]:
            continue
        ends = []
        for sign in (1.0, -1.0):
            objective = np.zeros(len(cells))
            objective[pos[c]] = sign
            constraints = [LinearConstraint(np.array(rows), rhs, rhs)] if rows else []
            res = milp(objective, constraints=constraints, integrality=np.ones(len(cells)), bounds=Bounds(lower, np.inf))
            ends.append(np.inf if res.status != 0 else sign * res.fun)
        low, high = ends[0], ends[1]
        if high - low < PROTECTION_WIDTH:
            out.append((c, low, high))
    return out


def test_one_small_cell_masks_a_rectangle():
    values, relations = grid([[5, 40], [30, 60]])
    masked = suppress(values, relations)
    assert masked[0]  # the 5
    for rel in relations:
        assert sum(masked[c] for c in (*rel.parts, rel.total)) != 1
    assert recoverable(masked, relations) == []
    assert sum(masked) >= 4


def test_complements_are_the_cheapest_cells_that_do_the_job():
    """A headline count (cost 100 a person) is spared: the 5's complements fall on the other
    cells, a total among them, although the headline is the smaller part (tiny, seed 5: every
    territory's heart-failure cases masked for a difference of 4 between people and stays)."""
    # 5 + 40 = 45 and 30 + 60 = 90 per row; 5 + 30 = 35 and 40 + 60 = 100 per column; 135 in all
    values, relations = grid([[5, 40], [30, 60]])
    cheap = suppress(values, relations)
    assert cheap[values.index(30)]  # by count: the smaller part of its column
    costs = [100.0 * v if v == 30 else float(v) for v in values]
    spared = suppress(values, relations, costs=costs)
    assert spared[values.index(5)] and not spared[values.index(30)]
    assert narrow(values, spared, relations) == []
    for rel in relations:
        assert sum(spared[c] for c in (*rel.parts, rel.total)) != 1


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
    # no count of 1 to 10 can be narrowed below the protection width, by any combination of the
    # relations, with integers and published zeros
    assert narrow(values, masked, relations) == []
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


def draw_zones(draw) -> list[tuple[str, int]]:
    """Zones z1, z2, … (code, territory) of 1 to 3 territories of 1 to 3 zones each."""
    zones: list[tuple[str, int]] = []
    for t in range(1, draw(st.integers(1, 3)) + 1):
        zones += [(f"z{len(zones) + k + 1}", t) for k in range(draw(st.integers(1, 3)))]
    return zones


@st.composite
def hierarchical_tables(draw):
    """Zones of territories of one area, each with strata and an 'all' row, for two measures
    (people, stays) whose totals are sums — the shape of the care-use table."""
    zone_territory = draw_zones(draw)
    strata = ["s1", "s2", "s3"][: draw(st.integers(1, 3))]
    small = st.one_of(st.integers(0, 12), st.integers(0, 200))
    rows = []
    for code, _ in zone_territory:
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
    from respop.privacy.disclosure import protect
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
        # the stays of a row whose people are masked are masked with it: a viewer cannot tell they
        # are not 0; they describe a group of 1 to 10 people when its people are 1 to 10
        grouped = out["people"].is_null().to_list() if column == "stays" else None
        small = table["people"].is_between(1, THRESHOLD - 1).to_list()
        sensitive = [1 <= v < THRESHOLD or bool(grouped and small[i] and v >= 1) for i, v in enumerate(values)]
        assert narrow(values, masked, relations, sensitive, grouped) == []
        # a published count is the true count
        assert all(p is None or p == v for p, v in zip(published, values, strict=True))
    small_groups = table["people"].is_between(1, THRESHOLD - 1)
    assert out.filter(small_groups)["stays"].null_count() == int(small_groups.sum())
    assert out.filter(pl.col("stays").is_null() & pl.col("stays_per_person").is_not_null()).is_empty()


def _hierarchy(zone_rows: list[tuple[str, str, int]], zt: pl.DataFrame, category: str) -> pl.DataFrame:
    """Zone rows (zone, category, people) completed with each zone's ``all`` row, the territories
    and the area, sorted as the store sorts them."""
    table = pl.DataFrame(zone_rows, schema=["unit", category, "people"], orient="row").with_columns(pl.lit("zone").alias("level"))
    table = pl.concat([table, table.group_by("level", "unit").agg(pl.lit("all").alias(category), pl.col("people").sum())], how="diagonal")
    terr = (
        table.join(zt, left_on="unit", right_on="zone_code")
        .group_by("territory_id", category)
        .agg(pl.col("people").sum())
        .select(pl.lit("territory").alias("level"), pl.col("territory_id").cast(pl.String).alias("unit"), category, "people")
    )
    area = terr.group_by(category).agg(pl.col("people").sum()).select(pl.lit("area").alias("level"), pl.lit("all").alias("unit"), category, "people")
    table = pl.concat([table.select(terr.columns), terr, area]).with_columns(pl.lit(2023).alias("year"), pl.lit("d").alias("disease"))
    return table.sort("level", "unit", category)


@st.composite
def two_splits(draw):
    """The same people per zone, split in two ways (strata in one table, subtypes in the other),
    each table with its zone, territory and area totals — the shape of care use and indicators."""
    zone_territory = draw_zones(draw)
    count = st.one_of(st.integers(0, 12), st.integers(0, 60))
    strata, subtypes = [], []
    for code, _ in zone_territory:
        parts = [draw(count) for _ in range(draw(st.integers(1, 3)))]
        strata += [(code, f"s{k}", v) for k, v in enumerate(parts)]
        # the same zone total, split differently
        total, cut = sum(parts), draw(st.floats(0, 1))
        subtypes += [(code, "a", round(total * cut)), (code, "b", total - round(total * cut))]
    zt = pl.DataFrame(zone_territory, schema=["zone_code", "territory_id"], orient="row").with_columns(pl.col("territory_id").cast(pl.Int64))
    return _hierarchy(strata, zt, "stratum"), _hierarchy(subtypes, zt, "subtype"), zt


def _joint_system(first: pl.DataFrame, second: pl.DataFrame, zt: pl.DataFrame):
    """Both tables' people as one column: their relations, and an equation per count published twice."""
    from respop.store.publish import geographic_relations

    ra = geographic_relations(first, "stratum", ["year", "disease"], zt)
    rb = geographic_relations(second, "subtype", ["year", "disease"], zt)
    keys = ["level", "unit"]
    a = first.with_row_index("i").filter(pl.col("stratum") == "all").select(*keys, "i")
    b = second.with_row_index("j").filter(pl.col("subtype") == "all").select(*keys, "j")
    same = [CrossRelation((0, int(i)), ((1, int(j)),)) for i, j in a.join(b, on=keys).select("i", "j").iter_rows()]
    n = first.height
    joint = ra + [Relation(r.total + n, tuple(p + n for p in r.parts)) for r in rb]
    joint += [Relation(link.total[1], (link.parts[0][1] + n,)) for link in same]
    return ra, rb, same, joint


@settings(max_examples=int(os.environ.get("RESPOP_PROPERTY_EXAMPLES", "60")), deadline=None)
@given(two_splits())
def test_a_count_published_in_two_tables_is_protected_in_both(case):
    """suppress_together: a count published twice is masked in both tables or in neither, and no
    masked cell can be recovered from the two tables' relations together (independent check)."""
    from respop.privacy.disclosure import suppress_together

    first, second, zt = case
    ra, rb, same, joint = _joint_system(first, second, zt)
    assert same
    ma, mb = suppress_together([(first["people"].to_list(), ra), (second["people"].to_list(), rb)], same)
    for link in same:
        assert ma[link.total[1]] == mb[link.parts[0][1]]
    for masked, table, relations in ((ma, first, ra), (mb, second, rb)):
        values = table["people"].to_list()
        assert not any(1 <= v < THRESHOLD and not m for v, m in zip(values, masked, strict=True))
        for rel in relations:
            assert sum(masked[c] for c in (*rel.parts, rel.total)) != 1
    assert narrow(first["people"].to_list() + second["people"].to_list(), ma + mb, joint) == []


def test_tables_protected_apart_can_give_a_shared_count_away():
    """Why the tables are protected together: alone, the first table masks zone z1 (5 people in a
    stratum) with z1's and z2's totals as complements (the costs make z1's other stratum dear);
    the second table, alone, publishes z2's total (30), so z1's total is the territory's minus
    z2's and z3's, and its stratum of 5 follows."""
    from respop.privacy.disclosure import suppress_together

    zt = pl.DataFrame({"zone_code": ["z1", "z2", "z3"], "territory_id": [1, 1, 1]})
    first = _hierarchy([("z1", "s0", 5), ("z1", "s1", 20), ("z2", "s0", 30), ("z3", "s0", 40)], zt, "stratum")
    second = _hierarchy([("z1", "a", 13), ("z1", "b", 12), ("z2", "a", 3), ("z2", "b", 27), ("z3", "a", 40), ("z3", "b", 0)], zt, "subtype")
    ra, rb, same, joint = _joint_system(first, second, zt)
    dear = (first["unit"] == "z1") & (first["stratum"] == "s1")
    costs = [1000 if d else v for d, v in zip(dear.to_list(), first["people"].to_list())]
    apart = suppress(first["people"].to_list(), ra, costs=costs) + suppress(second["people"].to_list(), rb)
    assert recoverable(apart[: first.height], ra) == [] and recoverable(apart[first.height :], rb) == []
    assert independent_recoverable(apart, joint) != []
    together = suppress_together([(first["people"].to_list(), ra), (second["people"].to_list(), rb)], same)
    assert narrow(first["people"].to_list() + second["people"].to_list(), together[0] + together[1], joint) == []


def test_a_relation_across_tables_and_implied_masks():
    """suppress_together with a link of several cells (people = followed + deaths) and a whole-row
    implication (people masked ⇒ deaths masked): the deaths are not their difference."""
    from respop.privacy.disclosure import suppress_together

    # column 0: people of two strata and their total; column 1: followed (transitions' row totals);
    # column 2: deaths of the two strata and their total
    people, followed, deaths = [54, 485, 539], [47, 465], [7, 20, 27]
    columns = [(people, [Relation(2, (0, 1))]), (followed, []), (deaths, [Relation(2, (0, 1))])]
    links = [CrossRelation((0, 0), ((1, 0), (2, 0))), CrossRelation((0, 1), ((1, 1), (2, 1)))]
    implies = [((0, k), (2, k)) for k in range(3)]
    mp, mf, md = suppress_together(columns, links, implies)
    assert md[0]  # 7 deaths
    n0, n1 = len(people), len(people) + len(followed)
    joint = [Relation(2, (0, 1)), Relation(n1 + 2, (n1, n1 + 1)), Relation(0, (n0, n1)), Relation(1, (n0 + 1, n1 + 1))]
    assert narrow(people + followed + deaths, mp + mf + md, joint) == []
    for k in range(3):
        assert not mp[k] or md[k]
    with pytest.raises(ValueError, match="does not hold"):
        suppress_together(columns, [CrossRelation((0, 0), ((1, 0),))])


def test_deaths_are_not_the_difference_between_people_and_the_followed():
    """The demo's case (heart failure, 2022): 54 unstable people, 47 followed into 2023 in the
    transitions, 7 in-hospital deaths. Care use masks the 7; with the transitions' row total
    published next to the 54 people, the deaths were their difference. Protected together, one
    of the three is masked with them (and its complements)."""
    from respop.store.publish import care_use_table, shared_count_masks, table_masks, transitions_table

    rows = [("instable", 54, 7), ("chronique", 485, 20), ("all", 539, 27)]
    use = pl.DataFrame(
        [(level, unit, 2022, "heart_failure", s, people, 3 * people, people, 9 * people, 12, deaths)
         for level, unit in (("area", "all"), ("territory", "1")) for s, people, deaths in rows],
        schema=["level", "unit", "year", "disease", "stratum", "people", "stays", "emergency_stays", "bed_days", "readmissions_30d", "deaths"],
        orient="row",
    ).with_columns(pl.lit(None, pl.String).alias("unit_name"), pl.col("year").cast(pl.Int16))
    use = use.with_columns((pl.col(c) / pl.col("people")).alias(f"{c}_per_person") for c in ["stays", "emergency_stays", "bed_days", "readmissions_30d", "deaths"])
    use = use.sort("disease", "year", "level", "unit", "stratum")
    moves = pl.DataFrame(
        [("instable", "instable", 20), ("instable", "chronique", 27), ("chronique", "chronique", 400), ("chronique", "non_revu", 65)],
        schema=["from_stratum", "to_stratum", "count"], orient="row",
    )
    totals = moves.group_by("from_stratum").agg(pl.lit("all").alias("to_stratum"), pl.col("count").sum())
    transitions = pl.concat([totals, moves]).with_columns(
        pl.lit("heart_failure").alias("disease"), pl.lit(2022, pl.Int64).alias("year"), pl.lit(0.5).alias("proportion")
    ).sort("disease", "year", "from_stratum", pl.col("to_stratum") != "all", "to_stratum")
    zt = pl.DataFrame({"zone_code": ["z1"], "territory_id": [1]})

    apart_use, apart_tr = care_use_table(use, zt), transitions_table(transitions)
    masks = shared_count_masks(None, use, transitions, zt)
    together_use = care_use_table(use, zt, table_masks(masks, "care_use"))
    together_tr = transitions_table(transitions, masks["transitions.count"])

    def given_away(published_use: pl.DataFrame, published_tr: pl.DataFrame) -> int:
        followed = published_tr.filter(pl.col("to_stratum") == "all").select(pl.col("from_stratum").alias("stratum"), pl.col("count").alias("followed"))
        area = published_use.filter(pl.col("level") == "area").join(followed, on="stratum")
        return area.filter(pl.col("deaths").is_null() & pl.col("people").is_not_null() & pl.col("followed").is_not_null()).height

    assert apart_use.filter(pl.col("stratum") == "instable")["deaths"].is_null().all()
    assert given_away(apart_use, apart_tr) > 0  # the leak this protects against
    assert together_use.filter(pl.col("stratum") == "instable")["deaths"].is_null().all()
    assert given_away(together_use, together_tr) == 0


@settings(max_examples=int(os.environ.get("RESPOP_PROPERTY_EXAMPLES", "60")), deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 400), st.booleans()), min_size=1, max_size=400),
    st.sampled_from([400, 25, 5]),
)
def test_survival_curves_publish_no_step_of_fewer_than_11_events(follow_up, max_points):
    """Between two published points of a Kaplan–Meier curve (and from time 0 to the first) at
    least 11 events happened, so neither the fall of the number at risk nor the ratio of the
    survivals counts 1 to 10 people; every published point has 11 people or more at risk. Checked
    on the raw durations, with curves thinned as the strata step thins them."""
    from lifelines import KaplanMeierFitter

    from respop.store.publish import survival_curves_table
    from respop.strata.survival import thin_curve

    durations = np.array([d for d, _ in follow_up], dtype=float)
    events = np.array([e for _, e in follow_up], dtype=int)
    kmf = KaplanMeierFitter().fit(durations, events)
    times = kmf.survival_function_.index.to_numpy(dtype=float)
    surv = kmf.survival_function_.iloc[:, 0].to_numpy(dtype=float)
    band = kmf.confidence_interval_survival_function_
    at_risk = kmf.event_table["at_risk"].reindex(kmf.survival_function_.index).to_numpy()
    keep = thin_curve(times, surv, max_points)
    km = pl.DataFrame({
        "disease": "d", "stratum": "s", "stratum_level": 1, "time": times[keep], "survival": surv[keep],
        "lower": band.iloc[:, 0].to_numpy(dtype=float)[keep], "upper": band.iloc[:, 1].to_numpy(dtype=float)[keep],
        "at_risk": at_risk[keep].astype(np.int64),
    })
    out = survival_curves_table(km)
    if len(durations) < THRESHOLD:
        assert out.is_empty()
        return
    published = out["time"].to_list()
    assert published[0] == 0.0 and out["survival"][0] == 1.0 and out["at_risk"][0] == len(durations)
    assert out["at_risk"].min() >= THRESHOLD
    previous = -1.0
    for t in published[1:]:
        between = int(((durations > previous) & (durations < t) & (events == 1)).sum())
        assert between >= THRESHOLD, (previous, t, between)
        assert int((durations >= t).sum()) == out.filter(pl.col("time") == t)["at_risk"][0]
        previous = t


def test_a_stratum_year_is_not_the_start_of_its_survival_curve_minus_the_other_years(tmp_path):
    """The people at the start of a stratum's survival curve are the sum of its transitions row
    totals over the years: with 8 people followed in one year (masked) and the other years
    published, the start of the curve would give the 8 away. Protected together, another year is
    masked too; when a start is masked, its curve and its test counts are not published."""
    from respop.store.publish import shared_count_masks, survival_curves_table, survival_tests_table, transitions_table

    moves = pl.DataFrame(
        [(2019, "s", "s", 5), (2019, "s", "non_revu", 3), (2020, "s", "s", 20), (2020, "s", "deces", 10),
         (2021, "s", "s", 25), (2021, "s", "non_revu", 15)],
        schema=["year", "from_stratum", "to_stratum", "count"], orient="row",
    )
    totals = moves.group_by("year", "from_stratum").agg(pl.lit("all").alias("to_stratum"), pl.col("count").sum())
    transitions = pl.concat([totals, moves]).with_columns(pl.lit("d").alias("disease"), pl.lit(0.5).alias("proportion")).sort(
        "disease", "year", "from_stratum", pl.col("to_stratum") != "all", "to_stratum"
    )
    starts = pl.DataFrame({"disease": ["d"], "stratum": ["s"], "at_risk": [78]})
    alone = transitions_table(transitions)
    row_totals = lambda t: t.filter(pl.col("to_stratum") == "all")["count"]  # noqa: E731
    assert row_totals(alone).null_count() == 1  # 8 = 78 - 30 - 40
    masks = shared_count_masks(None, None, transitions, None, starts)
    together = transitions_table(transitions, masks["transitions.count"])
    assert row_totals(together).null_count() >= 2 or masks["survival.at_risk"][0]
    # a masked start hides the curve and the counts of the tests
    km = pl.DataFrame({"disease": "d", "stratum": "s", "stratum_level": 1, "time": [0.0, 30.0], "survival": [1.0, 0.5],
                       "lower": [1.0, 0.4], "upper": [1.0, 0.6], "at_risk": [78, 60]})
    assert survival_curves_table(km, {("d", "s")}).is_empty()
    assert not survival_curves_table(km).is_empty()
    pl.DataFrame({"disease": ["d"], "higher": ["s"], "lower": ["t"], "n_higher": [78], "n_lower": [500], "ordered": [True],
                  "survival_365_higher": [0.5], "survival_365_lower": [0.7], "statistic": [9.0], "p_value": [0.001]}).write_csv(tmp_path / "logrank.csv")
    pl.DataFrame({"disease": ["d", "e"], "covariate": ["age", "age"], "hazard_ratio": [1.1, 1.2], "lower": [1.0, 1.1], "upper": [1.2, 1.3],
                  "p_value": [0.01, 0.02], "n": [578, 900], "events": [300, 400]}).write_csv(tmp_path / "cox.csv")
    tests = survival_tests_table(tmp_path, {("d", "s")})
    assert tests.filter(pl.col("disease") == "d")["n"].null_count() == 2  # log-rank n and the Cox total
    assert '"n_higher": null' in tests.filter(pl.col("kind") == "logrank")["detail"][0]
    assert tests.filter(pl.col("disease") == "e")["n"].to_list() == [900]


@settings(max_examples=int(os.environ.get("RESPOP_PROPERTY_EXAMPLES", "60")), deadline=None)
@given(st.lists(st.one_of(st.integers(0, 12), st.integers(0, 300)), min_size=1, max_size=12))
def test_parts_of_a_published_total(parts):
    """protect_parts: no part of 1 to 10 published, never exactly one part masked while the total
    is published (it would be the total minus the others)."""
    from respop.privacy.disclosure import protect_parts

    masked, total_masked = protect_parts(parts)
    assert not any(1 <= v < THRESHOLD and not m for v, m in zip(parts, masked, strict=True))
    assert sum(masked) + total_masked != 1
    relation = [Relation(len(parts), tuple(range(len(parts))))]
    assert narrow([*parts, sum(parts)], [*masked, total_masked], relation) == []


def test_calibration_deciles_are_protected_with_their_total():
    """One decile with 7 events: its rate is masked, and another decile's too (the test year's
    events are published in the model card); a decile of fewer than 11 person-years shows no n."""
    from respop.privacy.disclosure import protect_calibration

    n = [100] * 9 + [8]
    events = [7, 20, 30, 15, 40, 50, 60, 70, 80, 0]
    cal = pl.DataFrame({"model": "m", "bin": list(range(1, 11)), "n": n, "mean_predicted": 0.1,
                        "observed_rate": [e / k for e, k in zip(events, n)]})
    out, hidden = protect_calibration(cal)
    assert out["observed_rate"].null_count() >= 2 and out["observed_rate"][0] is None
    assert out["n"][9] is None and out["n"].null_count() == 2
    assert hidden == set()


def test_quarantine_reasons_are_tied_to_their_file_total():
    """Finding 5: a file's quarantined rows are the sum of its reasons (one reason per row); with
    30 quarantined published and one reason of 25, the other reason's 5 was their difference."""
    from respop.store.publish import quality_table

    report = {
        "tables": [{"label": "T_MCO23B", "rows_read": 1000, "rows_loaded": 970, "rows_quarantined": 30,
                    "reasons": {"date de sortie invalide": 25, "FINESS inconnu": 5}}],
        "stays_loaded": 970, "stays_kept": 900, "sessions_kept": 50,
        "filters": [{"name": "duplicates", "title": "doublons", "excluded": 20, "enabled": True}],
    }
    table = quality_table(report)
    reasons = table.filter(pl.col("section") == "reason")
    assert reasons["rows"].null_count() == 2  # the 5 and its complement (not 30 - 25)
    values = [1000, 970, 30, 25, 5]
    masked = table["rows"].is_null().to_list()[:5]
    relations = [Relation(0, (1, 2)), Relation(2, (3, 4))]
    assert narrow(values, masked, relations) == []


def test_a_share_is_not_published_beside_its_masked_total():
    """A transition published with its proportion gives its row total (133 / 0.806061 = 165): a
    masked row total masks every proportion of its row."""
    from respop.store.publish import transitions_table

    rows = [("d", 2022, "a", "all", 16), ("d", 2022, "a", "a", 7), ("d", 2022, "a", "b", 9),
            ("d", 2022, "b", "all", 165), ("d", 2022, "b", "a", 133), ("d", 2022, "b", "b", 32)]
    table = pl.DataFrame(rows, schema=["disease", "year", "from_stratum", "to_stratum", "count"], orient="row").with_columns(
        (pl.col("count") / pl.col("count").filter(pl.col("to_stratum") == "all").first().over("disease", "year", "from_stratum")).alias("proportion")
    )
    out = transitions_table(table)  # protected alone: row a (16 = 7 + 9) masked whole
    assert out.filter(pl.col("count").is_null() & pl.col("proportion").is_not_null()).is_empty()
    # the row total of b masked with the other tables (people = followed + deaths)
    out = transitions_table(table, count_mask=[True, True, True, True, False, False])
    b = out.filter(pl.col("from_stratum") == "b")
    assert b["count"].to_list() == [None, 133, 32] and b["proportion"].null_count() == 3
