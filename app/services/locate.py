"""Locate a point in the grid hierarchy and name who owns it.

How a point is placed (``method``), in this order:

1. ``inside`` — it lies in the interior of exactly one current leaf grid.
2. ``boundary`` — it lies on the edge or a vertex of one or more leaf grids. It goes to the one
   whose **code sorts first** (string order). ``gis.assign.assign_points`` applies the same rule
   in bulk, so single and batch locate agree on every shared edge and vertex.
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
import math
from collections.abc import Sequence
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from app.models.people import ROLE_NAMES
from gis.crs import parse_crs, to_wgs84

LOGGER = logging.getLogger(__name__)

NEAREST_TOLERANCE_M = 30.0
COMMAND_CENTRE = {"kind": "command_centre", "name": "指挥中心"}
WORKER_ROLES = ("worker_full", "worker_part")
CHIEF_ROLES = ("micro_chief", "grid_chief")
METHODS = ("inside", "boundary", "nearest", "ancestor", "unassigned")

# Metres per degree of latitude, a little under the true minimum (110,574 m at the equator), so a
# box built from it is never too small.
_M_PER_DEG = 110_000.0

_HITS_SQL = text(
    """
    SELECT g.id, g.code, g.name, g.level,
           NOT EXISTS (SELECT 1 FROM grid c WHERE c.parent_id = g.id AND c.valid_to IS NULL)
               AS is_leaf,
           ST_Contains(g.geom, p.pt) AS interior
    FROM grid g, (SELECT ST_SetSRID(ST_MakePoint(:lon, :lat), 4326) AS pt) p
    WHERE g.valid_to IS NULL AND ST_Intersects(g.geom, p.pt)
    ORDER BY g.level DESC, g.code
    """
)

_NEAREST_SQL = text(
    """
    SELECT id, code, name, level, d FROM (
        SELECT g.id, g.code, g.name, g.level,
               ST_Distance(g.geom::geography, p.pt::geography) AS d
        FROM grid g, (SELECT ST_SetSRID(ST_MakePoint(:lon, :lat), 4326) AS pt) p
        WHERE g.valid_to IS NULL AND g.geom && ST_Expand(p.pt, :dx, :dy)
          AND NOT EXISTS (SELECT 1 FROM grid c WHERE c.parent_id = g.id AND c.valid_to IS NULL)
    ) s
    WHERE d <= :tol
    ORDER BY d, code
    """
)

_CHAIN_SQL = text(
    """
    WITH RECURSIVE up AS (
        SELECT id, parent_id, code, name, level, 0 AS depth FROM grid WHERE id = :id
        UNION ALL
        SELECT p.id, p.parent_id, p.code, p.name, p.level, up.depth + 1
        FROM grid p JOIN up ON p.id = up.parent_id
    )
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
    WHERE o.category = :category
      AND ST_Intersects(o.geom, ST_SetSRID(ST_MakePoint(:lon, :lat), 4326))
    ORDER BY o.area_m2, o.id
    LIMIT 1
    """
)

_NEIGHBOURS_SQL = text(
    """
    SELECT id, code, name, level, d FROM (
        SELECT g.id, g.code, g.name, g.level,
               ST_Distance(g.geom::geography, p.pt::geography) AS d
        FROM grid g, (SELECT ST_SetSRID(ST_MakePoint(:lon, :lat), 4326) AS pt) p
        WHERE g.valid_to IS NULL AND g.id <> :grid_id AND g.geom && ST_Expand(p.pt, :dx, :dy)
          AND NOT EXISTS (SELECT 1 FROM grid c WHERE c.parent_id = g.id AND c.valid_to IS NULL)
    ) s
    WHERE d <= :within
    ORDER BY d, code
    """
)


def degree_box(lat: float, metres: float) -> tuple[float, float]:
    """Return (dlon, dlat) in degrees that surely span ``metres`` around latitude ``lat``."""
    dlat = metres / _M_PER_DEG
    coslat = max(math.cos(math.radians(min(abs(lat), 89.9))), 1e-6)
    return dlat / coslat, dlat


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
        for role in CHIEF_ROLES:
            for p in sorted(people.get(grid["id"], []), key=lambda p: p["worker_id"]):
                if p["role"] == role and p["on_duty"] and p["worker_id"] not in seen:
                    seen.add(p["worker_id"])
                    ladder.append(person(p["worker_id"], p["name"], role, p["phone"], grid))
    if owner is None and ladder:
        owner = ladder.pop(0)
    return owner, [*ladder, dict(COMMAND_CENTRE)]


def chain_and_people(
    session: Session, grid_id: int
) -> tuple[list[dict[str, Any]], dict[int, list[dict[str, Any]]]]:
    """Return the chain from the top-level grid down to ``grid_id`` and everyone assigned on it."""
    rows = session.execute(_CHAIN_SQL, {"id": grid_id}).all()
    chain: dict[int, dict[str, Any]] = {}
    people: dict[int, list[dict[str, Any]]] = {}
    for r in rows:
        if r.id not in chain:
            chain[r.id] = {**grid_ref(r), "depth": r.depth}
        if r.worker_id is not None:
            people.setdefault(r.id, []).append(
                {
                    "worker_id": r.worker_id,
                    "name": r.worker_name,
                    "role": r.role,
                    "phone": r.phone,
                    "on_duty": r.on_duty,
                }
            )
    ordered = sorted(chain.values(), key=lambda g: -g.pop("depth"))
    return ordered, people


def _find_grid(
    session: Session, lon: float, lat: float, tolerance_m: float
) -> tuple[str, int | None]:
    """Return (method, id of the grid the point belongs to) following the module's rules."""
    hits = session.execute(_HITS_SQL, {"lon": lon, "lat": lat}).all()
    leaves = [h for h in hits if h.is_leaf]
    if leaves:
        first = min(leaves, key=lambda h: h.code)
        method = "inside" if len(leaves) == 1 and first.interior else "boundary"
        return method, first.id
    if tolerance_m > 0:
        dx, dy = degree_box(lat, tolerance_m)
        near = session.execute(
            _NEAREST_SQL, {"lon": lon, "lat": lat, "dx": dx, "dy": dy, "tol": tolerance_m}
        ).first()
        if near is not None:
            return "nearest", near.id
    if hits:
        lowest = max(h.level for h in hits)
        return "ancestor", min((h for h in hits if h.level == lowest), key=lambda h: h.code).id
    return "unassigned", None


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


def _override(session: Session, lon: float, lat: float, category: str) -> Any:
    return session.execute(_OVERRIDE_SQL, {"lon": lon, "lat": lat, "category": category}).first()


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
    session: Session,
    x: float,
    y: float,
    crs: str | None = None,
    *,
    category: str | None = None,
    tolerance_m: float = NEAREST_TOLERANCE_M,
) -> dict[str, Any]:
    """Locate one point given in ``crs`` and say which micro-grid and which person own it.

    Raises ``gis.errors.CoordinateError`` / ``UnknownCRS`` (HTTP 400) for bad input.
    """
    spec = parse_crs(crs)
    lon_a, lat_a = to_wgs84([x], [y], spec)
    lon, lat = float(lon_a[0]), float(lat_a[0])
    method, grid_id = _find_grid(session, lon, lat, tolerance_m)
    chain: list[dict[str, Any]] = []
    people: dict[int, list[dict[str, Any]]] = {}
    if grid_id is not None:
        chain, people = chain_and_people(session, grid_id)
    owner, fallback = route(chain, people)
    override = None
    if category:
        row = _override(session, lon, lat, category)
        if row is not None:
            owner, fallback, override = apply_override(owner, fallback, row)
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
    }


def neighbour_owners(
    session: Session, grid_id: int, lon: float, lat: float, within_m: float = 50
) -> list[dict[str, Any]]:
    """Return the leaf grids other than ``grid_id`` within ``within_m`` metres of a WGS84 point.

    Each entry: ``{"grid": {id, code, name, level}, "distance_m", "chain", "owner", "fallback"}``,
    nearest first (ties to the smallest code) — the targets of a one-step transfer of a case
    reported near a boundary.
    """
    dx, dy = degree_box(lat, within_m)
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
