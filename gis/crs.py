"""All coordinate-reference-system handling: parsing CRS names, transforming to and from WGS84.

Storage is WGS84 (EPSG:4326) in lon/lat order. Accepted input: WGS84, CGCS2000 (EPSG:4490, equal
to WGS84 within decimetres at grid scale), the GCJ-02 offset used by AMap and Tencent, Baidu's
BD-09, and any EPSG code pyproj knows — in practice the CGCS2000 Gauss-Krüger zones EPSG:4513–4554.
Every pyproj transformer is built with ``always_xy=True``: x is longitude / easting.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import shapely
from pyproj import CRS, Geod, Transformer
from pyproj.exceptions import CRSError

from gis.errors import CoordinateError, UnknownCRS

WGS84 = "EPSG:4326"
GEOD = Geod(ellps="WGS84")

ALIASES = {
    "wgs84": "EPSG:4326",
    "epsg:4326": "EPSG:4326",
    "4326": "EPSG:4326",
    "cgcs2000": "EPSG:4490",
    "epsg:4490": "EPSG:4490",
    "4490": "EPSG:4490",
}
OFFSET_SYSTEMS = ("gcj02", "bd09")


@dataclass(frozen=True)
class CrsSpec:
    """A parsed CRS: ``name`` as we record it, ``kind`` geographic / projected / gcj02 / bd09."""

    name: str
    kind: str
    epsg: int | None = None

    @property
    def is_projected(self) -> bool:
        return self.kind == "projected"


def parse_crs(value: str | None) -> CrsSpec:
    """Parse a CRS name: wgs84 (default), cgcs2000, gcj02, bd09 or EPSG:<code>."""
    if value is None or str(value).strip() == "":
        return CrsSpec("wgs84", "geographic", 4326)
    raw = str(value).strip()
    urn = re.fullmatch(r"(?i)urn:ogc:def:crs:(?:EPSG:[\d.]*:(\d+)|OGC:1\.3:CRS84)", raw)
    if urn:  # the names GeoJSON's old "crs" member uses
        raw = f"EPSG:{urn.group(1)}" if urn.group(1) else "wgs84"
    key = raw.lower().replace("-", "").replace("_", "")
    if key in ("gcj02", "gcj", "amap", "tencent"):
        return CrsSpec("gcj02", "gcj02")
    if key in ("bd09", "bd09ll", "baidu"):
        return CrsSpec("bd09", "bd09")
    key = ALIASES.get(raw.lower(), raw)
    match = re.fullmatch(r"(?i)epsg:(\d{4,6})", key)
    if not match:
        raise UnknownCRS(
            f"unknown CRS '{raw}': use wgs84, cgcs2000, gcj02, bd09 or EPSG:<code>", crs=raw
        )
    code = int(match.group(1))
    try:
        crs = _crs(code)
    except CRSError as exc:
        raise UnknownCRS(f"unknown CRS '{raw}': EPSG:{code} is not a known code", crs=raw) from exc
    if crs.is_projected:
        return CrsSpec(f"EPSG:{code}", "projected", code)
    if crs.is_geographic:
        name = {4326: "wgs84", 4490: "cgcs2000"}.get(code, f"EPSG:{code}")
        return CrsSpec(name, "geographic", code)
    raise UnknownCRS(f"EPSG:{code} is neither geographic nor projected", crs=raw)


@lru_cache(maxsize=64)
def _crs(code: int) -> CRS:
    return CRS.from_epsg(code)


@lru_cache(maxsize=64)
def _transformer(src: str, dst: str) -> Transformer:
    return Transformer.from_crs(src, dst, always_xy=True)


def check_lonlat(lon: np.ndarray, lat: np.ndarray, *, what: str = "coordinates") -> None:
    """Raise CoordinateError naming the first point out of range, and a likely lat/lon swap."""
    lon = np.asarray(lon, dtype=float)
    lat = np.asarray(lat, dtype=float)
    bad = ~np.isfinite(lon) | ~np.isfinite(lat) | (np.abs(lon) > 180) | (np.abs(lat) > 90)
    if not bad.any():
        return
    i = int(np.flatnonzero(bad)[0])
    x, y = float(lon.flat[i]), float(lat.flat[i])
    if not (math.isfinite(x) and math.isfinite(y)):
        raise CoordinateError(f"坐标不是数字 ({x}, {y}) / {what}: not a number ({x}, {y})", index=i)
    if abs(y) > 90 and abs(x) <= 90 and abs(y) <= 180:
        raise CoordinateError(
            f"纬度 {y} 超出范围 [-90, 90]，经纬度可能写反了（是否应为 经度 {y}、纬度 {x}？） / "
            f"{what}: latitude {y} is out of range [-90, 90]; lon/lat look swapped "
            f"(did you mean lon={y}, lat={x}?)",
            index=i,
            likely_swap=True,
        )
    if abs(x) > 180 or abs(y) > 90:
        if abs(x) > 1000 or abs(y) > 1000:
            raise CoordinateError(
                f"({x}, {y}) 像是投影坐标（米），请选择其坐标系（如 CGCS2000 高斯投影带 EPSG:4548） / "
                f"{what}: ({x}, {y}) look like projected metres; name their CRS "
                "(e.g. crs=EPSG:4548 for a CGCS2000 Gauss-Krüger zone)",
                index=i,
            )
        raise CoordinateError(
            f"坐标 ({x}, {y}) 超出范围（经度 -180..180，纬度 -90..90） / "
            f"{what}: ({x}, {y}) out of range (longitude -180..180, latitude -90..90)",
            index=i,
        )


def in_china_bbox(lon: float | np.ndarray, lat: float | np.ndarray) -> np.ndarray | bool:
    """Tell whether points lie in the rough box where GCJ-02 applies its offset."""
    lon = np.asarray(lon)
    lat = np.asarray(lat)
    return (lon >= 72.004) & (lon <= 137.8347) & (lat >= 0.8293) & (lat <= 55.8271)


# ---------------------------------------------------------------------------------------------
# GCJ-02 and BD-09. GCJ-02 is WGS84 plus an obfuscating offset (published formula, Krasovsky
# ellipsoid); BD-09 adds a further rotation-like offset to GCJ-02.
_A = 6378245.0
_EE = 0.00669342162296594323
_X_PI = math.pi * 3000.0 / 180.0


def _gcj_delta(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = lon - 105.0
    y = lat - 35.0
    sx = np.sqrt(np.abs(x))
    dlat = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * sx
    dlon = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * sx
    common = (20.0 * np.sin(6.0 * x * math.pi) + 20.0 * np.sin(2.0 * x * math.pi)) * 2.0 / 3.0
    dlat = dlat + common
    dlon = dlon + common
    dlat = dlat + (20.0 * np.sin(y * math.pi) + 40.0 * np.sin(y / 3.0 * math.pi)) * 2.0 / 3.0
    dlon = dlon + (20.0 * np.sin(x * math.pi) + 40.0 * np.sin(x / 3.0 * math.pi)) * 2.0 / 3.0
    dlat = (
        dlat + (160.0 * np.sin(y / 12.0 * math.pi) + 320 * np.sin(y * math.pi / 30.0)) * 2.0 / 3.0
    )
    dlon = (
        dlon + (150.0 * np.sin(x / 12.0 * math.pi) + 300.0 * np.sin(x / 30.0 * math.pi)) * 2.0 / 3.0
    )
    rad = lat / 180.0 * math.pi
    magic = 1 - _EE * np.sin(rad) ** 2
    sq = np.sqrt(magic)
    dlat = (dlat * 180.0) / ((_A * (1 - _EE)) / (magic * sq) * math.pi)
    dlon = (dlon * 180.0) / (_A / sq * np.cos(rad) * math.pi)
    return dlon, dlat


def wgs84_to_gcj02(lon, lat):  # type: ignore[no-untyped-def]
    """Shift WGS84 lon/lat to GCJ-02 (no shift outside China)."""
    lon = np.asarray(lon, dtype=float)
    lat = np.asarray(lat, dtype=float)
    dlon, dlat = _gcj_delta(lon, lat)
    inside = in_china_bbox(lon, lat)
    return np.where(inside, lon + dlon, lon), np.where(inside, lat + dlat, lat)


def gcj02_to_wgs84(lon, lat, *, tol_deg: float = 1e-9, max_iter: int = 30):  # type: ignore[no-untyped-def]
    """Invert GCJ-02 by fixed-point iteration until the forward shift matches to ~0.1 mm."""
    glon = np.asarray(lon, dtype=float)
    glat = np.asarray(lat, dtype=float)
    wlon, wlat = glon.copy(), glat.copy()
    for _ in range(max_iter):
        flon, flat = wgs84_to_gcj02(wlon, wlat)
        elon, elat = flon - glon, flat - glat
        wlon = wlon - elon
        wlat = wlat - elat
        if np.all(np.abs(elon) < tol_deg) and np.all(np.abs(elat) < tol_deg):
            break
    return wlon, wlat


def gcj02_to_bd09(lon, lat):  # type: ignore[no-untyped-def]
    """Shift GCJ-02 lon/lat to Baidu's BD-09."""
    x = np.asarray(lon, dtype=float)
    y = np.asarray(lat, dtype=float)
    z = np.sqrt(x * x + y * y) + 0.00002 * np.sin(y * _X_PI)
    theta = np.arctan2(y, x) + 0.000003 * np.cos(x * _X_PI)
    return z * np.cos(theta) + 0.0065, z * np.sin(theta) + 0.006


def bd09_to_gcj02(lon, lat, *, tol_deg: float = 1e-9, max_iter: int = 30):  # type: ignore[no-untyped-def]
    """Invert BD-09 to GCJ-02: the closed form, then refined by iteration."""
    blon = np.asarray(lon, dtype=float)
    blat = np.asarray(lat, dtype=float)
    x = blon - 0.0065
    y = blat - 0.006
    z = np.sqrt(x * x + y * y) - 0.00002 * np.sin(y * _X_PI)
    theta = np.arctan2(y, x) - 0.000003 * np.cos(x * _X_PI)
    glon, glat = z * np.cos(theta), z * np.sin(theta)
    for _ in range(max_iter):
        flon, flat = gcj02_to_bd09(glon, glat)
        elon, elat = flon - blon, flat - blat
        glon = glon - elon
        glat = glat - elat
        if np.all(np.abs(elon) < tol_deg) and np.all(np.abs(elat) < tol_deg):
            break
    return glon, glat


def wgs84_to_bd09(lon, lat):  # type: ignore[no-untyped-def]
    """Shift WGS84 lon/lat to BD-09."""
    return gcj02_to_bd09(*wgs84_to_gcj02(lon, lat))


def bd09_to_wgs84(lon, lat):  # type: ignore[no-untyped-def]
    """Shift BD-09 lon/lat back to WGS84."""
    return gcj02_to_wgs84(*bd09_to_gcj02(lon, lat))


# ---------------------------------------------------------------------------------------------
def to_wgs84(x, y, crs: str | CrsSpec | None = None, *, what: str = "coordinates"):  # type: ignore[no-untyped-def]
    """Transform x/y given in ``crs`` to WGS84 lon/lat arrays, checking ranges on the way."""
    spec = crs if isinstance(crs, CrsSpec) else parse_crs(crs)
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    if spec.kind == "projected":
        if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
            raise CoordinateError(f"{what}: not a number")
        degrees = (np.abs(x) <= 180) & (np.abs(y) <= 90)
        if degrees.any():
            i = int(np.flatnonzero(degrees)[0])
            raise CoordinateError(
                f"{what}: ({x.flat[i]}, {y.flat[i]}) look like lon/lat degrees, but {spec.name} "
                "is projected and takes metres (easting, northing); use crs=wgs84 for degrees",
                index=i,
            )
        lon, lat = _transformer(f"EPSG:{spec.epsg}", WGS84).transform(x, y)
        lon, lat = np.asarray(lon), np.asarray(lat)
        if not (np.all(np.isfinite(lon)) and np.all(np.isfinite(lat))):
            raise CoordinateError(f"{what}: outside the area of {spec.name}")
        check_lonlat(lon, lat, what=what)
        _check_area_of_use(lon, lat, spec, what)
        return lon, lat
    check_lonlat(x, y, what=what)
    if spec.kind == "gcj02":
        return gcj02_to_wgs84(x, y)
    if spec.kind == "bd09":
        return bd09_to_wgs84(x, y)
    if spec.epsg in (4326, 4490):
        # CGCS2000 and WGS84 agree within decimetres at grid scale; no transformation.
        return x, y
    lon, lat = _transformer(f"EPSG:{spec.epsg}", WGS84).transform(x, y)
    return np.asarray(lon), np.asarray(lat)


def to_wgs84_point(x: float, y: float, crs: str | CrsSpec | None = None) -> tuple[float, float]:
    """Transform one point to WGS84 lon/lat: ``to_wgs84`` for a single point, without the array
    overhead when the point is plainly in range (a single locate is a few hundred microseconds)."""
    spec = crs if isinstance(crs, CrsSpec) else parse_crs(crs)
    x, y = float(x), float(y)
    plain = math.isfinite(x) and math.isfinite(y) and abs(x) <= 180 and abs(y) <= 90
    if plain and spec.kind == "geographic" and spec.epsg in (4326, 4490):
        return x, y
    lon, lat = to_wgs84([x], [y], spec)
    return float(lon[0]), float(lat[0])


def to_wgs84_masked(x, y, crs: str | CrsSpec | None = None, *, max_messages: int = 1000):  # type: ignore[no-untyped-def]
    """Transform what can be transformed; return (lon, lat, errors) with NaN where refused.

    ``errors`` maps the row index of each refused point to the message ``to_wgs84`` gives for it
    (the first ``max_messages`` of them; later ones get a short message), so a batch keeps its
    good points and says what is wrong with each bad one.
    """
    spec = crs if isinstance(crs, CrsSpec) else parse_crs(crs)
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    try:
        lon, lat = to_wgs84(x, y, spec)
        return np.asarray(lon, dtype=float), np.asarray(lat, dtype=float), {}
    except CoordinateError:
        pass
    finite = np.isfinite(x) & np.isfinite(y)
    if spec.kind == "projected":
        suspect = ~finite | ((np.abs(x) <= 180) & (np.abs(y) <= 90))
        with np.errstate(invalid="ignore"):
            tlon, tlat = _transformer(f"EPSG:{spec.epsg}", WGS84).transform(
                np.where(suspect, 0.0, x), np.where(suspect, 0.0, y)
            )
        tlon, tlat = np.asarray(tlon, dtype=float), np.asarray(tlat, dtype=float)
        suspect |= ~np.isfinite(tlon) | ~np.isfinite(tlat)
        suspect |= (np.abs(tlon) > 180) | (np.abs(tlat) > 90)
        area = _crs(spec.epsg).area_of_use if spec.epsg else None
        if area is not None:
            s = _AREA_SLACK_DEG
            suspect |= (tlon < area.west - s) | (tlon > area.east + s)
            suspect |= (tlat < area.south - s) | (tlat > area.north + s)
    else:
        suspect = ~finite | (np.abs(x) > 180) | (np.abs(y) > 90)
    lon = np.full(x.shape, np.nan)
    lat = np.full(x.shape, np.nan)
    good = ~suspect
    if good.any():
        lon[good], lat[good] = to_wgs84(x[good], y[good], spec)
    errors: dict[int, str] = {}
    for n, i in enumerate(np.flatnonzero(suspect)):
        if n >= max_messages:
            errors[int(i)] = "bad coordinates"
            continue
        try:
            to_wgs84(x[i : i + 1], y[i : i + 1], spec)
            errors[int(i)] = "bad coordinates"
        except CoordinateError as exc:
            errors[int(i)] = exc.message.replace("coordinates: ", "")
    return lon, lat, errors


# How far (degrees) a projected point may fall outside its CRS's published area of use: a
# Gauss-Krüger zone is 3° wide and is used a little beyond its edges in practice.
_AREA_SLACK_DEG = 1.5


def _check_area_of_use(lon: np.ndarray, lat: np.ndarray, spec: CrsSpec, what: str) -> None:
    """Refuse projected coordinates that land far outside the area their CRS is made for."""
    area = _crs(spec.epsg).area_of_use if spec.epsg else None
    if area is None:
        return
    s = _AREA_SLACK_DEG
    out = (
        (lon < area.west - s)
        | (lon > area.east + s)
        | (lat < area.south - s)
        | (lat > area.north + s)
    )
    if out.any():
        i = int(np.flatnonzero(out)[0])
        raise CoordinateError(
            f"{what}: in {spec.name} the point lands at ({float(lon.flat[i]):.6f}, "
            f"{float(lat.flat[i]):.6f}), outside the CRS's area (lon {area.west}..{area.east}, "
            f"lat {area.south}..{area.north}); is it the right zone, or are the easting and "
            "northing swapped?",
            index=i,
        )


def degree_span(lat, metres: float):  # type: ignore[no-untyped-def]
    """Return (dlon, dlat) in degrees that surely span ``metres`` on the ground around ``lat``.

    Slightly generous (a degree of latitude taken as 110 km, under its true minimum), for boxes
    that pre-select candidates before an exact metric test.
    """
    lat = np.asarray(lat, dtype=float)
    dlat = metres / 110_000.0
    coslat = np.maximum(np.cos(np.radians(np.minimum(np.abs(lat), 89.9))), 1e-6)
    return dlat / coslat, dlat + 0.0 * coslat


def from_wgs84(lon, lat, crs: str | CrsSpec | None = None):  # type: ignore[no-untyped-def]
    """Transform WGS84 lon/lat to ``crs``."""
    spec = crs if isinstance(crs, CrsSpec) else parse_crs(crs)
    lon = np.asarray(lon, dtype=float)
    lat = np.asarray(lat, dtype=float)
    if spec.kind == "gcj02":
        return wgs84_to_gcj02(lon, lat)
    if spec.kind == "bd09":
        return wgs84_to_bd09(lon, lat)
    if spec.epsg in (4326, 4490):
        return lon, lat
    x, y = _transformer(WGS84, f"EPSG:{spec.epsg}").transform(lon, lat)
    return np.asarray(x), np.asarray(y)


def gk_zone_epsg(lon: float) -> int:
    """Return the CGCS2000 3-degree Gauss-Krüger zone (EPSG:4534–4554, CM 75°E–135°E) for ``lon``."""
    cm = int(round(lon / 3.0)) * 3
    cm = min(max(cm, 75), 135)
    return 4534 + (cm - 75) // 3


def local_metric_crs(lon: float, lat: float) -> str:
    """Return a metric CRS for work around (lon, lat): the GK zone in China, else an AEQD."""
    if bool(in_china_bbox(lon, lat)):
        return f"EPSG:{gk_zone_epsg(lon)}"
    return f"+proj=aeqd +lat_0={lat:.6f} +lon_0={lon:.6f} +datum=WGS84 +units=m +no_defs"


def metric_transformers(lon: float, lat: float) -> tuple[Transformer, Transformer]:
    """Return (to metric, back to WGS84) transformers for a local metric CRS around a point."""
    target = local_metric_crs(lon, lat)
    return _transformer(WGS84, target), _transformer(target, WGS84)


def geodesic_area_m2(geom) -> float:  # type: ignore[no-untyped-def]
    """Return the area of a lon/lat (Multi)Polygon on the WGS84 ellipsoid, in m².

    Whatever way its rings wind: every shell counts positive and every hole negative. (The
    geodesic ring area is signed by orientation, so summing signed rings would add a hole that
    winds like its shell, or subtract one part of a MultiPolygon from another.) Non-polygonal
    parts have no area.
    """
    total = 0.0
    for part in shapely.get_parts(geom):
        if part.geom_type == "MultiPolygon" or part.geom_type == "GeometryCollection":
            total += geodesic_area_m2(part)
            continue
        if part.geom_type != "Polygon" or part.is_empty:
            continue
        total += _ring_area_m2(part.exterior) - sum(_ring_area_m2(r) for r in part.interiors)
    return total


def _ring_area_m2(ring) -> float:  # type: ignore[no-untyped-def]
    lons, lats = ring.xy
    area, _ = GEOD.polygon_area_perimeter(lons, lats)
    return abs(area)


def equal_area_transformers(lon: float, lat: float) -> tuple[Transformer, Transformer]:
    """Return (to metres, back to lon/lat) for a Lambert azimuthal equal-area map centred here.

    Areas measured in it are true on the WGS84 ellipsoid anywhere on Earth (inside China too,
    where a Gauss-Krüger zone is conformal but not equal-area).
    """
    proj = f"+proj=laea +lat_0={lat:.9f} +lon_0={lon:.9f} +ellps=WGS84 +units=m +no_defs"
    return _transformer(WGS84, proj), _transformer(proj, WGS84)
