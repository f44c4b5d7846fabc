"""The OpenAPI description of the JSON API (``app/openapi.json``), served as it is."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from flask import Blueprint, jsonify

bp = Blueprint("openapi", __name__, url_prefix="/api")

SPEC_PATH = Path(__file__).resolve().parents[1] / "openapi.json"


@cache
def spec() -> dict[str, Any]:
    """The description, read once."""
    with SPEC_PATH.open(encoding="utf-8") as f:
        return json.load(f)


@bp.get("/openapi.json")
def openapi_document():  # type: ignore[no-untyped-def]
    """The OpenAPI 3.0 description of every /api and /open311/v2 endpoint."""
    return jsonify(spec())
