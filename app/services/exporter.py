"""Export current records to GeoJSON, Shapefile, GeoPackage or CSV, personal data masked by default."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import shapely
from sqlalchemy import text
from sqlalchemy.orm import Session

from app.errors import BadParameter
from app.privacy import mask_name, mask_phone
from app.services.tables import write_frame
from gis.crs import from_wgs84, parse_crs

# {scope} is TRUE, or a condition keeping the records of the grids :scope (the caller's).
QUERIES = {
    "grids": """SELECT g.code, g.name, g.level, g.kind, p.code AS parent_code, g.area_m2, g.household_count,
                       ST_AsBinary(g.geom) AS wkb
                FROM grid g LEFT JOIN grid p ON p.id = g.parent_id
                WHERE g.valid_to IS NULL AND {scope} ORDER BY g.level, g.code""",
    "households": """SELECT h.id, h.building, h.unit, h.room, h.address, h.people, g.code AS grid_code,
                            w.code AS linked_member_code, array_to_string(h.tags, ';') AS tags, h.head_name, h.head_phone,
                            ST_AsBinary(h.geom) AS wkb
                     FROM household h JOIN grid g ON g.id = h.grid_id LEFT JOIN worker w ON w.id = h.linked_member_id
                     WHERE {scope} ORDER BY h.id""",
    "service_points": """SELECT s.name, s.kind, s.radius_m, s.status, g.code AS grid_code, ST_AsBinary(s.geom) AS wkb
                         FROM service_point s LEFT JOIN grid g ON g.id = s.grid_id WHERE {scope} ORDER BY s.id""",
    "cameras": """SELECT c.code, c.name, c.kind, c.analytics, g.code AS grid_code, ST_AsBinary(c.geom) AS wkb
                  FROM camera c LEFT JOIN grid g ON g.id = c.grid_id WHERE {scope} ORDER BY c.code""",
    "workers": """SELECT w.code, w.name, w.phone, w.on_duty, NULL::bytea AS wkb FROM worker w
                  WHERE {scope} ORDER BY w.id""",
}
SCOPES = {
    "grids": "g.id = ANY(CAST(:scope AS integer[]))",
    "households": "g.id = ANY(CAST(:scope AS integer[]))",
    "service_points": "g.id = ANY(CAST(:scope AS integer[]))",
    "cameras": "g.id = ANY(CAST(:scope AS integer[]))",
    "workers": "EXISTS (SELECT 1 FROM grid_assignment a WHERE a.worker_id = w.id AND a.grid_id = ANY(CAST(:scope AS integer[])))",
}
PERSONAL = {
    "households": {"head_name": mask_name, "head_phone": mask_phone},
    "workers": {"name": mask_name, "phone": mask_phone},
}


def export(
    session: Session,
    kind: str,
    path: str | Path,
    *,
    fmt: str | None = None,
    crs: str | None = None,
    include_personal: bool = False,
    scope: frozenset[int] | None = None,
    with_tags: bool | None = None,
) -> int:
    """Write the current records of ``kind`` to ``path``; return how many were written.

    ``scope``: only the records of these grids (None: all). Households' sensitive tags go out
    with ``include_personal`` only, and then only when ``with_tags`` (default: true) allows it.
    """
    if kind not in QUERIES:
        raise BadParameter("kind", f"cannot export '{kind}' (use {', '.join(QUERIES)})")
    where = "TRUE" if scope is None else SCOPES[kind]
    params = {} if scope is None else {"scope": sorted(scope)}
    result = session.execute(text(QUERIES[kind].format(scope=where)), params)
    cols = [c for c in result.keys() if c != "wkb"]  # the columns even when nothing is in scope
    rows = result.mappings().all()
    data = {c: [r[c] for r in rows] for c in cols}
    if not include_personal:
        for col, mask in PERSONAL.get(kind, {}).items():
            data[col] = [mask(v) for v in data[col]]
        if kind == "households":
            data.pop("tags", None)  # sensitive tags never leave without --include-personal
    elif with_tags is False:
        data.pop("tags", None)  # nor to one who is not responsible for the households
    geoms = [shapely.from_wkb(bytes(r["wkb"])) if r["wkb"] is not None else None for r in rows]
    frame = gpd.GeoDataFrame(data, geometry=geoms, crs=4326)
    spec = parse_crs(crs)
    if spec.epsg not in (4326, 4490):

        def fwd(xy: np.ndarray) -> np.ndarray:
            return np.column_stack(from_wgs84(xy[:, 0], xy[:, 1], spec))

        frame.geometry = shapely.transform(frame.geometry.values, fwd)
        frame = (
            frame.set_crs(spec.epsg, allow_override=True)
            if spec.epsg
            else frame.set_crs(None, allow_override=True)
        )
    write_frame(frame, path, fmt)
    return len(frame)
