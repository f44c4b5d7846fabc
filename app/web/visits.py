"""The field-work phone page: visits due, recording a visit with the phone's position, check-in."""

from __future__ import annotations

from flask import Blueprint, render_template

from app.web.cases import LEAFLET

bp = Blueprint("visit_pages", __name__)


@bp.get("/visits")
def visits():  # type: ignore[no-untyped-def]
    """A worker's visits on the phone: the due list, a visit form using the GPS, check-in, and
    a patrol whose positions are sent in batches."""
    return render_template(
        "visits/index.html",
        title="走访与打卡",
        assets={
            "css": LEAFLET["css"][1:],
            "js": ["/static/js/case_common.js", "/static/js/patrol.js"],
        },
        script="/static/js/visits.js",
    )
