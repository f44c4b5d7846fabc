"""Shapes true to distance on the ground (WGS84 ellipsoid)."""

from __future__ import annotations

import numpy as np
from shapely.geometry import Polygon

from gis.crs import GEOD
from gis.errors import GisError


def unwrap_lon(lon: np.ndarray, centre: float) -> np.ndarray:
    """Put longitudes within 180 degrees of ``centre`` so that shapes never jump the globe."""
    return (np.asarray(lon, dtype=float) - centre + 180.0) % 360.0 - 180.0 + centre


def geodesic_circle(lon: float, lat: float, radius_m: float, segments: int = 72) -> Polygon:
    """Return the polygon of points ``radius_m`` metres from (lon, lat) along the ellipsoid.

    Every vertex lies exactly ``radius_m`` from the centre. Longitudes stay continuous around the
    centre (past 180 next to the antimeridian). A circle that reaches a pole has no lon/lat
    polygon and is refused.
    """
    if not (radius_m > 0 and np.isfinite(radius_m)):
        raise GisError(f"circle radius {radius_m!r} m must be a positive number", lon=lon, lat=lat)
    if segments < 8:
        raise GisError(f"circle: {segments} segments are too few (at least 8)")
    pole_lat = 90.0 if lat >= 0 else -90.0
    _, _, to_pole = GEOD.inv(lon, lat, lon, pole_lat)
    if to_pole <= radius_m:
        raise GisError(
            f"circle of {radius_m:.0f} m around ({lon}, {lat}) contains a pole", lon=lon, lat=lat
        )
    azimuths = np.linspace(0.0, 360.0, segments, endpoint=False)
    lons, lats, _ = GEOD.fwd(
        np.full(segments, lon), np.full(segments, lat), azimuths, np.full(segments, radius_m)
    )
    return Polygon(np.column_stack([unwrap_lon(lons, lon), lats]))
