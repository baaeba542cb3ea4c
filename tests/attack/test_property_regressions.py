"""Pairs of runs the property test (test_property.py) found leaking, judged again at every run:
in a module of their own, so that ``make test``'s workers (``--dist loadscope``: one module per
worker) judge them beside the property test's own examples rather than after them."""

from __future__ import annotations

import random

import pytest

from tests.attack.test_property import _judge_pair


@pytest.mark.slow
def test_seed_35_with_a_second_run_by_plurality(tmp_path_factory):
    """tiny, seed 35, a second run by plurality (found by the property test): the runs'
    territory totals of sparse strata were untied where a zone had no row (a territory's
    unstable heart-failure people exactly 2), and flows were not tied across runs."""
    _judge_pair(tmp_path_factory, 35, {"method": "plurality"}, random.Random(0))
