"""What the e-map draws for one caller: its grids, labels, household points, service points,
circles and cameras — only within the caller's grids, as plain JSON data.

The page never receives data inside generated JavaScript or HTML: it fetches this JSON and puts
every name into the DOM as text. A caller sees the grids it answers for (their subtrees) and,
for orientation, the outlines of their ancestors (name and level only: no notice board, no
counts); households only as bare points.
"""

from __future__ import annotations

from typing import Any

from shapely.geometry import mapping
from sqlalchemy import text
from sqlalchemy.orm import Session

from app.auth.policy import Principal, grid_scope
from app.services import grids as grid_svc
from gis.geodesy import geodesic_circle

LABEL_LEVELS = (2, 3)
LEVEL_NAMES = {1: "街道/乡镇", 2: "社区/村", 3: "网格", 4: "微网格", 5: "片区"}


def _ancestors(session: Session, ids: frozenset[int]) -> set[int]:
    """The ancestors of the given grids that are not among them (outline only)."""
    if not ids:
        return set()
    rows = session.scalars(
        text(
            """WITH RECURSIVE up AS (
                   SELECT parent_id AS id FROM grid WHERE id = ANY(:ids) AND parent_id IS NOT NULL
                   UNION SELECT g.parent_id FROM grid g JOIN up ON g.id = up.id
                   WHERE g.parent_id IS NOT NULL)
               SELECT id FROM up"""
        ),
        {"ids": list(ids)},
    )
    return set(rows) - set(ids)


def layers(session: Session, principal: Principal) -> dict[str, Any]:
    """Return the e-map's data for ``principal``, scoped to its grids."""
    scope = grid_scope(session, principal)
    every = grid_svc.list_grids(session)["features"]
    outline_ids = _ancestors(session, scope) if scope is not None else set()
    grids: list[dict[str, Any]] = []
    for f in every:
        gid = f["properties"]["id"]
        if scope is None or gid in scope:
            grids.append(f)
        elif gid in outline_ids:
            p = f["properties"]
            grids.append(
                {
                    "type": "Feature",
                    "id": gid,
                    "geometry": f["geometry"],
                    "properties": {
                        "id": gid,
                        "name": p["name"],
                        "code": p["code"],
                        "level": p["level"],
                        "outline": True,
                    },
                }
            )
    ids = [f["properties"]["id"] for f in grids if not f["properties"].get("outline")]
    labels = [
        {"grid_id": r.id, "name": r.name, "level": r.level, "lon": r.lon, "lat": r.lat}
        for r in session.execute(
            text(
                "SELECT id, name, level, ST_X(p) AS lon, ST_Y(p) AS lat FROM ("
                " SELECT id, name, level, ST_PointOnSurface(geom) AS p FROM grid"
                " WHERE valid_to IS NULL AND level = ANY(:levels)"
                " AND (CAST(:all AS boolean) OR id = ANY(:ids))) s ORDER BY level, name"
            ),
            {"levels": list(LABEL_LEVELS), "all": scope is None, "ids": ids},
        )
    ]
    member = principal.worker_id if principal.role == "party_member" else None
    households = [
        [round(lat, 6), round(lon, 6)]
        for lat, lon in session.execute(
            text(
                "SELECT ST_Y(geom), ST_X(geom) FROM household"
                " WHERE (CAST(:all AS boolean) OR grid_id = ANY(:ids))"
                " AND (CAST(:member AS integer) IS NULL OR linked_member_id = :member)"
                " ORDER BY id"
            ),
            {"all": scope is None, "ids": ids, "member": member},
        )
    ]
    visible = set(ids)

    def mine(f: dict[str, Any]) -> bool:
        return scope is None or f["properties"].get("grid_id") in visible

    points = [f for f in grid_svc.service_points(session)["features"] if mine(f)]
    circles = [
        {
            "type": "Feature",
            "properties": {"id": f["properties"]["id"], "radius_m": f["properties"]["radius_m"]},
            "geometry": mapping(
                geodesic_circle(*f["geometry"]["coordinates"], f["properties"]["radius_m"])
            ),
        }
        for f in points
    ]
    cameras = [f for f in grid_svc.cameras(session)["features"] if mine(f)]
    return {
        "grids": {"type": "FeatureCollection", "features": grids},
        "labels": labels,
        "households": households,
        "service_points": {"type": "FeatureCollection", "features": points},
        "service_circles": {"type": "FeatureCollection", "features": circles},
        "cameras": {"type": "FeatureCollection", "features": cameras},
        "home": _home(session, scope, ids),
        "places": [
            {"id": f["properties"]["id"], "name": f["properties"]["name"], "level": f["properties"]["level"]}
            for f in grids
            if f["properties"]["level"] <= 2 and not f["properties"].get("outline")
        ],
        "level_names": LEVEL_NAMES,
        "label_levels": list(LABEL_LEVELS),
    }


def _home(session: Session, scope: frozenset[int] | None, ids: list[int]) -> list[float] | None:
    """The extent the map opens on: the biggest top grid for everyone's view, else the caller's grids."""
    if scope is None:
        home = grid_svc.home_extent(session)
        return list(home) if home else None
    if not ids:
        return None
    row = session.execute(
        text(
            "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM ("
            " SELECT ST_Extent(geom) AS e FROM grid WHERE id = ANY(:ids)) s"
        ),
        {"ids": ids},
    ).first()
    return list(row) if row and row[0] is not None else None
