"""Grid editing API: create, reshape, delete, split and merge grids; integrity; history; undo.

Every edit names the version it was based on (``If-Match: "3"`` or a ``version`` field) and
gets 409 with the current version when the grid changed meanwhile. ``dry_run`` (query or body)
runs the whole edit and rolls it back: the answer shows exactly what saving would do. The
person responsible for an edit is the signed-in account (``app.auth``).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from flask import Blueprint, current_app, jsonify, request

from app.auth import current_principal
from app.auth.policy import grid_scope
from app.db import get_session
from app.errors import BadParameter
from app.params import bool_value, int_arg, int_value, json_body, moment_arg
from app.services import grid_edit as svc
from gis.validate import BoundaryLimits

bp = Blueprint("grid_edit_api", __name__, url_prefix="/api/grids")


def _flag(name: str, body: dict[str, Any]) -> bool:
    return bool(bool_value(request.args.get(name, body.get(name)), name, default=False))


def _if_match() -> list[int]:
    raw = request.headers.get("If-Match")
    if not raw:
        return []
    found = re.findall(r'(?:W/)?"?(\d+)"?', raw)
    if not found:
        raise BadParameter("If-Match", f"'{raw}' holds no version number")
    return [int(v) for v in found]


def _version(body: dict[str, Any]) -> int | None:
    """Return the version an edit is based on: If-Match, else a version field."""
    header = _if_match()
    if header:
        return header[0]
    props = body.get("properties") if isinstance(body.get("properties"), dict) else {}
    return int_value(
        request.args.get("version", body.get("version", props.get("version"))), "version", minimum=0
    )


def _actor(body: dict[str, Any]) -> str:
    # The signed-in account, never a name the request claims (a header or a body field).
    return current_principal().label[:80]


def _options(body: dict[str, Any]) -> svc.EditOptions:
    return svc.EditOptions(
        clip_to_parent=_flag("clip_to_parent", body),
        fit_to_neighbours=_flag("fit_to_neighbours", body),
        limits=_limits(),
    )


def _limits() -> BoundaryLimits:
    cfg = current_app.config
    return BoundaryLimits(
        max_vertices=int(cfg.get("GRID_MAX_VERTICES", 20_000)),
        min_area_m2=float(cfg.get("GRID_MIN_AREA_M2", 100.0)),
    )


def _run(operation, body: dict[str, Any], *, created: bool = False):  # type: ignore[no-untyped-def]
    """Run an edit (or its dry run) and answer with its result and the grid's version."""
    dry_run = _flag("dry_run", body)
    result = svc.run_edit(get_session(), operation, dry_run=dry_run)
    status = 201 if created and not dry_run else 200
    response = jsonify(result)
    features = result.get("features") or []
    if len(features) == 1:
        response.headers["ETag"] = f'"{features[0]["properties"]["version"]}"'
    return response, status


def _feature_parts(body: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """Split a Feature body into its geometry and properties (a bare geometry works too)."""
    if body.get("type") == "Feature":
        props = body.get("properties") or {}
        if not isinstance(props, dict):
            raise BadParameter("properties", "expected an object")
        return body.get("geometry"), props
    if body.get("type") in ("Polygon", "MultiPolygon"):
        return body, {}
    return body.get("geometry"), dict(body.get("properties") or {})


@bp.post("")
def create():  # type: ignore[no-untyped-def]
    """Create a grid from a GeoJSON Feature whose properties name its parent."""
    body = json_body()
    geometry, props = _feature_parts(body)
    if geometry is None:
        raise BadParameter("geometry", "a new grid needs a Polygon or MultiPolygon")
    parent_id = int_value(
        props.get("parent_id", props.get("parent", body.get("parent_id"))), "parent_id", minimum=0
    )
    return _run(
        lambda s: svc.create_grid(
            s,
            geometry,
            parent_id=parent_id,
            name=str(props.get("name") or ""),
            code=(str(props["code"]).strip() if props.get("code") else None),
            kind=str(props.get("kind") or "comprehensive"),
            actor=_actor(body),
            options=_options(body),
        ),
        body,
        created=True,
    )


@bp.patch("/<int:grid_id>")
def patch(grid_id: int):  # type: ignore[no-untyped-def]
    """Reshape or rename a grid: a Feature with a new geometry and/or name."""
    body = json_body()
    geometry, props = _feature_parts(body)
    return _run(
        lambda s: svc.update_grid(
            s,
            grid_id,
            base_version=_version(body),
            actor=_actor(body),
            geometry=geometry,
            name=props.get("name"),
            kind=props.get("kind"),
            options=_options(body),
        ),
        body,
    )


@bp.delete("/<int:grid_id>")
def remove(grid_id: int):  # type: ignore[no-untyped-def]
    """Delete a grid without children; what it held goes to its parent."""
    body = json_body()
    return _run(
        lambda s: svc.delete_grid(s, grid_id, base_version=_version(body), actor=_actor(body)),
        body,
    )


@bp.post("/<int:grid_id>/split")
def split(grid_id: int):  # type: ignore[no-untyped-def]
    """Split a grid along a LineString (body: line, version, optional names, dry_run)."""
    body = json_body()
    line = body.get("line")
    if line is None and body.get("type") == "Feature":
        line = body.get("geometry")
    elif line is None and body.get("type") == "LineString":
        line = body
    if line is None:
        raise BadParameter("line", "a split needs a LineString")
    names = body.get("names")
    if names is not None and not (
        isinstance(names, list) and all(isinstance(n, str) and n.strip() for n in names)
    ):
        raise BadParameter("names", "expected a list of non-empty names, one per part")
    return _run(
        lambda s: svc.split_grid(
            s,
            grid_id,
            line,
            base_version=_version(body),
            actor=_actor(body),
            names=names,
            limits=_limits(),
        ),
        body,
    )


@bp.post("/merge")
def merge():  # type: ignore[no-untyped-def]
    """Merge adjacent sibling grids (body: ids, versions, optional name, dry_run)."""
    body = json_body()
    ids = body.get("ids")
    if not isinstance(ids, list) or not ids:
        raise BadParameter("ids", "expected a list of grid ids")
    ids = [int_value(i, "ids", minimum=0) for i in ids]
    raw = body.get("versions")
    if isinstance(raw, dict):
        versions = {
            int_value(k, "versions", minimum=0): int_value(v, "versions", minimum=0)
            for k, v in raw.items()
        }
    elif isinstance(raw, list):
        if len(raw) != len(ids):
            raise BadParameter("versions", "give one version per id, in the same order")
        versions = dict(zip(ids, (int_value(v, "versions", minimum=0) for v in raw), strict=True))
    else:
        header = _if_match()
        if header and len(header) != len(ids):
            raise BadParameter("If-Match", "give one version per id, in the same order")
        versions = dict(zip(ids, header, strict=True)) if header else {}
    return _run(
        lambda s: svc.merge_grids(
            s, ids, base_versions=versions, actor=_actor(body), name=body.get("name")
        ),
        body,
        created=True,
    )


@bp.get("/<int:grid_id>/integrity")
def integrity(grid_id: int):  # type: ignore[no-untyped-def]
    """Gaps, overlaps, overhangs and slivers among the grid's children, as GeoJSON."""
    return jsonify(svc.integrity(get_session(), grid_id))


def _at_arg() -> datetime | None:
    # A date means the end of that day: the boundary in force on it.
    return moment_arg("at", day="end")


@bp.get("/<int:grid_id>/history")
def history(grid_id: int):  # type: ignore[no-untyped-def]
    """The grid's boundaries over time and the changes that touched it; ?at= gives one state."""
    return jsonify(svc.history(get_session(), grid_id, at=_at_arg()))


@bp.get("/changes")
def changes():  # type: ignore[no-untyped-def]
    """Edits of the grid map, newest first (?grid= those touching a grid or its children)."""
    session = get_session()
    return jsonify(
        svc.list_changes(
            session,
            grid_id=int_arg("grid", minimum=1),
            limit=int_arg("limit", minimum=1, maximum=1000, default=100) or 100,
            scope=grid_scope(session, current_principal()),
        )
    )


@bp.post("/changes/<int:change_id>/undo")
def undo(change_id: int):  # type: ignore[no-untyped-def]
    """Undo an edit, if nothing changed since."""
    body = json_body()
    return _run(lambda s: svc.undo_change(s, change_id, actor=_actor(body)), body)
