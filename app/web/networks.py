"""The networks page (多网合一): departments' grid layers, how they nest in the unified grid."""

from __future__ import annotations

from flask import Blueprint, render_template

bp = Blueprint("network_pages", __name__)


@bp.get("/networks")
def networks():  # type: ignore[no-untyped-def]
    """The list of networks and, for the one chosen, its mismatch table (filled from the API)."""
    return render_template(
        "networks/index.html",
        title="多网合一",
        assets={"css": [], "js": []},
        script="/static/js/networks.js",
    )
