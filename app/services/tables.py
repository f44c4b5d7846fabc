"""Read tabular and spatial files (GeoJSON, Shapefile, GeoPackage, CSV) into GeoDataFrames in WGS84."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from app.errors import BadParameter, ImportRejected
from app.services import csv_safe
from gis.crs import parse_crs, to_wgs84
from gis.errors import GisError

LOGGER = logging.getLogger(__name__)

SPATIAL_SUFFIXES = {".geojson", ".json", ".shp", ".gpkg", ".zip"}
FORMATS = {"geojson": ".geojson", "shapefile": ".shp", "gpkg": ".gpkg", "csv": ".csv"}


def parse_mapping(pairs: Mapping[str, str] | list[str] | tuple[str, ...] | None) -> dict[str, str]:
    """Parse a field mapping given as {target: source} or ["target=source", …]."""
    if not pairs:
        return {}
    if isinstance(pairs, Mapping):
        return dict(pairs)
    out: dict[str, str] = {}
    for item in pairs:
        if "=" not in item:
            raise BadParameter("map", f"'{item}' is not of the form target=source")
        target, source = item.split("=", 1)
        out[target.strip()] = source.strip()
    return out


def read_records(
    path: str | Path,
    *,
    crs: str | None = None,
    mapping: Mapping[str, str] | None = None,
    lon_col: str = "lon",
    lat_col: str = "lat",
    layer: str | None = None,
    need_geometry: bool = True,
) -> gpd.GeoDataFrame | pd.DataFrame:
    """Read a file into a frame with canonical column names and geometry in WGS84 (EPSG:4326).

    CSV files carry points as lon/lat (or x/y) columns; spatial files carry their geometry. ``crs``
    names the coordinates' CRS (wgs84, cgcs2000, gcj02, bd09, EPSG:…); without it a spatial file's own
    CRS is used, and a CSV is taken as WGS84. ``mapping`` renames source columns {target: source}.
    Bad coordinates are reported per row; nothing is returned half-read.
    """
    path = Path(path)
    if not path.exists():
        raise BadParameter("path", f"{path} does not exist")
    suffix = path.suffix.lower()
    mapping = dict(mapping or {})
    inverse = {src: dst for dst, src in mapping.items()}
    if suffix == ".csv":
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
        frame = frame.rename(columns=inverse)
        frame.index = pd.RangeIndex(len(frame))
        if not need_geometry:
            return frame
        lon_col = mapping.get("lon", lon_col) if "lon" not in frame.columns else "lon"
        lat_col = mapping.get("lat", lat_col) if "lat" not in frame.columns else "lat"
        for col in (lon_col, lat_col):
            if col not in frame.columns:
                raise BadParameter(
                    "columns", f"{path.name}: no '{col}' column (found {', '.join(frame.columns)})"
                )
        return _points_from_columns(path.name, frame, lon_col, lat_col, crs)
    if suffix not in SPATIAL_SUFFIXES:
        raise BadParameter(
            "path",
            f"{path.name}: unsupported format '{suffix}' (use .geojson, .shp, .gpkg or .csv)",
        )
    try:
        frame = gpd.read_file(path, layer=layer, engine="pyogrio")
    except Exception as exc:  # pyogrio raises several types for unreadable files
        raise BadParameter("path", f"{path.name}: cannot be read ({exc})") from exc
    frame = frame.rename(columns=inverse)
    frame.index = pd.RangeIndex(len(frame))
    if crs is None and frame.crs is not None and frame.crs.to_epsg() not in (4326, 4490):
        frame = frame.to_crs(4326)
    elif crs is not None and parse_crs(crs).epsg not in (4326, 4490):
        frame = _reproject(path.name, frame, crs)
    frame = frame.set_crs(4326, allow_override=True)
    return frame


def _points_from_columns(
    source: str, frame: pd.DataFrame, lon_col: str, lat_col: str, crs: str | None
):  # type: ignore[no-untyped-def]
    x = _numbers(frame[lon_col])
    y = _numbers(frame[lat_col])
    problems = [
        {
            "where": f"row {i + 2}",
            "field": f"{lon_col}/{lat_col}",
            "reason": f"not a number: '{frame[lon_col].iat[i]}', '{frame[lat_col].iat[i]}'",
        }
        for i in np.flatnonzero(~(np.isfinite(x) & np.isfinite(y)))[:1000]
    ]
    if problems:
        raise ImportRejected(source, problems)
    lon, lat = _to_wgs84_rows(source, x, y, crs)
    return gpd.GeoDataFrame(frame, geometry=shapely.points(lon, lat), crs=4326)


def _numbers(col: pd.Series) -> np.ndarray:
    """A text column as floats, NaN where a value is no number. Python's float() reads the
    column at once (it allows the spaces around a number); only a column with a bad value
    takes pandas' slower path, which marks each bad one."""
    try:
        return col.to_numpy(dtype=object).astype(np.float64)
    except (TypeError, ValueError):
        return pd.to_numeric(col.str.strip(), errors="coerce").to_numpy()


def _to_wgs84_rows(source: str, x: np.ndarray, y: np.ndarray, crs: str | None):  # type: ignore[no-untyped-def]
    """Transform whole columns; on a range error, report every bad row (CSV line numbers)."""
    spec = parse_crs(crs)
    try:
        return to_wgs84(x, y, spec)
    except GisError:
        pass
    problems = []
    for i in range(x.size):
        try:
            to_wgs84(x[i : i + 1], y[i : i + 1], spec)
        except GisError as exc:
            problems.append(
                {
                    "where": f"row {i + 2}",
                    "field": "lon/lat",
                    "reason": exc.message.replace("coordinates: ", ""),
                }
            )
            if len(problems) >= 1000:
                break
    raise ImportRejected(source, problems)


def _reproject(source: str, frame: gpd.GeoDataFrame, crs: str) -> gpd.GeoDataFrame:
    """Transform every coordinate of every geometry from ``crs`` to WGS84 (offset systems included)."""
    spec = parse_crs(crs)

    def fwd(xy: np.ndarray) -> np.ndarray:
        lon, lat = to_wgs84(xy[:, 0], xy[:, 1], spec, what=source)
        return np.column_stack([lon, lat])

    try:
        frame = frame.copy()
        frame.geometry = shapely.transform(frame.geometry.values, fwd)
    except GisError as exc:
        raise ImportRejected(source, [{"where": "geometry", "reason": exc.message}]) from exc
    return frame


def write_frame(frame: gpd.GeoDataFrame, path: str | Path, fmt: str | None = None) -> Path:
    """Write a frame as GeoJSON, Shapefile, GeoPackage or CSV (points as lon/lat columns)."""
    path = Path(path)
    fmt = fmt or {v: k for k, v in FORMATS.items()}.get(path.suffix.lower())
    if fmt not in FORMATS:
        raise BadParameter("format", f"unknown format '{fmt}' (use {', '.join(FORMATS)})")
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "csv":
        out = pd.DataFrame(frame.drop(columns=frame.geometry.name))
        geoms = frame.geometry
        if len(frame) and (geoms.geom_type == "Point").all():
            out.insert(0, "lat", geoms.y.round(7))
            out.insert(0, "lon", geoms.x.round(7))
        else:
            out["wkt"] = geoms.to_wkt()
        csv_safe.frame_to_csv(out, path, index=False, encoding="utf-8")
        return path
    driver = {"geojson": "GeoJSON", "shapefile": "ESRI Shapefile", "gpkg": "GPKG"}[fmt]
    frame.to_file(path, driver=driver, engine="pyogrio")
    return path
