"""What the e-map asks for besides its tiles, for one caller: where it opens, the grid names to
write at a view, and the grid under a click — only within the caller's grids.

The map itself comes as vector tiles (``app.services.tiles``); nothing here sends the whole
city. Level styles are defined here once and travel to the page's scripts in its settings.
"""

from __future__ import annotations

import math
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from app.auth.policy import Principal, grid_scope, outline_scope
from app.services import grids as grid_svc

# How each level of grids is drawn, the one place for the e-map, the edit mode and the
# automatic division. ``dash`` is a dash pattern in pixels (empty: a solid line).
LEVEL_STYLES: dict[int, dict[str, Any]] = {
    1: {"color": "#b71c1c", "weight": 4, "fill_opacity": 0.0, "dash": []},
    2: {"color": "#e65100", "weight": 3, "fill_opacity": 0.03, "dash": []},
    3: {"color": "#1565c0", "weight": 2, "fill_opacity": 0.05, "dash": []},
    4: {"color": "#2e7d32", "weight": 1, "fill_opacity": 0.08, "dash": [4, 3]},
    5: {"color": "#6a1b9a", "weight": 1, "fill_opacity": 0.08, "dash": [2, 3]},
}
# Font size (px) of a level's name on the map.
LABEL_FONT = {1: 16, 2: 15, 3: 13, 4: 12, 5: 12}
MAX_LABELS = 400


def deepest_level(zoom: float) -> int:
    """The deepest grid level the tiles draw at a zoom (as gridgov_tile_grids filters)."""
    z = math.floor(zoom)
    return 2 if z < 11 else 3 if z < 13 else 4 if z < 15 else 5


def label_levels(zoom: float) -> list[int]:
    """The levels whose names are written at a zoom: the deepest drawn and the two above it."""
    deepest = deepest_level(zoom)
    return [level for level in (deepest - 2, deepest - 1, deepest) if level >= 1]


def home(session: Session, principal: Principal) -> list[float] | None:
    """The extent the map opens on: the caller's grids, or the biggest top grid for everyone's view."""
    scope = grid_scope(session, principal)
    if scope is None:
        extent = grid_svc.home_extent(session)
        return list(extent) if extent else None
    if not scope:
        return None
    row = session.execute(
        text(
            "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM ("
            " SELECT ST_Extent(geom) AS e FROM grid WHERE id = ANY(CAST(:ids AS integer[])) AND valid_to IS NULL) s"
        ),
        {"ids": sorted(scope)},
    ).first()
    return list(row) if row and row[0] is not None else None


def places(session: Session, principal: Principal) -> list[dict[str, Any]]:
    """Streets and communities (levels 1 and 2) of the caller's grids, for the place picker."""
    scope = grid_scope(session, principal)
    rows = session.execute(
        text(
            "SELECT id, name, level FROM grid WHERE valid_to IS NULL AND level <= 2"
            " AND (CAST(:all AS boolean) OR id = ANY(CAST(:ids AS integer[]))) ORDER BY code LIMIT 2000"
        ),
        {"all": scope is None, "ids": sorted(scope or ())},
    ).all()
    return [{"id": r.id, "name": r.name, "level": r.level} for r in rows]


def _text_width(name: str, size: int) -> float:
    """An estimate of a label's width in pixels: wide (CJK) characters a full em, others half."""
    wide = sum(1 for ch in name if ord(ch) > 0x2E7F)
    return wide * size + (len(name) - wide) * size * 0.6 + 8


def _world_px(lon: float, lat: float, zoom: float) -> tuple[float, float]:
    scale = 256.0 * 2.0**zoom
    lat = max(min(lat, 85.05112878), -85.05112878)
    s = math.sin(math.radians(lat))
    return (lon + 180.0) / 360.0 * scale, (
        0.5 - math.log((1 + s) / (1 - s)) / (4 * math.pi)
    ) * scale


def labels(
    session: Session,
    principal: Principal,
    bbox: tuple[float, float, float, float],
    zoom: float,
    max_level: int | None = None,
) -> dict[str, Any]:
    """The grid names to write in ``bbox`` at ``zoom``: one point per grid (inside it), placed
    greedily so that no two text boxes overlap at that zoom — bigger grids (higher levels) first,
    then bigger areas. Levels deeper than ``max_level`` (hidden by the user) are left out. Only
    the caller's grids."""
    scope = grid_scope(session, principal)
    levels = [lv for lv in label_levels(zoom) if max_level is None or lv <= max_level]
    rows = session.execute(
        text(
            "SELECT id, name, level, ST_X(p) AS lon, ST_Y(p) AS lat FROM ("
            " SELECT g.id, g.name, g.level, g.area_m2, ST_PointOnSurface(g.geom) AS p FROM grid g"
            " WHERE g.valid_to IS NULL AND g.level = ANY(:levels)"
            " AND g.geom && ST_MakeEnvelope(:x0, :y0, :x1, :y1, 4326)"
            " AND (CAST(:all AS boolean) OR g.id = ANY(CAST(:ids AS integer[])))) s"
            " WHERE ST_Intersects(p, ST_MakeEnvelope(:x0, :y0, :x1, :y1, 4326))"
            " ORDER BY level, area_m2 DESC NULLS LAST, id LIMIT 5000"
        ),
        {
            "levels": levels,
            "x0": bbox[0],
            "y0": bbox[1],
            "x1": bbox[2],
            "y1": bbox[3],
            "all": scope is None,
            "ids": sorted(scope or ()),
        },
    ).all()
    placed: list[dict[str, Any]] = []
    cells: dict[tuple[int, int], list[tuple[float, float, float, float]]] = {}
    cell = 128.0
    for r in rows:
        size = LABEL_FONT.get(r.level, 12)
        w, h = _text_width(r.name, size), size + 6
        x, y = _world_px(r.lon, r.lat, zoom)
        box = (x - w / 2, y - h / 2, x + w / 2, y + h / 2)
        keys = [
            (i, j)
            for i in range(int(box[0] // cell), int(box[2] // cell) + 1)
            for j in range(int(box[1] // cell), int(box[3] // cell) + 1)
        ]
        if any(
            box[0] < b[2] and b[0] < box[2] and box[1] < b[3] and b[1] < box[3]
            for k in keys
            for b in cells.get(k, ())
        ):
            continue
        for k in keys:
            cells.setdefault(k, []).append(box)
        placed.append(
            {
                "grid_id": r.id,
                "name": r.name,
                "level": r.level,
                "lon": r.lon,
                "lat": r.lat,
                "width": round(w),
                "height": h,
            }
        )
        if len(placed) >= MAX_LABELS:
            break
    return {"zoom": zoom, "levels": levels, "labels": placed}


def pick(
    session: Session,
    principal: Principal,
    lon: float,
    lat: float,
    zoom: float,
    max_level: int | None = None,
) -> dict[str, Any]:
    """The grid under a click: the deepest level drawn at ``zoom`` (and not deeper than
    ``max_level``, the deepest level the user shows) that contains the point, among the caller's grids (a GeoJSON FeatureCollection of one feature, or none). Where the
    point lies in none of them but in an ancestor shown as an outline, that outline comes with
    its name and code only."""
    scope = grid_scope(session, principal)
    deepest = deepest_level(zoom)
    if max_level is not None:
        deepest = min(deepest, max_level)
    outline: frozenset[int] = frozenset()
    if scope is not None:
        outline = outline_scope(session, principal)
    row = session.execute(
        text(
            "SELECT g.id, g.level, (NOT CAST(:all AS boolean) AND NOT g.id = ANY(CAST(:ids AS integer[]))) AS outline"
            " FROM grid g"
            " WHERE g.valid_to IS NULL AND g.level <= :deepest"
            " AND ST_Covers(g.geom, ST_SetSRID(ST_MakePoint(:lon, :lat), 4326))"
            " AND (CAST(:all AS boolean) OR g.id = ANY(CAST(:ids AS integer[])) OR g.id = ANY(CAST(:outline AS integer[])))"
            " ORDER BY outline, g.level DESC, g.code LIMIT 1"
        ),
        {
            "all": scope is None,
            "ids": sorted(scope or ()),
            "outline": sorted(outline),
            "deepest": deepest,
            "lon": lon,
            "lat": lat,
        },
    ).first()
    if row is None:
        return grid_svc.collection([])
    (feature,) = grid_svc.grid_features(session, [row.id])
    if row.outline:
        p = feature["properties"]
        feature = {
            "type": "Feature",
            "id": row.id,
            "geometry": feature["geometry"],
            "properties": {
                "id": row.id,
                "name": p["name"],
                "code": p["code"],
                "level": p["level"],
                "outline": True,
            },
        }
    return grid_svc.collection([feature])
