"""Service points and cameras as GeoJSON."""

from __future__ import annotations

from flask import Blueprint, jsonify

from app.api.params import bbox_arg, int_arg
from app.auth import current_principal
from app.auth.policy import grid_scope
from app.db import get_session
from app.services import grids as svc

bp = Blueprint("places_api", __name__, url_prefix="/api")


@bp.get("/service-points")
def service_points():  # type: ignore[no-untyped-def]
    """Service points (filter: bbox)."""
    session = get_session()
    scope = grid_scope(session, current_principal())
    return jsonify(svc.service_points(session, bbox=bbox_arg(), scope=scope))


@bp.get("/cameras")
def cameras():  # type: ignore[no-untyped-def]
    """Cameras (filters: bbox, grid)."""
    session = get_session()
    scope = grid_scope(session, current_principal())
    return jsonify(
        svc.cameras(session, bbox=bbox_arg(), grid_id=int_arg("grid", minimum=1), scope=scope)
    )
