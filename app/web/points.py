"""The points pages: a quarter's ranking of party members, households and micro-grids; the
public ranking of a village (no sign-in, printable); the star ratings (评星定级)."""

from __future__ import annotations

from datetime import timedelta

from flask import Blueprint, current_app, g, render_template

from app.api.params import str_arg
from app.auth import client_ip, current_principal
from app.db import get_session
from app.services import points_auto, ratelimit
from app.services.points import parse_quarter, today

bp = Blueprint("points_pages", __name__)


@bp.get("/points")
def points():  # type: ignore[no-untyped-def]
    """The ranking of the quarter within the caller's grids (filled from ``/api/points/ranking``),
    a member's proposal, the reviews waiting for the caller, and a household's exchange."""
    p = current_principal()
    return render_template(
        "points/index.html",
        title="积分排名",
        assets={"css": ["/static/css/points.css"], "js": []},
        script="/static/js/points.js",
        quarter=parse_quarter(None)[0],
        today=today().isoformat(),
        settings={
            "worker_id": p.worker_id if p.role == "party_member" else None,
            "may_propose": p.role == "party_member",
            "may_review": p.role in ("admin", "centre", "grid_chief", "micro_chief"),
            "may_exchange": p.role in ("admin", "centre", "grid_chief", "micro_chief"),
        },
    )


@bp.get("/points/public/<code>")
def public(code: str):  # type: ignore[no-untyped-def]
    """A village's quarter ranking of households and groups, only what the village publishes.
    Anyone may open it; each address may open it a limited number of times in a window."""
    session = get_session()
    cfg = current_app.config
    g.audit_skip = True  # the count is bookkeeping, not a change to audit
    ratelimit.hit(
        session,
        "points_public",
        client_ip() or "unknown",
        weight=1,
        limit=int(cfg.get("POINTS_PUBLIC_LIMIT") or 60),
        window=timedelta(minutes=float(cfg.get("POINTS_PUBLIC_WINDOW_MINUTES") or 10)),
        what="public ranking pages",
    )
    g.audit_skip = False
    data = points_auto.public_ranking(session, code, str_arg("quarter", max_length=10))
    return render_template(
        "points/public.html",
        title=f"{data['village']['name']} {data['quarter']} 积分公示",
        assets={"css": ["/static/css/points.css"], "js": []},
        script="/static/js/points_public.js",
        data=data,
    )


@bp.get("/stars")
def stars():  # type: ignore[no-untyped-def]
    """The star ratings of micro-grids (评星定级) and service points, filled from ``/api/stars``."""
    p = current_principal()
    return render_template(
        "points/stars.html",
        title="评星定级",
        assets={"css": ["/static/css/points.css"], "js": []},
        script="/static/js/stars.js",
        quarter=parse_quarter(None)[0],
        settings={
            "quarter": parse_quarter(None)[0],
            "may_adjust": p.role in ("admin", "centre", "grid_chief"),
            "may_close": p.role in ("admin", "centre"),
            "may_export": p.role in ("admin", "centre"),
            "may_inspect": p.role in ("admin", "centre"),
        },
    )
