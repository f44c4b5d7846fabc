"""Locate a point in the grid hierarchy and name who owns it.

How a point is placed (``method``), in this order:

1. ``inside`` — it lies in the interior of exactly one current leaf grid.
2. ``boundary`` — it lies on the edge or a vertex of one or more leaf grids. It goes to the one
   whose **code sorts first** (byte order: Python's string order, PostgreSQL's ``COLLATE "C"``).
   ``gis.assign`` applies the same rule in bulk, so single and batch locate agree on every
   shared edge and vertex.
3. ``nearest`` — no leaf grid covers it, but one lies within ``NEAREST_TOLERANCE_M`` metres
   (measured on the ellipsoid); the nearest wins, ties to the smallest code. This catches points
   just outside the territory's edge and in digitising slivers between grids.
4. ``ancestor`` — no leaf grid within the tolerance, but a higher grid covers it (a hole in the
   leaf coverage): the lowest such grid, ties to the smallest code.
5. ``unassigned`` — outside every grid: the command centre's unassigned queue. Never dropped.

Who owns it (``owner``) and the escalation ladder behind it (``fallback``):

- The owner is the on-duty full-time grid worker (专职网格员), else part-time worker (兼职网格员),
  of the located grid — lowest worker id first. A grid with no grid workers of its own (a 片区
  patch) takes those of its nearest ancestor that has some.
- The fallback lists the on-duty chiefs from the located grid upwards (微网格长, then 网格长 of
  each higher level), each person once, and ends with the command centre (指挥中心).
- When nobody suitable is on duty, the first on-duty chief becomes the owner.
- With a ``category``, an override area of that category covering the point (a main road kept by
  the city-management squad, a market by the market-supervision office …) takes precedence: its
  department or worker becomes the owner and the grid's owner heads the fallback. Of several
  covering areas the smallest wins, ties to the lowest id.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from app.db import Reader, driver_sql
from app.models.people import ROLE_NAMES
from app.services import grid_tree, networks, users
from gis.crs import degree_span, parse_crs, to_wgs84_point

LOGGER = logging.getLogger(__name__)

NEAREST_TOLERANCE_M = 30.0
COMMAND_CENTRE = {"kind": "command_centre", "name": "指挥中心"}
WORKER_ROLES = ("worker_full", "worker_part")
CHIEF_ROLES = ("micro_chief", "grid_chief")
METHODS = ("inside", "boundary", "nearest", "ancestor", "unassigned")

# One round trip for the common case: every current grid covering the point (the GiST index on
# grid.geom selects the candidates) with its locate card (revision 0035: whether it is a leaf and
# who is assigned to it, kept by triggers). A child lies inside its parent, so the leaf's whole
# chain is among the covering grids; Python walks it by parent_id. Each row goes into the JSON
# whole (``json_agg`` of the row: its columns are the keys), which costs PostgreSQL less than
# naming every key with ``json_build_object``.
# ``{gate}`` / ``{head}`` / ``{tail}`` let the HTTP locate put the caller's session look-up in the
# same statement (``locate_with_session``): the grids are read only when the session is live.
_LOCATE_TEMPLATE = """
    WITH {head} pt AS (SELECT ST_SetSRID(ST_MakePoint(:lon, :lat), 4326) AS p)
    SELECT {columns}
        (SELECT json_agg(h) FROM (
            SELECT g.id, g.parent_id, g.code, g.name, g.level, c.is_leaf, c.people,
                   ST_Contains(g.geom, pt.p) AS interior
            FROM pt, grid g JOIN locate_card c ON c.grid_id = g.id
            WHERE {gate} g.valid_to IS NULL AND ST_Intersects(g.geom, pt.p)) AS h) AS hits
    {tail}
    """
_LOCATE_SQL = text(_LOCATE_TEMPLATE.format(head="", gate="", columns="", tail=""))


_NEAREST_SQL = text(
    f"""
    SELECT id, code, name, level, d FROM (
        SELECT g.id, g.code, g.name, g.level,
               ST_Distance(g.geom::geography, p.pt::geography) AS d
        FROM grid g, (SELECT ST_SetSRID(ST_MakePoint(:lon, :lat), 4326) AS pt) p
        WHERE g.valid_to IS NULL AND g.geom && ST_Expand(p.pt, :dx, :dy)
          AND {grid_tree.is_leaf("g")}
    ) s
    WHERE d <= :tol
    ORDER BY d, code COLLATE "C"
    """
)

_CHAIN_SQL = text(
    f"""
    WITH {
        grid_tree.ancestors_cte(
            "up",
            "SELECT id, parent_id, code, name, level, 0 AS depth FROM grid WHERE id = :id",
            columns=("code", "name", "level"),
        )
    }
    SELECT up.id, up.code, up.name, up.level, up.depth,
           a.role, w.id AS worker_id, w.name AS worker_name, w.phone, w.on_duty
    FROM up
    LEFT JOIN grid_assignment a ON a.grid_id = up.id
    LEFT JOIN worker w ON w.id = a.worker_id
    ORDER BY up.depth, w.id
    """
)

_OVERRIDE_SQL = text(
    """
    SELECT o.id, o.name, o.category, o.area_m2,
           d.id AS department_id, d.code AS department_code, d.name AS department_name,
           d.phone AS department_phone,
           w.id AS worker_id, w.name AS worker_name, w.phone AS worker_phone, w.on_duty
    FROM override_area o
    LEFT JOIN department d ON d.id = o.department_id
    LEFT JOIN worker w ON w.id = o.worker_id
    WHERE (o.category = :category
           OR o.category = (SELECT cc.code FROM case_category cc WHERE cc.name = :category))
      AND ST_Intersects(o.geom, ST_SetSRID(ST_MakePoint(:lon, :lat), 4326))
    ORDER BY o.area_m2, o.id
    LIMIT 1
    """
)

_NEIGHBOURS_SQL = text(
    f"""
    SELECT id, code, name, level, d FROM (
        SELECT g.id, g.code, g.name, g.level,
               ST_Distance(g.geom::geography, p.pt::geography) AS d
        FROM grid g, (SELECT ST_SetSRID(ST_MakePoint(:lon, :lat), 4326) AS pt) p
        WHERE g.valid_to IS NULL AND g.id <> :grid_id AND g.geom && ST_Expand(p.pt, :dx, :dy)
          AND {grid_tree.is_leaf("g")}
    ) s
    WHERE d <= :within
    ORDER BY d, code COLLATE "C"
    """
)


_LOCATE_DRIVER = driver_sql(_LOCATE_SQL)
_NEAREST_DRIVER = driver_sql(_NEAREST_SQL)
_CHAIN_DRIVER = driver_sql(_CHAIN_SQL)
_OVERRIDE_DRIVER = driver_sql(_OVERRIDE_SQL)
# The session look-up (``users.LOOKUP_SQL``) and the locate in one statement: one row always,
# the session's columns NULL and no grid read when the token names no live session.
_LOCATE_WITH_SESSION_DRIVER = driver_sql(
    text(
        _LOCATE_TEMPLATE.format(
            head="s AS MATERIALIZED ("
            + users.LOOKUP_SQL.replace("%(h)s", ":h").replace("%(idle)s", ":idle")
            + "),",
            gate="EXISTS (SELECT 1 FROM s) AND",
            columns="s.*,",
            tail="FROM (SELECT 1) AS one LEFT JOIN s ON true",
        )
    )
)


def grid_ref(row: Any) -> dict[str, Any]:
    """Return the short reference of a grid: id, code, name, level."""
    return {"id": row.id, "code": row.code, "name": row.name, "level": row.level}


def person(
    worker_id: int, name: str, role: str, phone: str | None, grid: dict[str, Any] | None
) -> dict[str, Any]:
    """Return an owner-like dict for a worker in a role at a grid."""
    return {
        "kind": "worker",
        "worker_id": worker_id,
        "name": name,
        "role": role,
        "role_name": ROLE_NAMES.get(role, role),
        "phone": phone,
        "grid_id": grid["id"] if grid else None,
        "grid_name": grid["name"] if grid else None,
    }


def route(
    chain: Sequence[dict[str, Any]], people: dict[int, list[dict[str, Any]]]
) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """Pick the owner and the fallback ladder for a grid chain (top first, located grid last).

    ``people`` maps grid id → assignments ``{worker_id, name, role, phone, on_duty}``. The rule is
    the module's docstring's; it is pure so that single and batch locate share it.
    """
    if not chain:
        return None, [dict(COMMAND_CENTRE)]
    upward = list(reversed(chain))
    owner: dict[str, Any] | None = None
    for grid in upward:
        staff = [p for p in people.get(grid["id"], []) if p["role"] in WORKER_ROLES]
        if not staff:
            continue  # a patch without grid workers: ask its parent
        for role in WORKER_ROLES:
            on_duty = sorted(
                (p for p in staff if p["role"] == role and p["on_duty"]),
                key=lambda p: p["worker_id"],
            )
            if on_duty:
                p = on_duty[0]
                owner = person(p["worker_id"], p["name"], role, p["phone"], grid)
                break
        break
    ladder: list[dict[str, Any]] = []
    seen = {owner["worker_id"]} if owner else set()
    for grid in upward:
        assigned = people.get(grid["id"])
        if not assigned:
            continue
        ordered = sorted(assigned, key=lambda p: p["worker_id"])  # once a grid, not a role
        for role in CHIEF_ROLES:
            for p in ordered:
                if p["role"] == role and p["on_duty"] and p["worker_id"] not in seen:
                    seen.add(p["worker_id"])
                    ladder.append(person(p["worker_id"], p["name"], role, p["phone"], grid))
    if owner is None and ladder:
        owner = ladder.pop(0)
    return owner, [*ladder, dict(COMMAND_CENTRE)]


def chain_and_people(
    session: Session, grid_id: int
) -> tuple[list[dict[str, Any]], dict[int, list[dict[str, Any]]]]:
    """Return the chain from the top-level grid down to ``grid_id`` and everyone assigned on it.

    ``session`` is a Session or a DBAPI connection (see ``Reader``)."""
    return _chain_from_rows(Reader(session).all(_CHAIN_DRIVER, {"id": grid_id}))


def _chain_from_rows(
    rows: Sequence[Any],
) -> tuple[list[dict[str, Any]], dict[int, list[dict[str, Any]]]]:
    """Group (grid, assignment) rows, deepest first, into the chain (top first) and its people."""
    chain: dict[int, dict[str, Any]] = {}
    depth: dict[int, int] = {}
    people: dict[int, list[dict[str, Any]]] = {}
    for r in rows:
        gid = r.id
        if gid not in chain:
            chain[gid] = {"id": gid, "code": r.code, "name": r.name, "level": r.level}
            depth[gid] = r.depth
        if r.worker_id is not None:
            people.setdefault(gid, []).append(
                {
                    "worker_id": r.worker_id,
                    "name": r.worker_name,
                    "role": r.role,
                    "phone": r.phone,
                    "on_duty": r.on_duty,
                }
            )
    ordered = sorted(chain.values(), key=lambda g: -depth[g["id"]])
    return ordered, people


def _walk_up(grid_id: int, grids: dict[int, dict[str, Any]]) -> list[dict[str, Any]] | None:
    """Return the chain (top first) from ``grid_id`` through ``grids`` by parent_id, or None
    when a parent is missing from them."""
    chain = []
    gid: int | None = grid_id
    while gid is not None:
        g = grids.get(gid)
        if g is None:
            return None
        chain.append({"id": g["id"], "code": g["code"], "name": g["name"], "level": g["level"]})
        gid = g["parent_id"]
    return chain[::-1]


def _find_grid(
    reader: Reader, lon: float, lat: float, tolerance_m: float, first: Any = None
) -> tuple[str, int | None, tuple[list[dict[str, Any]], dict[int, list[dict[str, Any]]]] | None]:
    """Return (method, id of the grid the point belongs to, its chain and people when the one
    query already holds them) following the module's rules. ``first``: that query's row, when
    ``locate_with_session`` has read it already."""
    if first is None:
        first = reader.first(_LOCATE_DRIVER, {"lon": lon, "lat": lat})
    hits = first.hits or []
    people: dict[int, list[dict[str, Any]]] = {h["id"]: h["people"] for h in hits}
    grids = {h["id"]: h for h in hits}
    leaves = [h for h in hits if h["is_leaf"]]
    method, pick = None, None
    if leaves:
        pick = min(leaves, key=lambda h: h["code"])
        method = "inside" if len(leaves) == 1 and pick["interior"] else "boundary"
    elif tolerance_m > 0:
        dx, dy = (float(v) for v in degree_span(lat, tolerance_m))
        near = reader.first(
            _NEAREST_DRIVER, {"lon": lon, "lat": lat, "dx": dx, "dy": dy, "tol": tolerance_m}
        )
        if near is not None:
            return "nearest", near.id, None
    if pick is None and hits:
        lowest = max(h["level"] for h in hits)
        pick = min((h for h in hits if h["level"] == lowest), key=lambda h: h["code"])
        method = "ancestor"
    if pick is None:
        return "unassigned", None, None
    chain = _walk_up(pick["id"], grids)
    if chain is None:  # a child sticking out of its parent: ask for the chain itself
        return str(method), pick["id"], None
    return str(method), pick["id"], (chain, {g["id"]: people.get(g["id"], []) for g in chain})


def override_owner(row: Any) -> dict[str, Any]:
    """Return the owner-like dict of an override area's department or worker."""
    if row.department_id is not None:
        return {
            "kind": "department",
            "department_id": row.department_id,
            "worker_id": None,
            "name": row.department_name,
            "role": "department",
            "role_name": "职能部门",
            "phone": row.department_phone,
        }
    return {
        "kind": "worker",
        "worker_id": row.worker_id,
        "name": row.worker_name,
        "role": "area_keeper",
        "role_name": "责任区域负责人",
        "phone": row.worker_phone,
        "grid_id": None,
        "grid_name": None,
    }


def _override(reader: Reader, lon: float, lat: float, category: str) -> Any:
    return reader.first(_OVERRIDE_DRIVER, {"lon": lon, "lat": lat, "category": category})


def apply_override(
    owner: dict[str, Any] | None,
    fallback: list[dict[str, Any]],
    row: Any,
) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any]]:
    """Put an override area's keeper in front: it owns the case, the grid's owner backs it up."""
    keeper = override_owner(row)
    behind = [p for p in ([owner] if owner else []) + fallback if p != keeper]
    info = {
        "id": row.id,
        "name": row.name,
        "category": row.category,
        "department_id": row.department_id,
        "worker_id": row.worker_id,
    }
    return keeper, behind, info


def locate_point(
    session: Session | Any,
    x: float,
    y: float,
    crs: str | None = None,
    *,
    category: str | None = None,
    tolerance_m: float = NEAREST_TOLERANCE_M,
    prefetched: Any = None,
) -> dict[str, Any]:
    """Locate one point given in ``crs`` and say which micro-grid and which person own it.

    ``session`` is a Session or a DBAPI connection of the read pool (see ``Reader``). Raises
    ``gis.errors.CoordinateError`` / ``UnknownCRS`` (HTTP 400) for bad input. ``prefetched``
    is the row ``locate_with_session`` read for the same point.
    """
    spec = parse_crs(crs)
    lon, lat = to_wgs84_point(x, y, spec)
    reader = Reader(session)
    method, grid_id, found = _find_grid(reader, lon, lat, tolerance_m, prefetched)
    chain: list[dict[str, Any]] = []
    people: dict[int, list[dict[str, Any]]] = {}
    if found is not None:
        chain, people = found
    elif grid_id is not None:
        chain, people = _chain_from_rows(reader.all(_CHAIN_DRIVER, {"id": grid_id}))
    owner, fallback = route(chain, people)
    override = None
    if category:
        row = _override(reader, lon, lat, category)
        if row is not None:
            owner, fallback, override = apply_override(owner, fallback, row)
    network = None
    if category and override is None:  # a category routed by a departmental network (多网合一)
        owner, fallback, network = networks.route_by_network(
            session, lon, lat, category, owner, fallback
        )
    leaf = chain[-1] if chain and method in ("inside", "boundary", "nearest") else None
    return {
        "point": {"lon": lon, "lat": lat},
        "crs": spec.name,
        "method": method,
        "grid": leaf,
        "chain": chain,
        "owner": owner,
        "fallback": fallback,
        "override": override,
        "network": network,
    }


def locate_with_session(
    session: Session | Any, x: float, y: float, crs: str | None, lookup: dict[str, Any]
) -> Any:
    """Look a sign-in session up and read the grids and people around a point, in one statement.

    ``lookup`` holds the parameters of ``users.LOOKUP_SQL``. Returns the row: the session's
    columns (``session_id`` None when the token names no live session — then no grid was read)
    and what ``locate_point(..., prefetched=row)`` needs. Raises as ``locate_point`` for bad
    coordinates.
    """
    lon, lat = to_wgs84_point(x, y, parse_crs(crs))
    return Reader(session).first(_LOCATE_WITH_SESSION_DRIVER, {**lookup, "lon": lon, "lat": lat})


def neighbour_owners(
    session: Session, grid_id: int, lon: float, lat: float, within_m: float = 50
) -> list[dict[str, Any]]:
    """Return the leaf grids other than ``grid_id`` within ``within_m`` metres of a WGS84 point.

    Each entry: ``{"grid": {id, code, name, level}, "distance_m", "chain", "owner", "fallback"}``,
    nearest first (ties to the smallest code) — the targets of a one-step transfer of a case
    reported near a boundary.
    """
    dx, dy = (float(v) for v in degree_span(lat, within_m))
    rows = session.execute(
        _NEIGHBOURS_SQL,
        {"lon": lon, "lat": lat, "dx": dx, "dy": dy, "within": within_m, "grid_id": grid_id},
    ).all()
    out = []
    for r in rows:
        chain, people = chain_and_people(session, r.id)
        owner, fallback = route(chain, people)
        out.append(
            {
                "grid": grid_ref(r),
                "distance_m": round(float(r.d), 2),
                "chain": chain,
                "owner": owner,
                "fallback": fallback,
            }
        )
    return out


# ---------------------------------------------------------------------------------------------
# Batch: many points at once. The current grids, people and override areas are fetched once;
# points are placed in numpy/shapely by the same rules (gis.assign shares the boundary rule).
