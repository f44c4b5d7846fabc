"""CRS handling: parsing, offsets both ways, range checks, Gauss-Krüger zones."""

from __future__ import annotations

import numpy as np
import prcoords
import pytest

from gis import crs
from gis.errors import CoordinateError, UnknownCRS


@pytest.mark.parametrize(
    "name,kind",
    [
        (None, "geographic"),
        ("wgs84", "geographic"),
        ("CGCS2000", "geographic"),
        ("gcj02", "gcj02"),
        ("BD-09", "bd09"),
        ("EPSG:4548", "projected"),
    ],
)
def test_parse_known(name, kind) -> None:  # type: ignore[no-untyped-def]
    assert crs.parse_crs(name).kind == kind


@pytest.mark.parametrize("name", ["utm", "EPSG:999999", "EPSG:abc"])
def test_parse_unknown(name: str) -> None:
    with pytest.raises(UnknownCRS):
        crs.parse_crs(name)


def test_offset_round_trips_under_half_a_metre() -> None:
    rng = np.random.default_rng(1)
    lon = rng.uniform(74, 134, 2000)
    lat = rng.uniform(18, 53, 2000)
    for fwd, inv in (
        (crs.wgs84_to_gcj02, crs.gcj02_to_wgs84),
        (crs.wgs84_to_bd09, crs.bd09_to_wgs84),
    ):
        back = inv(*fwd(lon, lat))
        _, _, dist = crs.GEOD.inv(lon, lat, back[0], back[1])
        assert np.max(dist) < 0.5
    shifted = crs.wgs84_to_gcj02(lon, lat)
    _, _, offset = crs.GEOD.inv(lon, lat, shifted[0], shifted[1])
    assert np.median(offset) > 100  # GCJ-02 really moves points by hundreds of metres


def test_no_offset_outside_china() -> None:
    lon, lat = crs.wgs84_to_gcj02(2.35, 48.85)
    assert (float(lon), float(lat)) == (2.35, 48.85)


def test_range_errors_say_why() -> None:
    with pytest.raises(CoordinateError, match="swapped"):
        crs.to_wgs84(31.8, 117.2)
    with pytest.raises(CoordinateError, match="projected metres"):
        crs.to_wgs84(521500.0, 3521300.0)
    with pytest.raises(CoordinateError, match="out of range"):
        crs.to_wgs84(190.0, 20.0)


def test_gauss_kruger_zone_round_trip() -> None:
    assert crs.gk_zone_epsg(117.25) == 4548
    x, y = crs.from_wgs84(117.25, 31.83, "EPSG:4548")
    assert 400000 < float(x) < 600000
    lon, lat = crs.to_wgs84(x, y, "EPSG:4548")
    assert abs(float(lon) - 117.25) < 1e-9 and abs(float(lat) - 31.83) < 1e-9


# --- agreement with an independent implementation (prcoords, public domain, its own code) -----
def _china_points(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.uniform(74, 134, n), rng.uniform(18, 53, n)


@pytest.mark.parametrize(
    "ours,theirs",
    [
        (crs.wgs84_to_gcj02, "wgs_gcj"),
        (crs.gcj02_to_bd09, "gcj_bd"),
        (crs.wgs84_to_bd09, "wgs_bd"),
    ],
)
def test_forward_agrees_with_prcoords(ours, theirs) -> None:  # type: ignore[no-untyped-def]
    lon, lat = _china_points(500, 11)
    got_lon, got_lat = ours(lon, lat)
    fn = getattr(prcoords, theirs)
    ref = np.array([fn(prcoords.Coords(la, lo)) for lo, la in zip(lon, lat, strict=True)])
    _, _, dist = crs.GEOD.inv(got_lon, got_lat, ref[:, 1], ref[:, 0])
    assert np.max(dist) < 0.01  # the same published formula: centimetres at most


@pytest.mark.parametrize(
    "ours,theirs",
    [
        (crs.gcj02_to_wgs84, "gcj_wgs_bored"),
        (crs.bd09_to_gcj02, "bd_gcj"),
        (crs.bd09_to_wgs84, "bd_wgs_bored"),
    ],
)
def test_inverse_agrees_with_prcoords(ours, theirs) -> None:  # type: ignore[no-untyped-def]
    lon, lat = _china_points(300, 12)
    got_lon, got_lat = ours(lon, lat)
    fn = getattr(prcoords, theirs)
    ref = np.array([fn(prcoords.Coords(la, lo)) for lo, la in zip(lon, lat, strict=True)])
    _, _, dist = crs.GEOD.inv(got_lon, got_lat, ref[:, 1], ref[:, 0])
    assert np.max(dist) < 0.5  # both iterate; the issue asks for under half a metre


def test_published_reference_pair() -> None:
    """A pair often quoted for central Beijing: WGS84 (116.391305, 39.907253) ↔ GCJ-02
    (116.397549, 39.908657), about 550 m apart."""
    lon, lat = crs.wgs84_to_gcj02(116.391305, 39.907253)
    _, _, d = crs.GEOD.inv(float(lon), float(lat), 116.397549, 39.908657)
    assert d < 5.0
    back = crs.gcj02_to_wgs84(116.397549, 39.908657)
    _, _, d = crs.GEOD.inv(float(back[0]), float(back[1]), 116.391305, 39.907253)
    assert d < 5.0


def test_projected_crs_refuses_degrees_and_far_points() -> None:
    with pytest.raises(CoordinateError, match="look like lon/lat degrees"):
        crs.to_wgs84(117.2, 31.8, "EPSG:4548")
    # A valid easting/northing of zone CM 117°E, read as zone CM 75°E, lands far off its area.
    x, y = crs.from_wgs84(117.2, 31.8, "EPSG:4548")
    with pytest.raises(CoordinateError, match="outside the CRS's area"):
        crs.to_wgs84(x, y, "EPSG:4534")
    # Easting and northing swapped.
    with pytest.raises(CoordinateError):
        crs.to_wgs84(y, x, "EPSG:4548")


def test_masked_transform_keeps_good_points_and_names_bad_ones() -> None:
    lon, lat, errors = crs.to_wgs84_masked(
        [117.2, 31.8, 521500.0, np.nan, 117.3], [31.8, 117.2, 3521300.0, 1.0, 31.9]
    )
    assert np.allclose(lon[[0, 4]], [117.2, 117.3]) and np.isnan(lon[1:4]).all()
    assert set(errors) == {1, 2, 3}
    assert (
        "swapped" in errors[1] and "projected metres" in errors[2] and "not a number" in errors[3]
    )


@pytest.mark.parametrize(
    "name,expected",
    [
        ("urn:ogc:def:crs:EPSG::4548", "EPSG:4548"),
        ("urn:ogc:def:crs:OGC:1.3:CRS84", "wgs84"),
        ("EPSG:4527", "EPSG:4527"),
        ("EPSG:4498", "EPSG:4498"),
    ],
)
def test_parse_geojson_crs_names(name: str, expected: str) -> None:
    assert crs.parse_crs(name).name == expected


def test_degree_span_covers_the_distance() -> None:
    for lat in (0.0, 31.8, 60.0):
        dlon, dlat = crs.degree_span(lat, 30.0)
        _, _, east = crs.GEOD.inv(117.0, lat, 117.0 + float(dlon), lat)
        _, _, north = crs.GEOD.inv(117.0, lat, 117.0, lat + float(dlat))
        assert 30.0 <= east < 31.0 and 30.0 <= north < 31.0


def test_geodesic_area_does_not_depend_on_ring_orientation() -> None:
    import shapely
    from shapely.geometry import MultiPolygon, Polygon, box
    from shapely.geometry.polygon import orient

    shell = box(117.20, 31.80, 117.21, 31.81)  # about 950 m x 1110 m
    hole = box(117.202, 31.802, 117.204, 31.804)
    other = box(117.22, 31.80, 117.23, 31.81)
    # Reference: the same shapes in a Lambert azimuthal equal-area map (true areas).
    to_m, _ = crs.equal_area_transformers(117.21, 31.805)

    def planar(g):  # type: ignore[no-untyped-def]
        return shapely.transform(
            g, lambda xy: np.column_stack(to_m.transform(xy[:, 0], xy[:, 1]))
        ).area

    expected_holed = planar(shell) - planar(hole)
    expected_two = planar(shell) + planar(other)
    holed = Polygon(shell.exterior.coords, [hole.exterior.coords])
    variants = {
        "ccw shell, cw hole": orient(holed, 1.0),
        "cw shell, ccw hole": orient(holed, -1.0),
        "cw shell, cw hole": Polygon(
            orient(shell, -1.0).exterior.coords, [orient(hole, -1.0).exterior.coords]
        ),
        "ccw shell, ccw hole": Polygon(
            orient(shell, 1.0).exterior.coords, [orient(hole, 1.0).exterior.coords]
        ),
    }
    for label, poly in variants.items():
        assert crs.geodesic_area_m2(poly) == pytest.approx(expected_holed, rel=1e-6), label
    two = {
        "both ccw": MultiPolygon([orient(shell, 1.0), orient(other, 1.0)]),
        "both cw": MultiPolygon([orient(shell, -1.0), orient(other, -1.0)]),
        "one of each": MultiPolygon([orient(shell, 1.0), orient(other, -1.0)]),
    }
    for label, multi in two.items():
        assert crs.geodesic_area_m2(multi) == pytest.approx(expected_two, rel=1e-6), label
    assert crs.geodesic_area_m2(Polygon()) == 0.0
