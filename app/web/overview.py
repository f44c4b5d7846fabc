"""Pages of the 一张图 overview, the ledgers (台账) and a resident's report page (/report).

Every page is a template of the app and one script of its own; the data comes as JSON (the
page's settings in a ``<script type="application/json">`` block, the figures from the API) and
enters the page as text.
"""

from __future__ import annotations

import gzip
from typing import Any

from flask import Blueprint, Response, current_app, render_template, request
from sqlalchemy import text

from app.auth import current_principal
from app.auth.policy import EXPORTERS, SUPERVISORS, grid_scope, sees_tags
from app.db import get_session
from app.models.people import ROLE_NAMES, SENSITIVE_TAGS
from app.models.places import SERVICE_POINT_KINDS
from app.services import ledgers
from app.services import tiles as tile_svc
from app.services.basemap import basemap_settings
from app.web.tiles import MVT
from app.web.vendor import vendor_url

bp = Blueprint("overview_pages", __name__)

CSS = ["/static/css/cases.css", "/static/css/overview.css"]

# The ledgers: page name -> (title, API list, export kind, who may export it).
LEDGERS: dict[str, dict[str, Any]] = {
    "households": {
        "title": "住户台账",
        "api": "/api/ledgers/households",
        "export": "households",
        "exporters": EXPORTERS,
    },
    "people": {
        "title": "人口台账",
        "api": "/api/ledgers/people",
        "export": "grids",
        "exporters": SUPERVISORS,
    },
    "workers": {
        "title": "网格员与党员台账",
        "api": "/api/ledgers/workers",
        "export": "workers",
        "exporters": EXPORTERS,
    },
    "points": {
        "title": "服务阵地台账",
        "api": "/api/ledgers/service-points",
        "export": "service_points",
        "exporters": SUPERVISORS,
    },
    "cameras": {
        "title": "视频探头台账",
        "api": "/api/ledgers/cameras",
        "export": "cameras",
        "exporters": SUPERVISORS,
    },
}
# Who may open each ledger (the rules in app.auth.policy say the same).
LEDGER_ROLES = {
    "households": {"admin", "centre", "grid_chief", "micro_chief", "worker", "party_member"},
    "people": {"admin", "centre", "grid_chief", "micro_chief", "worker"},
    "workers": set(SUPERVISORS),
    "points": {"admin", "centre", "grid_chief", "micro_chief", "worker", "party_member"},
    "cameras": {"admin", "centre", "grid_chief", "micro_chief", "worker", "party_member"},
}


@bp.get("/overview")
def overview():  # type: ignore[no-untyped-def]
    """The 一张图 overview of the caller's grids, refreshed every minute."""
    return render_template(
        "overview.html",
        title="一张图 · 综合态势",
        assets={
            "css": CSS,
            "js": [vendor_url("chart.js", "chart.umd.min.js"), "/static/js/case_common.js"],
        },
        script="/static/js/overview.js",
    )


def _ledger(name: str):  # type: ignore[no-untyped-def]
    session, p = get_session(), current_principal()
    spec = LEDGERS[name]
    settings = {
        "kind": name,
        "api": spec["api"],
        "export": f"/api/export/{spec['export']}" if p.role in spec["exporters"] else None,
        "sees_tags": sees_tags(p),
        "tags": SENSITIVE_TAGS,
        "may_reveal": name == "households",
        "grids": ledgers.grid_choices(session, grid_scope(session, p)),
        "roles": ROLE_NAMES,
        "point_kinds": SERVICE_POINT_KINDS,
        "camera_kinds": ledgers.CAMERA_KINDS,
        "point_statuses": ledgers.POINT_STATUSES,
    }
    tabs = [(k, v["title"]) for k, v in LEDGERS.items() if p.role in LEDGER_ROLES[k]]
    return render_template(
        "ledger.html",
        title=spec["title"],
        kind=name,
        tabs=tabs,
        settings=settings,
        assets={"css": CSS, "js": ["/static/js/case_common.js"]},
        script="/static/js/ledger.js",
    )


@bp.get("/ledgers")
def ledgers_index():  # type: ignore[no-untyped-def]
    """The ledgers: the first one the caller may open."""
    role = current_principal().role
    first = next(k for k in LEDGERS if role in LEDGER_ROLES[k])
    return _ledger(first)


@bp.get("/ledgers/households")
def households():  # type: ignore[no-untyped-def]
    """The household ledger."""
    return _ledger("households")


@bp.get("/ledgers/people")
def people():  # type: ignore[no-untyped-def]
    """The population ledger by grid."""
    return _ledger("people")


@bp.get("/ledgers/workers")
def workers():  # type: ignore[no-untyped-def]
    """The ledger of workers and party members."""
    return _ledger("workers")


@bp.get("/ledgers/points")
def points():  # type: ignore[no-untyped-def]
    """The service-point ledger."""
    return _ledger("points")


@bp.get("/ledgers/cameras")
def cameras():  # type: ignore[no-untyped-def]
    """The camera ledger."""
    return _ledger("cameras")


@bp.get("/report")
def report():  # type: ignore[no-untyped-def]
    """A resident's phone page: report a case (category, place, description, photos, contact)
    without an account, and get the code to follow it on /cases/track."""
    session = get_session()
    extent = session.execute(
        text(
            "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM"
            " (SELECT ST_Extent(geom) AS e FROM grid WHERE valid_to IS NULL AND parent_id IS NULL) s"
        )
    ).one()
    basemap = basemap_settings(current_app.config)
    # Raster basemaps of other servers (Tianditu, XYZ) as they are; the own vector basemap
    # through the residents' basemap tiles below. The staff's tile routes stay closed.
    rasters = [
        s
        for s in basemap.get("sources", [])
        if s.get("type") == "raster" and not str(s["tiles"][0]).startswith("/")
    ]
    vector = None
    if basemap["kind"] == "own":
        vector = {"tiles": [RESIDENT_BASEMAP], "max_zoom": basemap.get("max_zoom") or 16}
    settings = {
        "extent": [round(v, 6) for v in extent] if extent[0] is not None else None,
        "rasters": rasters,
        "vector": vector,
        "worker": vendor_url("maplibre-gl", "maplibre-gl-csp-worker.js"),
        "attribution": basemap.get("attribution") if rasters or vector else "",
        "max_photos": 3,
        "max_bytes": 15 * 1024 * 1024,
    }
    css = [vendor_url("leaflet", "leaflet.css"), *CSS]
    js = [vendor_url("leaflet", "leaflet.js")]
    if vector:
        css.insert(1, vendor_url("maplibre-gl", "maplibre-gl.css"))
        js += [
            vendor_url("maplibre-gl", "maplibre-gl-csp.js"),
            vendor_url("@maplibre/maplibre-gl-leaflet", "leaflet-maplibre-gl.js"),
        ]
    return render_template(
        "report.html",
        title="居民随手拍 · 事件上报",
        settings=settings,
        assets={"css": css, "js": [*js, "/static/js/case_common.js"]},
        script="/static/js/report.js",
    )


RESIDENT_BASEMAP = "/report/basemap/{z}/{x}/{y}.mvt"


@bp.get("/report/basemap/<int:z>/<int:x>/<int:y>.mvt")
def report_basemap(z: int, x: int, y: int):  # type: ignore[no-untyped-def]
    """A tile of the own basemap (roads, buildings, water: no grid, household or case) for the
    residents' report page."""
    body, etag = tile_svc.tile(get_session(), current_principal(), "basemap", z, x, y)
    headers = {"ETag": f'"{etag}"', "Cache-Control": "public, max-age=3600"}
    if request.if_none_match.contains(etag):
        return Response(status=304, headers=headers)
    if "gzip" in (request.headers.get("Accept-Encoding") or ""):
        headers["Content-Encoding"] = "gzip"
        return Response(body, mimetype=MVT, headers=headers)
    return Response(gzip.decompress(body), mimetype=MVT, headers=headers)
