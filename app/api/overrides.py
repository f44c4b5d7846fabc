"""Override areas API: list, draw, edit and delete per-category owners of a place."""

from __future__ import annotations

from flask import Blueprint, jsonify, request

from app.api.params import bbox_arg, str_arg
from app.auth import current_principal
from app.auth.policy import area_visible, grid_scope, worker_in_scope
from app.db import get_session, transaction
from app.errors import BadParameter, ValidationFailed
from app.services import overrides as svc

bp = Blueprint("overrides_api", __name__, url_prefix="/api/override-areas")


def _feature() -> dict:
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or body.get("type") != "Feature":
        raise BadParameter("body", "expected a GeoJSON Feature with geometry and properties")
    return body


def _within_territory(session, feature: dict) -> dict:  # type: ignore[no-untyped-def]
    """An area drawn or edited lies within the caller's grids, kept by a department or one of
    the caller's workers (refused whole, the transaction rolled back, otherwise)."""
    p = current_principal()
    props = feature["properties"]
    if not area_visible(session, p, props["id"], whole=True):
        raise ValidationFailed(
            "区域须位于您负责的网格之内 / the area must lie within your grids", field="geometry"
        )
    if props.get("worker_id") is not None and not worker_in_scope(session, p, props["worker_id"]):
        raise ValidationFailed(
            "负责人须是您辖区的网格员 / the keeper must be a worker of your grids",
            field="worker_id",
        )
    return feature


@bp.get("")
def list_areas():  # type: ignore[no-untyped-def]
    """Override areas as GeoJSON (filters: category, bbox): those reaching into one's grids."""
    session = get_session()
    return jsonify(
        svc.list_areas(
            session,
            category=str_arg("category"),
            bbox=bbox_arg(),
            scope=grid_scope(session, current_principal()),
        )
    )


@bp.get("/keepers")
def keepers():  # type: ignore[no-untyped-def]
    """Who can keep an override area: departments and workers, for the e-map's drawing tool."""
    session = get_session()
    return jsonify(svc.keepers(session, grid_scope(session, current_principal())))


@bp.post("")
def create_area():  # type: ignore[no-untyped-def]
    """Draw a new override area (a Feature; crs= names the geometry's CRS)."""
    session = get_session()
    with transaction(session):
        feature = _within_territory(
            session, svc.create_area(session, _feature(), str_arg("crs", max_length=60))
        )
    return jsonify(feature), 201


@bp.get("/<int:area_id>")
def get_area(area_id: int):  # type: ignore[no-untyped-def]
    """One override area."""
    return jsonify(svc.get_area(get_session(), area_id))


@bp.put("/<int:area_id>")
def update_area(area_id: int):  # type: ignore[no-untyped-def]
    """Edit an override area (geometry and/or properties; properties.version guards edits)."""
    session = get_session()
    with transaction(session):
        feature = _within_territory(
            session, svc.update_area(session, area_id, _feature(), str_arg("crs", max_length=60))
        )
    return jsonify(feature)


@bp.delete("/<int:area_id>")
def delete_area(area_id: int):  # type: ignore[no-untyped-def]
    """Delete an override area."""
    session = get_session()
    with transaction(session):
        svc.delete_area(session, area_id)
    return "", 204
