"""Departments' own grids (多网合一): import, the mismatch report and its export, alignment
proposals and their commit, and the network a case category routes by."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, jsonify, request

from app.api.params import body_fields, float_arg, int_arg
from app.auth import current_principal, record_personal_read
from app.auth.policy import grid_scope, may_export_personal
from app.db import get_session, transaction
from app.errors import BadParameter
from app.services import networks as svc
from app.services import tables

bp = Blueprint("networks_api", __name__, url_prefix="/api")

UPLOAD_SUFFIXES = {".geojson", ".json", ".csv", ".gpkg", ".zip"}


def _report_args() -> dict[str, Any]:
    return {
        "level": int_arg("level", minimum=3, maximum=4, default=3),
        "sliver_m2": float_arg("sliver_m2", minimum=0, maximum=1_000_000, default=svc.SLIVER_M2),
        "sliver_pct": float_arg("sliver_pct", minimum=0, maximum=100, default=svc.SLIVER_PCT),
    }


@bp.get("/networks")
def list_networks():  # type: ignore[no-untyped-def]
    """The networks the caller sees with their nesting summary, and the summary per department."""
    session = get_session()
    p = current_principal()
    ids = svc.visible_network_ids(session, p.role, p.department_id, grid_scope(session, p))
    return jsonify(svc.list_networks(session, ids, **_report_args()))


@bp.post("/networks/import")
def import_network():  # type: ignore[no-untyped-def]
    """Import a departmental layer (multipart: ``file``, ``department``, ``name``, ``kind``,
    ``crs``, ``map``); a centre's is held to its street. All or nothing."""
    session = get_session()
    p = current_principal()
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        raise BadParameter("file", "请上传文件（表单字段 file）/ no file uploaded")
    suffix = Path(upload.filename).suffix.lower()
    if suffix not in UPLOAD_SUFFIXES:
        raise BadParameter(
            "file", f"'{upload.filename}'：请用 .geojson、.csv、.gpkg 或压缩的 Shapefile（.zip）"
        )
    street_id, within = None, None
    if p.role == "centre" and p.grid_id is not None:
        street_id = p.grid_id
        within = svc_street(session, street_id)
    elif request.form.get("street_id"):
        try:
            street_id = int(request.form["street_id"])
        except ValueError as exc:
            raise BadParameter("street_id", "须为网格编号（整数）") from exc
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / Path(upload.filename).name
        upload.save(path)
        with transaction(session):
            answer = svc.import_network(
                session,
                path,
                department=request.form.get("department", ""),
                name=request.form.get("name", ""),
                kind=request.form.get("kind") or "other",
                crs=request.form.get("crs") or None,
                mapping=tables.parse_mapping(request.form.getlist("map")),
                street_id=street_id,
                within=within,
            )
    return jsonify(answer), 201


def svc_street(session, grid_id: int):  # type: ignore[no-untyped-def]
    from app.services.notice_print import grid_shape

    return grid_shape(session, grid_id)


@bp.get("/networks/<int:network_id>")
def get_network(network_id: int):  # type: ignore[no-untyped-def]
    """The network's current grids as GeoJSON (the e-map's layer); phones masked."""
    return jsonify(svc.network_features(get_session(), network_id))


@bp.get("/networks/<int:network_id>/mismatch")
def mismatch(network_id: int):  # type: ignore[no-untyped-def]
    """The mismatch report (``format`` json, csv or xlsx; ``level`` 3 or 4; sliver thresholds)."""
    fmt = request.args.get("format", "json")
    report = svc.mismatch(get_session(), network_id, **_report_args())
    if fmt == "json":
        return jsonify(report)
    if not may_export_personal(current_principal()):
        # The export names the departments' responsible people: the exporters' only.
        for g in report["grids"]:
            g["person"] = None
    else:
        record_personal_read(
            "network mismatch export", "network", network_id, ["person"], kind="export"
        )
    data, media, suffix = svc.mismatch_export(report, fmt)
    return Response(
        data,
        mimetype=media.split(";")[0],
        headers={
            "Content-Type": media,
            "Content-Disposition": f'attachment; filename="network-{network_id}-mismatch{suffix}"',
        },
    )


@bp.get("/networks/<int:network_id>/grids/<int:grid_id>/alignment")
def proposal(network_id: int, grid_id: int):  # type: ignore[no-untyped-def]
    """The alignment proposal of one departmental grid (before, after, what moves)."""
    tolerance = float_arg("tolerance_m", minimum=0.1, maximum=5000, default=svc.TOLERANCE_M)
    answer = svc.propose_alignment(
        get_session(), network_id, grid_id, tolerance_m=tolerance or svc.TOLERANCE_M
    )
    answer.pop("_after", None)
    return jsonify(answer)


@bp.post("/networks/<int:network_id>/grids/<int:grid_id>/alignment")
def commit(network_id: int, grid_id: int):  # type: ignore[no-untyped-def]
    """Commit the proposal: the departmental grid's next version (``version`` seen, ``tolerance_m``)."""
    body = body_fields()
    version = body.get("version")
    tolerance = body.get("tolerance_m", svc.TOLERANCE_M)
    if version is not None and (isinstance(version, bool) or not isinstance(version, int)):
        raise BadParameter("version", "须为整数")
    if (
        isinstance(tolerance, bool)
        or not isinstance(tolerance, int | float)
        or not 0 < tolerance <= 5000
    ):
        raise BadParameter("tolerance_m", "容差须为 0–5000 米之间的数")
    session = get_session()
    with transaction(session):
        answer = svc.commit_alignment(
            session, network_id, grid_id, version=version, tolerance_m=float(tolerance)
        )
    return jsonify(answer), 201


@bp.put("/case-categories/<code>/network")
def category_network(code: str):  # type: ignore[no-untyped-def]
    """Name the network (``network_id``, or null) whose grids route cases of a category."""
    body = body_fields()
    network_id = body.get("network_id")
    if network_id is not None and (isinstance(network_id, bool) or not isinstance(network_id, int)):
        raise BadParameter("network_id", "须为专业网格图层编号（整数）或 null")
    session = get_session()
    with transaction(session):
        answer = svc.set_category_network(session, code, network_id)
    return jsonify(answer)
