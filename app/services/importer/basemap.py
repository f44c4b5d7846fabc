"""Validate and load the project's own basemap features (roads, buildings, water …)."""

from __future__ import annotations

from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from sqlalchemy.orm import Session

from app.errors import BadParameter, ImportRejected
from app.services.importer.common import (
    LINE_KINDS,
    ROAD_CLASSES,
    Progress,
    _require,
    _str,
    copy_frame,
    no_progress,
    row_where,
)


def import_basemap(
    session: Session,
    frame: gpd.GeoDataFrame,
    *,
    source: str,
    kind: str | None = None,
    progress: Progress = no_progress,
) -> int:
    """Load basemap features (kind, class, name, min_zoom — all optional but the kind, which
    ``kind`` may give for the whole file). Roads and rails are lines, the rest polygons; a
    missing min_zoom comes from the kind and class (app.services.basemap.min_zoom)."""
    from app.models.maps import BASEMAP_KINDS
    from app.services.basemap import min_zoom

    if kind is not None and kind not in BASEMAP_KINDS:
        raise BadParameter(
            "kind", f"basemap kind '{kind}' is not one of {', '.join(BASEMAP_KINDS)}"
        )
    if kind is None:
        _require(frame, source, ("kind",))
    n = len(frame)
    kinds = [kind] * n if kind else [_str(v).lower() for v in frame["kind"]]
    classes = [_str(v).lower() for v in frame["class"]] if "class" in frame.columns else [""] * n
    names = [_str(v) for v in frame["name"]] if "name" in frame.columns else [""] * n
    zooms = [_str(v) for v in frame["min_zoom"]] if "min_zoom" in frame.columns else [""] * n
    geoms = np.asarray(frame.geometry.values, dtype=object)
    valid = shapely.is_valid(geoms)
    problems: list[dict[str, Any]] = []
    rows: list[tuple[str, str | None, str | None, int, Any]] = []
    for i in range(n):
        k, cls, geom = kinds[i], classes[i], geoms[i]
        if k == "road":
            cls = ROAD_CLASSES.get(cls, cls)
        reason = None
        zoom = 0
        if k not in BASEMAP_KINDS:
            reason = ("kind", f"kind '{k}' is not one of {', '.join(BASEMAP_KINDS)}")
        elif len(cls) > 20:
            reason = ("class", f"class '{cls[:30]}…' is longer than 20 characters")
        elif len(names[i]) > 120:
            reason = ("name", "name is longer than 120 characters")
        elif geom is None or geom.is_empty:
            reason = ("geometry", "no geometry")
        elif k in LINE_KINDS and geom.geom_type not in ("LineString", "MultiLineString"):
            reason = (
                "geometry",
                f"a {k} must be a LineString or MultiLineString, not {geom.geom_type}",
            )
        elif k not in LINE_KINDS and geom.geom_type not in ("Polygon", "MultiPolygon"):
            reason = ("geometry", f"a {k} must be a Polygon or MultiPolygon, not {geom.geom_type}")
        elif not valid[i]:
            reason = ("geometry", f"invalid geometry: {shapely.is_valid_reason(geom)}")
        else:
            try:
                zoom = int(float(zooms[i])) if zooms[i] else min_zoom(k, cls)
            except ValueError:
                zoom = -1
            if not 0 <= zoom <= 22:
                reason = ("min_zoom", f"min_zoom '{zooms[i]}' is not a whole number 0–22")
        if reason:
            problems.append({"where": row_where(frame, i), "field": reason[0], "reason": reason[1]})
            continue
        rows.append((k, cls or None, names[i] or None, zoom, geom))
    if problems:
        raise ImportRejected(source, problems[:1000])
    if not rows:
        return 0
    out = pd.DataFrame(
        {
            "kind": [r[0] for r in rows],
            "class": [r[1] for r in rows],
            "name": [r[2] for r in rows],
            "min_zoom": [r[3] for r in rows],
            "geom": shapely.to_wkb(
                shapely.set_srid(np.asarray([r[4] for r in rows], dtype=object), 4326),
                hex=True,
                include_srid=True,
            ),
        }
    )
    copy_frame(session, "basemap_feature", out, progress=progress)
    return len(rows)
