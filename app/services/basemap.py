"""The e-map's basemap: what the browser needs to draw it, and the local PMTiles file.

One setting picks the basemap (``BASEMAP``, or ``GRIDGOV_BASEMAP`` in the environment):

- ``own`` (the default when no PMTiles file is named): the project's own roads, buildings, water
  and green areas (table ``basemap_feature``), cut as vector tiles by PostGIS at
  ``/tiles/basemap/{z}/{x}/{y}.mvt``. Needs nothing outside the app.
- ``pmtiles`` (the default when ``BASEMAP_PMTILES`` names a file): a local PMTiles archive,
  served by the app as the whole file with range requests (``/basemap/basemap.pmtiles``, for a
  PMTiles-reading client) and as single tiles (``/basemap/tiles/{z}/{x}/{y}``, for any client).
  ``gridgov basemap build out.pmtiles`` makes one from ``basemap_feature``.
- ``tianditu``: Tianditu's ``vec_w`` + ``cva_w`` (Web Mercator) with ``TIANDITU_KEY``.
- ``xyz``: any XYZ raster tile URL (``BASEMAP_URL``, ``{s}`` expands over ``BASEMAP_SUBDOMAINS``).
- ``none``: no basemap.

Every basemap the app accepts is drawn in WGS84/CGCS2000 Web Mercator, like the data. A GCJ-02
basemap (AMap/Autonavi, Tencent, Google China) or Baidu's BD-09 is refused at start-up with the
reason: its streets are offset from true positions by hundreds of metres, so the grids would sit
beside their streets (``BASEMAP_CRS=gcj02`` or a known GCJ-02 tile host is refused).
"""

from __future__ import annotations

import gzip
import os
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pmtiles.reader import MmapSource, Reader
from pmtiles.tile import Compression, TileType, zxy_to_tileid
from pmtiles.writer import Writer
from sqlalchemy import text
from sqlalchemy.orm import Session

KINDS = ("own", "pmtiles", "tianditu", "xyz", "none")
OWN_TILES = "/tiles/basemap/{z}/{x}/{y}.mvt"
PMTILES_FILE = "/basemap/basemap.pmtiles"
PMTILES_TILES = "/basemap/tiles/{z}/{x}/{y}"
TIANDITU_SUBDOMAINS = "01234567"
# Tile hosts whose maps are drawn in GCJ-02 or BD-09 (offset from WGS84 by up to ~700 m).
OFFSET_HOSTS = (
    "autonavi.com",
    "amap.com",
    "map.qq.com",
    "gtimg.com",
    "map.baidu.com",
    "bdimg.com",
    "google.cn",
    "gaode.com",
)
# min_zoom of the own basemap's features, by kind and class (what `import basemap` sets when the
# file gives none): main roads from zoom 10, minor roads from 13, buildings from 15.
MIN_ZOOM = {
    ("road", "motorway"): 8,
    ("road", "trunk"): 9,
    ("road", "primary"): 10,
    ("road", "secondary"): 11,
    ("road", "tertiary"): 12,
    ("road", None): 13,
    ("rail", None): 11,
    ("water", None): 9,
    ("green", None): 12,
    ("building", None): 15,
}
OWN_MAX_ZOOM = 16  # beyond this the browser draws the z16 tiles larger (overzoom)


class BasemapConfigError(ValueError):
    """The basemap settings name something the app cannot draw, with the reason."""


def min_zoom(kind: str, cls: str | None) -> int:
    """The zoom from which a basemap feature of this kind and class is drawn."""
    return MIN_ZOOM.get((kind, (cls or "").lower() or None), MIN_ZOOM.get((kind, None), 13))


def chosen_kind(config: Mapping[str, Any]) -> str:
    """The basemap kind the settings choose (see the module docstring)."""
    kind = (config.get("BASEMAP") or "").strip().lower()
    if not kind:
        return "pmtiles" if config.get("BASEMAP_PMTILES") else "own"
    if kind not in KINDS:
        raise BasemapConfigError(f"BASEMAP='{kind}' is not one of {', '.join(KINDS)}")
    return kind


def check_config(config: Mapping[str, Any]) -> None:
    """Refuse basemap settings that cannot work, saying why (called when the app starts)."""
    basemap_settings(config)


def _max_zoom(config: Mapping[str, Any], default: int) -> int:
    value = config.get("BASEMAP_MAX_ZOOM")
    if value in (None, ""):
        return default
    try:
        z = int(value)
    except (TypeError, ValueError):
        raise BasemapConfigError(f"BASEMAP_MAX_ZOOM='{value}' is not a whole number") from None
    if not 0 <= z <= 22:
        raise BasemapConfigError(f"BASEMAP_MAX_ZOOM={z} is outside 0–22")
    return z


def basemap_settings(config: Mapping[str, Any]) -> dict[str, Any]:
    """What the browser needs to draw the configured basemap.

    ``{"kind": own|pmtiles|tianditu|xyz|none, "crs": "wgs84", "attribution": str,
    "min_zoom": int, "max_zoom": int, "sources": [{"type": "vector"|"raster", "role":
    "base"|"labels", "tiles": [url, …], "tile_size": int, "layers": [...]?}],
    "pmtiles": url of the whole archive or None}``. Tile URLs are same-origin paths except for
    Tianditu and an absolute XYZ URL (whose origins ``tile_origins`` gives the CSP). Vector
    sources name their layers: the own basemap has one layer ``basemap`` with ``kind``
    (road, building, water, green, rail), ``class`` and ``name``.
    Raises BasemapConfigError for settings that cannot work.
    """
    kind = chosen_kind(config)
    crs = (config.get("BASEMAP_CRS") or "wgs84").strip().lower()
    if crs in ("gcj02", "gcj-02", "bd09", "bd-09"):
        raise BasemapConfigError(
            f"BASEMAP_CRS={crs}: basemaps drawn in GCJ-02 (AMap, Tencent) or BD-09 (Baidu) are "
            "offset from the WGS84/CGCS2000 grid data by up to several hundred metres and are "
            "not supported; use the own basemap, a PMTiles file, Tianditu or a WGS84 XYZ server"
        )
    if crs not in ("wgs84", "cgcs2000", "epsg:4326", "epsg:4490"):
        raise BasemapConfigError(f"BASEMAP_CRS='{crs}' is not wgs84 or cgcs2000")
    out: dict[str, Any] = {
        "kind": kind,
        "crs": "wgs84",
        "attribution": config.get("BASEMAP_ATTRIBUTION") or "",
        "min_zoom": 0,
        "max_zoom": 0,
        "sources": [],
        "pmtiles": None,
    }
    if kind == "none":
        return out
    if kind == "own":
        out.update(
            attribution=out["attribution"] or "底图：本系统道路、建筑、水系数据",
            max_zoom=_max_zoom(config, OWN_MAX_ZOOM),
            sources=[
                {
                    "type": "vector",
                    "role": "base",
                    "tiles": [OWN_TILES],
                    "tile_size": 512,
                    "layers": ["basemap"],
                }
            ],
        )
        return out
    if kind == "pmtiles":
        path = config.get("BASEMAP_PMTILES")
        if not path:
            raise BasemapConfigError(
                "BASEMAP=pmtiles needs BASEMAP_PMTILES, the path of a .pmtiles file"
            )
        info = pmtiles_info(path)
        vector = info["tile_type"] == "mvt"
        out.update(
            attribution=out["attribution"] or info["attribution"],
            min_zoom=info["min_zoom"],
            max_zoom=_max_zoom(config, info["max_zoom"]),
            bounds=info["bounds"],
            pmtiles=PMTILES_FILE,
            sources=[
                {
                    "type": "vector" if vector else "raster",
                    "role": "base",
                    "tiles": [PMTILES_TILES],
                    "tile_size": 512 if vector else 256,
                    "format": info["tile_type"],
                    "layers": info["layers"],
                }
            ],
        )
        return out
    if kind == "tianditu":
        key = (config.get("TIANDITU_KEY") or "").strip()
        if not key:
            raise BasemapConfigError(
                "BASEMAP=tianditu needs TIANDITU_KEY (a key from the Tianditu console)"
            )
        out.update(
            attribution=out["attribution"] or "天地图",
            max_zoom=_max_zoom(config, 18),
            sources=[
                {
                    "type": "raster",
                    "role": role,
                    "tiles": [
                        f"https://t{s}.tianditu.gov.cn/{layer}_w/wmts?SERVICE=WMTS&REQUEST=GetTile"
                        f"&VERSION=1.0.0&LAYER={layer}&STYLE=default&TILEMATRIXSET=w&FORMAT=tiles"
                        f"&TILEMATRIX={{z}}&TILEROW={{y}}&TILECOL={{x}}&tk={key}"
                        for s in TIANDITU_SUBDOMAINS
                    ],
                    "tile_size": 256,
                }
                for layer, role in (("vec", "base"), ("cva", "labels"))
            ],
        )
        return out
    # xyz
    url = (config.get("BASEMAP_URL") or "").strip()
    if not url:
        raise BasemapConfigError(
            "BASEMAP=xyz needs BASEMAP_URL, e.g. https://tiles.example/{z}/{x}/{y}.png"
        )
    if not all(part in url for part in ("{z}", "{x}", "{y}")):
        raise BasemapConfigError(f"BASEMAP_URL '{url}' lacks one of {{z}}, {{x}}, {{y}}")
    host = urlsplit(url.replace("{s}", "a")).netloc.lower()
    if any(host == h or host.endswith("." + h) for h in OFFSET_HOSTS):
        raise BasemapConfigError(
            f"BASEMAP_URL names {host}, whose maps are drawn in GCJ-02/BD-09 and sit up to several "
            "hundred metres off the WGS84/CGCS2000 grid data; use a WGS84 tile server"
        )
    subdomains = config.get("BASEMAP_SUBDOMAINS") or "abc"
    tiles = [url.replace("{s}", s) for s in subdomains] if "{s}" in url else [url]
    out.update(
        max_zoom=_max_zoom(config, 19),
        sources=[{"type": "raster", "role": "base", "tiles": tiles, "tile_size": 256}],
    )
    return out


def tile_origins(config: Mapping[str, Any]) -> list[str]:
    """The origins (other than the app's own) the basemap's tiles come from, for the CSP."""
    try:
        settings = basemap_settings(config)
    except BasemapConfigError:
        return []
    if settings["kind"] == "tianditu":
        return ["https://*.tianditu.gov.cn"]
    origins: list[str] = []
    for source in settings["sources"]:
        for url in source["tiles"]:
            parts = urlsplit(url)
            if parts.scheme and parts.netloc:
                origin = f"{parts.scheme}://{parts.netloc}"
                if origin not in origins:
                    origins.append(origin)
    return origins


# ---------------------------------------------------------------------------------------------
# PMTiles: reading (served by the app) and writing (from basemap_feature).
_READERS: dict[tuple[str, float], tuple[Any, Reader]] = {}
_READERS_LOCK = threading.Lock()
MEDIA = {
    TileType.MVT: ("application/vnd.mapbox-vector-tile", "mvt"),
    TileType.PNG: ("image/png", "png"),
    TileType.JPEG: ("image/jpeg", "jpg"),
    TileType.WEBP: ("image/webp", "webp"),
    TileType.AVIF: ("image/avif", "avif"),
}


def pmtiles_reader(path: str | os.PathLike[str]) -> Reader:
    """A reader of the archive (memory-mapped; reopened when the file changes)."""
    p = Path(path)
    try:
        key = (str(p.resolve()), p.stat().st_mtime)
    except OSError as exc:
        raise BasemapConfigError(f"BASEMAP_PMTILES: cannot read {p}: {exc.strerror}") from None
    with _READERS_LOCK:
        found = _READERS.get(key)
        if found is None:
            for old in [k for k in _READERS if k[0] == key[0]]:
                _READERS.pop(old)[0].close()
            f = open(p, "rb")  # noqa: SIM115 - kept open for the memory map
            try:
                reader = Reader(MmapSource(f))
                reader.header()
            except Exception as exc:
                f.close()
                raise BasemapConfigError(
                    f"BASEMAP_PMTILES: {p} is not a PMTiles archive ({exc})"
                ) from None
            found = _READERS[key] = (f, reader)
        return found[1]


def pmtiles_info(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Zooms, bounds, tile type, attribution and vector layers of an archive."""
    reader = pmtiles_reader(path)
    h = reader.header()
    try:
        meta = reader.metadata()
    except Exception:
        meta = {}
    tile_type = MEDIA.get(h["tile_type"], ("application/octet-stream", "bin"))[1]
    return {
        "tile_type": tile_type,
        "min_zoom": int(h["min_zoom"]),
        "max_zoom": int(h["max_zoom"]),
        "bounds": [
            h["min_lon_e7"] / 1e7,
            h["min_lat_e7"] / 1e7,
            h["max_lon_e7"] / 1e7,
            h["max_lat_e7"] / 1e7,
        ],
        "attribution": str(meta.get("attribution") or ""),
        "layers": [str(v.get("id")) for v in meta.get("vector_layers", []) if isinstance(v, dict)],
    }


def pmtiles_tile(
    path: str | os.PathLike[str], z: int, x: int, y: int
) -> tuple[bytes | None, str, str | None]:
    """One tile of the archive: (bytes or None when absent, media type, content encoding)."""
    reader = pmtiles_reader(path)
    h = reader.header()
    media = MEDIA.get(h["tile_type"], ("application/octet-stream", "bin"))[0]
    if not (h["min_zoom"] <= z <= h["max_zoom"]):
        return None, media, None
    data = reader.get(z, x, y)
    encoding = "gzip" if h["tile_compression"] == Compression.GZIP else None
    return (bytes(data) if data else None), media, encoding


def _tile_range(bounds: tuple[float, float, float, float], z: int) -> tuple[range, range]:
    """Tile columns and rows at zoom z that cover lon/lat bounds."""
    import math

    n = 1 << z
    w, s, e, nth = bounds

    def col(lon: float) -> int:
        return min(n - 1, max(0, int((lon + 180.0) / 360.0 * n)))

    def row(lat: float) -> int:
        lat = max(-85.0511, min(85.0511, lat))
        r = math.radians(lat)
        return min(n - 1, max(0, int((1.0 - math.asinh(math.tan(r)) / math.pi) / 2.0 * n)))

    return range(col(w), col(e) + 1), range(row(nth), row(s) + 1)


def build_pmtiles(
    session: Session,
    out: str | os.PathLike[str],
    *,
    min_zoom: int = 8,
    max_zoom: int = OWN_MAX_ZOOM,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, int]:
    """Write the own basemap (``basemap_feature``) as a PMTiles archive of gzipped MVT tiles,
    cut by the same PostGIS function that serves ``/tiles/basemap``; empty tiles are left out.
    Returns counts of tiles written and bytes."""
    if not 0 <= min_zoom <= max_zoom <= 22:
        raise BasemapConfigError(f"zooms {min_zoom}–{max_zoom}: need 0 ≤ min ≤ max ≤ 22")
    ext = session.execute(
        text(
            "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM "
            "(SELECT ST_Extent(geom)::geometry AS e FROM basemap_feature) t"
        )
    ).first()
    if ext is None or ext[0] is None:
        raise BasemapConfigError(
            "basemap_feature is empty: load the sample or `gridgov import basemap` first"
        )
    bounds = (float(ext[0]), float(ext[1]), float(ext[2]), float(ext[3]))
    addresses: list[tuple[int, int, int, int]] = []
    for z in range(min_zoom, max_zoom + 1):
        cols, rows = _tile_range(bounds, z)
        addresses += [(zxy_to_tileid(z, x, y), z, x, y) for x in cols for y in rows]
    addresses.sort()
    written = size = 0
    tmp = Path(str(out) + ".part")
    with open(tmp, "wb") as f:
        writer = Writer(f)
        for done, (tile_id, z, x, y) in enumerate(addresses, 1):
            data = session.scalar(
                text("SELECT gridgov_tile_basemap(:z, :x, :y)"), {"z": z, "x": x, "y": y}
            )
            if data:
                body = gzip.compress(bytes(data), compresslevel=9, mtime=0)
                writer.write_tile(tile_id, body)
                written += 1
                size += len(body)
            if progress:
                progress(done, len(addresses))
        if not written:
            tmp.unlink()
            raise BasemapConfigError("no basemap tile holds a feature at these zooms")
        writer.finalize(
            {
                "tile_type": TileType.MVT,
                "tile_compression": Compression.GZIP,
                "min_zoom": min_zoom,
                "max_zoom": max_zoom,
                "min_lon_e7": int(bounds[0] * 1e7),
                "min_lat_e7": int(bounds[1] * 1e7),
                "max_lon_e7": int(bounds[2] * 1e7),
                "max_lat_e7": int(bounds[3] * 1e7),
                "center_zoom": (min_zoom + max_zoom) // 2,
                "center_lon_e7": int((bounds[0] + bounds[2]) / 2 * 1e7),
                "center_lat_e7": int((bounds[1] + bounds[3]) / 2 * 1e7),
            },
            {
                "attribution": "底图：本系统道路、建筑、水系数据",
                "vector_layers": [
                    {
                        "id": "basemap",
                        "fields": {"kind": "String", "class": "String", "name": "String"},
                    }
                ],
            },
        )
    os.replace(tmp, out)
    return {"tiles": written, "bytes": size, "addressed": len(addresses)}
