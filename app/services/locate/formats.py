"""Points in and results out of a batch locate: GeoJSON or CSV points, a CSV of results."""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from typing import IO, Any

import numpy as np
import pandas as pd

from app.errors import BadParameter
from app.privacy import mask_name, mask_phone
from app.services import csv_safe
from app.services.locate.batch import BatchResult


def parse_points(
    data: bytes | str, fmt: str
) -> tuple[list[Any] | None, np.ndarray, np.ndarray, str | None]:
    """Read points from GeoJSON (``fmt="geojson"``) or CSV (``fmt="csv"``).

    Returns (ids or None, x, y, the CRS the data names or None). GeoJSON: a FeatureCollection of
    Points (an ``id`` or ``properties.id`` is kept), a bare Point, or a list of [x, y] pairs; an
    old-style ``crs`` member is honoured. CSV: columns lon/lat or x/y (any case), optional id.
    """
    if isinstance(data, bytes):
        data = data.decode("utf-8-sig")
    if fmt == "csv":
        return _csv_points(data)
    if fmt != "geojson":
        raise BadParameter("format", f"'{fmt}' is not geojson or csv")
    try:
        doc = json.loads(data)
    except ValueError as exc:
        raise BadParameter("body", f"not JSON: {exc}") from exc
    named_crs = None
    if isinstance(doc, dict) and isinstance(doc.get("crs"), dict):
        named_crs = (doc["crs"].get("properties") or {}).get("name")
    if isinstance(doc, list):
        pairs = doc
        ids = None
    elif isinstance(doc, dict) and doc.get("type") == "FeatureCollection":
        feats = doc.get("features") or []
        if not isinstance(feats, list):
            raise BadParameter("body", "features: expected a list of Point features")
        pairs, ids = [], []
        for i, f in enumerate(feats):
            if f is not None and not isinstance(f, dict):
                raise BadParameter("body", f"feature {i}: expected a GeoJSON Feature object")
            geom = (f or {}).get("geometry") or {}
            if not isinstance(geom, dict):
                raise BadParameter("body", f"feature {i}: the geometry is not an object")
            if geom.get("type") != "Point":
                raise BadParameter(
                    "body", f"feature {i}: {geom.get('type') or 'no geometry'} is not a Point"
                )
            pairs.append(geom.get("coordinates"))
            props = f.get("properties") if isinstance(f.get("properties"), dict) else {}
            fid = f.get("id", props.get("id"))
            ids.append(fid if fid is None or isinstance(fid, str | int | float) else str(fid))
        if all(v is None for v in ids):
            ids = None
    elif isinstance(doc, dict) and doc.get("type") == "Point":
        pairs, ids = [doc.get("coordinates")], None
    else:
        raise BadParameter("body", "expected a GeoJSON FeatureCollection of Points")
    try:
        xy = np.asarray(pairs, dtype=float).reshape(-1, 2) if pairs else np.empty((0, 2))
    except (TypeError, ValueError) as exc:
        raise BadParameter("body", f"coordinates are not [x, y] number pairs ({exc})") from exc
    return ids, xy[:, 0], xy[:, 1], named_crs


def _csv_points(data: str) -> tuple[list[Any] | None, np.ndarray, np.ndarray, str | None]:
    try:
        frame = pd.read_csv(io.StringIO(data), dtype=str, keep_default_na=False)
    except (ValueError, pd.errors.ParserError) as exc:
        raise BadParameter("body", f"not a CSV: {exc}") from exc
    cols = {c.strip().lower(): c for c in frame.columns}
    for xname, yname in (("lon", "lat"), ("x", "y"), ("lng", "lat"), ("longitude", "latitude")):
        if xname in cols and yname in cols:
            break
    else:
        raise BadParameter(
            "body", f"the CSV needs lon/lat or x/y columns (found {', '.join(frame.columns)})"
        )
    x = pd.to_numeric(frame[cols[xname]].str.strip(), errors="coerce").to_numpy(dtype=float)
    y = pd.to_numeric(frame[cols[yname]].str.strip(), errors="coerce").to_numpy(dtype=float)
    ids = frame[cols["id"]].tolist() if "id" in cols else None
    return ids, x, y, None


def write_csv(
    result: BatchResult,
    out: IO[str],
    ids: Sequence[Any] | None = None,
    scope: frozenset[int] | None = None,
) -> None:
    """Write a batch result as CSV, one row per input point, in input order (``scope``: a
    worker owning a point outside these grids has his name and phone masked)."""
    frame = result.frame()
    if scope is not None:
        inside = frame["grid_id"].map(lambda g: g != "" and int(g) in scope)
        hide = (frame["owner_kind"] == "worker") & ~inside
        frame.loc[hide, "owner_name"] = frame.loc[hide, "owner_name"].map(mask_name)
        frame.loc[hide, "owner_phone"] = frame.loc[hide, "owner_phone"].map(mask_phone)
    if ids is not None:
        frame.insert(0, "id", list(ids))
    # Text cells (ids, reasons, names) cannot start a formula; coordinates stay numbers.
    csv_safe.frame_to_csv(frame, out, index=False, float_format="%.7f", na_rep="")
