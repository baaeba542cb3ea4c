"""Geometry shared by the stages that work on zones (the synthetic world, the territories)."""

from __future__ import annotations

import numpy as np
import shapely

MIN_SHARED_BORDER_M = 1.0
"""Two zones are neighbours when their polygons share more than this length of border (rook
contiguity; a common corner is not enough)."""


def rook_pairs(geometries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs (i < j) of polygons sharing a border longer than :data:`MIN_SHARED_BORDER_M`
    (coordinates in metres)."""
    tree = shapely.STRtree(geometries)
    left, right = tree.query(geometries, predicate="intersects")
    keep = left < right
    left, right = left[keep], right[keep]
    shared = shapely.length(shapely.intersection(geometries[left], geometries[right]))
    touching = shared > MIN_SHARED_BORDER_M
    return left[touching], right[touching]
