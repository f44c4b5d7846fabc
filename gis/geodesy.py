"""Shapes true to distance on the ground (WGS84 ellipsoid)."""

from __future__ import annotations

import numpy as np
from shapely.geometry import Polygon

from gis.crs import GEOD


def geodesic_circle(lon: float, lat: float, radius_m: float, segments: int = 72) -> Polygon:
    """Return the polygon of points ``radius_m`` metres from (lon, lat) along the ellipsoid."""
    azimuths = np.linspace(0.0, 360.0, segments, endpoint=False)
    lons, lats, _ = GEOD.fwd(
        np.full(segments, lon), np.full(segments, lat), azimuths, np.full(segments, radius_m)
    )
    return Polygon(np.column_stack([lons, lats]))
