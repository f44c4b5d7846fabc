"""HTML pages: the e-map, and the browser-side libraries it loads (served from npm packages)."""

from __future__ import annotations

from flask import Flask

from app.web import (
    basemap,
    cases,
    emap,
    menu,
    networks,
    notice,
    overview,
    points,
    tiles,
    vendor,
    visits,
)

BLUEPRINTS = [
    emap.bp,
    vendor.bp,
    cases.bp,
    tiles.bp,
    basemap.bp,
    overview.bp,
    visits.bp,
    points.bp,
    networks.bp,
    notice.bp,
]


def register(app: Flask) -> None:
    """Register every page blueprint on the app."""
    for bp in BLUEPRINTS:
        app.register_blueprint(bp)
    menu.register(app)
