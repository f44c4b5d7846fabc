"""Import and export grids, households, workers, service points, cameras and departments.

Every import validates every record first and reports bad ones by row/feature with the reason;
then it loads everything in the caller's transaction, so a failed import leaves nothing behind.
Households are loaded with COPY after their leaf grid is found by location in one bulk pass.
"""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from geoalchemy2.shape import from_shape
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from app.errors import BadParameter, ImportRejected
from app.models import Camera, Department, Grid, GridAssignment, ServicePoint, Worker
from app.models.people import ROLES, SENSITIVE_TAGS
from app.models.places import CAMERA_KINDS, SERVICE_POINT_KINDS
from app.services import grid_tree, tables
from gis.assign import assign_points
from gis.crs import geodesic_area_m2
from gis.validate import HIERARCHY_TOLERANCE_M2

LOGGER = logging.getLogger(__name__)
Progress = Callable[[str, int, int], None]

KINDS = (
    "departments",
    "grids",
    "workers",
    "assignments",
    "households",
    "service_points",
    "cameras",
)
# The project's own basemap (roads, buildings, water …): a CLI import (`gridgov import basemap`),
# not one of the HTTP import kinds.
BASEMAP_KIND = "basemap"
SAMPLE_BASEMAP = (
    # (file, basemap kind for every row or None for the file's own column, field mapping)
    ("roads.geojson", "road", {"class": "kind"}),
    ("basemap.geojson", None, {}),
)
# Road classes as files name them → the basemap's classes (which set the zoom they appear at).
ROAD_CLASSES = {"main": "primary", "arterial": "primary", "lane": "minor", "residential": "minor",
                "service": "minor", "street": "minor"}
LINE_KINDS = ("road", "rail")
SAMPLE_DIR = Path(__file__).resolve().parents[2] / "data" / "sample_boundaries"
SAMPLE_FILES = {
    "departments": "departments.csv",
    "grids": "grids.geojson",
    "workers": "workers.csv",
    "assignments": "assignments.csv",
    "households": "households.csv",
    "service_points": "service_points.geojson",
    "cameras": "cameras.geojson",
}
# Area (m²) of a child outside its parent, or of two siblings' overlap, tolerated as rounding noise.
TOPOLOGY_TOLERANCE_M2 = HIERARCHY_TOLERANCE_M2
COPY_CHUNK = 100_000


def _noop(stage: str, done: int, total: int) -> None:
    return None


def _where(frame: pd.DataFrame, i: int) -> str:
    return (
        f"feature {i + 1}"
        if isinstance(frame, gpd.GeoDataFrame) and "lon" not in frame
        else f"row {i + 2}"
    )


def _require(frame: pd.DataFrame, source: str, columns: tuple[str, ...]) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise BadParameter(
            "columns",
            f"{source}: missing column(s) {', '.join(missing)} (found {', '.join(map(str, frame.columns))}); "
            "use the field mapping option to name them",
        )


def _str(value: Any) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    return str(value).strip()


def import_file(
    session: Session,
    kind: str,
    path: str | Path,
    *,
    crs: str | None = None,
    mapping: Mapping[str, str] | None = None,
    progress: Progress = _noop,
    scope: frozenset[int] | None = None,
    feature_kind: str | None = None,
) -> int:
    """Import one file of the given kind; return the number of records loaded.

    ``scope`` (the importing account's grids; None: every grid) admits only records that fall
    in those grids — households, cameras and service points by location, assignments by grid —
    and refuses the whole file otherwise, naming each record. Other kinds take no scope.
    ``feature_kind`` (kind ``basemap`` only) gives every row that basemap kind (road, building,
    water, green, rail) instead of the file's ``kind`` column.
    """
    if kind == BASEMAP_KIND:
        if scope is not None:
            raise BadParameter("kind", "basemap features belong to no grid: they cannot be scoped")
        frame = tables.read_records(path, crs=crs, mapping=mapping, need_geometry=True)
        progress("read", len(frame), len(frame))
        return import_basemap(session, frame, source=Path(path).name, kind=feature_kind)
    if kind not in KINDS:
        raise BadParameter("kind", f"unknown kind '{kind}' (use {', '.join(KINDS)})")
    if scope is not None and kind not in SCOPED_KINDS:
        raise BadParameter("kind", f"'{kind}' records belong to no grid: they cannot be scoped")
    source = Path(path).name
    spatial = kind in ("grids", "households", "service_points", "cameras")
    frame = tables.read_records(path, crs=crs, mapping=mapping, need_geometry=spatial)
    progress("read", len(frame), len(frame))
    loader = {
        "departments": import_departments,
        "grids": import_grids,
        "workers": import_workers,
        "assignments": import_assignments,
        "households": import_households,
        "service_points": import_service_points,
        "cameras": import_cameras,
    }[kind]
    if kind in SCOPED_KINDS:
        return loader(session, frame, source=source, progress=progress, scope=scope)
    return loader(session, frame, source=source, progress=progress)


# Kinds whose every record falls in a grid: an import of them can be held to some grids.
SCOPED_KINDS = ("assignments", "households", "service_points", "cameras")
OUTSIDE_SCOPE = "在您负责的网格之外 / outside your grids"


# ---------------------------------------------------------------------------------------------
def import_departments(
    session: Session, frame: pd.DataFrame, *, source: str, progress: Progress = _noop
) -> int:
    """Load functional departments (code, name, phone, duties)."""
    _require(frame, source, ("code", "name"))
    problems = []
    seen: set[str] = set()
    existing = set(session.scalars(select(Department.code)))
    for i, row in frame.iterrows():
        code, name = _str(row["code"]), _str(row["name"])
        if not code or not name:
            problems.append({"where": _where(frame, i), "reason": "code and name are required"})
        elif code in seen or code in existing:
            problems.append(
                {"where": _where(frame, i), "field": "code", "reason": f"duplicate code '{code}'"}
            )
        seen.add(code)
    if problems:
        raise ImportRejected(source, problems)
    session.add_all(
        Department(
            code=_str(r["code"]),
            name=_str(r["name"]),
            phone=_str(r.get("phone")) or None,
            duties=_str(r.get("duties")) or None,
        )
        for _, r in frame.iterrows()
    )
    session.flush()
    return len(frame)


def import_grids(
    session: Session, frame: gpd.GeoDataFrame, *, source: str, progress: Progress = _noop
) -> int:
    """Load grids; each finds its parent by code (in the file or already loaded).

    Checks: code, name and level present; level 1–5 and deeper than the parent; (Multi)Polygon,
    valid; a child lies inside its parent and siblings don't overlap (checked in PostGIS after the
    insert, inside the same transaction).

    Linear in the number of grids: the checks of a row read plain lists (validity for all rows
    in one vectorised call), the grids go in with one COPY per level (a parent's level before
    its children's, parent ids looked up per level), and the hierarchy checks are two set-based
    queries that use the spatial and parent indexes.
    """
    _require(frame, source, ("code", "name", "level"))
    problems: list[dict[str, Any]] = []
    existing = dict(
        session.execute(
            select(Grid.code, Grid.level).where(Grid.valid_to.is_(None))
        ).all()
    )
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    n = len(frame)
    codes = [_str(v) for v in frame["code"]]
    names = [_str(v) for v in frame["name"]]
    raw_levels = list(frame["level"])
    parents = [_str(v) for v in frame["parent_code"]] if "parent_code" in frame.columns else [""] * n
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
        where = _where(frame, i)
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
    ids = dict(
        session.execute(select(Grid.code, Grid.id).where(Grid.valid_to.is_(None))).all()
    )
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
                "area_m2": [repr(geodesic_area_m2(g)) for g in shapes],
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
    problems = check_topology(session, new_ids)
    if problems:
        for p in problems:
            p["where"] = where_of.get(p["code"], p.get("where", ""))
        raise ImportRejected(source, problems)
    return len(rows)


def check_topology(session: Session, grid_ids: list[int]) -> list[dict[str, Any]]:
    """Return the hierarchy rules the given grids break: outside the parent, overlapping a sibling."""
    if not grid_ids:
        return []
    problems: list[dict[str, Any]] = []
    outside = session.execute(
        text(
            """
            SELECT c.code, p.code AS parent, ST_Area(ST_Difference(c.geom, p.geom)::geography) AS a,
                   ST_AsGeoJSON(ST_PointOnSurface(ST_Difference(c.geom, p.geom)), 7) AS loc
            FROM unnest(CAST(:ids AS integer[])) AS n(id)
            JOIN grid c ON c.id = n.id JOIN grid p ON p.id = c.parent_id
            WHERE NOT ST_CoveredBy(c.geom, p.geom)
            """
        ),
        {"ids": grid_ids},
    )
    for code, parent, area, loc in outside:
        if area > TOPOLOGY_TOLERANCE_M2:
            problems.append(
                {
                    "code": code,
                    "field": "geometry",
                    "reason": f"{area:.2f} m² lies outside its parent {parent}",
                    "location": loc,
                }
            )
    overlaps = session.execute(
        text(
            """
            SELECT a.code, b.code, ST_Area(ST_Intersection(a.geom, b.geom)::geography) AS a,
                   ST_AsGeoJSON(ST_PointOnSurface(ST_Intersection(a.geom, b.geom)), 7) AS loc
            FROM unnest(CAST(:ids AS integer[])) AS n(id)
            JOIN grid a ON a.id = n.id
            -- Candidates by the spatial index alone (OFFSET 0 keeps the other conditions out of
            -- this scan: the planner, without statistics for rows just loaded, would otherwise
            -- AND the partial code index into every probe, reading it whole each time).
            CROSS JOIN LATERAL (
                SELECT g.id, g.code, g.geom, g.parent_id, g.valid_to FROM grid g
                WHERE g.geom && a.geom OFFSET 0
            ) b
            LEFT JOIN unnest(CAST(:ids AS integer[])) AS nb(id) ON nb.id = b.id
            WHERE a.valid_to IS NULL AND b.valid_to IS NULL AND a.id <> b.id
              AND a.parent_id IS NOT DISTINCT FROM b.parent_id
              AND (nb.id IS NULL OR a.id < b.id) AND ST_Intersects(a.geom, b.geom)
              AND ST_Relate(a.geom, b.geom, '2********')
            """
        ),
        {"ids": grid_ids},
    )
    for code, other, area, loc in overlaps:
        if area > TOPOLOGY_TOLERANCE_M2:
            problems.append(
                {
                    "code": code,
                    "field": "geometry",
                    "reason": f"overlaps sibling {other} by {area:.2f} m²",
                    "location": loc,
                }
            )
    return problems


def import_basemap(
    session: Session,
    frame: gpd.GeoDataFrame,
    *,
    source: str,
    kind: str | None = None,
    progress: Progress = _noop,
) -> int:
    """Load basemap features (kind, class, name, min_zoom — all optional but the kind, which
    ``kind`` may give for the whole file). Roads and rails are lines, the rest polygons; a
    missing min_zoom comes from the kind and class (app.services.basemap.min_zoom)."""
    from app.models.maps import BASEMAP_KINDS
    from app.services.basemap import min_zoom

    if kind is not None and kind not in BASEMAP_KINDS:
        raise BadParameter("kind", f"basemap kind '{kind}' is not one of {', '.join(BASEMAP_KINDS)}")
    if kind is None:
        _require(frame, source, ("kind",))
    n = len(frame)
    kinds = [kind] * n if kind else [_str(v).lower() for v in frame["kind"]]
    classes = [_str(v).lower() for v in frame["class"]] if "class" in frame.columns else [""] * n
    names = [_str(v) for v in frame["name"]] if "name" in frame.columns else [""] * n
    zooms = [_str(v) for v in frame["min_zoom"]] if "min_zoom" in frame.columns else [""] * n
    geoms = np.asarray(frame.geometry.values, dtype=object)
    valid = shapely.is_valid(geoms)
    problems: list[dict[str, Any]] = []
    rows: list[tuple[str, str | None, str | None, int, Any]] = []
    for i in range(n):
        k, cls, geom = kinds[i], classes[i], geoms[i]
        if k == "road":
            cls = ROAD_CLASSES.get(cls, cls)
        reason = None
        zoom = 0
        if k not in BASEMAP_KINDS:
            reason = ("kind", f"kind '{k}' is not one of {', '.join(BASEMAP_KINDS)}")
        elif len(cls) > 20:
            reason = ("class", f"class '{cls[:30]}…' is longer than 20 characters")
        elif len(names[i]) > 120:
            reason = ("name", "name is longer than 120 characters")
        elif geom is None or geom.is_empty:
            reason = ("geometry", "no geometry")
        elif k in LINE_KINDS and geom.geom_type not in ("LineString", "MultiLineString"):
            reason = ("geometry", f"a {k} must be a LineString or MultiLineString, not {geom.geom_type}")
        elif k not in LINE_KINDS and geom.geom_type not in ("Polygon", "MultiPolygon"):
            reason = ("geometry", f"a {k} must be a Polygon or MultiPolygon, not {geom.geom_type}")
        elif not valid[i]:
            reason = ("geometry", f"invalid geometry: {shapely.is_valid_reason(geom)}")
        else:
            try:
                zoom = int(float(zooms[i])) if zooms[i] else min_zoom(k, cls)
            except ValueError:
                zoom = -1
            if not 0 <= zoom <= 22:
                reason = ("min_zoom", f"min_zoom '{zooms[i]}' is not a whole number 0–22")
        if reason:
            problems.append({"where": _where(frame, i), "field": reason[0], "reason": reason[1]})
            continue
        rows.append((k, cls or None, names[i] or None, zoom, geom))
    if problems:
        raise ImportRejected(source, problems[:1000])
    if not rows:
        return 0
    out = pd.DataFrame(
        {
            "kind": [r[0] for r in rows],
            "class": [r[1] for r in rows],
            "name": [r[2] for r in rows],
            "min_zoom": [r[3] for r in rows],
            "geom": shapely.to_wkb(
                shapely.set_srid(np.asarray([r[4] for r in rows], dtype=object), 4326),
                hex=True,
                include_srid=True,
            ),
        }
    )
    copy_frame(session, "basemap_feature", out, progress=progress)
    return len(rows)


#: A worker's phone: a mobile number (1[3-9] and nine digits) or a landline with its area code
#: (0551-65000110, 055165000110), with an optional extension.
PHONE = re.compile(r"1[3-9]\d{9}|0\d{2,3}-?\d{7,8}(?:-\d{1,6})?")


def import_workers(
    session: Session, frame: pd.DataFrame, *, source: str, progress: Progress = _noop
) -> int:
    """Load workers (code, name, phone, on_duty)."""
    _require(frame, source, ("name",))
    problems = []
    has_code = "code" in frame.columns
    existing = set(session.scalars(select(Worker.code).where(Worker.code.is_not(None))))
    seen: set[str] = set()
    for i, row in frame.iterrows():
        code = _str(row["code"]) if has_code else ""
        phone = _str(row.get("phone")) if "phone" in frame.columns else ""
        if not _str(row["name"]):
            problems.append(
                {"where": _where(frame, i), "field": "name", "reason": "name is required"}
            )
        if code and (code in seen or code in existing):
            problems.append(
                {"where": _where(frame, i), "field": "code", "reason": f"duplicate code '{code}'"}
            )
        if phone and not PHONE.fullmatch(phone.replace(" ", "")):
            problems.append(
                {
                    "where": _where(frame, i),
                    "field": "phone",
                    "reason": f"'{phone}' is not a phone number",
                }
            )
        seen.add(code)
    if problems:
        raise ImportRejected(source, problems)
    session.add_all(
        Worker(
            code=(_str(r["code"]) or None) if has_code else None,
            name=_str(r["name"]),
            phone=_str(r.get("phone")) or None,
            on_duty=_str(r.get("on_duty")).lower() not in ("false", "0", "no", "否"),
        )
        for _, r in frame.iterrows()
    )
    session.flush()
    return len(frame)


def import_assignments(
    session: Session,
    frame: pd.DataFrame,
    *,
    source: str,
    progress: Progress = _noop,
    scope: frozenset[int] | None = None,
) -> int:
    """Load who is responsible for which grid (worker_code, grid_code, role)."""
    _require(frame, source, ("worker_code", "grid_code", "role"))
    workers = dict(
        session.execute(select(Worker.code, Worker.id).where(Worker.code.is_not(None))).all()
    )
    grids = dict(session.execute(select(Grid.code, Grid.id).where(Grid.valid_to.is_(None))).all())
    problems, rows = [], []
    for i, row in frame.iterrows():
        w, g, role = _str(row["worker_code"]), _str(row["grid_code"]), _str(row["role"])
        if w not in workers:
            problems.append(
                {
                    "where": _where(frame, i),
                    "field": "worker_code",
                    "reason": f"worker '{w}' not found",
                }
            )
        elif g not in grids:
            problems.append(
                {"where": _where(frame, i), "field": "grid_code", "reason": f"grid '{g}' not found"}
            )
        elif scope is not None and grids[g] not in scope:
            problems.append(
                {"where": _where(frame, i), "field": "grid_code", "reason": f"grid '{g}': {OUTSIDE_SCOPE}"}
            )
        elif role not in ROLES:
            problems.append(
                {
                    "where": _where(frame, i),
                    "field": "role",
                    "reason": f"role '{role}' is not one of {', '.join(ROLES)}",
                }
            )
        else:
            rows.append({"worker_id": workers[w], "grid_id": grids[g], "role": role})
    if problems:
        raise ImportRejected(source, problems)
    session.bulk_insert_mappings(GridAssignment, rows)  # type: ignore[arg-type]
    session.flush()
    return len(rows)


def leaf_grids(session: Session) -> tuple[list[int], list[str], list]:
    """Return ids, codes and shapes of the current leaf grids (no current children)."""
    rows = session.execute(
        text(
            f"""
            SELECT g.id, g.code, ST_AsBinary(g.geom) FROM grid g
            WHERE g.valid_to IS NULL AND {grid_tree.is_leaf("g")}
            ORDER BY g.code
            """
        )
    ).all()
    return (
        [r[0] for r in rows],
        [r[1] for r in rows],
        list(shapely.from_wkb([bytes(r[2]) for r in rows])),
    )


def _locate_rows(
    session: Session,
    frame: gpd.GeoDataFrame,
    source: str,
    what: str,
    scope: frozenset[int] | None = None,
) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Find each point's leaf grid; report points in none, points whose given grid_code differs,
    and points in a grid outside ``scope`` (field ``location``)."""
    ids, codes, shapes = leaf_grids(session)
    if not ids:
        raise ImportRejected(
            source, [{"where": "file", "reason": "no grids are loaded yet: import grids first"}]
        )
    xs = frame.geometry.x.to_numpy()
    ys = frame.geometry.y.to_numpy()
    idx = assign_points(xs, ys, shapes, codes)
    problems = []
    for i in np.flatnonzero(idx < 0)[:1000]:
        problems.append(
            {
                "where": _where(frame, int(i)),
                "reason": f"{what} at ({xs[i]:.7f}, {ys[i]:.7f}) lies in no leaf grid",
            }
        )
    if "grid_code" in frame.columns:
        given = frame["grid_code"].astype(str).str.strip().to_numpy()
        found = np.asarray(codes, dtype=object)[np.where(idx >= 0, idx, 0)]
        wrong = np.flatnonzero((idx >= 0) & (given != "") & (given != found))
        for i in wrong[:1000]:
            problems.append(
                {
                    "where": _where(frame, int(i)),
                    "field": "grid_code",
                    "reason": f"lies in grid {found[i]}, not in {given[i]} as the file says",
                }
            )
    grid_ids = np.asarray(ids, dtype=np.int64)[np.where(idx >= 0, idx, 0)]
    if scope is not None:
        outside = np.flatnonzero((idx >= 0) & ~np.isin(grid_ids, np.fromiter(scope, np.int64)))
        for i in outside[:1000]:
            problems.append(
                {
                    "where": _where(frame, int(i)),
                    "field": "location",
                    "reason": f"{what} lies in grid {codes[idx[i]]}: {OUTSIDE_SCOPE}",
                }
            )
    return grid_ids, problems


def import_households(
    session: Session,
    frame: gpd.GeoDataFrame,
    *,
    source: str,
    progress: Progress = _noop,
    scope: frozenset[int] | None = None,
) -> int:
    """Load households in bulk (COPY); each finds its leaf grid by location."""
    n = len(frame)
    if frame.geometry.geom_type.ne("Point").any():
        bad = np.flatnonzero(frame.geometry.geom_type.ne("Point").to_numpy())
        raise ImportRejected(
            source,
            [
                {"where": _where(frame, int(i)), "reason": "household geometry must be a Point"}
                for i in bad[:1000]
            ],
        )
    problems: list[dict[str, Any]] = []
    people = (
        pd.to_numeric(frame["people"], errors="coerce")
        if "people" in frame.columns
        else pd.Series(np.ones(n))
    )
    for i in np.flatnonzero(~(people.between(0, 200)).to_numpy())[:1000]:
        problems.append(
            {
                "where": _where(frame, int(i)),
                "field": "people",
                "reason": f"people '{frame['people'].iat[i]}' is not a number 0–200",
            }
        )
    members: dict[str, int] = {}
    member_ids = np.full(n, -1, dtype=np.int64)
    if "linked_member_code" in frame.columns:
        members = dict(
            session.execute(select(Worker.code, Worker.id).where(Worker.code.is_not(None))).all()
        )
        codes = frame["linked_member_code"].astype(str).str.strip()
        member_ids = codes.map(members).fillna(-1).astype(np.int64).to_numpy()
        for i in np.flatnonzero((member_ids < 0) & (codes != "").to_numpy())[:1000]:
            problems.append(
                {
                    "where": _where(frame, int(i)),
                    "field": "linked_member_code",
                    "reason": f"worker '{codes.iat[i]}' not found",
                }
            )
    tags = frame["tags"].astype(str).str.strip() if "tags" in frame.columns else pd.Series([""] * n)
    known = set(SENSITIVE_TAGS)
    bad_tags = tags.map(
        lambda t: [x for x in t.replace(",", ";").split(";") if x and x not in known]
    )
    for i in np.flatnonzero(bad_tags.map(bool).to_numpy())[:1000]:
        problems.append(
            {
                "where": _where(frame, int(i)),
                "field": "tags",
                "reason": f"unknown tag(s) {', '.join(bad_tags.iat[i])} (known: {', '.join(known)})",
            }
        )
    grid_ids, located = _locate_rows(session, frame, source, "household", scope)
    problems += located
    if problems:
        raise ImportRejected(source, problems)
    progress("located", n, n)
    out = pd.DataFrame(
        {
            "geom": "SRID=4326;POINT("
            + frame.geometry.x.map(repr)
            + " "
            + frame.geometry.y.map(repr)
            + ")",
            "building": _text_col(frame, "building"),
            "unit": _text_col(frame, "unit"),
            "room": _text_col(frame, "room"),
            "address": _text_col(frame, "address"),
            "people": people.fillna(1).astype(int),
            "grid_id": grid_ids,
            "linked_member_id": pd.Series(member_ids).where(member_ids >= 0, None).astype("Int64"),
            "tags": "{" + tags.str.replace(";", ",", regex=False) + "}",
            "head_name": _text_col(frame, "head_name"),
            "head_phone": _text_col(frame, "head_phone"),
        }
    )
    copy_frame(session, "household", out, progress=progress)
    return n


def _text_col(frame: pd.DataFrame, name: str) -> pd.Series:
    if name not in frame.columns:
        return pd.Series([None] * len(frame), dtype=object)
    col = frame[name].astype(str).str.strip()
    return col.where(col != "", None)


def copy_frame(
    session: Session, table: str, frame: pd.DataFrame, *, progress: Progress = _noop
) -> None:
    """COPY a frame into a table in chunks, inside the session's transaction."""
    raw = session.connection().connection.driver_connection
    cols = ", ".join(f'"{c}"' for c in frame.columns)
    total = len(frame)
    with (
        raw.cursor() as cur,
        cur.copy(f"COPY \"{table}\" ({cols}) FROM STDIN WITH (FORMAT csv, NULL '\\N')") as copy,
    ):
        for start in range(0, total, COPY_CHUNK):
            buf = io.StringIO()
            frame.iloc[start : start + COPY_CHUNK].to_csv(
                buf, index=False, header=False, na_rep="\\N"
            )
            copy.write(buf.getvalue())
            progress("copied", min(start + COPY_CHUNK, total), total)


def _point_rows(
    session: Session,
    frame: gpd.GeoDataFrame,
    source: str,
    what: str,
    *,
    required_leaf: bool,
    scope: frozenset[int] | None = None,
) -> tuple[np.ndarray, list[dict[str, Any]]]:
    bad = np.flatnonzero(frame.geometry.geom_type.ne("Point").to_numpy())
    problems = [
        {"where": _where(frame, int(i)), "reason": f"{what} geometry must be a Point"}
        for i in bad[:1000]
    ]
    if problems:
        return np.zeros(0, dtype=np.int64), problems
    grid_ids, located = _locate_rows(session, frame, source, what, scope)
    if not required_leaf and scope is None:
        # Outside every grid is allowed, unless the import is held to some grids.
        located = [p for p in located if p.get("field") in ("grid_code", "location")]
    return grid_ids, located


def import_service_points(
    session: Session,
    frame: gpd.GeoDataFrame,
    *,
    source: str,
    progress: Progress = _noop,
    scope: frozenset[int] | None = None,
) -> int:
    """Load service points (name, kind, radius_m); the leaf grid is found by location when any."""
    _require(frame, source, ("name", "kind"))
    grid_ids, problems = _point_rows(
        session, frame, source, "service point", required_leaf=False, scope=scope
    )
    ids, codes, shapes = leaf_grids(session)
    idx = assign_points(frame.geometry.x.to_numpy(), frame.geometry.y.to_numpy(), shapes, codes)
    radius = (
        pd.to_numeric(frame["radius_m"], errors="coerce")
        if "radius_m" in frame.columns
        else pd.Series(np.full(len(frame), 1000.0))
    )
    for i in range(len(frame)):
        kind = _str(frame["kind"].iat[i])
        if kind not in SERVICE_POINT_KINDS:
            problems.append(
                {
                    "where": _where(frame, i),
                    "field": "kind",
                    "reason": f"kind '{kind}' is not one of {', '.join(SERVICE_POINT_KINDS)}",
                }
            )
        if not 0 < radius.iat[i] <= 50000:
            problems.append(
                {
                    "where": _where(frame, i),
                    "field": "radius_m",
                    "reason": f"radius '{frame['radius_m'].iat[i]}' is not 0–50000 m",
                }
            )
    if problems:
        raise ImportRejected(source, problems)
    session.add_all(
        ServicePoint(
            name=_str(frame["name"].iat[i]),
            kind=_str(frame["kind"].iat[i]),
            geom=from_shape(frame.geometry.iat[i], srid=4326),
            radius_m=float(radius.iat[i]),
            status=_str(frame["status"].iat[i])
            if "status" in frame.columns and _str(frame["status"].iat[i])
            else "active",
            grid_id=ids[idx[i]] if idx[i] >= 0 else None,
        )
        for i in range(len(frame))
    )
    session.flush()
    return len(frame)


def import_cameras(
    session: Session,
    frame: gpd.GeoDataFrame,
    *,
    source: str,
    progress: Progress = _noop,
    scope: frozenset[int] | None = None,
) -> int:
    """Load cameras (code, name, kind, analytics); each finds its leaf grid by location."""
    _require(frame, source, ("code",))
    grid_ids, problems = _point_rows(
        session, frame, source, "camera", required_leaf=True, scope=scope
    )
    existing = set(session.scalars(select(Camera.code)))
    seen: set[str] = set()
    for i in range(len(frame)):
        code = _str(frame["code"].iat[i])
        kind = _str(frame["kind"].iat[i]) if "kind" in frame.columns else "fixed"
        if not code or code in seen or code in existing:
            problems.append(
                {
                    "where": _where(frame, i),
                    "field": "code",
                    "reason": f"missing or duplicate code '{code}'",
                }
            )
        if kind not in CAMERA_KINDS:
            problems.append(
                {
                    "where": _where(frame, i),
                    "field": "kind",
                    "reason": f"kind '{kind}' is not fixed, dome, panoramic or other",
                }
            )
        seen.add(code)
    if problems:
        raise ImportRejected(source, problems)
    session.add_all(
        Camera(
            code=_str(frame["code"].iat[i]),
            name=_str(frame["name"].iat[i]) if "name" in frame.columns else None,
            kind=_str(frame["kind"].iat[i]) if "kind" in frame.columns else "fixed",
            analytics=_str(frame["analytics"].iat[i]).lower() in ("true", "1", "yes", "是")
            if "analytics" in frame.columns
            else False,
            geom=from_shape(frame.geometry.iat[i], srid=4326),
            grid_id=int(grid_ids[i]),
        )
        for i in range(len(frame))
    )
    session.flush()
    return len(frame)


# ---------------------------------------------------------------------------------------------
def refresh_household_counts(session: Session) -> None:
    """Recount households of every current grid (a grid counts those of all its descendants)."""
    grid_tree.recount(session)


def load_directory(
    session: Session,
    folder: str | Path = SAMPLE_DIR,
    *,
    crs: str | None = None,
    progress: Progress = _noop,
) -> dict[str, int]:
    """Load every known file of a folder (the sample layout) in dependency order, in one transaction."""
    folder = Path(folder)
    counts: dict[str, int] = {}
    for kind in KINDS:
        path = folder / SAMPLE_FILES[kind]
        if path.exists():
            counts[kind] = import_file(session, kind, path, crs=crs, progress=progress)
    for name, kind, mapping in SAMPLE_BASEMAP:
        path = folder / name
        if path.exists():
            counts[f"basemap {name}"] = import_file(
                session, BASEMAP_KIND, path, crs=crs, mapping=mapping, feature_kind=kind,
                progress=progress,
            )
    refresh_household_counts(session)
    return counts


def is_loaded(session: Session) -> bool:
    """Tell whether any grid is loaded."""
    return session.scalar(select(Grid.id).limit(1)) is not None
