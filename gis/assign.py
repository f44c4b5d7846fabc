"""Assign points to the polygons that contain them, in bulk.

Rule for points on a shared boundary or vertex: a point that lies in (or on the edge of) several
polygons goes to the one whose key sorts first (grid codes, so the choice survives re-imports).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import shapely
from shapely import STRtree


def assign_points(
    lon: np.ndarray, lat: np.ndarray, polygons: Sequence, keys: Sequence[str]
) -> np.ndarray:
    """Return, for each point, the index of the polygon that contains it, or -1 when none does.

    ``polygons`` and ``keys`` run in parallel; ties on shared edges go to the smallest key.
    """
    lon = np.asarray(lon, dtype=float)
    lat = np.asarray(lat, dtype=float)
    result = np.full(lon.shape[0], -1, dtype=np.int64)
    if lon.size == 0 or len(polygons) == 0:
        return result
    rank = np.argsort(np.argsort(np.asarray(keys, dtype=object)))  # position of each key in order
    points = shapely.points(lon, lat)
    tree = STRtree(list(polygons))
    pt_idx, poly_idx = tree.query(points, predicate="intersects")
    if pt_idx.size == 0:
        return result
    order = np.lexsort((rank[poly_idx], pt_idx))
    pt_sorted, poly_sorted = pt_idx[order], poly_idx[order]
    first = np.ones(pt_sorted.size, dtype=bool)
    first[1:] = pt_sorted[1:] != pt_sorted[:-1]
    result[pt_sorted[first]] = poly_sorted[first]
    return result
