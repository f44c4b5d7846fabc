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

import io
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import IO, Any

import numpy as np
import pandas as pd
import shapely
from psycopg.rows import namedtuple_row
from sqlalchemy import TextClause, text
from sqlalchemy.dialects.postgresql import psycopg as pg_dialect
from sqlalchemy.orm import Session

from app.errors import BadParameter
from app.models.people import ROLE_NAMES
from app.privacy import mask_name, mask_phone
from app.services import csv_safe
from gis.assign import PolygonIndex
from gis.crs import degree_span, parse_crs, to_wgs84_masked, to_wgs84_point

LOGGER = logging.getLogger(__name__)

NEAREST_TOLERANCE_M = 30.0
COMMAND_CENTRE = {"kind": "command_centre", "name": "指挥中心"}
WORKER_ROLES = ("worker_full", "worker_part")
CHIEF_ROLES = ("micro_chief", "grid_chief")
METHODS = ("inside", "boundary", "nearest", "ancestor", "unassigned")

# One round trip for the common case: every current grid covering the point (the GiST index on
# grid.geom selects the candidates) and everyone assigned to those grids. A child lies inside its
# parent, so the leaf's whole chain is among the covering grids; Python walks it by parent_id.
_LOCATE_SQL = text(
    """
    WITH pt AS (SELECT ST_SetSRID(ST_MakePoint(:lon, :lat), 4326) AS p),
    hits AS MATERIALIZED (
        SELECT g.id, g.parent_id, g.code, g.name, g.level,
               NOT EXISTS (SELECT 1 FROM grid c WHERE c.parent_id = g.id AND c.valid_to IS NULL)
                   AS is_leaf,
               ST_Contains(g.geom, pt.p) AS interior
        FROM grid g, pt
        WHERE g.valid_to IS NULL AND ST_Intersects(g.geom, pt.p)
    )
    SELECT
        (SELECT json_agg(json_build_object('id', id, 'parent_id', parent_id, 'code', code,
                                           'name', name, 'level', level, 'is_leaf', is_leaf,
                                           'interior', interior))
         FROM hits) AS hits,
        (SELECT json_agg(json_build_object('grid_id', a.grid_id, 'role', a.role,
                                           'worker_id', w.id, 'name', w.name,
                                           'phone', w.phone, 'on_duty', w.on_duty)
                         ORDER BY w.id)
         FROM grid_assignment a JOIN worker w ON w.id = a.worker_id
         WHERE a.grid_id IN (SELECT id FROM hits)) AS people
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
    ORDER BY d, code COLLATE "C"
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
    WHERE (o.category = :category
           OR o.category = (SELECT cc.code FROM case_category cc WHERE cc.name = :category))
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
    ORDER BY d, code COLLATE "C"
    """
)


def _driver(stmt: TextClause) -> str:
    """Return a statement in the driver's own parameter style (``%(name)s``)."""
    return str(stmt.compile(dialect=pg_dialect.dialect()))


_LOCATE_DRIVER = _driver(_LOCATE_SQL)
_NEAREST_DRIVER = _driver(_NEAREST_SQL)
_CHAIN_DRIVER = _driver(_CHAIN_SQL)
_OVERRIDE_DRIVER = _driver(_OVERRIDE_SQL)


class Reader:
    """Run the single locate's statements straight on the driver, skipping SQLAlchemy's
    compiling and result layers (a good part of a locate's CPU).

    ``db`` is a Session — the statements run on its connection, inside its transaction if it
    has one, and SQLAlchemy still sees their errors (a dead connection is invalidated) — or a
    DBAPI connection checked out of the read pool (``app.db.run_read_dbapi``: no ORM session
    at all). Rows come back with attribute access either way.
    """

    __slots__ = ("_session", "_dbapi")

    def __init__(self, db: Session | Any) -> None:
        self._session = db if isinstance(db, Session) else None
        self._dbapi = None if isinstance(db, Session) else db

    def all(self, sql: str, params: dict[str, Any]) -> list[Any]:
        if self._session is not None:
            return list(self._session.connection().exec_driver_sql(sql, params).all())
        cur = self._dbapi.cursor(row_factory=namedtuple_row)
        try:
            cur.execute(sql, params)
            return cur.fetchall()
        finally:
            cur.close()

    def first(self, sql: str, params: dict[str, Any]) -> Any:
        rows = self.all(sql, params)
        return rows[0] if rows else None


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
    reader: Reader, lon: float, lat: float, tolerance_m: float
) -> tuple[str, int | None, tuple[list[dict[str, Any]], dict[int, list[dict[str, Any]]]] | None]:
    """Return (method, id of the grid the point belongs to, its chain and people when the one
    query already holds them) following the module's rules."""
    hits_json, people_json = reader.first(_LOCATE_DRIVER, {"lon": lon, "lat": lat})
    hits = hits_json or []
    people: dict[int, list[dict[str, Any]]] = {}
    for p in people_json or []:
        people.setdefault(p.pop("grid_id"), []).append(p)
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
) -> dict[str, Any]:
    """Locate one point given in ``crs`` and say which micro-grid and which person own it.

    ``session`` is a Session or a DBAPI connection of the read pool (see ``Reader``). Raises
    ``gis.errors.CoordinateError`` / ``UnknownCRS`` (HTTP 400) for bad input.
    """
    spec = parse_crs(crs)
    lon, lat = to_wgs84_point(x, y, spec)
    reader = Reader(session)
    method, grid_id, found = _find_grid(reader, lon, lat, tolerance_m)
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

_GRIDS_SQL = text(
    """
    SELECT g.id, g.code, g.name, g.level, g.parent_id,
           NOT EXISTS (SELECT 1 FROM grid c WHERE c.parent_id = g.id AND c.valid_to IS NULL)
               AS is_leaf,
           ST_AsBinary(g.geom) AS wkb
    FROM grid g WHERE g.valid_to IS NULL ORDER BY g.code
    """
)

_PEOPLE_SQL = text(
    """
    SELECT a.grid_id, a.role, w.id AS worker_id, w.name, w.phone, w.on_duty
    FROM grid_assignment a JOIN worker w ON w.id = a.worker_id
    JOIN grid g ON g.id = a.grid_id AND g.valid_to IS NULL
    ORDER BY a.grid_id, w.id
    """
)

_OVERRIDES_SQL = text(
    """
    SELECT o.id, o.name, o.category, o.area_m2, ST_AsBinary(o.geom) AS wkb,
           d.id AS department_id, d.code AS department_code, d.name AS department_name,
           d.phone AS department_phone,
           w.id AS worker_id, w.name AS worker_name, w.phone AS worker_phone, w.on_duty
    FROM override_area o
    LEFT JOIN department d ON d.id = o.department_id
    LEFT JOIN worker w ON w.id = o.worker_id
    WHERE (o.category = :category
           OR o.category = (SELECT cc.code FROM case_category cc WHERE cc.name = :category))
    ORDER BY o.area_m2, o.id
    """
)


@dataclass
class BatchResult:
    """Where each point of a batch went, column by column (row i is input point i).

    ``grid_row`` indexes ``grids`` (-1: unassigned or invalid), ``method`` indexes
    ``BATCH_METHODS``; ``errors`` holds the reason of each refused point.
    """

    crs: str
    lon: np.ndarray
    lat: np.ndarray
    method: np.ndarray
    grid_row: np.ndarray
    distance_m: np.ndarray
    override_row: np.ndarray
    grids: list[dict[str, Any]]
    routes: list[tuple[dict[str, Any] | None, list[dict[str, Any]]]]
    overrides: list[Any] = field(default_factory=list)
    errors: dict[int, str] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.lon.shape[0])

    def counts(self) -> dict[str, int]:
        """Return how many points each method placed."""
        found = np.bincount(self.method, minlength=len(BATCH_METHODS))
        return {m: int(found[i]) for i, m in enumerate(BATCH_METHODS)}

    def record(self, i: int) -> dict[str, Any]:
        """Return point ``i`` as locate_point would describe it (chain left out)."""
        method = BATCH_METHODS[int(self.method[i])]
        if method == "invalid":
            return {"index": i, "method": method, "error": self.errors.get(i, "bad coordinates")}
        g = int(self.grid_row[i])
        owner, fallback = self.routes[g] if g >= 0 else route([], {})
        override = None
        o = int(self.override_row[i])
        if o >= 0:
            owner, fallback, override = apply_override(owner, fallback, self.overrides[o])
        grid = self.grids[g] if g >= 0 else None
        return {
            "index": i,
            "point": {"lon": float(self.lon[i]), "lat": float(self.lat[i])},
            "method": method,
            "grid": grid if method in ("inside", "boundary", "nearest") else None,
            "ancestor": grid if method == "ancestor" else None,
            "owner": owner,
            "next": fallback[0] if fallback else None,
            "override": override,
        }

    def frame(self) -> pd.DataFrame:
        """Return one flat row per point (input order): index, lon, lat, method, grid and owner
        columns, as written to CSV. Built column by column, not point by point."""
        n = len(self)
        g, o = self.grid_row, self.override_row
        has_grid = g >= 0

        def grid_column(key: str) -> np.ndarray:
            values = np.array([grid[key] for grid in self.grids] + [""], dtype=object)
            return values[np.where(has_grid, g, len(self.grids))]

        # Owners depend on (grid, override) only: work out each pair once.
        width = len(self.overrides) + 1
        keys, inverse = np.unique((g + 1) * width + (o + 1), return_inverse=True)
        inverse = inverse.reshape(-1)
        pairs = [(int(k // width) - 1, int(k % width) - 1) for k in keys]
        owner_cols: dict[str, list[Any]] = {
            k: [] for k in ("owner_kind", "owner_id", "owner_name", "owner_role", "owner_phone")
        }
        for gi, oi in pairs:
            owner = self.routes[gi][0] if gi >= 0 else None
            if oi >= 0:
                owner = override_owner(self.overrides[oi])
            owner_cols["owner_kind"].append(owner["kind"] if owner else "command_centre")
            owner_cols["owner_id"].append(
                (owner.get("worker_id") or owner.get("department_id") or "") if owner else ""
            )
            owner_cols["owner_name"].append(owner["name"] if owner else COMMAND_CENTRE["name"])
            owner_cols["owner_role"].append(owner["role_name"] if owner else "")
            owner_cols["owner_phone"].append((owner.get("phone") or "") if owner else "")
        override_ids = np.array([a.id for a in self.overrides] + [""], dtype=object)
        errors = np.full(n, "", dtype=object)
        if self.errors:
            errors[list(self.errors)] = list(self.errors.values())
        columns: dict[str, Any] = {
            "index": np.arange(n),
            "lon": self.lon,
            "lat": self.lat,
            "method": np.array(BATCH_METHODS, dtype=object)[self.method],
            "grid_id": grid_column("id"),
            "grid_code": grid_column("code"),
            "grid_name": grid_column("name"),
            "grid_level": grid_column("level"),
        }
        for key, values in owner_cols.items():
            columns[key] = np.array(values, dtype=object)[inverse]
        columns["override_id"] = override_ids[np.where(o >= 0, o, len(self.overrides))]
        columns["error"] = errors
        return pd.DataFrame(columns, columns=list(CSV_COLUMNS))


BATCH_METHODS = (*METHODS, "invalid")
CSV_COLUMNS = (
    "index",
    "lon",
    "lat",
    "method",
    "grid_id",
    "grid_code",
    "grid_name",
    "grid_level",
    "owner_kind",
    "owner_id",
    "owner_name",
    "owner_role",
    "owner_phone",
    "override_id",
    "error",
)


def locate_batch(
    session: Session,
    x: Sequence[float] | np.ndarray,
    y: Sequence[float] | np.ndarray,
    crs: str | None = None,
    *,
    category: str | None = None,
    tolerance_m: float = NEAREST_TOLERANCE_M,
) -> BatchResult:
    """Locate many points given in ``crs``: each one's grid, method and owner, as locate_point.

    Points with bad coordinates are kept with method ``invalid`` and the reason; nothing is dropped.
    """
    spec = parse_crs(crs)
    lon, lat, errors = to_wgs84_masked(x, y, spec)
    n = lon.shape[0]
    rows = session.execute(_GRIDS_SQL).all()
    refs = [grid_ref(r) for r in rows]
    parent = {r.id: r.parent_id for r in rows}
    row_of = {r.id: i for i, r in enumerate(rows)}
    leaf_rows = [i for i, r in enumerate(rows) if r.is_leaf]
    shapes = shapely.from_wkb([bytes(r.wkb) for r in rows]) if rows else np.empty(0, object)
    codes = [r.code for r in rows]

    method = np.full(n, METHODS.index("unassigned"), dtype=np.int8)
    method[list(errors)] = BATCH_METHODS.index("invalid")
    grid_row = np.full(n, -1, dtype=np.int64)
    distance = np.full(n, np.nan)
    ok = np.isfinite(lon)
    todo = np.flatnonzero(ok)
    if leaf_rows and todo.size:
        leaf_idx = np.asarray(leaf_rows)
        index = PolygonIndex(
            shapes[leaf_idx],
            [codes[i] for i in leaf_rows],
        )
        hit, interior = index.assign_with_interior(lon[todo], lat[todo])
        found = hit >= 0
        placed = todo[found]
        grid_row[placed] = leaf_idx[hit[found]]
        method[placed] = np.where(
            interior[found], METHODS.index("inside"), METHODS.index("boundary")
        )
        todo = todo[~found]
        if todo.size and tolerance_m > 0:
            near, dist = index.nearest(lon[todo], lat[todo], tolerance_m)
            got = near >= 0
            grid_row[todo[got]] = leaf_idx[near[got]]
            distance[todo[got]] = dist[got]
            method[todo[got]] = METHODS.index("nearest")
            todo = todo[~got]
    levels = sorted({r.level for r in rows if not r.is_leaf}, reverse=True)
    for level in levels:
        if not todo.size:
            break
        group = np.asarray([i for i, r in enumerate(rows) if r.level == level and not r.is_leaf])
        hit = PolygonIndex(shapes[group], [codes[i] for i in group]).assign(lon[todo], lat[todo])
        got = hit >= 0
        grid_row[todo[got]] = group[hit[got]]
        method[todo[got]] = METHODS.index("ancestor")
        todo = todo[~got]

    people: dict[int, list[dict[str, Any]]] = {}
    for p in session.execute(_PEOPLE_SQL).all():
        people.setdefault(p.grid_id, []).append(
            {
                "worker_id": p.worker_id,
                "name": p.name,
                "role": p.role,
                "phone": p.phone,
                "on_duty": p.on_duty,
            }
        )
    routes: list[tuple[dict[str, Any] | None, list[dict[str, Any]]]] = [(None, [])] * len(rows)
    for g in np.unique(grid_row[grid_row >= 0]):
        chain_ids = []
        gid: int | None = rows[int(g)].id
        while gid is not None:
            chain_ids.append(gid)
            gid = parent.get(gid)
        chain = [refs[row_of[c]] for c in reversed(chain_ids)]
        routes[int(g)] = route(chain, people)

    overrides: list[Any] = []
    override_row = np.full(n, -1, dtype=np.int64)
    if category:
        overrides = session.execute(_OVERRIDES_SQL, {"category": category}).all()
        if overrides and ok.any():
            pts = np.flatnonzero(ok)
            # Keys in (area, id) order, the order the single locate's SQL sorts by.
            keys = [f"{i:09d}" for i in range(len(overrides))]
            areas = shapely.from_wkb([bytes(o.wkb) for o in overrides])
            hit = PolygonIndex(areas, keys).assign(lon[pts], lat[pts])
            override_row[pts[hit >= 0]] = hit[hit >= 0]
    LOGGER.info(
        "located %d points (%s): %s",
        n,
        spec.name,
        {m: int(c) for m, c in zip(BATCH_METHODS, np.bincount(method, minlength=6), strict=True)},
    )
    return BatchResult(
        crs=spec.name,
        lon=lon,
        lat=lat,
        method=method,
        grid_row=grid_row,
        distance_m=distance,
        override_row=override_row,
        grids=refs,
        routes=routes,
        overrides=overrides,
        errors=errors,
    )


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
