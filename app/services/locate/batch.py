"""Locate many points at once: the same rules as the single locate, applied column by column
(``gis.assign`` in bulk), with owners worked out once per grid."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import shapely
from sqlalchemy import text
from sqlalchemy.orm import Session

from app.services import grid_tree, networks
from app.services.locate.single import (
    COMMAND_CENTRE,
    METHODS,
    NEAREST_TOLERANCE_M,
    apply_override,
    grid_ref,
    override_owner,
    route,
)
from gis.assign import PolygonIndex
from gis.crs import parse_crs, to_wgs84_masked

LOGGER = logging.getLogger(__name__)

_GRIDS_SQL = text(
    f"""
    SELECT g.id, g.code, g.name, g.level, g.parent_id,
           {grid_tree.is_leaf("g")}
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
    # a category routed by a departmental network (多网合一): each point's network grid row
    network_row: np.ndarray | None = None
    network_routes: list[tuple[dict[str, Any], dict[str, Any]]] = field(default_factory=list)

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
        network = None
        k = int(self.network_row[i]) if self.network_row is not None and o < 0 else -1
        if k >= 0:  # as the single locate: the network's person, the micro-grid's owner behind
            keeper, network = self.network_routes[k]
            fallback = [p for p in ([owner] if owner else []) + fallback if p != keeper]
            owner = keeper
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
            "network": network,
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
        if self.network_row is not None:
            net = np.where(o >= 0, -1, self.network_row)
            codes = np.full(n, "", dtype=object)
            for k in np.unique(net[net >= 0]):
                keeper, info = self.network_routes[int(k)]
                rows = net == k
                codes[rows] = info["grid"]["code"]
                columns["owner_kind"] = np.where(rows, keeper["kind"], columns["owner_kind"])
                columns["owner_id"] = np.where(
                    rows,
                    keeper.get("worker_id") or keeper.get("department_id"),
                    columns["owner_id"],
                )
                for col, key in (("owner_name", "name"), ("owner_role", "role_name")):
                    columns[col] = np.where(rows, keeper[key], columns[col])
                columns["owner_phone"] = np.where(
                    rows, keeper.get("phone") or "", columns["owner_phone"]
                )
            columns["network_grid_code"] = codes
        columns["error"] = errors
        extra = ["network_grid_code"] if self.network_row is not None else []
        return pd.DataFrame(columns, columns=[*CSV_COLUMNS, *extra])


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


_STAMP_SQL = text(
    """
    SELECT txid_current_if_assigned() IS NOT NULL AS own_writes,
           (SELECT count(*) || ':' || coalesce(sum(xmin::text::bigint), 0) FROM grid)
        || '/' || (SELECT count(*) || ':' || coalesce(sum(xmin::text::bigint), 0)
                   FROM grid_assignment)
        || '/' || (SELECT count(*) || ':' || coalesce(sum(xmin::text::bigint), 0) FROM worker)
           AS stamp
    """
)
"""The version of everything a batch reads besides override areas: row counts and the sum of the
rows' creating transaction ids of ``grid``, ``grid_assignment`` and ``worker``. Any insert, update
or delete changes it (a changed or new row carries a newer transaction id than the one it
replaces), and reading it takes no lock. It is read before the data, so a change that commits in
between only makes the next batch fetch again. A transaction that has written something itself
neither uses nor fills the cache: its view holds changes no one else may ever see."""


@dataclass
class _GridMap:
    """The current grids, their indexes and their owners, as one version of the database held
    them; reused by every batch until that version changes."""

    stamp: str
    refs: list[dict[str, Any]]
    ids: list[int]
    parent: dict[int, int | None]
    row_of: dict[int, int]
    shapes: np.ndarray
    codes: list[str]
    leaf_idx: np.ndarray
    levels: list[tuple[int, np.ndarray]]
    people: dict[int, list[dict[str, Any]]]
    indexes: dict[int, PolygonIndex] = field(default_factory=dict)
    routes: dict[int, tuple[dict[str, Any] | None, list[dict[str, Any]]]] = field(
        default_factory=dict
    )
    route_list: list[tuple[dict[str, Any] | None, list[dict[str, Any]]]] = field(init=False)
    routed: np.ndarray = field(init=False)

    def index(self, level: int) -> PolygonIndex:
        """The index of the leaves (``level`` 0) or of the inner grids of one level."""
        found = self.indexes.get(level)
        if found is None:
            group = self.leaf_idx if level == 0 else dict(self.levels)[level]
            found = PolygonIndex(self.shapes[group], [self.codes[i] for i in group])
            self.indexes[level] = found
        return found

    def route_of(self, g: int) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
        """Owner and fallback ladder of grid row ``g``, worked out once per version. A grid with
        no people of its own routes as its parent does (``route`` skips it), so most micro-grids
        share their parent's answer."""
        found = self.routes.get(g)
        if found is None:
            gid = self.ids[g]
            up = self.parent.get(gid)
            if gid not in self.people and up is not None and up in self.row_of:
                found = self.route_of(self.row_of[up])
            else:
                chain_ids = []
                at: int | None = gid
                while at is not None:
                    chain_ids.append(at)
                    at = self.parent.get(at)
                chain = [self.refs[self.row_of[c]] for c in reversed(chain_ids)]
                found = route(chain, self.people)
            self.routes[g] = found
        return found

    def routes_for(
        self, grid_row: np.ndarray
    ) -> list[tuple[dict[str, Any] | None, list[dict[str, Any]]]]:
        """The route list of the version (one entry per grid row), with every grid of
        ``grid_row`` filled in; entries of other grids may be empty."""
        used = np.flatnonzero(np.bincount(grid_row[grid_row >= 0], minlength=len(self.refs)))
        todo = used[~self.routed[used]]
        for g in todo.tolist():
            self.route_list[g] = self.route_of(g)
        self.routed[todo] = True
        return self.route_list

    def __post_init__(self) -> None:
        self.route_list = [(None, [])] * len(self.refs)
        self.routed = np.zeros(len(self.refs), dtype=bool)


_MAPS: dict[str, _GridMap] = {}
_MAPS_LOCK = threading.Lock()


def _grid_map(session: Session) -> _GridMap:
    """The grid map of the session's database at its current version (fetched when it changed)."""
    own_writes, stamp = session.execute(_STAMP_SQL).one()
    bind = session.get_bind()
    key = getattr(bind, "engine", bind).url.render_as_string(hide_password=True)
    with _MAPS_LOCK:
        cached = None if own_writes else _MAPS.get(key)
    if cached is not None and cached.stamp == stamp:
        return cached
    rows = session.execute(_GRIDS_SQL).all()
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
    level = np.array([r.level for r in rows], dtype=np.int64)
    leaf = np.array([bool(r.is_leaf) for r in rows], dtype=bool)
    levels = [
        (int(lv), np.flatnonzero((level == lv) & ~leaf))
        for lv in sorted({int(v) for v in level[~leaf]}, reverse=True)
    ]
    built = _GridMap(
        stamp=stamp,
        refs=[grid_ref(r) for r in rows],
        ids=[r.id for r in rows],
        parent={r.id: r.parent_id for r in rows},
        row_of={r.id: i for i, r in enumerate(rows)},
        shapes=shapely.from_wkb([bytes(r.wkb) for r in rows]) if rows else np.empty(0, object),
        codes=[r.code for r in rows],
        leaf_idx=np.flatnonzero(leaf),
        levels=levels,
        people=people,
    )
    if not own_writes:
        with _MAPS_LOCK:
            _MAPS[key] = built
    return built


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
    The grids, their indexes and the owners are kept between batches while the grids, assignments
    and workers stay as they are (see ``_STAMP_SQL``).
    """
    spec = parse_crs(crs)
    lon, lat, errors = to_wgs84_masked(x, y, spec)
    n = lon.shape[0]
    gm = _grid_map(session)

    method = np.full(n, METHODS.index("unassigned"), dtype=np.int8)
    method[list(errors)] = BATCH_METHODS.index("invalid")
    grid_row = np.full(n, -1, dtype=np.int64)
    distance = np.full(n, np.nan)
    ok = np.isfinite(lon)
    todo = np.flatnonzero(ok)
    if gm.leaf_idx.size and todo.size:
        leaf_idx = gm.leaf_idx
        index = gm.index(0)
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
    for level, group in gm.levels:
        if not todo.size:
            break
        hit = gm.index(level).assign(lon[todo], lat[todo])
        got = hit >= 0
        grid_row[todo[got]] = group[hit[got]]
        method[todo[got]] = METHODS.index("ancestor")
        todo = todo[~got]

    routes = gm.routes_for(grid_row)

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
    network_row, network_routes = None, []
    if category:  # a category routed by a departmental network (多网合一)
        network_row, network_routes = networks.batch_network_routes(session, lon, lat, category)
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
        grids=gm.refs,
        routes=routes,
        overrides=overrides,
        errors=errors,
        network_row=network_row,
        network_routes=network_routes,
    )
