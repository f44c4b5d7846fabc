"""The e-map (电子地图): folium-rendered Leaflet with every asset served by the app."""

from __future__ import annotations

import re
from html import escape
from typing import Any

import folium
from branca.element import CssLink, Element, JavascriptLink, MacroElement
from flask import Blueprint, current_app, redirect, url_for
from folium.plugins import FastMarkerCluster
from jinja2 import Template
from shapely.geometry import mapping

from app.auth import csp_nonce, csrf_token, current_principal, user_label
from app.db import get_session
from app.services import grids as svc
from app.web.vendor import vendor_url
from gis.geodesy import geodesic_circle

bp = Blueprint("emap", __name__)

INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)(?:\s+type=\"text/javascript\")?\s*>")

LEAFLET_JS = [
    ("leaflet", vendor_url("leaflet", "leaflet.js")),
    # Drawing and editing tools of the edit mode; must load right after Leaflet.
    ("leaflet_geoman", vendor_url("@geoman-io/leaflet-geoman-free", "leaflet-geoman.min.js")),
]
LEAFLET_CSS = [
    ("leaflet_css", vendor_url("leaflet", "leaflet.css")),
    ("leaflet_geoman_css", vendor_url("@geoman-io/leaflet-geoman-free", "leaflet-geoman.css")),
]
CLUSTER_JS = [("markerclusterjs", vendor_url("leaflet.markercluster", "leaflet.markercluster.js"))]
CLUSTER_CSS = [
    ("markerclustercss", vendor_url("leaflet.markercluster", "MarkerCluster.css")),
    ("markerclusterdefaultcss", vendor_url("leaflet.markercluster", "MarkerCluster.Default.css")),
]
# Feature scripts of the e-map (loaded after emap.js, in this order); each registers itself with
# GridGov.onReady(function (map, layers) { … }).
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

# Households carry no personal data on the map: just a point.
HOUSEHOLD_MARKER = (
    "function (row) { return L.circleMarker(new L.LatLng(row[0], row[1]),"
    " {radius: 4, color: '#1565c0', weight: 1, fillOpacity: 0.7}); }"
)

LEVEL_STYLE = {
    1: {"color": "#b71c1c", "weight": 4, "fillOpacity": 0.0, "dashArray": None},
    2: {"color": "#e65100", "weight": 3, "fillOpacity": 0.03, "dashArray": None},
    3: {"color": "#1565c0", "weight": 2, "fillOpacity": 0.05, "dashArray": None},
    4: {"color": "#2e7d32", "weight": 1, "fillOpacity": 0.08, "dashArray": "4 3"},
    5: {"color": "#6a1b9a", "weight": 1, "fillOpacity": 0.08, "dashArray": "2 3"},
}
LEVEL_LAYER = {1: "街道/乡镇", 2: "社区/村", 3: "网格", 4: "微网格", 5: "片区"}


class LocalMap(folium.Map):
    """A folium map that loads Leaflet from the app instead of a CDN."""

    default_js = LEAFLET_JS
    default_css = LEAFLET_CSS


class LocalFastMarkerCluster(FastMarkerCluster):
    """Marker clustering loaded from the app instead of a CDN."""

    default_js = CLUSTER_JS
    default_css = CLUSTER_CSS


class MapHook(MacroElement):
    """Hand the Leaflet map and the named layers to the page's scripts once the map exists."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
        GridGov.ready({{ this._parent.get_name() }}, {
        {%- for key, layer in this.layers.items() %}
            {{ key|tojson }}: {{ layer.get_name() }},
        {%- endfor %}
        }, {{ this.config|tojson }});
        {% endmacro %}
        """
    )

    def __init__(self, layers: dict[str, Any], config: dict[str, Any]) -> None:
        super().__init__()
        self._name = "MapHook"
        self.layers = layers
        self.config = config


def _basemap(m: folium.Map) -> None:
    cfg = current_app.config
    kind = (cfg.get("BASEMAP") or "none").lower()
    if kind == "tianditu" and cfg.get("TIANDITU_KEY"):
        key = cfg["TIANDITU_KEY"]
        for layer, name in (("vec", "天地图矢量"), ("cva", "天地图注记")):
            folium.TileLayer(
                tiles=f"https://t{{s}}.tianditu.gov.cn/{layer}_w/wmts?SERVICE=WMTS&REQUEST=GetTile&VERSION=1.0.0"
                f"&LAYER={layer}&STYLE=default&TILEMATRIXSET=w&FORMAT=tiles&TILEMATRIX={{z}}&TILEROW={{y}}&TILECOL={{x}}&tk={key}",
                attr="天地图",
                name=name,
                subdomains="01234567",
                overlay=layer == "cva",
                control=True,
            ).add_to(m)
    elif kind == "xyz" and cfg.get("BASEMAP_URL"):
        folium.TileLayer(
            tiles=cfg["BASEMAP_URL"], attr=cfg.get("BASEMAP_ATTRIBUTION") or "底图", name="底图"
        ).add_to(m)


def build_map() -> folium.Map:
    """Build the e-map of every current grid, household, service point and camera."""
    session = get_session()
    m = LocalMap(
        location=[31.8, 117.2],
        zoom_start=14,
        tiles=None,
        control_scale=True,
        prefer_canvas=True,
        **{"maxZoom": 19, "minZoom": 3},
    )
    _basemap(m)
    layers: dict[str, Any] = {}
    grids = svc.list_grids(session)
    for level in range(1, 6):
        feats = [f for f in grids["features"] if f["properties"]["level"] == level]
        if not feats:
            continue
        style = LEVEL_STYLE[level]
        layer = folium.GeoJson(
            {"type": "FeatureCollection", "features": feats},
            name=f"{LEVEL_LAYER[level]}（{len(feats)}）",
            style_function=lambda _f, s=style: dict(s, fillColor=s["color"]),
            highlight_function=lambda _f: {"weight": 4, "fillOpacity": 0.2},
            tooltip=folium.GeoJsonTooltip(
                fields=["name", "code", "household_count"], aliases=["名称", "编码", "户数"]
            ),
            on_each_feature=folium.JsCode("function (f, l) { GridGov.bindGrid(f, l); }"),
            show=level != 5,
        )
        layer.add_to(m)
        layers[f"grids_level_{level}"] = layer
    labels = folium.FeatureGroup(name="网格名称标注", show=True)
    for label in svc.grid_labels(session, levels=(2, 3)):
        folium.Marker(
            [label["lat"], label["lon"]],
            icon=folium.DivIcon(
                html=f'<div class="gg-label gg-label-{label["level"]}">{escape(label["name"])}</div>',
                icon_size=(0, 0),
            ),
            interactive=False,
        ).add_to(labels)
    labels.add_to(m)
    layers["labels"] = labels

    hh = svc.household_points(session)
    cluster = LocalFastMarkerCluster(
        hh,
        callback=HOUSEHOLD_MARKER,
        name=f"住户（{len(hh)}）",
        show=True,
    )
    cluster.add_to(m)
    layers["households"] = cluster

    points = svc.service_points(session)["features"]
    circles = folium.GeoJson(
        {
            "type": "FeatureCollection",
            "features": [
                {
                    "type": "Feature",
                    "properties": {"radius_m": f["properties"]["radius_m"]},
                    "geometry": mapping(
                        geodesic_circle(*f["geometry"]["coordinates"], f["properties"]["radius_m"])
                    ),
                }
                for f in points
            ],
        },
        name="服务圈（按服务半径）",
        style_function=lambda _f: {
            "color": "#c62828",
            "weight": 1,
            "fillColor": "#c62828",
            "fillOpacity": 0.05,
        },
        interactive=False,  # passed on to every circle: clicks go through to the grids
        show=True,
    )
    circles.add_to(m)
    layers["service_circles"] = circles
    sp_layer = folium.FeatureGroup(name="党群服务阵地", show=True)
    for f in points:
        lon, lat = f["geometry"]["coordinates"]
        p = f["properties"]
        folium.CircleMarker(
            [lat, lon],
            radius=6,
            color="#ffffff",
            weight=2,
            fill=True,
            fill_color="#c62828",
            fill_opacity=0.95,
            tooltip=f"{p['name']}（{p['kind_name']}，服务半径 {p['radius_m']:.0f} 米）",
        ).add_to(sp_layer)
    sp_layer.add_to(m)
    layers["service_points"] = sp_layer

    cam_layer = folium.FeatureGroup(name="监控探头", show=False)
    for f in svc.cameras(session)["features"]:
        lon, lat = f["geometry"]["coordinates"]
        p = f["properties"]
        folium.CircleMarker(
            [lat, lon],
            radius=3,
            color="#37474f",
            weight=1,
            fill=True,
            fill_opacity=0.8,
            tooltip=f"{p['code']} {p['name'] or ''}",
        ).add_to(cam_layer)
    cam_layer.add_to(m)
    layers["cameras"] = cam_layer

    folium.LayerControl(collapsed=False).add_to(m)
    home = svc.home_extent(session)
    if home:
        m.fit_bounds([[home[1], home[0]], [home[3], home[2]]])
    places = [
        {
            "id": f["properties"]["id"],
            "name": f["properties"]["name"],
            "level": f["properties"]["level"],
        }
        for f in grids["features"]
        if f["properties"]["level"] <= 2
    ]
    m.add_child(MapHook(layers, {"level_names": LEVEL_LAYER, "places": places}))
    return m


def render_page(m: folium.Map) -> str:
    """Render the whole HTML page around the map: title, styles, panel, feature scripts."""
    fig = m.get_root()
    fig.header.add_child(
        Element(
            '<meta charset="utf-8"><title>网格化服务管理 · 电子地图</title>'
            f'<meta name="csrf-token" content="{escape(csrf_token())}">'
            + (f'<meta name="gridgov-user" content="{escape(user_label())}">' if user_label() else "")
            + '<link rel="stylesheet" href="/static/css/auth.css">'
            '<script src="/static/js/auth.js"></script>'
        ),
        name="title",
    )
    for i, href in enumerate(EMAP_STYLES):
        fig.header.add_child(CssLink(href), name=f"gridgov_css_{i}")
    for i, src in enumerate(EMAP_SCRIPTS):
        fig.header.add_child(JavascriptLink(src), name=f"gridgov_js_{i}")
    fig.html.add_child(
        Element(
            '<div id="gg-title">网格化服务管理 · 电子地图</div>'
            '<aside id="gg-panel" hidden><button id="gg-panel-close" title="关闭">×</button>'
            '<div id="gg-panel-body"></div></aside>'
        )
    )
    html = fig.render()
    # The CSP admits inline scripts only with this request's nonce (folium writes the map inline).
    html = INLINE_SCRIPT.sub(f'<script nonce="{csp_nonce()}">', html)
    # The role decides which tools are shown (the server refuses the rest anyway).
    role = escape(current_principal().role)
    if "<html lang" not in html:
        return html.replace("<html>", f'<html lang="zh-CN" data-gg-role="{role}">', 1)
    return html


@bp.get("/")
def index():  # type: ignore[no-untyped-def]
    """Send the visitor to the e-map."""
    return redirect(url_for("emap.emap"))


@bp.get("/emap")
def emap():  # type: ignore[no-untyped-def]
    """The e-map page."""
    html = render_page(build_map())
    return html, 200, {"Content-Type": "text/html; charset=utf-8"}


@bp.get("/favicon.ico")
def favicon():  # type: ignore[no-untyped-def]
    """No icon; answer without an error so browsers stop asking."""
    return "", 204
