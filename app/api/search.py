"""The search box's API: one query over grids, addresses, people, cases and places."""

from __future__ import annotations

from flask import Blueprint, jsonify, request

from app.api.params import int_arg
from app.auth import current_principal
from app.db import get_session
from app.services import search as svc

bp = Blueprint("search_api", __name__, url_prefix="/api")


@bp.get("/search")
def search():  # type: ignore[no-untyped-def]
    """Suggestions for ``q`` (at least two characters), the best ``limit`` (1–30, default 10),
    optionally of some ``kinds`` only (comma-separated), within the caller's grids."""
    raw = request.args.get("q")
    kinds = request.args.get("kinds")
    wanted = tuple(k.strip() for k in kinds.split(",") if k.strip()) if kinds else svc.KINDS
    return jsonify(
        svc.search(
            get_session(),
            current_principal(),
            raw,
            limit=int_arg("limit", minimum=1, maximum=svc.MAX_LIMIT, default=10) or 10,
            kinds=wanted,
        )
    )
