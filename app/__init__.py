"""The grid-governance e-map platform: Flask application factory."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask

from app.config import DEFAULTS, from_environment

LOGGER = logging.getLogger(__name__)


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Build the app: defaults, then the environment, then ``test_config`` over everything."""
    from app import logmask

    logmask.install()
    app = Flask(__name__, instance_relative_config=True)
    app.config.from_mapping(DEFAULTS)
    app.config.from_mapping(from_environment())
    if test_config:
        app.config.from_mapping(test_config)
    app.json.ensure_ascii = False  # type: ignore[attr-defined]

    from app.services.basemap import check_config

    check_config(app.config)  # a basemap that cannot work is refused here, with the reason

    from app.db import Database
    from app.web.errors import register_error_handlers

    Database().init_app(app)
    register_error_handlers(app)

    from app import api, web

    api.register(app)
    web.register(app)

    from app import auth

    auth.init_app(app)

    from app.api import locate_fast

    locate_fast.install(app)  # the plain single locate, answered below Flask
    return app
