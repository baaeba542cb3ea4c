"""Property: whatever the tiny world (seed) and whatever second run of it shares the store (a
zone pinned into a neighbouring territory, another minimum population, the other delineation
method, fewer years), no count of 1 to 10 has an interval narrower than P over both runs. Each
example generates tiny and runs the pipeline twice (about 15 s on a quiet machine, minutes on a
busy one): few examples. CI judges the explicit examples and one example derived from the test
(each pair of runs costs about two minutes of CI's 15 on a quiet machine); RESPOP_ATTACK_EXPLORE=1
draws twelve new ones."""

from __future__ import annotations

import os
import random

import pytest
import shapely
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from respop.errors import ConfigError
from tests.attack.conftest import add_run, judge_refusals, tiny_store
from tests.attack.solver import solve
from tests.attack.viewer import attack, protection_width

SECOND_RUNS = [
    "pin",
    {"min_population": 500},
    {"min_population": 5000},
    {"method": "plurality"},
    {"years": [2019, 2020, 2021, 2022]},
]
"""How the second run differs from the first (the configuration of tests/store/conftest.py);
"pin": a zone on a territory's border pinned into its neighbour's territory."""


def _border_pins(store, run_id) -> list[dict[str, str]]:
    """Pins moving a zone into the territory of a zone it touches (sorted, for reproducibility)."""
    zones = store.read("zones", run_id).filter(~store.read("zones", run_id)["territory_id"].is_null())
    geometry = dict(zip(zones["zone_code"], shapely.from_wkb(zones["geometry"].to_list())))
    territory = dict(zones.select("zone_code", "territory_id").iter_rows())
    return [{a: b} for a in sorted(geometry) for b in sorted(geometry)
            if territory[a] != territory[b] and geometry[a].touches(geometry[b])]


EXPLORE = os.environ.get("RESPOP_ATTACK_EXPLORE", "") not in ("", "0")
"""Set RESPOP_ATTACK_EXPLORE=1 to draw new worlds at every run (and more of them); by default the
examples are derived from the test itself, the same at every run, so that CI judges the same
pairs of runs each time (a random draw made CI pass or fail by chance)."""


@pytest.mark.slow
@settings(max_examples=12 if EXPLORE else 1, deadline=None, derandomize=not EXPLORE, **({} if EXPLORE else {"database": None}),
          phases=(Phase.explicit, Phase.generate),  # no shrinking: minutes per example
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(seed=st.integers(min_value=1, max_value=60), second=st.sampled_from(SECOND_RUNS), order=st.randoms(use_true_random=False))
# found by this test: a published incident count bounding a masked count (indicators), deaths
# audited as masked with a group a later pass published (care use); the second run was refused
@example(seed=36, second={"method": "plurality"}, order=random.Random(0))
def test_no_pair_of_runs_narrows_a_count_of_1_to_10(tmp_path_factory, seed, second, order):
    _judge_pair(tmp_path_factory, seed, second, order)


def _judge_pair(tmp_path_factory, seed, second, order) -> None:
    tiny = tiny_store(tmp_path_factory.mktemp(f"attack_seed{seed}"), seed, [{}])
    if second == "pin":
        pins = _border_pins(tiny.store(), min(tiny.outputs))
        order.shuffle(pins)
        for pin in pins:  # the first pin that keeps every territory in one piece and populated enough
            try:
                add_run(tiny, pins=pin)
            except ConfigError:
                continue
            second = {"pins": pin}
            break
        else:
            pytest.fail(f"seed {seed}: no border zone can be pinned to its neighbour ({len(pins)} tried)")
    else:
        add_run(tiny, **second)
    judge_refusals(tiny)
    result = solve(attack(tiny.store(), tiny.outputs), protection_width())
    assert not result.unsolved and not result.findings, f"seed {seed}, second run {second}:\n{result.summary()}"
