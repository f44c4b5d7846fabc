"""Case pages: the centre's desk, a worker's phone page, a resident's page, and the KPI charts."""

from __future__ import annotations

from flask import Blueprint, render_template, request

from app.auth import current_principal
from app.auth.policy import grid_scope
from app.db import get_session
from app.services import cases, names
from app.web.vendor import vendor_url

bp = Blueprint("case_pages", __name__, url_prefix="/cases")

LEAFLET = {
    "css": [vendor_url("leaflet", "leaflet.css"), "/static/css/cases.css"],
    "js": [vendor_url("leaflet", "leaflet.js"), "/static/js/case_common.js"],
}


@bp.context_processor
def case_vocabulary() -> dict[str, object]:
    """What every case page draws states and sources with, from their one definition: the
    desk's filters in the template, badges and markers in ``case_common.js`` (a JSON block)."""
    return {
        "case_vocabulary": {
            "statuses": [
                {"code": s, "name": cases.STATUS_NAMES[s], "hint": cases.STATUS_HINTS.get(s)}
                for s in cases.STATES
            ],
            "status_colors": cases.STATUS_COLORS,
            "overdue_color": cases.OVERDUE_COLOR,
            "sources": cases.SOURCE_NAMES,
        }
    }


@bp.get("/desk")
def desk():  # type: ignore[no-untyped-def]
    """The command centre's case desk: filters, list (overdue first), map, actions."""
    p = current_principal()
    session = get_session()
    # Whom the desk may send a case to, by name: the workers of the caller's grids.
    workers = names.workers(session, grid_scope(session, p)) if p.role != "department" else []
    assets = {
        "css": LEAFLET["css"] + ["/static/css/search.css"],
        "js": LEAFLET["js"] + ["/static/js/search.js"],
    }
    return render_template(
        "cases/desk.html",
        title="事件受理台",
        assets=assets,
        script="/static/js/case_desk.js",
        workers=workers,
    )


@bp.get("/worker")
def worker():  # type: ignore[no-untyped-def]
    """A grid worker's phone page: my cases on a map; accept, resolve with note, photo, GPS."""
    p = current_principal()
    session = get_session()
    worker_id = _worker_of_page()
    # The administrator and the centre choose a worker by name (their grids' workers).
    choices = (
        names.workers(session, grid_scope(session, p)) if p.role in ("admin", "centre") else []
    )
    return render_template(
        "cases/worker.html",
        title="我的事件",
        assets=LEAFLET,
        script="/static/js/case_worker.js",
        worker_id=worker_id,
        worker_name=names.worker_name(session, int(worker_id)) if worker_id.isdigit() else "",
        choices=choices,
        on_behalf=p.role == "admin",
        may_choose=p.role in ("admin", "centre"),
    )


def _worker_of_page() -> str:
    """A worker sees his own cases; the centre and the administrator may open anyone's page."""
    p = current_principal()
    if p.role in ("admin", "centre"):
        return request.args.get("worker", "") or (str(p.worker_id) if p.worker_id else "")
    return str(p.worker_id) if p.worker_id else ""


@bp.get("/track")
def track():  # type: ignore[no-untyped-def]
    """A resident's page: the state of a case by its code, and the rating when it is done."""
    return render_template(
        "cases/track.html",
        title="事件查询与评价",
        assets={"css": ["/static/css/cases.css"], "js": ["/static/js/case_common.js"]},
        script="/static/js/case_track.js",
        code=request.args.get("code", ""),
    )


@bp.get("/kpi")
def kpi():  # type: ignore[no-untyped-def]
    """KPIs per grid and per worker with charts: the cases, and the field work beside them."""
    return render_template(
        "cases/kpi.html",
        title="事件考核指标",
        assets={
            "css": ["/static/css/cases.css"],
            "js": [
                vendor_url("chart.js", "chart.umd.min.js"),
                "/static/js/case_common.js",
                "/static/js/field_kpi.js",
            ],
        },
        script="/static/js/case_kpi.js",
    )
