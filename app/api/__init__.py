"""JSON API blueprints; each feature module defines ``bp`` and is listed here."""

from __future__ import annotations

from flask import Flask
from werkzeug.routing import IntegerConverter

from app.api import (
    cases,
    coverage,
    grid_edit,
    grids,
    guard,
    import_jobs,
    locate,
    networks,
    notice,
    open311,
    openapi,
    overrides,
    overview,
    partition,
    patrols,
    personal,
    places,
    points,
    search,
    stars,
    transfer,
    visits,
)

BLUEPRINTS = [
    grids.bp,
    networks.bp,
    notice.bp,
    grid_edit.bp,
    places.bp,
    transfer.bp,
    import_jobs.bp,
    coverage.bp,
    partition.bp,
    locate.bp,
    overrides.bp,
    cases.bp,
    open311.bp,
    personal.bp,
    overview.bp,
    search.bp,
    patrols.bp,
    visits.bp,
    points.bp,
    stars.bp,
    openapi.bp,
]


class IdConverter(IntegerConverter):
    """``<int:…>`` in routes: a non-negative integer that fits a PostgreSQL ``integer`` id."""

    def __init__(self, map, fixed_digits=0, min=None, max=2**31 - 1, signed=False):  # type: ignore[no-untyped-def]  # noqa: A002
        super().__init__(map, fixed_digits=fixed_digits, min=min, max=max, signed=signed)

    def to_python(self, value: str) -> int:
        # A number past the largest id names no record: 0 (no id is 0) lets the view answer
        # 404 for every method. Refusing the match instead made werkzeug answer a PUT or DELETE
        # with 405, as if the method were the problem.
        number = int(value)
        return number if number <= self.max else 0  # type: ignore[operator]


def register(app: Flask) -> None:
    """Register every API blueprint on the app."""
    app.url_map.converters["int"] = IdConverter
    guard.init_app(app)  # before any other hook: refuse NUL text and deep JSON first
    for bp in BLUEPRINTS:
        app.register_blueprint(bp)
