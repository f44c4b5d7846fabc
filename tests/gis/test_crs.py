"""CRS handling: parsing, offsets both ways, range checks, Gauss-Krüger zones."""

from __future__ import annotations

import numpy as np
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
