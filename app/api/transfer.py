"""Import and export over HTTP: upload a file of one kind, or download the current records."""

from __future__ import annotations

import logging
import tempfile
from io import BytesIO
from pathlib import Path

from flask import Blueprint, jsonify, request, send_file

from app.api.params import int_arg
from app.auth import current_principal, record_personal_read
from app.auth.policy import Forbidden, grid_scope, import_scope, may_export_personal, sees_tags
from app.db import get_session, transaction
from app.errors import BadParameter
from app.services import exporter, importer, ledgers, tables

bp = Blueprint("transfer_api", __name__, url_prefix="/api")
LOGGER = logging.getLogger(__name__)
# Kinds whose records describe people (addresses, names, phones): exported by EXPORTERS only.
PERSONAL_KINDS = frozenset({"households", "workers"})

UPLOAD_SUFFIXES = {".geojson", ".json", ".csv", ".gpkg", ".zip"}
MEDIA_TYPES = {
    "geojson": ("application/geo+json", ".geojson"),
    "gpkg": ("application/geopackage+sqlite3", ".gpkg"),
    "csv": ("text/csv; charset=utf-8", ".csv"),
}


@bp.post("/import/<kind>")
def import_upload(kind: str):  # type: ignore[no-untyped-def]
    """Import an uploaded file (form field ``file``; ``crs`` and ``map`` fields optional); all or nothing."""
    if kind not in importer.KINDS:
        raise BadParameter("kind", f"unknown kind '{kind}' (use {', '.join(importer.KINDS)})")
    session = get_session()
    scope = import_scope(session, current_principal(), kind)
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        raise BadParameter("file", "no file uploaded (multipart form field 'file')")
    suffix = Path(upload.filename).suffix.lower()
    if suffix not in UPLOAD_SUFFIXES:
        raise BadParameter(
            "file", f"'{upload.filename}': use .geojson, .csv, .gpkg or a zipped Shapefile (.zip)"
        )
    mapping = tables.parse_mapping(request.form.getlist("map"))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / Path(upload.filename).name
        upload.save(path)
        with transaction(session):
            n = importer.import_file(
                session,
                kind,
                path,
                crs=request.form.get("crs") or None,
                mapping=mapping,
                scope=scope,
            )
            if kind != "households":  # households count themselves as they load
                importer.refresh_household_counts(session)
    return jsonify(imported=n, kind=kind), 201


@bp.get("/export/<kind>")
def export_download(kind: str):  # type: ignore[no-untyped-def]
    """Download the current records of a kind (``format``: geojson, gpkg or csv; ``crs`` and
    ``grid``, one of the caller's grids and those below it, optional)."""
    fmt = request.args.get("format", "geojson")
    if fmt not in MEDIA_TYPES:
        raise BadParameter(
            "format", f"'{fmt}' is not one of {', '.join(MEDIA_TYPES)} (Shapefile: use the CLI)"
        )
    media, suffix = MEDIA_TYPES[fmt]
    include_personal = request.args.get("include_personal", "").lower() in ("1", "true", "yes")
    p = current_principal()
    personal_kind = kind in PERSONAL_KINDS
    if (personal_kind or include_personal) and not may_export_personal(p):
        raise Forbidden(
            f"角色 {p.role} 无权导出{'个人信息' if include_personal else '住户/人员台账'} / "
            f"the role '{p.role}' may not export {kind}"
        )
    session = get_session()
    scope = grid_scope(session, p)
    grid = int_arg("grid", minimum=1)
    if grid is not None:  # the records of one grid and everything below it (as the ledgers)
        scope = frozenset(ledgers.grid_filter(session, scope, grid) or ())
    tmp = tempfile.NamedTemporaryFile(suffix=suffix, delete=False)
    tmp.close()
    path = Path(tmp.name)
    path.unlink()  # the GeoPackage driver wants to create the file itself
    n = exporter.export(
        get_session(),
        kind,
        path,
        fmt=fmt,
        crs=request.args.get("crs") or None,
        include_personal=include_personal,
        scope=scope,
        with_tags=sees_tags(p),
    )
    data = path.read_bytes()
    path.unlink()
    if personal_kind or include_personal:
        record_personal_read(
            f"export {kind}",
            kind,
            None,
            ["*"] if include_personal else ["masked"],
            kind="export",
        )
        LOGGER.info("export of %d %s (personal: %s)", n, kind, include_personal)
    return send_file(
        BytesIO(data), mimetype=media, as_attachment=True, download_name=f"{kind}{suffix}"
    )
