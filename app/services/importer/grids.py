"""Validate and load grids, a level at a time."""

from __future__ import annotations

from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from app.errors import ImportRejected
from app.models import Grid
from app.services.importer.common import (
    Progress,
    _require,
    _str,
    copy_frame,
    no_progress,
    row_where,
)
from app.services.importer.topology import check_topology, sibling_overlaps
from gis.crs import GEOD


def import_grids(
    session: Session, frame: gpd.GeoDataFrame, *, source: str, progress: Progress = no_progress
) -> int:
    """Load grids; each finds its parent by code (in the file or already loaded).

    Checks: code, name and level present; level 1–5 and deeper than the parent; (Multi)Polygon,
    valid; a child lies inside its parent and siblings don't overlap (checked in PostGIS after the
    insert, inside the same transaction).

    Linear in the number of grids: the checks of a row read plain lists (validity for all rows
    in one vectorised call, geodesic areas from all coordinates at once), the grids go in with
    one COPY per level (a parent's level before its children's, parent ids looked up per
    level); overlaps among the new siblings are found in memory (an STRtree and one vectorised
    DE-9IM test), and PostGIS checks each grid against its parent and against the siblings
    that were there before, by set-based queries that use the spatial and parent indexes.
    """
    _require(frame, source, ("code", "name", "level"))
    problems: list[dict[str, Any]] = []
    existing = dict(
        session.execute(select(Grid.code, Grid.level).where(Grid.valid_to.is_(None))).all()
    )
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    n = len(frame)
    codes = [_str(v) for v in frame["code"]]
    names = [_str(v) for v in frame["name"]]
    raw_levels = list(frame["level"])
    parents = (
        [_str(v) for v in frame["parent_code"]] if "parent_code" in frame.columns else [""] * n
    )
    kinds = (
        [_str(v) or "comprehensive" for v in frame["kind"]]
        if "kind" in frame.columns
        else ["comprehensive"] * n
    )
    geoms = np.asarray(frame.geometry.values, dtype=object)
    polygonal = np.array(
        [g is not None and g.geom_type in ("Polygon", "MultiPolygon") for g in geoms], dtype=bool
    )
    valid = np.zeros(n, dtype=bool)
    if polygonal.any():
        valid[polygonal] = shapely.is_valid(geoms[polygonal])
    for i in range(n):
        where = row_where(frame, i)
        code = codes[i]
        geom = geoms[i]
        try:
            level = int(float(_str(raw_levels[i])))
        except ValueError:
            problems.append(
                {"where": where, "field": "level", "reason": f"not a number: '{raw_levels[i]}'"}
            )
            continue
        parent = parents[i]
        kind = kinds[i]
        reason = None
        if not code or not names[i]:
            reason = ("code", "code and name are required")
        elif not code.replace("-", "").replace("_", "").isalnum():
            reason = ("code", f"code '{code}' may hold only letters, digits, - and _")
        elif code in seen or code in existing:
            reason = ("code", f"duplicate code '{code}'")
        elif not 1 <= level <= 5:
            reason = ("level", f"level {level} is not 1–5")
        elif kind not in ("comprehensive", "dedicated"):
            reason = ("kind", f"kind '{kind}' is not comprehensive or dedicated")
        elif geom is None or geom.is_empty:
            reason = ("geometry", "no geometry")
        elif not polygonal[i]:
            reason = ("geometry", f"{geom.geom_type} is not a Polygon or MultiPolygon")
        elif not valid[i]:
            reason = ("geometry", f"invalid geometry: {shapely.is_valid_reason(geom)}")
        elif level > 1 and not parent:
            reason = ("parent_code", f"a level-{level} grid needs a parent_code")
        seen.add(code)
        if reason:
            problems.append({"where": where, "field": reason[0], "reason": reason[1], "code": code})
            continue
        if geom.geom_type == "Polygon":
            geom = shapely.MultiPolygon([geom])
        rows.append(
            {
                "where": where,
                "code": code,
                "name": names[i],
                "level": level,
                "kind": kind,
                "parent": parent or None,
                "geom": geom,
            }
        )
    levels = {r["code"]: r["level"] for r in rows} | existing
    for r in rows:
        if r["parent"] and r["parent"] not in levels:
            problems.append(
                {
                    "where": r["where"],
                    "field": "parent_code",
                    "reason": f"parent '{r['parent']}' not found",
                    "code": r["code"],
                }
            )
        elif r["parent"] and levels[r["parent"]] >= r["level"]:
            problems.append(
                {
                    "where": r["where"],
                    "field": "level",
                    "reason": f"level {r['level']} is not below its parent's level {levels[r['parent']]}",
                    "code": r["code"],
                }
            )
    if problems:
        raise ImportRejected(source, problems)
    ids = dict(session.execute(select(Grid.code, Grid.id).where(Grid.valid_to.is_(None))).all())
    new_ids: list[int] = []
    where_of = {r["code"]: r["where"] for r in rows}
    done = 0
    for level in sorted({r["level"] for r in rows}):
        group = [r for r in rows if r["level"] == level]
        shapes = np.asarray([r["geom"] for r in group], dtype=object)
        out = pd.DataFrame(
            {
                "code": [r["code"] for r in group],
                "name": [r["name"] for r in group],
                "level": level,
                "kind": [r["kind"] for r in group],
                "parent_id": pd.array(
                    [ids[r["parent"]] if r["parent"] else None for r in group], dtype="Int64"
                ),
                "geom": shapely.to_wkb(shapely.set_srid(shapes, 4326), hex=True, include_srid=True),
                "area_m2": [repr(a) for a in geodesic_areas_m2(shapes)],
            }
        )
        copy_frame(session, "grid", out)
        for code, gid in session.execute(
            text("SELECT code, id FROM grid WHERE valid_to IS NULL AND code = ANY(:codes)"),
            {"codes": list(out["code"])},
        ):
            ids[code] = gid
            new_ids.append(gid)
        done += len(group)
        progress("grids", done, len(rows))
    # Overlaps among the new grids are found in memory; PostGIS checks each against its parent
    # and against the siblings loaded before.
    pairs = sibling_overlaps([r["parent"] for r in rows], [r["geom"] for r in rows])
    code_of = [r["code"] for r in rows]
    problems = check_topology(
        session, new_ids, new_pairs=[(ids[code_of[a]], ids[code_of[b]]) for a, b in pairs]
    )
    if problems:
        for p in problems:
            p["where"] = where_of.get(p["code"], p.get("where", ""))
        raise ImportRejected(source, problems)
    return len(rows)


def geodesic_areas_m2(shapes: np.ndarray) -> list[float]:
    """Areas (m², on the WGS84 ellipsoid) of lon/lat (Multi)Polygons, as
    ``gis.crs.geodesic_area_m2`` gives them one by one (the same computation ring by ring: every
    shell positive, every hole negative), reading the coordinates of all at once."""
    parts, owner = shapely.get_parts(shapes, return_index=True)
    rings, ring_part = shapely.get_rings(parts, return_index=True)
    coords, ring_of = shapely.get_coordinates(rings, return_index=True)
    starts = np.searchsorted(ring_of, np.arange(len(rings) + 1))
    shell = np.ones(len(rings), dtype=bool)
    shell[1:] = ring_part[1:] != ring_part[:-1]
    out = np.zeros(len(shapes))
    for k in range(len(rings)):
        ring = coords[starts[k] : starts[k + 1]]
        area = abs(GEOD.polygon_area_perimeter(ring[:, 0], ring[:, 1])[0])
        out[owner[ring_part[k]]] += area if shell[k] else -area
    return out.tolist()
