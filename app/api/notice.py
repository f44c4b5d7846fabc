"""How a grid's notice board (网格公示牌) shows its people's phones: masked unless it chooses."""

from __future__ import annotations

from flask import Blueprint, jsonify, request
from sqlalchemy import text

from app.api.params import body_fields
from app.auth import current_principal
from app.auth.policy import grid_scope
from app.db import get_session, transaction
from app.errors import BadParameter, NotFound
from app.services import notice_print

bp = Blueprint("notice_api", __name__, url_prefix="/api")


@bp.put("/grids/<int:grid_id>/notice-settings")
def notice_settings(grid_id: int):  # type: ignore[no-untyped-def]
    """Choose whether the printed notice board shows phones in full (``show_phones``)."""
    show = body_fields().get("show_phones")
    if not isinstance(show, bool):
        raise BadParameter("show_phones", "须为 true 或 false")
    session = get_session()
    with transaction(session):
        answer = notice_print.set_notice_setting(session, grid_id, show)
    return jsonify(answer)


@bp.put("/workers/<int:worker_id>/photo")
def worker_photo(worker_id: int):  # type: ignore[no-untyped-def]
    """Upload a responsible person's photo for the notice boards (multipart ``photo``: JPEG,
    PNG or WebP within the photo size cap); a worker outside the caller's grids is 404."""
    session = get_session()
    scope = grid_scope(session, current_principal())
    found = session.scalar(
        text(
            "SELECT EXISTS (SELECT 1 FROM worker w WHERE w.id = :w AND (CAST(:s AS integer[]) IS NULL"
            " OR EXISTS (SELECT 1 FROM grid_assignment a WHERE a.worker_id = w.id"
            " AND a.grid_id = ANY(CAST(:s AS integer[])))))"
        ),
        {"w": worker_id, "s": sorted(scope) if scope is not None else None},
    )
    if not found:
        raise NotFound(f"人员 {worker_id} 不存在 / worker not found")
    upload = request.files.get("photo")
    if upload is None or not upload.filename:
        raise BadParameter("photo", "请上传照片（表单字段 photo）/ no photo uploaded")
    data = upload.read(notice_print.photo_limit() + 1)
    with transaction(session):
        answer = notice_print.set_worker_photo(session, worker_id, data)
    return jsonify(answer)
