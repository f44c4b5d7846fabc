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
from app.services import exporter, importer, ledgers

bp = Blueprint("transfer_api", __name__, url_prefix="/api")
LOGGER = logging.getLogger(__name__)
# Kinds whose records describe people (addresses, names, phones): exported by EXPORTERS only.
PERSONAL_KINDS = frozenset({"households", "workers"})

MEDIA_TYPES = {
    "geojson": ("application/geo+json", ".geojson"),
    "gpkg": ("application/geopackage+sqlite3", ".gpkg"),
    "csv": ("text/csv; charset=utf-8", ".csv"),
}


@bp.post("/import/<kind>")
def import_upload(kind: str):  # type: ignore[no-untyped-def]
    """Import an uploaded file (form field ``file``; ``crs``, ``map``, ``map_value``,
    ``mapping``, ``outside`` and ``dry_run`` optional); all or nothing. Answers the import's
    report (``imported``: records loaded); a dry run answers 200 and writes nothing."""
    from app.api.import_jobs import save_upload, upload_options
    from app.services.importer import options as import_options

    if kind not in importer.KINDS:
        raise BadParameter("kind", f"unknown kind '{kind}' (use {', '.join(importer.KINDS)})")
    session = get_session()
    p = current_principal()
    scope = import_scope(session, p, kind)
    columns, opts = upload_options()
    with tempfile.TemporaryDirectory() as tmp:
        path = save_upload(tmp)

        def run() -> dict:  # type: ignore[type-arg]
            return import_options.run_import(
                session,
                kind,
                path,
                crs=request.form.get("crs") or None,
                mapping=columns,
                options=opts,
                scope=scope,
                user_id=p.user_id,
            )

        if opts.dry_run:
            try:
                report = run()
            finally:
                session.rollback()
            return jsonify(imported=0, kind=kind, report=report), 200
        with transaction(session):
            report = run()
            if kind != "households":  # households count themselves as they load
                importer.refresh_household_counts(session)
    return jsonify(imported=report["created"], kind=kind, report=report), 201


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
