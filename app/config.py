"""Configuration defaults; the environment and a test mapping override them."""

from __future__ import annotations

import os
from typing import Any

DEFAULTS: dict[str, Any] = {
    # None: the embedded private cluster of this checkout (see app/embedded_pg.py).
    "DATABASE_URL": None,
    "JSON_AS_ASCII": False,
    # Basemap of the e-map: "none", "tianditu" (needs TIANDITU_KEY) or "xyz" (BASEMAP_URL).
    "BASEMAP": "none",
    "BASEMAP_URL": None,
    "BASEMAP_ATTRIBUTION": "",
    "TIANDITU_KEY": None,
    # Default service-circle radius (metres) and the five-minute-walk preset.
    "SERVICE_RADIUS_M": 1000.0,
    "FIVE_MINUTE_RADIUS_M": 400.0,
    # Request bodies larger than this are refused (bytes).
    "MAX_CONTENT_LENGTH": 64 * 1024 * 1024,
}

ENV_KEYS = (
    "DATABASE_URL",
    "BASEMAP",
    "BASEMAP_URL",
    "BASEMAP_ATTRIBUTION",
    "TIANDITU_KEY",
    "SECRET_KEY",
    "SERVICE_RADIUS_M",
    "FIVE_MINUTE_RADIUS_M",
)


def from_environment() -> dict[str, Any]:
    """Return the settings given by GRIDGOV_* (or plain DATABASE_URL) environment variables."""
    found: dict[str, Any] = {}
    for key in ENV_KEYS:
        value = os.environ.get(f"GRIDGOV_{key}") or (
            os.environ.get(key) if key == "DATABASE_URL" else None
        )
        if value:
            found[key] = value
    return found
