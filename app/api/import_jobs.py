"""Imports as jobs (an upload answered at once, its progress and report read from a status
endpoint), the options every HTTP import takes, and the records imports held aside."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from flask import Blueprint, current_app, jsonify, request

from app.api.params import bool_value, int_arg, str_arg
from app.auth import current_principal
from app.auth.policy import import_scope
from app.db import get_db, get_session, transaction
from app.errors import BadParameter
from app.services import audit, import_jobs, importer, tables
from app.services.importer import options as import_options

bp = Blueprint("import_jobs_api", __name__, url_prefix="/api")

UPLOAD_SUFFIXES = {".geojson", ".json", ".csv", ".gpkg", ".zip"}
MAPPING_SUFFIXES = {".json", ".yaml", ".yml"}
MAPPING_MAX_BYTES = 64 * 1024


def upload_options() -> tuple[dict[str, str], import_options.ImportOptions]:
    """The form fields of an import upload: ``map`` (field=column, repeatable), ``map_value``
    (field=from:to,from:to, repeatable), ``mapping`` (a JSON or YAML mapping file), ``outside``
    (refuse, lowest, hold) and ``dry_run``. Returns (column mapping, options)."""
    columns: dict[str, str] = {}
    values: dict[str, dict[str, str]] = {}
    mapping_file = request.files.get("mapping")
    if mapping_file is not None and mapping_file.filename:
        if Path(mapping_file.filename).suffix.lower() not in MAPPING_SUFFIXES:
            raise BadParameter("mapping", "映射文件须为 .json、.yaml 或 .yml / use .json or .yaml")
        data = mapping_file.read(MAPPING_MAX_BYTES + 1)
        if len(data) > MAPPING_MAX_BYTES:
            raise BadParameter("mapping", "映射文件超过 64 KB / the mapping file exceeds 64 KB")
        columns, values = import_options.read_mapping_file(data, mapping_file.filename)
    columns.update(tables.parse_mapping(request.form.getlist("map")))
    for name, table in import_options.parse_value_map(request.form.getlist("map_value")).items():
        values.setdefault(name, {}).update(table)
    dry_run = bool(bool_value(request.form.get("dry_run"), "dry_run", default=False))
    outside = request.form.get("outside") or "refuse"
    return columns, import_options.ImportOptions(values=values, outside=outside, dry_run=dry_run)


def save_upload(directory: str) -> Path:
    """Save the uploaded ``file`` into ``directory`` and return its path."""
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        raise BadParameter("file", "请上传文件（表单字段 file）/ no file uploaded")
    suffix = Path(upload.filename).suffix.lower()
    if suffix not in UPLOAD_SUFFIXES:
        raise BadParameter(
            "file", f"'{upload.filename}'：请用 .geojson、.csv、.gpkg 或压缩的 Shapefile（.zip）"
        )
    path = Path(directory) / Path(upload.filename).name
    upload.save(path)
    return path


@bp.post("/import-jobs/<kind>")
def create_job(kind: str):  # type: ignore[no-untyped-def]
    """Start an import in the background (the fields of ``POST /api/import/<kind>``); answer
    202 with the job to follow at ``GET /api/import-jobs/<id>``."""
    if kind not in importer.KINDS:
        raise BadParameter("kind", f"unknown kind '{kind}' (use {', '.join(importer.KINDS)})")
    session = get_session()
    p = current_principal()
    scope = import_scope(session, p, kind)
    columns, opts = upload_options()
    directory = tempfile.mkdtemp(prefix="gridgov-import-")
    try:
        path = save_upload(directory)
        with transaction(session):
            job_id = import_jobs.create_job(
                session, kind, path.name, dry_run=opts.dry_run, user_id=p.user_id, scope=scope
            )
    except BaseException:
        import shutil

        shutil.rmtree(directory, ignore_errors=True)
        raise
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    import_jobs.start(
        get_db().session,
        job_id,
        path,
        inline=bool(app.config.get("IMPORT_JOBS_INLINE", app.config.get("TESTING"))),
        cleanup=Path(directory),
        wrap=lambda f: _in_app(app, f),
        crs=request.form.get("crs") or None,
        mapping=columns,
        options=opts,
        who=audit.Who(user_id=p.user_id, username=p.username, role=p.role),
    )
    view = import_jobs.job_view(session, job_id, user_id=p.user_id, admin=True)
    return jsonify(view), 202


def _in_app(app: Any, f: Any) -> Any:
    def run() -> None:
        with app.app_context():
            f()

    return run


@bp.get("/import-jobs/<int:job_id>")
def get_job(job_id: int):  # type: ignore[no-untyped-def]
    """A job's status, stage and progress, then its report (or its refusal as ``error``)."""
    p = current_principal()
    view = import_jobs.job_view(get_session(), job_id, user_id=p.user_id, admin=p.role == "admin")
    return jsonify(view)


@bp.get("/import/held")
def held():  # type: ignore[no-untyped-def]
    """The records imports held aside (``outside=hold``): the caller's own imports' (all of
    them for the administrator); ``kind`` narrows, ``limit`` (1–5000, 500) caps."""
    p = current_principal()
    kind = str_arg("kind", max_length=30)
    rows = import_jobs.held_records(
        get_session(),
        user_id=p.user_id,
        admin=p.role == "admin",
        kind=kind,
        limit=int_arg("limit", minimum=1, maximum=5000, default=500) or 500,
    )
    return jsonify(held=rows, count=len(rows))
