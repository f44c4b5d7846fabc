"""Service-circle coverage of the households: figures, uncovered places, proposed new sites.

Households are fetched once per data version and kept in memory with the coverage models
built on them (``gis.coverage``). Each request reads the data versions of the households and
the points (one small row each, kept by triggers); only when the points changed does it read
them (a few thousand rows) and bring the kept model up to date by moving, adding or removing
only the points that changed, which touches only the households those points reach. Every distance is a WGS84
geodesic; the spatial work lives in ``gis/``, this module only fetches and assembles.

Why one module of this size: the kept household arrays, the per-state model cache and its lock
are shared by every figure below (coverage, uncovered blocks, site proposals, a point's
services); cut apart, each part would reach into the others' private state.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import shapely
from geoalchemy2.shape import from_shape
from shapely.geometry import Point, mapping
from sqlalchemy import text
from sqlalchemy.orm import Session

from app.errors import BadParameter, NotFound
from app.models import ServicePoint
from app.models.places import SERVICE_POINT_KINDS
from app.services import grid_tree
from gis.coverage import DEFAULT_RADIUS_M, CoverageModel, area_coverage, summarize
from gis.crs import to_wgs84
from gis.geodesy import geodesic_circle
from gis.mclp import candidates_from_households, recommend_sites

LOGGER = logging.getLogger(__name__)

MAX_RADIUS_M = 50_000.0  # the service_point table allows no more
MAX_K = 50
# Candidate sites are drawn one per cube of this edge (metres). Below a metre every household
# is its own cube (and a tiny edge overflows the cube numbers); above 100 km the whole city is
# one cube.
SPACING_RANGE_M = (1.0, 100_000.0)
MAX_CANDIDATES = 5000
INCREMENTAL_SHARE = 0.25  # past this share of points changed, a full computation is cheaper
FIGURES = (
    "households",
    "households_covered",
    "households_uncovered",
    "households_covered_share",
    "people",
    "people_covered",
    "people_uncovered",
    "people_covered_share",
    "nearest_median_m",
    "nearest_max_m",
)


# --------------------------------------------------------------------------- kept state


@dataclass
class Households:
    """Every household's id, position, head count and leaf grid, as arrays."""

    fingerprint: tuple[Any, ...]
    ids: np.ndarray
    lon: np.ndarray
    lat: np.ndarray
    people: np.ndarray
    grid_id: np.ndarray


@dataclass
class _Entry:
    households: Households
    model: CoverageModel
    points: dict[int, tuple[float, float, float]] = field(default_factory=dict)
    version: tuple[Any, ...] | None = None
    """The points' data version the model was last brought up to."""


class CoverageCache:
    """Keep the households and a few coverage models per database, current with its points."""

    def __init__(self, max_models: int = 4) -> None:
        self._lock = threading.RLock()
        self._households: dict[str, Households] = {}
        self._models: OrderedDict[tuple[Any, ...], _Entry] = OrderedDict()
        self._max_models = max_models

    def clear(self) -> None:
        """Forget everything kept."""
        with self._lock:
            self._households.clear()
            self._models.clear()

    @contextmanager
    def use(
        self, session: Session, *, radius_m: float | None, include_planned: bool
    ) -> Iterator[tuple[Households, CoverageModel, dict[str, Any]]]:
        """Yield households, their coverage model brought up to date, and how it was updated.

        The model stays locked while the caller reads it, so that another request cannot
        change it half-way.
        """
        started = time.perf_counter()
        url = str(session.get_bind().engine.url)
        with self._lock:
            versions = data_versions(session)
            hh = self._households_for(session, url, versions["households"])
            key = (url, radius_m, include_planned)
            entry = self._models.get(key)
            stats: dict[str, Any] = {"edits": 0, "households_examined": 0}
            if entry is not None and entry.households is hh and entry.version == versions["points"]:
                # Nothing written to the points since: the model is current, nothing is read.
                stats["mode"] = "kept"
            else:
                points = fetch_points(session, radius_m=radius_m, include_planned=include_planned)
                if entry is None or entry.households is not hh:
                    entry = self._build(hh, points)
                    stats["mode"] = "full"
                else:
                    self._sync(entry, points, stats)
                entry.version = versions["points"]
            self._models[key] = entry
            self._models.move_to_end(key)
            while len(self._models) > self._max_models:
                self._models.popitem(last=False)
            stats["seconds"] = round(time.perf_counter() - started, 4)
            yield hh, entry.model, stats

    def _households_for(self, session: Session, url: str, version: tuple[Any, ...]) -> Households:
        kept = self._households.get(url)
        if kept is not None and kept.fingerprint == version:
            return kept
        arr = _read_households(session)
        hh = Households(
            fingerprint=version,
            ids=arr[:, 0].astype(np.int64),
            lon=arr[:, 1].copy(),
            lat=arr[:, 2].copy(),
            people=arr[:, 3].copy(),
            grid_id=arr[:, 4].astype(np.int64),
        )
        self._households[url] = hh
        LOGGER.info("coverage: fetched %d households", hh.ids.size)
        return hh

    @staticmethod
    def _build(hh: Households, points: dict[int, tuple[float, float, float]]) -> _Entry:
        ids = list(points)
        arr = np.array([points[i] for i in ids], dtype=np.float64).reshape(-1, 3)
        model = CoverageModel(hh.lon, hh.lat, arr[:, 0], arr[:, 1], arr[:, 2], sp_ids=ids)
        return _Entry(hh, model, dict(points))

    def _sync(
        self, entry: _Entry, points: dict[int, tuple[float, float, float]], stats: dict[str, Any]
    ) -> None:
        kept = entry.points
        gone = [i for i in kept if i not in points]
        new = [i for i in points if i not in kept]
        changed = [i for i in points if i in kept and points[i] != kept[i]]
        edits = len(gone) + len(new) + len(changed)
        stats["edits"] = edits
        if edits == 0:
            stats["mode"] = "kept"
            return
        if edits > max(10, INCREMENTAL_SHARE * max(len(kept), len(points))):
            fresh = self._build(entry.households, points)
            entry.model, entry.points = fresh.model, fresh.points
            stats["mode"] = "full"
            return
        examined = 0
        model = entry.model
        for i in gone:
            examined += model.remove(i).examined
        for i in changed:
            lon, lat, r = points[i]
            old = kept[i]
            if (lon, lat) != old[:2]:
                examined += model.move(i, lon, lat).examined
            if r != old[2]:
                examined += model.set_radius(i, r).examined
        for i in new:
            lon, lat, r = points[i]
            examined += model.add(i, lon, lat, r).examined
        entry.points = dict(points)
        stats["mode"] = "incremental"
        stats["households_examined"] = examined


CACHE = CoverageCache()

_HOUSEHOLD_COLUMNS = "id::float8, ST_X(geom), ST_Y(geom), people::float8, grid_id::float8"
# A row of PostgreSQL's binary COPY of five float8 columns: the field count, then each field's
# length and its big-endian value.
_COPY_ROW = np.dtype(
    [("fields", ">i2")] + [item for k in range(5) for item in ((f"n{k}", ">i4"), (f"v{k}", ">f8"))]
)
_COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"


def _read_households(session: Session) -> np.ndarray:
    """Every household's id, lon, lat, people and grid id as one (n, 5) float array, read by a
    binary COPY (a million rows in well under a second, where fetching rows as Python tuples
    takes many); the plain row fetch when the copy is not in the expected form."""
    sql = f"SELECT {_HOUSEHOLD_COLUMNS} FROM household ORDER BY id"
    raw = session.connection().connection
    buf = bytearray()
    with raw.cursor() as cur, cur.copy(f"COPY ({sql}) TO STDOUT (FORMAT binary)") as copy:
        for block in copy:
            buf += block
    header = 19  # signature, flags, header extension length
    body = len(buf) - header - 2  # the trailer: a field count of -1
    if (
        bytes(buf[:11]) == _COPY_SIGNATURE
        and buf[15:19] == b"\x00\x00\x00\x00"
        and body >= 0
        and body % _COPY_ROW.itemsize == 0
    ):
        rec = np.frombuffer(buf, dtype=_COPY_ROW, offset=header, count=body // _COPY_ROW.itemsize)
        if (rec["fields"] == 5).all() and all((rec[f"n{k}"] == 8).all() for k in range(5)):
            return np.column_stack([rec[f"v{k}"].astype(np.float64) for k in range(5)])
    rows = session.execute(text(sql)).all()
    return np.array(rows, dtype=np.float64).reshape(-1, 5)


def data_versions(session: Session) -> dict[str, tuple[Any, ...]]:
    """The data versions of the households and of the points: one row each, bumped by a
    statement trigger on every insert, update, delete or truncate of their tables (revision
    0010, ``map_layer_version``). The row's ``xmin`` (the transaction, or savepoint, that wrote
    it) is part of the version, so that a number reused after a rolled-back write is never
    taken for the one before."""
    rows = session.execute(
        text(
            "SELECT layer, version, xmin::text AS writer FROM map_layer_version"
            " WHERE layer IN ('households', 'points')"
        )
    ).all()
    found = {r.layer: (int(r.version), r.writer) for r in rows}
    return {layer: found.get(layer, (0, None)) for layer in ("households", "points")}


def fetch_points(
    session: Session, *, radius_m: float | None, include_planned: bool
) -> dict[int, tuple[float, float, float]]:
    """Return {id: (lon, lat, radius)} of the service points that serve (active, maybe planned)."""
    statuses = ["active", "planned"] if include_planned else ["active"]
    rows = session.execute(
        text(
            "SELECT id, ST_X(geom), ST_Y(geom), radius_m FROM service_point"
            " WHERE status = ANY(:st) ORDER BY id"
        ),
        {"st": statuses},
    ).all()
    return {
        int(r[0]): (float(r[1]), float(r[2]), float(radius_m if radius_m else r[3])) for r in rows
    }


# --------------------------------------------------------------------------- grids


@dataclass
class _GridIndex:
    rows: dict[int, Any]
    children: dict[int, list[int]]

    def subtree(self, grid_id: int) -> set[int]:
        out, todo = set(), [grid_id]
        while todo:
            g = todo.pop()
            out.add(g)
            todo.extend(self.children.get(g, []))
        return out

    def ancestor_at(self, grid_id: int, level: int) -> int | None:
        g: int | None = grid_id
        while g is not None:
            row = self.rows.get(g)
            if row is None or row.level < level:
                return None
            if row.level == level:
                return g
            g = row.parent_id
        return None


def _grid_index(session: Session) -> _GridIndex:
    rows = session.execute(
        text("SELECT id, parent_id, level, code, name, valid_to IS NULL AS current FROM grid")
    ).all()
    children: dict[int, list[int]] = {}
    for r in rows:
        if r.parent_id is not None and r.current:
            children.setdefault(r.parent_id, []).append(r.id)
    return _GridIndex({r.id: r for r in rows}, children)


def _grid_shapes(session: Session, ids: list[int]) -> dict[int, Any]:
    if not ids:
        return {}
    rows = session.execute(
        text("SELECT id, ST_AsBinary(geom) FROM grid WHERE id = ANY(CAST(:ids AS integer[]))"),
        {"ids": ids},
    ).all()
    return {r[0]: shapely.from_wkb(bytes(r[1])) for r in rows}


def _territory(session: Session, index: _GridIndex, grid_id: int | None) -> Any:
    """Return the polygon of the selected grid, or of all current top-level grids."""
    if grid_id is not None:
        return _grid_shapes(session, [grid_id])[grid_id]
    tops = [i for i, r in index.rows.items() if r.current and r.parent_id is None]
    shapes = list(_grid_shapes(session, tops).values())
    return shapely.union_all(shapes) if shapes else shapely.Polygon()


def _selection(
    session: Session, hh: Households, grid_id: int | None
) -> tuple[_GridIndex, np.ndarray, Any]:
    """Return the grid index, the households in the selection (mask) and the grid row."""
    index = _grid_index(session)
    if grid_id is None:
        return index, np.ones(hh.ids.size, dtype=bool), None
    row = index.rows.get(grid_id)
    if row is None or not row.current:
        raise NotFound(f"grid {grid_id} does not exist", grid_id=grid_id)
    inside = np.fromiter(index.subtree(grid_id), dtype=np.int64)
    return index, np.isin(hh.grid_id, inside), row


def _grid_ref(row: Any) -> dict[str, Any] | None:
    if row is None:
        return None
    return {"id": row.id, "code": row.code, "name": row.name, "level": row.level}


# --------------------------------------------------------------------------- figures


def _clean(value: Any) -> Any:
    """Return JSON-safe numbers: None for NaN/inf, plain ints and floats."""
    if value is None:
        return None
    if isinstance(value, (np.integer, int)) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, (np.floating, float)):
        f = float(value)
        if not math.isfinite(f):
            return None
        return int(f) if f.is_integer() and abs(f) < 2**53 else round(f, 6)
    return value


def check_radius(radius_m: float | None, name: str = "radius_m") -> float | None:
    """Refuse radii outside (0, 50 km]."""
    if radius_m is None:
        return None
    if not (math.isfinite(radius_m) and 0 < radius_m <= MAX_RADIUS_M):
        raise BadParameter(name, f"{radius_m} m is outside 0..{MAX_RADIUS_M:.0f} m")
    return float(radius_m)


def coverage_report(
    session: Session,
    *,
    radius_m: float | None = None,
    level: int = 3,
    grid_id: int | None = None,
    include_planned: bool = False,
    with_area: bool = True,
    geometry: bool = False,
) -> dict[str, Any]:
    """Return overall and per-grid coverage: households, people, shares, area, distances.

    ``radius_m`` overrides every point's own radius (e.g. the five-minute preset); ``level``
    chooses the grids of the table; ``grid_id`` restricts everything to one grid's territory.
    With ``geometry`` the per-grid table comes as a GeoJSON FeatureCollection.
    """
    radius_m = check_radius(radius_m)
    if not 1 <= level <= 5:
        raise BadParameter("level", f"{level} is outside 1..5")
    with CACHE.use(session, radius_m=radius_m, include_planned=include_planned) as kept:
        return _report(
            session, *kept, radius_m, level, grid_id, include_planned, with_area, geometry
        )


def _report(
    session: Session,
    hh: Households,
    model: CoverageModel,
    stats: dict[str, Any],
    radius_m: float | None,
    level: int,
    grid_id: int | None,
    include_planned: bool,
    with_area: bool,
    geometry: bool,
) -> dict[str, Any]:
    index, mask, selected = _selection(session, hh, grid_id)
    sel = np.flatnonzero(mask)
    leaves, inverse = np.unique(hh.grid_id[sel], return_inverse=True)
    at_level = np.array(
        [index.ancestor_at(g, level) or -1 for g in leaves.tolist()], dtype=np.int64
    )
    label = at_level[inverse.reshape(-1)] if sel.size else np.zeros(0, dtype=np.int64)
    summary = summarize(model.covered[sel], model.nearest_m[sel], people=hh.people[sel], grid=label)
    # Every current grid of the level in the selection, with or without households.
    level_ids = sorted(
        i
        for i, r in index.rows.items()
        if r.current
        and r.level == level
        and (selected is None or index.ancestor_at(i, selected.level) == selected.id)
    )
    empty = summarize(np.zeros(0, bool), np.zeros(0), grid=np.zeros(0, dtype=np.int64))
    rows: dict[int, dict[str, Any]] = {}
    for gid in level_ids:
        r = index.rows[gid]
        figures = summary.grids.loc[gid].to_dict() if gid in summary.grids.index else empty.totals
        rows[gid] = {"id": gid, "code": r.code, "name": r.name, "level": r.level} | {
            k: _clean(figures.get(k)) for k in FIGURES
        }
    totals = {k: _clean(summary.totals[k]) for k in FIGURES}
    shapes: dict[int, Any] = {}
    if with_area or geometry:
        shapes = _grid_shapes(session, level_ids)
    if with_area:
        territory = _territory(session, index, grid_id)
        sp = _model_points(model)
        areas = area_coverage(
            [territory, *[shapes[g] for g in level_ids]], sp[:, 0], sp[:, 1], sp[:, 2]
        )
        for target, a in zip([totals, *[rows[g] for g in level_ids]], areas, strict=True):
            target["area_m2"] = _clean(a.area_m2)
            target["area_covered_m2"] = _clean(a.covered_m2)
            target["area_covered_share"] = _clean(a.share)
    grids: Any = [rows[g] for g in level_ids]
    if geometry:
        grids = {
            "type": "FeatureCollection",
            "features": [
                {
                    "type": "Feature",
                    "id": g,
                    "geometry": mapping(shapely.set_precision(shapes[g], 1e-7)),
                    "properties": rows[g],
                }
                for g in level_ids
            ],
        }
    return {
        "radius_m": radius_m,
        "radius_source": "override" if radius_m else "each point's own radius",
        "include_planned": include_planned,
        "level": level,
        "grid": _grid_ref(selected),
        "service_points": len(model.service_ids),
        "totals": totals,
        "grids": grids,
        "distance": "WGS84 geodesic (true ground distance)",
        "computed": stats,
    }


def _model_points(model: CoverageModel) -> np.ndarray:
    pts = [model.service_point(i) for i in model.service_ids]
    return np.array(pts, dtype=np.float64).reshape(-1, 3)


def _aggregate_points(
    lon: np.ndarray, lat: np.ndarray, people: np.ndarray
) -> list[tuple[float, float, int, int]]:
    """Group households at the same spot: (lon, lat, households, people); no one is named."""
    if lon.size == 0:
        return []
    key = np.column_stack([np.round(lon, 7), np.round(lat, 7)])
    uniq, inverse, counts = np.unique(key, axis=0, return_inverse=True, return_counts=True)
    ppl = np.bincount(inverse.reshape(-1), weights=people, minlength=uniq.shape[0])
    return [
        (float(x), float(y), int(c), int(p)) for (x, y), c, p in zip(uniq, counts, ppl, strict=True)
    ]


def uncovered(
    session: Session,
    *,
    radius_m: float | None = None,
    grid_id: int | None = None,
    include_planned: bool = False,
    layers: tuple[str, ...] = ("households", "area"),
) -> dict[str, Any]:
    """Return uncovered households (points with counts, no personal data) and uncovered area."""
    radius_m = check_radius(radius_m)
    with CACHE.use(session, radius_m=radius_m, include_planned=include_planned) as kept:
        return _uncovered(session, *kept, radius_m, grid_id, include_planned, layers)


def _uncovered(
    session: Session,
    hh: Households,
    model: CoverageModel,
    stats: dict[str, Any],
    radius_m: float | None,
    grid_id: int | None,
    include_planned: bool,
    layers: tuple[str, ...],
) -> dict[str, Any]:
    index, mask, selected = _selection(session, hh, grid_id)
    features: list[dict[str, Any]] = []
    out = mask & ~model.covered
    if "households" in layers:
        for x, y, n, p in _aggregate_points(hh.lon[out], hh.lat[out], hh.people[out]):
            features.append(
                {
                    "type": "Feature",
                    "geometry": {"type": "Point", "coordinates": [x, y]},
                    "properties": {"layer": "households", "households": n, "people": p},
                }
            )
    if "area" in layers:
        territory = _territory(session, index, grid_id)
        sp = _model_points(model)
        (a,) = area_coverage([territory], sp[:, 0], sp[:, 1], sp[:, 2])
        if not a.uncovered.is_empty:
            features.append(
                {
                    "type": "Feature",
                    "geometry": mapping(shapely.set_precision(a.uncovered, 1e-7)),
                    "properties": {
                        "layer": "area",
                        "area_m2": _clean(a.area_m2 - a.covered_m2),
                        "share_of_territory": _clean(1 - a.share if a.share is not None else None),
                    },
                }
            )
    return {
        "type": "FeatureCollection",
        "features": features,
        "households_uncovered": int(out.sum()),
        "people_uncovered": int(hh.people[out].sum()),
        "radius_m": radius_m,
        "include_planned": include_planned,
        "grid": _grid_ref(selected),
        "computed": stats,
    }


def circles(
    session: Session,
    *,
    radius_m: float | None = None,
    include_planned: bool = False,
    scope: frozenset[int] | None = None,
) -> dict[str, Any]:
    """Return each serving point's circle, true to its radius on the ground, as GeoJSON
    (``scope``: only the points in these grids)."""
    radius_m = check_radius(radius_m)
    statuses = ["active", "planned"] if include_planned else ["active"]
    rows = session.execute(
        text(
            "SELECT id, name, kind, status, radius_m, ST_X(geom) AS lon, ST_Y(geom) AS lat"
            " FROM service_point WHERE status = ANY(:st)"
            " AND (CAST(:scope AS int[]) IS NULL OR grid_id = ANY(CAST(:scope AS int[])))"
            " ORDER BY id"
        ),
        {"st": statuses, "scope": None if scope is None else sorted(scope)},
    ).all()
    features = []
    for r in rows:
        radius = radius_m or r.radius_m
        features.append(
            {
                "type": "Feature",
                "id": r.id,
                "geometry": mapping(geodesic_circle(r.lon, r.lat, radius)),
                "properties": {
                    "id": r.id,
                    "name": r.name,
                    "kind": r.kind,
                    "kind_name": SERVICE_POINT_KINDS.get(r.kind, r.kind),
                    "status": r.status,
                    "radius_m": radius,
                    "centre": [r.lon, r.lat],
                },
            }
        )
    return {"type": "FeatureCollection", "features": features}


# --------------------------------------------------------------------------- recommendation


def _candidate_points(
    session: Session,
    hh: Households,
    open_mask: np.ndarray,
    source: str,
    selected: Any,
    index: _GridIndex,
    spacing_m: float,
    max_candidates: int,
) -> tuple[np.ndarray, np.ndarray]:
    if source == "households":
        lon, lat, _ = candidates_from_households(
            hh.lon, hh.lat, open_mask, spacing_m=spacing_m, max_candidates=max_candidates
        )
        return lon, lat
    # "blocks": a point inside every current leaf grid of the selection.
    leaves = [
        i
        for i, r in index.rows.items()
        if r.current
        and not index.children.get(i)
        and (selected is None or index.ancestor_at(i, selected.level) == selected.id)
    ]
    if not leaves:
        return np.zeros(0), np.zeros(0)
    rows = session.execute(
        text(
            "SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_PointOnSurface(geom) AS p FROM grid"
            " WHERE id = ANY(CAST(:ids AS integer[])) ORDER BY code) s"
        ),
        {"ids": leaves},
    ).all()
    arr = np.array(rows, dtype=np.float64).reshape(-1, 2)
    return arr[:max_candidates, 0], arr[:max_candidates, 1]


def parse_candidates(raw: Any, crs: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Return lon/lat arrays from [[x, y], …] or a GeoJSON FeatureCollection of points."""
    pts: list[Any]
    if isinstance(raw, dict) and raw.get("type") == "FeatureCollection":
        try:
            pts = [f["geometry"]["coordinates"][:2] for f in raw.get("features", [])]
        except (KeyError, TypeError) as exc:
            raise BadParameter("candidates", "every feature needs a Point geometry") from exc
    elif isinstance(raw, list):
        pts = raw
    else:
        raise BadParameter("candidates", "give [[lon, lat], …] or a FeatureCollection of points")
    try:
        arr = np.array(pts, dtype=np.float64).reshape(-1, 2)
    except (TypeError, ValueError) as exc:
        raise BadParameter("candidates", "every candidate must be two numbers [x, y]") from exc
    if arr.shape[0] == 0:
        raise BadParameter("candidates", "the list is empty")
    lon, lat = to_wgs84(arr[:, 0], arr[:, 1], crs, what="candidates")
    return np.asarray(lon), np.asarray(lat)


def recommend(
    session: Session,
    *,
    k: int,
    radius_m: float | None = None,
    new_radius_m: float | None = None,
    candidates: tuple[np.ndarray, np.ndarray] | None = None,
    source: Literal["households", "blocks"] = "households",
    grid_id: int | None = None,
    include_planned: bool = False,
    method: Literal["auto", "exact", "greedy"] = "auto",
    weight: Literal["households", "people"] = "households",
    spacing_m: float | None = None,
    max_candidates: int = 1000,
    default_radius_m: float = DEFAULT_RADIUS_M,
    time_limit_s: float = 10.0,
) -> dict[str, Any]:
    """Choose k new sites that newly cover the most households; existing points stay fixed.

    Existing points serve with ``radius_m`` (or each its own radius); new sites serve with
    ``new_radius_m`` (default ``radius_m``, else ``default_radius_m``). Candidates are given, or
    drawn from uncovered households' locations ("households") or from a point inside every
    leaf grid ("blocks"). Only households of the selected grid count.
    """
    radius_m = check_radius(radius_m)
    new_radius = check_radius(new_radius_m, "new_radius_m") or radius_m or default_radius_m
    if not 1 <= k <= MAX_K:
        raise BadParameter("k", f"{k} is outside 1..{MAX_K}")
    if source not in ("households", "blocks"):
        raise BadParameter("source", f"'{source}' is neither 'households' nor 'blocks'")
    if method not in ("auto", "exact", "greedy"):
        raise BadParameter("method", f"'{method}' is not auto, exact or greedy")
    if weight not in ("households", "people"):
        raise BadParameter("weight", f"'{weight}' is neither 'households' nor 'people'")
    lo, hi = SPACING_RANGE_M
    if spacing_m is not None and not (math.isfinite(spacing_m) and lo <= spacing_m <= hi):
        raise BadParameter("spacing_m", f"{spacing_m} m is outside {lo:.0f}..{hi:.0f} m")
    if not 1 <= max_candidates <= MAX_CANDIDATES:
        raise BadParameter("max_candidates", f"{max_candidates} is outside 1..{MAX_CANDIDATES}")
    with CACHE.use(session, radius_m=radius_m, include_planned=include_planned) as kept:
        hh, model, stats = kept
        covered = model.covered.copy()  # the solver may take seconds: let others go on
    index, mask, selected = _selection(session, hh, grid_id)
    open_mask = mask & ~covered
    if candidates is None:
        spacing = spacing_m or max(25.0, new_radius / 4.0)
        c_lon, c_lat = _candidate_points(
            session, hh, open_mask, source, selected, index, spacing, max_candidates
        )
        candidate_source = source
    else:
        c_lon, c_lat = candidates
        candidate_source = "given"
    w = hh.people if weight == "people" else np.ones(hh.ids.size)
    rec = recommend_sites(
        hh.lon,
        hh.lat,
        ~open_mask,  # outside the selection counts as nothing to gain
        c_lon,
        c_lat,
        k,
        radius_m=new_radius,
        weights=w,
        method=method,
        time_limit_s=time_limit_s,
    )
    sites = []
    newly = np.zeros(hh.ids.size, dtype=bool)
    for rank, s in enumerate(rec.sites, start=1):
        idx = s.households
        newly[idx] = True
        sites.append(
            {
                "rank": rank,
                "candidate": s.candidate,
                "lon": s.lon,
                "lat": s.lat,
                "radius_m": new_radius,
                "circle": mapping(geodesic_circle(s.lon, s.lat, new_radius)),
                "gain_households": int(idx.size),
                "gain_people": int(hh.people[idx].sum()),
                "alone": _clean(s.alone),
                "grid": _grid_ref(_leaf_row(session, index, s.lon, s.lat)),
                "households": [
                    [x, y, n]
                    for x, y, n, _ in _aggregate_points(hh.lon[idx], hh.lat[idx], hh.people[idx])
                ],
            }
        )
    total = int(mask.sum())
    before = int((mask & covered).sum())
    return {
        "k": k,
        "weight": weight,
        "radius_m": radius_m,
        "new_radius_m": new_radius,
        "grid": _grid_ref(selected),
        "include_planned": include_planned,
        "candidate_source": candidate_source,
        "candidates": int(c_lon.size),
        "method": rec.method,
        "optimal": rec.optimal,
        "guarantee": rec.guarantee,
        "upper_bound": _clean(rec.upper_bound),
        "quality": rec.describe(),
        "total_gain": _clean(rec.total_gain),
        "gain_households": int(newly.sum()),
        "gain_people": int(hh.people[newly].sum()),
        "households": total,
        "households_covered_before": before,
        "households_covered_after": before + int(newly.sum()),
        "sites": sites,
        "computed": stats,
    }


def _leaf_row(session: Session, index: _GridIndex, lon: float, lat: float) -> Any:
    gid = _leaf_grid_at(session, lon, lat)
    return index.rows.get(gid) if gid is not None else None


def _leaf_grid_at(session: Session, lon: float, lat: float) -> int | None:
    """Return the current leaf grid containing the point (the smallest code on a shared edge)."""
    return session.execute(
        text(
            f"""
            SELECT g.id FROM grid g
            WHERE g.valid_to IS NULL
              AND ST_Covers(g.geom, ST_SetSRID(ST_MakePoint(:lon, :lat), 4326))
              AND {grid_tree.is_leaf("g")}
            ORDER BY g.code LIMIT 1
            """
        ),
        {"lon": lon, "lat": lat},
    ).scalar()


def accept_site(
    session: Session,
    *,
    lon: float,
    lat: float,
    name: str | None = None,
    kind: str = "station",
    radius_m: float = DEFAULT_RADIUS_M,
    crs: str | None = None,
) -> dict[str, Any]:
    """Record a recommended site as a planned service point; return it as a GeoJSON Feature."""
    if not isinstance(kind, str) or kind not in SERVICE_POINT_KINDS:
        raise BadParameter("kind", f"'{kind}' is not one of {', '.join(SERVICE_POINT_KINDS)}")
    radius = check_radius(radius_m)
    x, y = to_wgs84(np.array([lon], dtype=float), np.array([lat], dtype=float), crs, what="site")
    lon, lat = float(x[0]), float(y[0])
    grid_id = _leaf_grid_at(session, lon, lat)
    if not name:
        grid_name = session.execute(
            text("SELECT name FROM grid WHERE id = :id"), {"id": grid_id}
        ).scalar()
        name = f"{grid_name or ''}规划{SERVICE_POINT_KINDS[kind]}"
    point = ServicePoint(
        name=name[:120],
        kind=kind,
        geom=from_shape(Point(lon, lat), srid=4326),
        radius_m=radius,
        status="planned",
        grid_id=grid_id,
    )
    session.add(point)
    session.flush()
    LOGGER.info("coverage: planned service point %d at %.7f, %.7f", point.id, lon, lat)
    return {
        "type": "Feature",
        "id": point.id,
        "geometry": {"type": "Point", "coordinates": [lon, lat]},
        "properties": {
            "id": point.id,
            "name": point.name,
            "kind": kind,
            "kind_name": SERVICE_POINT_KINDS[kind],
            "radius_m": radius,
            "status": "planned",
            "grid_id": grid_id,
        },
    }
