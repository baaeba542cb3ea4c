"""Fixtures of the delineation tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def demo_2023(tmp_path_factory) -> Path:
    """The ``demo`` world (seed 1) generated for 2023 only, once per test session and shared by
    the workers (tests/shared.py): test_demo, test_metrics and test_outputs read it and never
    change it (each generated it before)."""
    from respop.synth import generate, load_profile
    from tests.shared import build_once

    out, built = build_once(tmp_path_factory, "demo_seed1_2023",
                            lambda folder: {"years": generate(load_profile("demo"), seed=1, out=folder, years=[2023]).years})
    assert built["years"] == [2023]
    return out
