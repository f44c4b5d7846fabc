"""Grid boundary validation: each broken rule is refused with its reason and location."""

from __future__ import annotations

import json
import math

import pytest
import shapely
import shapely.affinity
from shapely import MultiPolygon, Polygon, box

from gis.metric import polygon_area_m2
from gis.validate import (
    AreaTooSmall,
    BoundaryLimits,
    CoordinatesOutOfRange,
    EmptyGeometry,
    GeometryRejected,
    InvalidGeometry,
    MalformedGeometry,
    OutsideParent,
    OverlapsSibling,
    SelfIntersection,
    TooManyVertices,
    WrongGeometryType,
    validate_boundary,
)

# A 1 km-ish block in Hefei, lon/lat.
X0, Y0 = 117.2300, 31.8400
D = 0.01


def block(x0: float, y0: float, x1: float, y1: float) -> Polygon:
    return box(X0 + x0 * D, Y0 + y0 * D, X0 + x1 * D, Y0 + y1 * D)


PARENT = block(0, 0, 1, 1)
WEST = block(0, 0, 0.5, 1)


def reject(cls: type[GeometryRejected], geom, **kw) -> GeometryRejected:
    with pytest.raises(cls) as info:
        validate_boundary(geom, **kw)
    err = info.value
    assert err.http_status == 422
    # The body an API sends must serialise as it is.
    json.dumps(err.to_dict(), ensure_ascii=False)
    return err


def test_bow_tie_is_refused_at_its_crossing_point() -> None:
    bow = Polygon([(X0, Y0), (X0 + D, Y0 + D), (X0 + D, Y0), (X0, Y0 + D)])
    err = reject(SelfIntersection, bow)
    cx, cy = X0 + D / 2, Y0 + D / 2
    assert err.location.geom_type == "Point"
    assert err.location.x == pytest.approx(cx, abs=1e-12)
    assert err.location.y == pytest.approx(cy, abs=1e-12)
    assert f"{cx:.6f},{cy:.6f}" in err.message
    assert "自相交" in err.message and "self-intersection" in err.message
    assert err.to_dict()["location"]["type"] == "Point"
    assert err.to_dict()["code"] == "self_intersection"


def test_ring_touching_itself_is_located_at_the_touch() -> None:
    eight = Polygon(
        [
            (X0, Y0),
            (X0 + 2 * D, Y0),
            (X0 + D, Y0 + D),
            (X0 + 2 * D, Y0 + 2 * D),
            (X0, Y0 + 2 * D),
            (X0 + D, Y0 + D),
        ]
    )
    err = reject(SelfIntersection, eight)
    assert (err.location.x, err.location.y) == pytest.approx((X0 + D, Y0 + D))


def test_hole_crossing_its_shell_is_a_self_intersection() -> None:
    shell = block(0, 0, 1, 1).exterior
    hole = block(0.8, 0.2, 1.2, 0.4).exterior
    err = reject(SelfIntersection, Polygon(shell, [hole]))
    xs = sorted(p[0] for p in err.details["points"])
    assert xs == pytest.approx([X0 + D, X0 + D])


def test_hole_outside_its_shell_is_located_at_the_hole() -> None:
    hole = block(2, 2, 2.2, 2.2).exterior
    err = reject(InvalidGeometry, Polygon(block(0, 0, 1, 1).exterior, [hole]))
    assert not isinstance(err, SelfIntersection)
    assert shapely.Polygon(hole).covers(err.location)
    assert "hole" in err.message


def test_interior_cut_in_two_by_a_touching_hole_is_located_at_a_contact() -> None:
    shell = Polygon([(0, 0), (4, 0), (4, 4), (0, 4)])
    hole = [(0, 2), (2, 1), (4, 2), (2, 3)]
    moved = shapely.affinity.translate(
        shapely.affinity.scale(Polygon(shell.exterior, [hole]), 0.001, 0.001, origin=(0, 0)),
        X0,
        Y0,
    )
    err = reject(InvalidGeometry, moved)
    contacts = {(round(X0, 9), round(Y0 + 0.002, 9)), (round(X0 + 0.004, 9), round(Y0 + 0.002, 9))}
    assert (round(err.location.x, 9), round(err.location.y, 9)) in contacts


def test_overlapping_parts_of_a_multipolygon_are_refused() -> None:
    err = reject(SelfIntersection, MultiPolygon([block(0, 0, 0.6, 1), block(0.4, 0, 1, 1)]))
    assert len(err.details["points"]) >= 2


@pytest.mark.parametrize(
    "geom",
    [
        shapely.Point(X0, Y0),
        shapely.LineString([(X0, Y0), (X0 + D, Y0)]),
        shapely.GeometryCollection([block(0, 0, 1, 1)]),
    ],
    ids=["point", "line", "collection"],
)
def test_only_polygons_are_accepted(geom) -> None:
    err = reject(WrongGeometryType, geom)
    assert geom.geom_type in err.message


def test_empty_polygon_is_refused() -> None:
    reject(EmptyGeometry, Polygon())


@pytest.mark.parametrize(
    "bad",
    [{"type": "Polygon"}, {"type": "Polygon", "coordinates": [[[1, 2], [3, 4]]]}, "POLYGON", 42],
    ids=["no-coordinates", "ring-too-short", "string", "number"],
)
def test_unreadable_geojson_is_refused(bad) -> None:
    reject(MalformedGeometry, bad)


def test_swapped_lat_lon_is_refused_and_named() -> None:
    swapped = Polygon([(y, x) for x, y in block(0, 0, 1, 1).exterior.coords])
    err = reject(CoordinatesOutOfRange, swapped)
    assert err.details["likely_swapped"] is True
    assert "swapped" in err.message
    # The location is where the vertex would be with lon/lat the right way round.
    assert PARENT.covers(err.location)


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_non_finite_coordinates_are_refused() -> None:
    poly = Polygon([(X0, Y0), (X0 + D, Y0), (float("nan"), Y0 + D)])
    reject(CoordinatesOutOfRange, poly)


def test_vertex_limit() -> None:
    circle = shapely.Point(X0, Y0).buffer(D, quad_segs=64)  # 257 vertices
    err = reject(TooManyVertices, circle, limits=BoundaryLimits(max_vertices=200))
    assert err.details["vertices"] == 257
    validate_boundary(circle, limits=BoundaryLimits(max_vertices=300))


def test_minimum_area_is_geodesic() -> None:
    # About 9 m x 11 m = ~100 m²: just under and just over a limit set around it.
    tiny = box(X0, Y0, X0 + 0.0001, Y0 + 0.0001)
    area = polygon_area_m2(tiny)
    assert 90 < area < 120
    err = reject(AreaTooSmall, tiny, limits=BoundaryLimits(min_area_m2=area + 1))
    assert err.details["area_m2"] == pytest.approx(area)
    assert validate_boundary(tiny, limits=BoundaryLimits(min_area_m2=area - 1)).area_m2 == (
        pytest.approx(area)
    )


def test_result_is_a_ccw_multipolygon_without_z() -> None:
    cw = Polygon([(x, y, 5.0) for x, y in list(block(0, 0, 1, 1).exterior.coords)[::-1]])
    ok = validate_boundary(cw)
    assert ok.geometry.geom_type == "MultiPolygon"
    assert not ok.geometry.has_z
    assert ok.geometry.geoms[0].exterior.is_ccw
    assert ok.area_m2 == pytest.approx(polygon_area_m2(block(0, 0, 1, 1)))


def test_a_geojson_feature_is_read() -> None:
    feature = {"type": "Feature", "properties": {}, "geometry": shapely.geometry.mapping(WEST)}
    assert validate_boundary(feature).geometry.equals(MultiPolygon([WEST]))


def test_overhang_over_the_parent_is_refused_with_its_area_and_place() -> None:
    over = block(0.5, 0.5, 1.2, 1)  # 0.2 x 0.5 of D beyond the east edge
    err = reject(OutsideParent, over, parent=PARENT)
    expected = polygon_area_m2(block(1, 0.5, 1.2, 1))
    assert err.details["area_m2"] == pytest.approx(expected, rel=1e-9)
    assert err.location.equals(block(1, 0.5, 1.2, 1))


def test_overhang_is_clipped_on_request() -> None:
    over = block(0.5, 0.5, 1.2, 1)
    ok = validate_boundary(over, parent=PARENT, clip_to_parent=True)
    assert PARENT.covers(ok.geometry)
    assert ok.clipped_parent_m2 == pytest.approx(polygon_area_m2(block(1, 0.5, 1.2, 1)))
    assert ok.area_m2 == pytest.approx(polygon_area_m2(block(0.5, 0.5, 1, 1)))


def test_overlap_with_a_sibling_names_it() -> None:
    east = block(0.4, 0, 1, 1)
    err = reject(OverlapsSibling, east, parent=PARENT, siblings={"340104001001": WEST})
    assert "340104001001" in err.message
    assert err.details["overlaps"][0]["sibling"] == "340104001001"
    assert err.details["overlaps"][0]["area_m2"] == pytest.approx(
        polygon_area_m2(block(0.4, 0, 0.5, 1)), rel=1e-9
    )
    assert err.location.equals(block(0.4, 0, 0.5, 1))


def test_fit_to_neighbours_cuts_the_overlap_away() -> None:
    east = block(0.4, 0, 1, 1)
    ok = validate_boundary(east, parent=PARENT, siblings={7: WEST}, fit_to_siblings=True)
    assert ok.geometry.intersection(WEST).area == pytest.approx(0, abs=1e-15)
    assert ok.geometry.equals(MultiPolygon([block(0.5, 0, 1, 1)]))
    assert set(ok.clipped_siblings_m2) == {7}


def test_fit_that_leaves_nothing_is_refused() -> None:
    inside_west = block(0.1, 0.1, 0.4, 0.9)
    reject(EmptyGeometry, inside_west, siblings={1: WEST}, fit_to_siblings=True)


def test_neighbours_sharing_an_edge_pass() -> None:
    east = block(0.5, 0, 1, 1)
    ok = validate_boundary(east, parent=PARENT, siblings={1: WEST})
    assert ok.clipped_parent_m2 == 0 and ok.clipped_siblings_m2 == {}


def test_vertex_snapped_onto_a_neighbours_edge_is_not_an_overlap() -> None:
    # A vertex snapped onto the middle of the neighbour's edge carries rounding error; the
    # overlap it makes is far below a square centimetre and must not be refused.
    edge = shapely.LineString([(X0 + 0.5 * D, Y0), (X0 + 0.5 * D, Y0 + D)])
    snapped = [edge.interpolate(f, normalized=True) for f in (0.1234567, 0.7654321)]
    east = Polygon(
        [(snapped[0].x, snapped[0].y), (X0 + D, Y0), (X0 + D, Y0 + D), (snapped[1].x, snapped[1].y)]
    )
    validate_boundary(east, parent=PARENT, siblings={1: WEST})


def test_checks_run_cheapest_first() -> None:
    # Out of range and self-intersecting: the range is reported, not the crossing.
    bow = Polygon([(200, 0), (201, 1), (201, 0), (200, 1)])
    reject(CoordinatesOutOfRange, bow)


def test_a_hole_without_area_is_named() -> None:
    flat = [pt for pt in [(X0 + 0.5 * D, Y0 + 0.5 * D)] * 4]
    err = reject(InvalidGeometry, Polygon(block(0, 0, 1, 1).exterior, [flat]))
    assert "hole encloses no area" in err.message
    assert (err.location.x, err.location.y) == pytest.approx((X0 + 0.5 * D, Y0 + 0.5 * D))


def test_coordinates_rounded_by_a_map_client_meet_their_neighbours_again() -> None:
    # A neighbour with a long, bent shared edge at full precision.
    x = X0 + 0.4123456789123 * D
    edge = [(x + 0.00003 * math.sin(k * 1.234567), Y0 + k * D / 10) for k in range(11)]
    west = Polygon([(X0, Y0), *edge, (X0, Y0 + D)])
    east = Polygon([*edge, (X0 + D, Y0 + D), (X0 + D, Y0)])
    assert west.is_valid and east.is_valid
    rounded = Polygon([(round(a, 7), round(b, 7)) for a, b in east.exterior.coords])
    ok = validate_boundary(rounded, parent=PARENT, siblings={"w": west})
    # The shared vertices are the neighbour's own again: no overlap, no gap at all.
    assert ok.geometry.intersection(west).area == 0
    assert set(edge) <= set(map(tuple, shapely.get_coordinates(ok.geometry)))
    assert shapely.union_all([west, ok.geometry]).equals(PARENT)
    # Without snapping, the rounding leaves overlaps along the edge.
    with pytest.raises(OverlapsSibling):
        validate_boundary(
            rounded,
            siblings={"w": west},
            snap_tolerance_deg=0,
            limits=BoundaryLimits(tolerance_m2=1e-6),
        )
