"""Areas in square metres: true on the ground, and unchanged by vertices inserted on edges."""

from __future__ import annotations

import pytest
import shapely
from shapely import Polygon, box

from gis.crs import GEOD
from gis.metric import distance_m, polygon_area_m2

X0, Y0 = 117.23, 31.84


def test_area_agrees_with_the_ellipsoid() -> None:
    block = box(X0, Y0, X0 + 0.01, Y0 + 0.01)
    geodesic, _ = GEOD.geometry_area_perimeter(shapely.orient_polygons(block))
    # Geodesic edges bow away from straight lon/lat edges by millimetres: 1e-6 of the area.
    assert polygon_area_m2(block) == pytest.approx(abs(geodesic), rel=1e-6)


def test_a_vertex_on_an_edge_does_not_change_the_area() -> None:
    block = box(X0, Y0, X0 + 0.05, Y0 + 0.05)
    coords = list(block.exterior.coords)
    mid = ((coords[0][0] + coords[1][0]) / 2, (coords[0][1] + coords[1][1]) / 2)
    more = Polygon([coords[0], mid, *coords[1:]])
    assert polygon_area_m2(more) == pytest.approx(polygon_area_m2(block), rel=1e-12)


@pytest.mark.parametrize("hole_ccw", [True, False])
def test_holes_are_subtracted_whatever_their_orientation(hole_ccw: bool) -> None:
    hole = box(X0 + 0.004, Y0 + 0.004, X0 + 0.006, Y0 + 0.006).exterior
    ring = list(hole.coords) if hole.is_ccw == hole_ccw else list(hole.coords)[::-1]
    holed = Polygon(box(X0, Y0, X0 + 0.01, Y0 + 0.01).exterior, [ring])
    expected = polygon_area_m2(box(X0, Y0, X0 + 0.01, Y0 + 0.01)) - polygon_area_m2(Polygon(hole))
    assert polygon_area_m2(holed) == pytest.approx(expected, rel=1e-12)


def test_non_polygons_have_no_area() -> None:
    assert polygon_area_m2(shapely.Point(X0, Y0)) == 0
    assert polygon_area_m2(shapely.Polygon()) == 0


def test_distance_in_metres() -> None:
    a, b = shapely.Point(X0, Y0), shapely.Point(X0 + 0.01, Y0)
    _, _, expected = GEOD.inv(X0, Y0, X0 + 0.01, Y0)
    assert distance_m(a, b) == pytest.approx(expected, rel=1e-3)
