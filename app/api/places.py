"""Service points and cameras as GeoJSON."""

from __future__ import annotations

from flask import Blueprint, jsonify

from app.api.params import bbox_arg, int_arg
from app.db import get_session
from app.services import grids as svc

bp = Blueprint("places_api", __name__, url_prefix="/api")


@bp.get("/service-points")
def service_points():  # type: ignore[no-untyped-def]
    """Service points (filter: bbox)."""
    return jsonify(svc.service_points(get_session(), bbox=bbox_arg()))


@bp.get("/cameras")
def cameras():  # type: ignore[no-untyped-def]
    """Cameras (filters: bbox, grid)."""
    return jsonify(svc.cameras(get_session(), bbox=bbox_arg(), grid_id=int_arg("grid", minimum=1)))
