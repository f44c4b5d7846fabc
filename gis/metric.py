"""Measure lon/lat geometries in metres: areas, and geometries in a local metric projection.

The projections come from :mod:`gis.crs` (the CGCS2000 Gauss-Krüger zone of the data in China,
an azimuthal equidistant projection elsewhere; Lambert azimuthal equal-area for areas).
"""

from __future__ import annotations

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from gis.crs import equal_area_transformers, metric_transformers

#: Longest edge, in degrees (about 5 m), kept when measuring areas.
DENSIFY_DEG = 5e-5


def polygon_area_m2(geom: BaseGeometry) -> float:
    """Return the area in square metres of the polygons in ``geom`` (0 for other geometries).

    The edges are taken as they are stored and drawn: straight lines in lon/lat. They are
    densified to at most ``DENSIFY_DEG`` and the area is measured in a Lambert azimuthal
    equal-area projection (exact in area on the ellipsoid) centred on the data. Measured this
    way, a vertex inserted on an edge does not change the area, so the parts of a split add up
    to the whole within 1e-9. (Ellipsoidal polygon area with geodesic edges, as
    ``pyproj.Geod`` computes it, moves with every vertex a split inserts on a long edge: by up
    to 1e-5 of a street-sized grid; and its rounding error on a micro-grid is about 1e-9.)
    """
    polys = polygons(geom)
    if not polys:
        return 0.0
    poly = polys[0] if len(polys) == 1 else shapely.MultiPolygon(polys)
    minx, miny, maxx, maxy = poly.bounds
    # Centre rounded to 0.1 degree so that neighbouring grids share one projection.
    transformer, _ = equal_area_transformers(
        round((minx + maxx) / 2.0, 1), round((miny + maxy) / 2.0, 1)
    )
    dense = shapely.segmentize(poly, DENSIFY_DEG)
    return float(_apply(dense, transformer).area)


def polygons(geom: BaseGeometry | None) -> list[shapely.Polygon]:
    """Return the polygons in ``geom`` (collections and multi-parts flattened; none for
    ``None``, empty or other geometries)."""
    if geom is None or geom.is_empty:
        return []
    if geom.geom_type == "Polygon":
        return [geom]
    if hasattr(geom, "geoms"):
        return [p for g in geom.geoms for p in polygons(g)]
    return []


def centre_of(*geoms: BaseGeometry) -> tuple[float, float]:
    """Return the centre (lon, lat) of the common envelope of the given geometries."""
    bounds = np.array([g.bounds for g in geoms if g is not None and not g.is_empty])
    if len(bounds) == 0:
        raise ValueError("no geometry to centre a projection on")
    lon = (bounds[:, 0].min() + bounds[:, 2].max()) / 2.0
    lat = (bounds[:, 1].min() + bounds[:, 3].max()) / 2.0
    return float(lon), float(lat)


def to_metric(geom, centre: tuple[float, float]):  # type: ignore[no-untyped-def]
    """Project a lon/lat geometry (or an array of them) into the local metric CRS of ``centre``."""
    forward, _ = metric_transformers(*centre)
    return _apply(geom, forward)


def _apply(geom, transformer):  # type: ignore[no-untyped-def]
    def _project(coords: np.ndarray) -> np.ndarray:
        x, y = transformer.transform(coords[:, 0], coords[:, 1])
        return np.column_stack([x, y])

    return shapely.transform(geom, _project)


def distance_m(a: BaseGeometry, b: BaseGeometry) -> float:
    """Return the shortest distance between two lon/lat geometries, in metres."""
    centre = centre_of(a, b)
    return float(to_metric(a, centre).distance(to_metric(b, centre)))
