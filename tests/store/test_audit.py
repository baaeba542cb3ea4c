"""The interval audit's closed form for groups held by one relation (respop.privacy.audit):
the same intervals, bindings and verdicts as the integer programs, on random groups."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from respop.privacy import audit as audit_module
from respop.privacy.audit import audit


@st.composite
def one_relation(draw):
    """A table of one relation: parts summing to a total, some of them masked (and maybe the
    total), lower bounds 0 or 1 (cells a viewer cannot know to be non-zero), a protection width."""
    n = draw(st.integers(1, 12))
    parts = draw(st.lists(st.integers(0, 15), min_size=n, max_size=n))
    values = [sum(parts), *parts]
    masked = [draw(st.booleans())] + draw(st.lists(st.booleans(), min_size=n, max_size=n))
    if not any(masked):
        masked[draw(st.integers(0, n))] = True
    hidden = [draw(st.booleans()) if m else False for m in masked]
    sensitive = [m and 1 <= v <= 10 for m, v in zip(masked, values)]
    protection = draw(st.integers(1, 12))
    return values, masked, [(0, tuple(range(1, n + 1)))], sensitive, protection, hidden


def _result(found):
    return sorted((i.cell, i.low, i.high, i.binding) for group in found.failing for i in group)


@settings(max_examples=300, deadline=None)
@given(one_relation())
def test_one_relation_in_closed_form_equals_the_programs(case):
    values, masked, relations, sensitive, protection, hidden = case
    closed = audit(values, masked, relations, sensitive, protection, hidden)
    original = audit_module._one_equation
    audit_module._one_equation = lambda *a, **k: None  # the programs of every group
    try:
        programs = audit(values, masked, relations, sensitive, protection, hidden)
    finally:
        audit_module._one_equation = original
    assert _result(closed) == _result(programs)
    assert closed.programs == 0


def test_the_closed_form_on_a_zone_s_flows():
    """A published total of 40 over five masked parts of 1 to 10 and one of 20: each part runs from
    1 to 40 minus the four others' 1, wide enough for 5; with a protection of 40 every sensitive
    part is reported, held by the relation."""
    values = [40, 3, 5, 2, 9, 1, 20]
    masked = [False] + [True] * 6
    relations = [(0, (1, 2, 3, 4, 5, 6))]
    sensitive = [False, True, True, True, True, True, False]
    assert audit(values, masked, relations, sensitive, 5).ok
    found = audit(values, masked, relations, sensitive, 40)
    assert [(i.cell, i.low, i.high, i.binding) for i in found.failing[0]] == [(c, 1.0, 35.0, (0,)) for c in range(1, 6)]
    # the total masked too: a part can grow with the total, every interval unbounded
    assert audit(values, [True] + masked[1:], relations, sensitive, 40).ok


def _groups_by_union_find(masked, relations):
    """The groups as the audit first computed them, one relation at a time (a reference)."""
    parent: dict[int, int] = {}

    def find(c):
        parent.setdefault(c, c)
        while parent[c] != c:
            c = parent[c]
        return c

    touching = []
    for k, (total, parts) in enumerate(relations):
        members = [c for c in (*parts, total) if masked[c]]
        if members:
            touching.append(k)
            for c in members[1:]:
                a, b = find(members[0]), find(c)
                if a != b:
                    parent[b] = a
    cells, rows = {}, {}
    for c, m in enumerate(masked):
        if m:
            cells.setdefault(find(c), []).append(c)
    for k in touching:
        total, parts = relations[k]
        rows.setdefault(find(next(c for c in (*parts, total) if masked[c])), []).append(k)
    return [(cs, rows.get(r, [])) for r, cs in cells.items()]


@st.composite
def masked_relations(draw):
    n = draw(st.integers(1, 30))
    relations = draw(st.lists(st.tuples(st.integers(0, n - 1), st.lists(st.integers(0, n - 1), max_size=5).map(tuple)), max_size=25))
    masked = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    return masked, relations


@settings(max_examples=300, deadline=None)
@given(masked_relations())
def test_groups_are_those_of_a_union_find(case):
    """The vectorised groups: the same cells and relations, in the same order (the order steers
    which complements the suppression picks)."""
    masked, relations = case
    cells, rows = audit_module.groups(masked, relations)
    assert [(cs, rows.get(r, [])) for r, cs in cells.items()] == _groups_by_union_find(masked, relations)
