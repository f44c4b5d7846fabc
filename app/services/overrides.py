"""Override areas: draw, edit and list the places whose cases of one category go to a
department or a named worker instead of the micro-grid's owner (see ``app.services.locate``)."""

from __future__ import annotations

import json
import logging
from typing import Any

import numpy as np
import shapely
from geoalchemy2.shape import from_shape
from sqlalchemy import select, text
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from app.errors import BadParameter, Conflict, NotFound, ValidationFailed
from app.models import Department, GridAssignment, OverrideArea, Worker
from app.services.grids import collection
from gis.crs import geodesic_area_m2, parse_crs, to_wgs84
from gis.errors import CoordinateError

LOGGER = logging.getLogger(__name__)

CATEGORY_MAX = 40


def _point_json(x: float, y: float) -> dict[str, Any]:
    return {"type": "Point", "coordinates": [x, y]}


def check_area_geometry(geometry: Any, crs: str | None = None) -> shapely.MultiPolygon:
    """Return a GeoJSON (Multi)Polygon as a valid WGS84 MultiPolygon, or raise ValidationFailed
    saying what is wrong and where."""
    if not isinstance(geometry, dict) or "type" not in geometry:
        raise ValidationFailed("geometry: a GeoJSON Polygon or MultiPolygon is required")
    if geometry["type"] not in ("Polygon", "MultiPolygon"):
        raise ValidationFailed(f"geometry: {geometry['type']} is not a Polygon or MultiPolygon")
    try:
        geom = shapely.geometry.shape(geometry)
    except (ValueError, TypeError, AttributeError, IndexError, KeyError) as exc:
        raise ValidationFailed(f"geometry: cannot be read ({exc!r})") from exc
    if geom.is_empty:
        raise ValidationFailed("geometry: empty")
    spec = parse_crs(crs)
    coords = shapely.get_coordinates(geom)
    try:
        lon, lat = to_wgs84(coords[:, 0], coords[:, 1], spec, what="geometry")
    except CoordinateError as exc:
        i = exc.details.get("index")
        where = _point_json(*coords[i]) if i is not None else None
        raise ValidationFailed(exc.message, location=where) from exc
    if spec.epsg not in (4326, 4490):
        geom = shapely.set_coordinates(geom, np.column_stack([lon, lat]))
    if not geom.is_valid:
        reason = shapely.is_valid_reason(geom)
        where = None
        if "[" in reason:  # GEOS names the spot: "Self-intersection[117.2 31.8]"
            nums = reason[reason.index("[") + 1 : reason.rindex("]")].split()
            if len(nums) >= 2:
                where = _point_json(float(nums[0]), float(nums[1]))
        raise ValidationFailed(f"geometry: invalid ({reason})", location=where)
    if geom.geom_type == "Polygon":
        geom = shapely.MultiPolygon([geom])
    if geodesic_area_m2(geom) <= 0:
        raise ValidationFailed("geometry: zero area")
    return geom


def _props(feature: dict[str, Any]) -> dict[str, Any]:
    props = feature.get("properties") or {}
    if not isinstance(props, dict):
        raise BadParameter("properties", "expected an object")
    for key in ("department_id", "worker_id", "version"):
        value = props.get(key)
        if value is None or (isinstance(value, str) and value.isascii() and value.isdigit()):
            continue
        if isinstance(value, bool) or not isinstance(value, int):
            raise BadParameter(f"properties.{key}", f"{value!r} is not an integer")
    for key in ("name", "category", "department_code", "worker_code"):
        value = props.get(key)
        if value is not None and not isinstance(value, str):
            raise BadParameter(f"properties.{key}", f"must be text, not {type(value).__name__}")
    return props


def _keeper(session: Session, props: dict[str, Any]) -> tuple[int | None, int | None]:
    """Return (department_id, worker_id) named by the properties; exactly one must be given."""
    dep = props.get("department_id")
    wrk = props.get("worker_id")
    if props.get("department_code") and dep is None:
        found = session.scalar(
            select(Department.id).where(Department.code == props["department_code"])
        )
        if found is None:
            raise ValidationFailed(f"department '{props['department_code']}' does not exist")
        dep = found
    if props.get("worker_code") and wrk is None:
        found = session.scalar(select(Worker.id).where(Worker.code == props["worker_code"]))
        if found is None:
            raise ValidationFailed(f"worker '{props['worker_code']}' does not exist")
        wrk = found
    if (dep is None) == (wrk is None):
        raise ValidationFailed(
            "name exactly one keeper: department_id / department_code, or worker_id / worker_code"
        )
    if dep is not None and session.get(Department, int(dep)) is None:
        raise ValidationFailed(f"department {dep} does not exist")
    if wrk is not None and session.get(Worker, int(wrk)) is None:
        raise ValidationFailed(f"worker {wrk} does not exist")
    return (int(dep) if dep is not None else None, int(wrk) if wrk is not None else None)


def _text(props: dict[str, Any], key: str, max_len: int) -> str:
    value = (props.get(key) or "").strip()
    if not value:
        raise ValidationFailed(f"{key}: required")
    if len(value) > max_len:
        raise ValidationFailed(f"{key}: longer than {max_len} characters")
    return value


def _category(session: Session, given: str) -> str:
    """Return the category code of ``given`` (a code, or a category's Chinese name).

    Cases carry the code; an area stored under anything else would never apply to them.
    """
    code = session.scalar(
        text(
            "SELECT code FROM case_category WHERE code = :c OR name = :c ORDER BY code = :c DESC LIMIT 1"
        ),
        {"c": given},
    )
    if code is None:
        known = session.scalars(text("SELECT code FROM case_category ORDER BY code")).all()
        raise ValidationFailed(
            f"category: '{given}' is no case category (use one of {', '.join(known)})",
            field="category",
        )
    return code


def create_area(
    session: Session, feature: dict[str, Any], crs: str | None = None
) -> dict[str, Any]:
    """Create an override area from a GeoJSON Feature (properties: name, category, a keeper)."""
    props = _props(feature)
    geom = check_area_geometry(feature.get("geometry"), crs)
    dep, wrk = _keeper(session, props)
    area = OverrideArea(
        name=_text(props, "name", 120),
        category=_category(session, _text(props, "category", CATEGORY_MAX)),
        geom=from_shape(geom, srid=4326),
        area_m2=geodesic_area_m2(geom),
        department_id=dep,
        worker_id=wrk,
    )
    session.add(area)
    session.flush()
    LOGGER.info("override area %s (%s) created", area.id, area.category)
    return get_area(session, area.id)


def update_area(
    session: Session, area_id: int, feature: dict[str, Any], crs: str | None = None
) -> dict[str, Any]:
    """Edit an override area; ``properties.version`` must match the stored one (else 409)."""
    area = session.get(OverrideArea, area_id)
    if area is None:
        raise NotFound(f"override area {area_id} does not exist", override_area_id=area_id)
    props = _props(feature)
    version = props.get("version")
    if version is not None:
        try:
            version = int(version)
        except (TypeError, ValueError) as exc:
            raise ValidationFailed(f"version: '{version}' is not a whole number") from exc
    if version is not None and version != area.version:
        raise Conflict(
            f"override area {area_id} was changed meanwhile (version {area.version}, "
            f"you edited {version}); reload it",
            current_version=area.version,
        )
    if feature.get("geometry") is not None:
        geom = check_area_geometry(feature["geometry"], crs)
        area.geom = from_shape(geom, srid=4326)
        area.area_m2 = geodesic_area_m2(geom)
    if "name" in props:
        area.name = _text(props, "name", 120)
    if "category" in props:
        area.category = _category(session, _text(props, "category", CATEGORY_MAX))
    if any(k in props for k in ("department_id", "department_code", "worker_id", "worker_code")):
        area.department_id, area.worker_id = _keeper(session, props)
    try:
        session.flush()
    except StaleDataError as exc:
        raise Conflict(f"override area {area_id} was changed meanwhile; reload it") from exc
    return get_area(session, area_id)


def delete_area(session: Session, area_id: int) -> None:
    """Delete an override area."""
    area = session.get(OverrideArea, area_id)
    if area is None:
        raise NotFound(f"override area {area_id} does not exist", override_area_id=area_id)
    session.delete(area)
    session.flush()


_AREA_SQL = """
    SELECT o.id, o.name, o.category, o.area_m2, o.version, o.department_id, o.worker_id,
           d.name AS department_name, w.name AS worker_name, ST_AsGeoJSON(o.geom, 7) AS gj
    FROM override_area o
    LEFT JOIN department d ON d.id = o.department_id
    LEFT JOIN worker w ON w.id = o.worker_id
"""


def _area_feature(r: Any) -> dict[str, Any]:
    return {
        "type": "Feature",
        "id": r.id,
        "geometry": json.loads(r.gj),
        "properties": {
            "id": r.id,
            "name": r.name,
            "category": r.category,
            "area_m2": round(r.area_m2, 1),
            "version": r.version,
            "department_id": r.department_id,
            "department_name": r.department_name,
            "worker_id": r.worker_id,
            "worker_name": r.worker_name,
            "keeper": r.department_name or r.worker_name,
        },
    }


def get_area(session: Session, area_id: int) -> dict[str, Any]:
    """Return one override area as a GeoJSON Feature."""
    row = session.execute(text(_AREA_SQL + " WHERE o.id = :id"), {"id": area_id}).first()
    if row is None:
        raise NotFound(f"override area {area_id} does not exist", override_area_id=area_id)
    return _area_feature(row)


def list_areas(
    session: Session,
    *,
    category: str | None = None,
    bbox: tuple[float, float, float, float] | None = None,
    scope: frozenset[int] | None = None,
) -> dict[str, Any]:
    """Return override areas as a FeatureCollection (filters: category, bbox; ``scope``: those
    reaching into these grids)."""
    where: list[str] = ["TRUE"]
    params: dict[str, Any] = {}
    if scope is not None:
        territory = (
            "(SELECT ST_Union(t.geom) FROM grid t WHERE t.id = ANY(CAST(:scope AS integer[])) AND t.valid_to IS NULL"
            " AND (t.parent_id IS NULL OR NOT t.parent_id = ANY(CAST(:scope AS integer[]))))"
        )
        where.append(f"ST_Intersects(o.geom, {territory}) AND NOT ST_Touches(o.geom, {territory})")
        params["scope"] = sorted(scope)
    if category:
        where.append(
            "(o.category = :category OR o.category = "
            "(SELECT cc.code FROM case_category cc WHERE cc.name = :category))"
        )
        params["category"] = category
    if bbox:
        where.append("o.geom && ST_MakeEnvelope(:x0, :y0, :x1, :y1, 4326)")
        params.update(x0=bbox[0], y0=bbox[1], x1=bbox[2], y1=bbox[3])
    rows = session.execute(
        text(_AREA_SQL + f" WHERE {' AND '.join(where)} ORDER BY o.category, o.id"), params
    ).all()
    return collection([_area_feature(r) for r in rows])


def keepers(session: Session, scope: frozenset[int] | None = None) -> dict[str, Any]:
    """Return who can keep an override area: the departments and the workers (id, code, name;
    ``scope``: only the workers assigned to these grids)."""
    deps = session.execute(
        select(Department.id, Department.code, Department.name).order_by(Department.id)
    ).all()
    query = select(Worker.id, Worker.code, Worker.name).order_by(Worker.id)
    if scope is not None:
        query = query.where(
            Worker.id.in_(
                select(GridAssignment.worker_id).where(GridAssignment.grid_id.in_(sorted(scope)))
            )
        )
    workers = session.execute(query).all()
    return {
        "departments": [{"id": d.id, "code": d.code, "name": d.name} for d in deps],
        "workers": [{"id": w.id, "code": w.code, "name": w.name} for w in workers],
    }
