"""The points page: a quarter's ranking of party members, households and micro-grids."""

from __future__ import annotations

from flask import Blueprint, render_template

from app.services.points import parse_quarter

bp = Blueprint("points_pages", __name__)


@bp.get("/points")
def points():  # type: ignore[no-untyped-def]
    """The ranking of the quarter within the caller's grids (filled from ``/api/points/ranking``)."""
    return render_template(
        "points/index.html",
        title="积分排名",
        assets={"css": [], "js": []},
        script="/static/js/points.js",
        quarter=parse_quarter(None)[0],
    )
