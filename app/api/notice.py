"""How a grid's notice board (网格公示牌) shows its people's phones: masked unless it chooses."""

from __future__ import annotations

from flask import Blueprint, jsonify

from app.api.params import body_fields
from app.db import get_session, transaction
from app.errors import BadParameter
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
