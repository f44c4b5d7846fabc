"""JSON API blueprints; each feature module defines ``bp`` and is listed here."""

from __future__ import annotations

from flask import Flask

from app.api import (
    cases,
    coverage,
    grid_edit,
    grids,
    locate,
    open311,
    overrides,
    partition,
    places,
    transfer,
)

BLUEPRINTS = [
    grids.bp,
    grid_edit.bp,
    places.bp,
    transfer.bp,
    coverage.bp,
    partition.bp,
    locate.bp,
    overrides.bp,
    cases.bp,
    open311.bp,
]


def register(app: Flask) -> None:
    """Register every API blueprint on the app."""
    for bp in BLUEPRINTS:
        app.register_blueprint(bp)
