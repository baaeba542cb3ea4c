"""The evaluation of the experiment attacked (issue 20): the outcomes by deprivation quintile of a
run with a fabricated evaluation (tests/store/evaluation_outputs.py) are modelled with their
relations (quintiles summing to the area, the cases shared by the per-case outcomes), together
with the rest of the run, and no count of 1 to 10 is narrower than P."""

from __future__ import annotations

from tests.attack.solver import solve
from tests.attack.viewer import attack, protection_width
from tests.store.conftest import evaluation_run, tiny_run  # noqa: F401


def test_the_outcomes_by_deprivation_keep_their_small_counts(evaluation_run):  # noqa: F811
    from respop.store.db import Store

    system = attack(Store(evaluation_run.config.store.url), {evaluation_run.run_id: evaluation_run.config.output.dir})
    cells = [c for c in system.cells if c.table == "evaluation_deprivation"]
    assert cells and any(c.sensitive for c in cells) and any(c.status == "masked" for c in cells)
    result = solve(system, protection_width())
    assert not result.unsolved and not result.findings, result.summary()
