"""Measure lon/lat geometries in metres: areas and a local metric projection.

Areas are measured on the WGS84 ellipsoid (which matches CGCS2000's GRS80 to well under a
millimetre at grid scale), see :func:`area_m2`. Distances and widths are measured in a local
conformal projection:
the CGCS2000 3-degree Gauss-Kruger zone of the data inside China, an azimuthal equidistant
projection centred on the data elsewhere.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import shapely
from pyproj import CRS, Geod, Transformer
from shapely.geometry.base import BaseGeometry

GEOD = Geod(ellps="WGS84")
#: Longest edge, in degrees (about 5 m), kept when measuring areas.
DENSIFY_DEG = 5e-5

# EPSG:4534 is "CGCS2000 / 3-degree Gauss-Kruger CM 75E"; the codes run in 3-degree steps
# up to EPSG:4554 at 135E, without the zone number prefixed to the easting.
_GK_FIRST_EPSG = 4534
_GK_FIRST_CM = 75
_GK_LAST_CM = 135
# Rough extent of China including its sea areas; outside it the Gauss-Kruger zones make no sense.
_CHINA_LON = (73.0, 136.0)
_CHINA_LAT = (3.0, 54.0)


def polygon_area_m2(geom: BaseGeometry) -> float:
    """Return the area in square metres of the polygons in ``geom`` (0 for other geometries).

    The edges are taken as they are stored and drawn: straight lines in lon/lat. They are
    densified to at most ``DENSIFY_DEG`` and the area is measured in a Lambert azimuthal
    equal-area projection (exact in area on the ellipsoid) centred on the data. Measured this
    way, a vertex inserted on an edge does not change the area, so the parts of a split add up
    to the whole within 1e-9. (Ellipsoidal polygon area, as ``pyproj.Geod`` computes it, treats
    edges as geodesics: each vertex a split inserts on a long edge moves the boundary by
    millimetres and the area by up to 1e-5 of a street-sized grid.)
    """
    polys = _polygons(geom)
    if not polys:
        return 0.0
    poly = polys[0] if len(polys) == 1 else shapely.MultiPolygon(polys)
    minx, miny, maxx, maxy = poly.bounds
    crs = _laea(round((minx + maxx) / 2.0, 1), round((miny + maxy) / 2.0, 1))
    dense = shapely.segmentize(poly, DENSIFY_DEG)
    return float(to_metric(dense, crs).area)


def geodesic_area(geom: BaseGeometry) -> float:
    """Return the ellipsoidal area in m² with geodesic edges (pyproj.Geod), for comparison."""
    total = 0.0
    for poly in _polygons(geom):
        total += _ring_area(poly.exterior.coords)
        for hole in poly.interiors:
            total -= _ring_area(hole.coords)
    return max(total, 0.0)


def _ring_area(coords: object) -> float:
    xy = np.asarray(coords, dtype=float)
    if len(xy) < 4:
        return 0.0
    area, _ = GEOD.polygon_area_perimeter(xy[:, 0], xy[:, 1])
    # The sign follows the ring's orientation; rings of a valid polygon never overlap, so the
    # magnitude is what counts.
    return abs(area)


@lru_cache(maxsize=256)
def _laea(lon: float, lat: float) -> CRS:
    return CRS.from_proj4(f"+proj=laea +lat_0={lat} +lon_0={lon} +ellps=WGS84 +units=m +no_defs")


def _polygons(geom: BaseGeometry) -> list[shapely.Polygon]:
    if geom is None or geom.is_empty:
        return []
    if geom.geom_type == "Polygon":
        return [geom]
    if hasattr(geom, "geoms"):
        return [p for g in geom.geoms for p in _polygons(g)]
    return []


def local_metric_crs(lon: float, lat: float) -> CRS:
    """Return a conformal metric CRS for work around (lon, lat)."""
    if _CHINA_LON[0] <= lon <= _CHINA_LON[1] and _CHINA_LAT[0] <= lat <= _CHINA_LAT[1]:
        cm = int(round(lon / 3.0)) * 3
        cm = min(max(cm, _GK_FIRST_CM), _GK_LAST_CM)
        return CRS.from_epsg(_GK_FIRST_EPSG + (cm - _GK_FIRST_CM) // 3)
    return _aeqd(round(lon, 3), round(lat, 3))


@lru_cache(maxsize=64)
def _aeqd(lon: float, lat: float) -> CRS:
    return CRS.from_proj4(f"+proj=aeqd +lat_0={lat} +lon_0={lon} +datum=WGS84 +units=m +no_defs")


@lru_cache(maxsize=64)
def _to_metric(crs: CRS) -> Transformer:
    return Transformer.from_crs(CRS.from_epsg(4326), crs, always_xy=True)


def metric_crs_for(*geoms: BaseGeometry) -> CRS:
    """Return the local metric CRS for the centre of the given geometries' common envelope."""
    bounds = np.array([g.bounds for g in geoms if g is not None and not g.is_empty])
    if len(bounds) == 0:
        raise ValueError("no geometry to centre a projection on")
    lon = (bounds[:, 0].min() + bounds[:, 2].max()) / 2.0
    lat = (bounds[:, 1].min() + bounds[:, 3].max()) / 2.0
    return local_metric_crs(float(lon), float(lat))


def to_metric(geom: BaseGeometry, crs: CRS) -> BaseGeometry:
    """Project a lon/lat geometry (or array of geometries) into the metric ``crs``."""
    transformer = _to_metric(crs)

    def _project(coords: np.ndarray) -> np.ndarray:
        x, y = transformer.transform(coords[:, 0], coords[:, 1])
        return np.column_stack([x, y])

    return shapely.transform(geom, _project)
