"""Read grids and what they carry: the GeoJSON of the map and the notice board of each grid."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from app.errors import NotFound
from app.models import Grid, GridAssignment, Worker
from app.models.grid import LEVEL_NAMES
from app.models.people import ROLE_NAMES, SENSITIVE_TAGS
from app.models.places import SERVICE_POINT_KINDS
from app.privacy import mask_name, mask_phone
from app.services import grid_tree

ROLE_ORDER = ["grid_chief", "micro_chief", "worker_full", "worker_part", "party_member"]


def _feature(geometry: str | dict, props: dict[str, Any], fid: Any = None) -> dict[str, Any]:
    geom = json.loads(geometry) if isinstance(geometry, str) else geometry
    feat: dict[str, Any] = {"type": "Feature", "geometry": geom, "properties": props}
    if fid is not None:
        feat["id"] = fid
    return feat


def collection(features: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    """Wrap features in a GeoJSON FeatureCollection."""
    return {"type": "FeatureCollection", "features": features, **extra}


GRID_COLUMNS = (
    """
    g.id, g.code, g.name, g.level, g.kind, g.parent_id, g.area_m2, g.household_count, g.version,
    g.valid_from, g.valid_to,
    """
    + grid_tree.is_leaf("g")
    + " AS is_leaf\n"
)


def _grid_props(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "code": row.code,
        "name": row.name,
        "level": row.level,
        "level_name": LEVEL_NAMES.get(row.level, str(row.level)),
        "kind": row.kind,
        "parent_id": row.parent_id,
        "area_m2": round(row.area_m2, 1),
        "household_count": row.household_count,
        "version": row.version,
        "is_leaf": row.is_leaf,
        "valid_from": row.valid_from.isoformat() if row.valid_from else None,
        "valid_to": row.valid_to.isoformat() if row.valid_to else None,
        "outline": False,
    }


def list_grids(
    session: Session,
    *,
    level: int | None = None,
    parent_id: int | None = None,
    bbox: tuple[float, float, float, float] | None = None,
    precision: int = 7,
    scope: frozenset[int] | None = None,
    outline: frozenset[int] = frozenset(),
) -> dict[str, Any]:
    """Return current grids as a FeatureCollection, filtered by level, parent and bbox.

    ``scope`` (None: every grid) keeps the caller's grids; ``outline`` adds those grids as bare
    outlines (``properties.outline`` true: shape, code, name and level only).
    """
    where = ["g.valid_to IS NULL"]
    params: dict[str, Any] = {"prec": precision}
    if scope is not None:
        where.append(
            "(g.id = ANY(CAST(:scope AS integer[])) OR g.id = ANY(CAST(:outline AS integer[])))"
        )
        params.update(scope=sorted(scope), outline=sorted(outline))
    if level is not None:
        where.append("g.level = :level")
        params["level"] = level
    if parent_id is not None:
        where.append("g.parent_id = :parent")
        params["parent"] = parent_id
    if bbox is not None:
        where.append("g.geom && ST_MakeEnvelope(:x0, :y0, :x1, :y1, 4326)")
        params.update(x0=bbox[0], y0=bbox[1], x1=bbox[2], y1=bbox[3])
    rows = session.execute(
        text(
            f"SELECT {GRID_COLUMNS}, ST_AsGeoJSON(g.geom, :prec) AS gj FROM grid g "
            f"WHERE {' AND '.join(where)} ORDER BY g.level, g.code"
        ),
        params,
    ).all()
    return collection(
        [
            _feature(r.gj, _outline_props(r) if r.id in outline else _grid_props(r), r.id)
            for r in rows
        ]
    )


def _outline_props(row: Any) -> dict[str, Any]:
    """What an outline-only grid shows: where it is and what it is called, nothing it holds."""
    return {
        "id": row.id,
        "code": row.code,
        "name": row.name,
        "level": row.level,
        "level_name": LEVEL_NAMES.get(row.level, str(row.level)),
        "kind": row.kind,
        "parent_id": row.parent_id,
        "outline": True,
    }


def grid_features(session: Session, ids: list[int], *, precision: int = 7) -> list[dict[str, Any]]:
    """Return the grids with these ids (current or history) as Features, in the order given."""
    if not ids:
        return []
    rows = session.execute(
        text(
            f"SELECT {GRID_COLUMNS}, ST_AsGeoJSON(g.geom, :prec) AS gj FROM grid g "
            "WHERE g.id = ANY(CAST(:ids AS integer[]))"
        ),
        {"prec": precision, "ids": list(ids)},
    ).all()
    by_id = {r.id: _feature(r.gj, _grid_props(r), r.id) for r in rows}
    return [by_id[i] for i in ids if i in by_id]


def grid_labels(session: Session, *, levels: tuple[int, ...]) -> list[dict[str, Any]]:
    """Return a label point inside each current grid of the given levels."""
    rows = session.execute(
        text(
            "SELECT name, level, ST_X(p) AS lon, ST_Y(p) AS lat FROM ("
            " SELECT name, level, ST_PointOnSurface(geom) AS p FROM grid"
            " WHERE valid_to IS NULL AND level = ANY(:levels)) s ORDER BY level, name"
        ),
        {"levels": list(levels)},
    ).all()
    return [{"name": r.name, "level": r.level, "lon": r.lon, "lat": r.lat} for r in rows]


def household_points(session: Session, scope: frozenset[int] | None = None) -> list[list[float]]:
    """Return [lat, lon] of every household (``scope``: in these grids), for the clustered map
    layer (no personal data)."""
    rows = session.execute(
        text(
            "SELECT ST_Y(geom), ST_X(geom) FROM household"
            " WHERE CAST(:scope AS int[]) IS NULL OR grid_id = ANY(CAST(:scope AS int[]))"
            " ORDER BY id"
        ),
        {"scope": None if scope is None else sorted(scope)},
    ).all()
    return [[round(lat, 6), round(lon, 6)] for lat, lon in rows]


def home_extent(session: Session) -> tuple[float, float, float, float] | None:
    """Return the bbox the e-map opens on: the top-level grid with the most households."""
    row = session.execute(
        text(
            "SELECT ST_XMin(geom), ST_YMin(geom), ST_XMax(geom), ST_YMax(geom) FROM grid"
            " WHERE valid_to IS NULL AND parent_id IS NULL"
            " ORDER BY household_count DESC, code LIMIT 1"
        )
    ).first()
    return tuple(row) if row else None  # type: ignore[return-value]


def grid_bounds(session: Session, grid_id: int) -> tuple[float, float, float, float]:
    """Return a grid's bbox (minlon, minlat, maxlon, maxlat)."""
    row = session.execute(
        text(
            "SELECT ST_XMin(geom), ST_YMin(geom), ST_XMax(geom), ST_YMax(geom) FROM grid WHERE id = :id"
        ),
        {"id": grid_id},
    ).first()
    if row is None:
        raise NotFound(f"grid {grid_id} does not exist", grid_id=grid_id)
    return tuple(row)  # type: ignore[return-value]


def get_grid_row(session: Session, grid_id: int) -> Grid:
    """Return the grid with this id or raise NotFound."""
    grid = session.get(Grid, grid_id)
    if grid is None:
        raise NotFound(f"grid {grid_id} does not exist", grid_id=grid_id)
    return grid


def notice_board(session: Session, grid_id: int) -> dict[str, Any]:
    """Return the grid notice board (网格公示牌): who is responsible, with role and phone."""
    rows = session.execute(
        select(GridAssignment.role, Worker.id, Worker.name, Worker.phone, Worker.on_duty)
        .join(Worker, Worker.id == GridAssignment.worker_id)
        .where(GridAssignment.grid_id == grid_id)
        .order_by(GridAssignment.role, Worker.id)
    ).all()
    people = [
        {
            "worker_id": wid,
            "name": name,
            "role": role,
            "role_name": ROLE_NAMES[role],
            "phone": phone,
            "on_duty": on_duty,
        }
        for role, wid, name, phone, on_duty in rows
    ]
    people.sort(key=lambda p: ROLE_ORDER.index(p["role"]))
    return {"responsible": people}


def grid_feature(session: Session, grid_id: int, *, outline: bool = False) -> dict[str, Any]:
    """Return one grid as a GeoJSON Feature with its notice board and its chain of ancestors.

    ``outline``: only its shape, code, name, level and ancestors (no notice board, no children).
    """
    row = session.execute(
        text(f"SELECT {GRID_COLUMNS}, ST_AsGeoJSON(g.geom, 7) AS gj FROM grid g WHERE g.id = :id"),
        {"id": grid_id},
    ).first()
    if row is None:
        raise NotFound(f"grid {grid_id} does not exist", grid_id=grid_id)
    if outline:
        props = _outline_props(row)
        props["ancestors"] = ancestors(session, grid_id)
        return _feature(row.gj, props, row.id)
    props = _grid_props(row)
    props["bounds"] = grid_bounds(session, grid_id)
    props.update(notice_board(session, grid_id))
    props["ancestors"] = ancestors(session, grid_id)
    props["children"] = [
        {"id": c.id, "code": c.code, "name": c.name, "household_count": c.household_count}
        for c in session.scalars(
            select(Grid)
            .where(Grid.parent_id == grid_id, Grid.valid_to.is_(None))
            .order_by(Grid.code)
        )
    ]
    return _feature(row.gj, props, row.id)


def ancestors(session: Session, grid_id: int) -> list[dict[str, Any]]:
    """Return the chain from the top-level grid down to (excluding) this one."""
    return grid_tree.chain(session, grid_id)


# The grid and every current grid below it.
_TREE = grid_tree.descendants_cte("tree", "SELECT id FROM grid WHERE id = :id", union_all=True)


def households_in_grid(
    session: Session,
    grid_id: int,
    *,
    limit: int,
    offset: int,
    linked_member_id: int | None = None,
    with_tags: bool = False,
) -> dict[str, Any]:
    """Return the households of a grid and its descendants, names and phones masked.

    ``linked_member_id`` keeps only the households linked to that party member; ``with_tags``
    adds the sensitive tags (for those responsible for the households).
    """
    get_grid_row(session, grid_id)
    rows = session.execute(
        text(
            f"""
            WITH {_TREE}
            SELECT h.id, h.grid_id, h.building, h.unit, h.room, h.address, h.people, h.head_name,
                   h.head_phone, h.linked_member_id, h.tags, ST_X(h.geom) AS lon,
                   ST_Y(h.geom) AS lat, count(*) OVER () AS total
            FROM household h JOIN tree t ON h.grid_id = t.id
            WHERE (CAST(:member AS integer) IS NULL OR h.linked_member_id = :member)
            ORDER BY h.id LIMIT :limit OFFSET :offset
            """
        ),
        {"id": grid_id, "limit": limit, "offset": offset, "member": linked_member_id},
    ).all()
    total = rows[0].total if rows else 0
    feats = [
        _feature(
            {"type": "Point", "coordinates": [round(r.lon, 7), round(r.lat, 7)]},
            {
                "id": r.id,
                "grid_id": r.grid_id,
                "building": r.building,
                "unit": r.unit,
                "room": r.room,
                "address": r.address,
                "people": r.people,
                "head_name": mask_name(r.head_name),
                "head_phone": mask_phone(r.head_phone),
                "linked_member_id": r.linked_member_id,
                **({"tags": list(r.tags or [])} if with_tags else {}),
            },
            r.id,
        )
        for r in rows
    ]
    return collection(feats, total=total, limit=limit, offset=offset)


def household(
    session: Session, household_id: int, *, personal: bool, with_tags: bool
) -> dict[str, Any]:
    """Return one household as a GeoJSON Feature; names and phones masked unless ``personal``."""
    r = session.execute(
        text(
            """SELECT h.id, h.grid_id, g.code AS grid_code, g.name AS grid_name, h.building,
                      h.unit, h.room, h.address, h.people, h.head_name, h.head_phone,
                      h.linked_member_id, h.tags, ST_X(h.geom) AS lon, ST_Y(h.geom) AS lat
               FROM household h JOIN grid g ON g.id = h.grid_id WHERE h.id = :id"""
        ),
        {"id": household_id},
    ).first()
    if r is None:
        raise NotFound(f"household {household_id} not found")
    props: dict[str, Any] = {
        "id": r.id,
        "grid_id": r.grid_id,
        "grid_code": r.grid_code,
        "grid_name": r.grid_name,
        "building": r.building,
        "unit": r.unit,
        "room": r.room,
        "address": r.address,
        "people": r.people,
        "head_name": r.head_name if personal else mask_name(r.head_name),
        "head_phone": r.head_phone if personal else mask_phone(r.head_phone),
        "linked_member_id": r.linked_member_id,
    }
    if with_tags:
        props["tags"] = list(r.tags or [])
        props["tag_names"] = [SENSITIVE_TAGS.get(t, t) for t in r.tags or []]
    return _feature(
        {"type": "Point", "coordinates": [round(r.lon, 7), round(r.lat, 7)]}, props, r.id
    )


def service_points(
    session: Session,
    *,
    bbox: tuple[float, float, float, float] | None = None,
    scope: frozenset[int] | None = None,
) -> dict[str, Any]:
    """Return service points with their radius and kind (``scope``: only those in these grids)."""
    rows = session.execute(
        text(
            """
            SELECT id, name, kind, radius_m, status, grid_id, ST_X(geom) AS lon, ST_Y(geom) AS lat
            FROM service_point
            WHERE (CAST(:x0 AS float8) IS NULL OR geom && ST_MakeEnvelope(:x0, :y0, :x1, :y1, 4326))
              AND (CAST(:scope AS int[]) IS NULL OR grid_id = ANY(CAST(:scope AS int[])))
            ORDER BY id
            """
        ),
        _bbox_params(bbox) | {"scope": None if scope is None else sorted(scope)},
    ).all()
    return collection(
        [
            _feature(
                {"type": "Point", "coordinates": [round(r.lon, 7), round(r.lat, 7)]},
                {
                    "id": r.id,
                    "name": r.name,
                    "kind": r.kind,
                    "kind_name": SERVICE_POINT_KINDS.get(r.kind, r.kind),
                    "radius_m": r.radius_m,
                    "status": r.status,
                    "grid_id": r.grid_id,
                },
                r.id,
            )
            for r in rows
        ]
    )


def cameras(
    session: Session,
    *,
    bbox: tuple[float, float, float, float] | None = None,
    grid_id: int | None = None,
    scope: frozenset[int] | None = None,
) -> dict[str, Any]:
    """Return cameras with their code, kind and leaf grid (``scope``: only those in these grids)."""
    params = _bbox_params(bbox) | {
        "grid": grid_id,
        "scope": None if scope is None else sorted(scope),
    }
    rows = session.execute(
        text(
            """
            SELECT id, code, name, kind, analytics, grid_id, ST_X(geom) AS lon, ST_Y(geom) AS lat
            FROM camera
            WHERE (CAST(:x0 AS float8) IS NULL OR geom && ST_MakeEnvelope(:x0, :y0, :x1, :y1, 4326))
              AND (CAST(:grid AS int) IS NULL OR grid_id = :grid)
              AND (CAST(:scope AS int[]) IS NULL OR grid_id = ANY(CAST(:scope AS int[])))
            ORDER BY code
            """
        ),
        params,
    ).all()
    return collection(
        [
            _feature(
                {"type": "Point", "coordinates": [round(r.lon, 7), round(r.lat, 7)]},
                {
                    "id": r.id,
                    "code": r.code,
                    "name": r.name,
                    "kind": r.kind,
                    "analytics": r.analytics,
                    "grid_id": r.grid_id,
                },
                r.id,
            )
            for r in rows
        ]
    )


def _bbox_params(bbox: tuple[float, float, float, float] | None) -> dict[str, Any]:
    if bbox is None:
        return {"x0": None, "y0": None, "x1": None, "y1": None}
    return {"x0": bbox[0], "y0": bbox[1], "x1": bbox[2], "y1": bbox[3]}
