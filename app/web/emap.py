"""The e-map (电子地图): a page of the app's own template and scripts, and the data it draws.

The page carries no data in generated JavaScript or HTML: its settings travel as a JSON data
block (``<script type="application/json">``, never executed). The map is drawn from vector
tiles (``/tiles/…``, MapLibre GL inside Leaflet); grid names come from ``/api/emap/labels`` and
the grid under a click from ``/api/emap/pick``, all scoped to the caller's grids, and the
scripts put every name into the DOM as text. Leaflet, MapLibre and their plugins are served by
the app from npm packages (no CDN), so the page stays small whatever the data.
"""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, redirect, render_template, url_for

from app.auth import current_principal
from app.db import get_session
from app.errors import BadParameter
from app.models.grid import LEVEL_NAMES
from app.params import bbox_arg, float_arg, int_arg
from app.services import emap as svc
from app.services.basemap import basemap_settings
from app.services.cases import OVERDUE_COLOR as CASE_OVERDUE_COLOR
from app.services.cases import STATUS_COLORS as CASE_STATUS_COLORS
from app.services.cases import STATUS_NAMES as CASE_STATUS_NAMES
from app.web.vendor import vendor_url

bp = Blueprint("emap", __name__)

LEAFLET_JS = [
    vendor_url("leaflet", "leaflet.js"),
    # Vector tiles: MapLibre GL (its CSP build: no blob: worker, no eval) inside Leaflet.
    vendor_url("maplibre-gl", "maplibre-gl-csp.js"),
    vendor_url("@maplibre/maplibre-gl-leaflet", "leaflet-maplibre-gl.js"),
    # Drawing and editing tools of the edit mode; must load right after Leaflet.
    vendor_url("@geoman-io/leaflet-geoman-free", "leaflet-geoman.min.js"),
    vendor_url("leaflet.markercluster", "leaflet.markercluster.js"),
]
LEAFLET_CSS = [
    vendor_url("leaflet", "leaflet.css"),
    vendor_url("maplibre-gl", "maplibre-gl.css"),
    vendor_url("@geoman-io/leaflet-geoman-free", "leaflet-geoman.css"),
    vendor_url("leaflet.markercluster", "MarkerCluster.css"),
    vendor_url("leaflet.markercluster", "MarkerCluster.Default.css"),
]
# Scripts of the e-map: gl_layer.js and gl_tiles.js (the MapLibre layer, drawn as one canvas or as
# Leaflet tiles), emap.js, then the feature scripts in this order; each registers itself with GridGov.onReady(function (map, layers, config) { … }).
EMAP_SCRIPTS: list[str] = [
    "/static/js/gl_layer.js",
    "/static/js/gl_tiles.js",
    "/static/js/emap.js",
    "/static/js/coverage.js",
    "/static/js/grid_edit.js",
    "/static/js/partition.js",
    "/static/js/locate.js",
    "/static/js/emap_cases.js",
    "/static/js/overrides.js",
    "/static/js/emap_link.js",
    "/static/js/search.js",
    "/static/js/emap_print.js",
    "/static/js/emap_networks.js",
    "/static/js/emap_stars.js",
    "/static/js/emap_field.js",
]
EMAP_STYLES: list[str] = [
    "/static/css/emap.css",
    "/static/css/coverage.css",
    "/static/css/grid_edit.css",
    "/static/css/partition.css",
    "/static/css/locate.css",
    "/static/css/cases.css",
    "/static/css/overrides.css",
    "/static/css/search.css",
    "/static/css/stars.css",
]


@bp.get("/")
def index():  # type: ignore[no-untyped-def]
    """Send the visitor to the e-map."""
    return redirect(url_for("emap.emap"))


@bp.get("/emap")
def emap():  # type: ignore[no-untyped-def]
    """The e-map page: the shell and its settings; the map comes from tiles."""
    principal = current_principal()
    settings = {
        "basemap": basemap_settings(current_app.config),
        "home": svc.home(get_session(), principal),
        "places": svc.places(get_session(), principal),
        "level_styles": svc.LEVEL_STYLES,
        "level_names": LEVEL_NAMES,
        "case_status_names": CASE_STATUS_NAMES,
        "case_status_colors": CASE_STATUS_COLORS,
        "case_overdue_color": CASE_OVERDUE_COLOR,
        "tiles": "/tiles/{layer}/{z}/{x}/{y}.mvt",
        "worker": vendor_url("maplibre-gl", "maplibre-gl-csp-worker.js"),
        "role": principal.role,
    }
    html = render_template(
        "emap.html",
        settings=settings,
        css=LEAFLET_CSS + EMAP_STYLES,
        js=LEAFLET_JS + EMAP_SCRIPTS,
    )
    return html, 200, {"Content-Type": "text/html; charset=utf-8"}


def _zoom() -> float:
    zoom = float_arg("zoom", minimum=0, maximum=24)
    if zoom is None:
        raise BadParameter("zoom", "is required (the map's zoom, 0–24)")
    return zoom


@bp.get("/api/emap/home")
def home():  # type: ignore[no-untyped-def]
    """The extent the e-map opens on for the caller: its grids (minlon, minlat, maxlon, maxlat)."""
    return jsonify({"bbox": svc.home(get_session(), current_principal())})


@bp.get("/api/emap/labels")
def labels():  # type: ignore[no-untyped-def]
    """Grid names to write in a view at a zoom, placed so that none overlap; the caller's grids."""
    bbox = bbox_arg("bbox")
    if bbox is None:
        raise BadParameter("bbox", "is required: minlon,minlat,maxlon,maxlat")
    max_level = int_arg("max_level", minimum=0, maximum=9)
    return jsonify(svc.labels(get_session(), current_principal(), bbox, _zoom(), max_level))


@bp.get("/api/emap/pick")
def pick():  # type: ignore[no-untyped-def]
    """The grid under a click (the deepest level drawn at the zoom), as GeoJSON; the caller's grids."""
    lon = float_arg("lon", minimum=-180, maximum=180)
    lat = float_arg("lat", minimum=-90, maximum=90)
    if lon is None or lat is None:
        raise BadParameter("lon/lat", "both are required (WGS84 degrees)")
    max_level = int_arg("max_level", minimum=1, maximum=9)
    return jsonify(svc.pick(get_session(), current_principal(), lon, lat, _zoom(), max_level))


@bp.get("/favicon.ico")
def favicon():  # type: ignore[no-untyped-def]
    """No icon; answer without an error so browsers stop asking."""
    return "", 204
