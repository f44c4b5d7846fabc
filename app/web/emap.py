"""The e-map (电子地图): a page of the app's own template and scripts, and the data it draws.

The page carries no data in generated JavaScript or HTML: its settings travel as a JSON data
block (``<script type="application/json">``, never executed) and its layers are fetched from
``/api/emap/layers`` as JSON, scoped to the caller's grids; the scripts put every name into the
DOM as text. Leaflet and its plugins are served by the app from npm packages (no CDN).
"""

from __future__ import annotations

from html import escape
from typing import Any

from flask import Blueprint, current_app, jsonify, redirect, render_template, url_for

from app.auth import current_principal
from app.db import get_session
from app.services import emap as svc
from app.web.vendor import vendor_url

bp = Blueprint("emap", __name__)

LEAFLET_JS = [
    vendor_url("leaflet", "leaflet.js"),
    # Drawing and editing tools of the edit mode; must load right after Leaflet.
    vendor_url("@geoman-io/leaflet-geoman-free", "leaflet-geoman.min.js"),
    vendor_url("leaflet.markercluster", "leaflet.markercluster.js"),
]
LEAFLET_CSS = [
    vendor_url("leaflet", "leaflet.css"),
    vendor_url("@geoman-io/leaflet-geoman-free", "leaflet-geoman.css"),
    vendor_url("leaflet.markercluster", "MarkerCluster.css"),
    vendor_url("leaflet.markercluster", "MarkerCluster.Default.css"),
]
# Feature scripts of the e-map (loaded after emap.js, in this order); each registers itself with
# GridGov.onReady(function (map, layers, config) { … }).
EMAP_SCRIPTS: list[str] = [
    "/static/js/emap.js",
    "/static/js/coverage.js",
    "/static/js/grid_edit.js",
    "/static/js/partition.js",
    "/static/js/locate.js",
    "/static/js/emap_cases.js",
    "/static/js/overrides.js",
]
EMAP_STYLES: list[str] = [
    "/static/css/emap.css",
    "/static/css/coverage.css",
    "/static/css/grid_edit.css",
    "/static/css/partition.css",
    "/static/css/locate.css",
    "/static/css/cases.css",
    "/static/css/overrides.css",
]


def basemap_layers() -> list[dict[str, Any]]:
    """The configured basemap as tile-layer settings (none, Tianditu with a key, or an XYZ URL)."""
    cfg = current_app.config
    kind = (cfg.get("BASEMAP") or "none").lower()
    if kind == "tianditu" and cfg.get("TIANDITU_KEY"):
        key = cfg["TIANDITU_KEY"]
        return [
            {
                "url": f"https://t{{s}}.tianditu.gov.cn/{layer}_w/wmts?SERVICE=WMTS&REQUEST=GetTile"
                "&VERSION=1.0.0&LAYER="
                f"{layer}&STYLE=default&TILEMATRIXSET=w&FORMAT=tiles&TILEMATRIX={{z}}&TILEROW={{y}}"
                f"&TILECOL={{x}}&tk={key}",
                "name": name,
                "attribution": "天地图",
                "subdomains": "01234567",
                "overlay": layer == "cva",
            }
            for layer, name in (("vec", "天地图矢量"), ("cva", "天地图注记"))
        ]
    if kind == "xyz" and cfg.get("BASEMAP_URL"):
        return [
            {
                "url": cfg["BASEMAP_URL"],
                "name": "底图",
                # Leaflet shows the attribution as HTML: escape the configured text.
                "attribution": escape(cfg.get("BASEMAP_ATTRIBUTION") or "底图"),
                "subdomains": "abc",
                "overlay": False,
            }
        ]
    return []


@bp.get("/")
def index():  # type: ignore[no-untyped-def]
    """Send the visitor to the e-map."""
    return redirect(url_for("emap.emap"))


@bp.get("/emap")
def emap():  # type: ignore[no-untyped-def]
    """The e-map page: the shell; the layers come from /api/emap/layers."""
    settings = {
        "basemap": basemap_layers(),
        "layers_url": url_for("emap.layers"),
        "role": current_principal().role,
    }
    html = render_template(
        "emap.html",
        settings=settings,
        role=current_principal().role,
        css=LEAFLET_CSS + EMAP_STYLES,
        js=LEAFLET_JS + EMAP_SCRIPTS,
    )
    return html, 200, {"Content-Type": "text/html; charset=utf-8"}


@bp.get("/api/emap/layers")
def layers():  # type: ignore[no-untyped-def]
    """The e-map's layers for the caller, as JSON scoped to its grids."""
    return jsonify(svc.layers(get_session(), current_principal()))


@bp.get("/favicon.ico")
def favicon():  # type: ignore[no-untyped-def]
    """No icon; answer without an error so browsers stop asking."""
    return "", 204
