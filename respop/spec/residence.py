"""The residence rules of ``[cases]``, written once for every engine: the methods and the years
of stays the zone of residence comes from."""

from __future__ import annotations

from respop.spec.algorithm import AlgorithmSpec

RESIDENCE_METHODS = ("modal", "latest")
"""``modal``: the zone on most of the window's stays; ``latest``: the zone of the latest stay."""


def residence_years(configured: int | None, spec: AlgorithmSpec) -> int:
    """Years before the index year whose stays give the residence: ``[cases] residence_years``
    when set, else the algorithm's look-back."""
    return configured if configured is not None else spec.window.lookback_years


def check_residence(method: str, lookback_years: int) -> None:
    """Refuse a residence method or a look-back no engine knows (ValueError)."""
    if method not in RESIDENCE_METHODS:
        raise ValueError(f"residence method must be one of {RESIDENCE_METHODS}, got {method!r}")
    if lookback_years < 0:
        raise ValueError(f"lookback_years must be at least 0, got {lookback_years}")
