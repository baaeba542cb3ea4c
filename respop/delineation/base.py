"""What every delineation method takes in and gives out.

A method is fitted on a :class:`FlowProblem` (zone → hospital-group stay counts, zones with their
population and contiguity, where each hospital group sits) and produces an assignment of every
zone to exactly one territory. Methods follow scikit-learn conventions: ``__init__`` stores the
parameters, :meth:`Delineation.fit` sets the fitted attributes ending in ``_``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import polars as pl

from respop.delineation.problem import DelineationError, FlowProblem  # noqa: F401 - re-exported

ASSIGNMENT_SCHEMA = {"zone_code": pl.String, "territory_id": pl.Int32}


class Delineation(ABC):
    """Base class of the methods. Subclasses implement :meth:`_fit` and return the assignment.

    After :meth:`fit`: ``assignment_`` (zone_code, territory_id: 1..K, ids ordered by the
    territory's main hospital group so that they are stable across runs on the same data),
    ``main_group_`` (territory_id, group: the group with most of the territory's residents' stays
    among groups located in the territory).
    """

    name: str = "base"
    min_population: float = 0
    """Minimum population of a territory, checked after fitting (methods set it from a parameter)."""

    def fit(self, problem: FlowProblem) -> Delineation:
        """Fit, check the guarantees (:func:`respop.delineation.guarantees.check`, raising
        :class:`DelineationError` naming the zones), then number the territories."""
        from respop.delineation.guarantees import check

        raw = self._fit(problem)
        check(raw, problem, self.min_population)
        self.assignment_, self.main_group_ = finalize(raw, problem)
        return self

    @abstractmethod
    def _fit(self, problem: FlowProblem) -> pl.DataFrame:
        """Return zone_code → a provisional territory label (any integer), for every zone."""


def finalize(raw: pl.DataFrame, problem: FlowProblem) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Stable ids: territories numbered 1..K in the order of their main group's id."""
    located = problem.groups.select("group", pl.col("zone_code").alias("group_zone"))
    flows = problem.flows.join(raw.rename({"territory_id": "label"}), on="zone_code")
    # main group of a territory: most stays of its residents, among groups located in it
    inside = flows.join(located, on="group").join(
        raw.rename({"zone_code": "group_zone", "territory_id": "group_label"}), on="group_zone"
    ).filter(pl.col("label") == pl.col("group_label"))
    main = (
        inside.group_by("label", "group")
        .agg(pl.col("stays").sum())
        .sort(["label", "stays", "group"], descending=[False, True, False])
        .group_by("label", maintain_order=True)
        .first()
        .select("label", "group")
    )
    labels = raw.select(pl.col("territory_id").alias("label")).unique()
    order = (
        labels.join(main, on="label", how="left")
        .sort(["group", "label"], nulls_last=True)
        .with_row_index("territory_id", offset=1)
        .with_columns(pl.col("territory_id").cast(pl.Int32))
    )
    assignment = (
        raw.rename({"territory_id": "label"})
        .join(order.select("label", "territory_id"), on="label")
        .select("zone_code", "territory_id")
        .sort("zone_code")
    )
    return assignment, order.select("territory_id", "group").sort("territory_id")
