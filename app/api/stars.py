"""Star ratings API (评星定级): micro-grids' quarterly ratings, a chief's adjustment, the quarter
close, the history per grid, the allowance export, the e-map layer and service-point inspections."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from app.api.cases import uploaded_photos
from app.api.params import body_fields, str_arg
from app.auth import current_principal
from app.auth.policy import Forbidden, grid_scope
from app.db import get_session, transaction
from app.errors import BadParameter
from app.services import stars as svc

bp = Blueprint("stars_api", __name__, url_prefix="/api/stars")


def _quarter() -> str | None:
    return str_arg("quarter", max_length=10)


@bp.get("")
def ratings():  # type: ignore[no-untyped-def]
    """``quarter=2026Q4``: the micro-grids' ratings in the caller's grids (frozen once closed)."""
    session = get_session()
    return jsonify(svc.ratings(session, grid_scope(session, current_principal()), _quarter()))


@bp.post("/grids/<int:grid_id>/adjust")
def adjust(grid_id: int):  # type: ignore[no-untyped-def]
    """A chief's adjustment ``{"quarter", "delta": -2…2, "reason"}`` while the quarter is open."""
    data = body_fields()
    session = get_session()
    with transaction(session):
        result = svc.adjust(session, grid_id, data, user_id=current_principal().user_id)
    return jsonify({"adjustment": result}), 201


@bp.get("/grids/<int:grid_id>")
def history(grid_id: int):  # type: ignore[no-untyped-def]
    """A micro-grid's frozen ratings per quarter and its adjustments."""
    return jsonify(svc.history(get_session(), grid_id))


@bp.post("/close")
def close():  # type: ignore[no-untyped-def]
    """Close ``{"quarter"}``: the automatic points, then every micro-grid's rating frozen."""
    data = body_fields()
    session = get_session()
    p = current_principal()
    if grid_scope(session, p) is not None:
        raise Forbidden(
            "只有全区指挥中心或管理员可以关闭季度考核 / the whole city's centre closes a quarter"
        )
    with transaction(session):
        result = svc.close_quarter(session, data.get("quarter"), user_id=p.user_id)
    return jsonify(result), 201


@bp.get("/export")
def export():  # type: ignore[no-untyped-def]
    """``quarter=&format=csv|xlsx``: the allowances of a closed quarter, cells guarded."""
    fmt = str_arg("format", max_length=10) or "csv"
    if fmt not in ("csv", "xlsx"):
        raise BadParameter("format", "导出格式（format）须为 csv 或 xlsx")
    session = get_session()
    label, rows = svc.allowance_rows(session, grid_scope(session, current_principal()), _quarter())
    name = f"stars-allowance-{label}.{fmt}"
    if fmt == "csv":
        body, mime = svc.allowance_csv(rows), "text/csv; charset=utf-8"
    else:
        body = svc.allowance_xlsx(label, rows)
        mime = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    return Response(
        body, mimetype=mime, headers={"Content-Disposition": f"attachment; filename={name}"}
    )


@bp.get("/map")
def stars_map():  # type: ignore[no-untyped-def]
    """The latest frozen stars of the caller's micro-grids at their label points (GeoJSON)."""
    session = get_session()
    return jsonify(svc.map_features(session, grid_scope(session, current_principal())))


@bp.get("/service-points")
def service_points():  # type: ignore[no-untyped-def]
    """``quarter=``: each service point's latest inspection in the caller's grids."""
    session = get_session()
    return jsonify(
        svc.service_point_ratings(session, grid_scope(session, current_principal()), _quarter())
    )


@bp.post("/service-points/<int:point_id>/ratings")
def rate_service_point(point_id: int):  # type: ignore[no-untyped-def]
    """An inspection: ``hardware``, ``organisation``, ``norms``, ``effect`` (0–25 each), ``note``,
    ``quarter`` and photos (multipart ``photo`` files or ``photo_base64``)."""
    data = body_fields()
    images = uploaded_photos(data, "photo")
    session = get_session()
    with transaction(session):
        result = svc.rate_service_point(
            session, point_id, data, images, user_id=current_principal().user_id
        )
    return jsonify({"rating": result}), 201
