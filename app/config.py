"""Configuration defaults; the environment and a test mapping override them."""

from __future__ import annotations

import os
from typing import Any

DEFAULTS: dict[str, Any] = {
    # None: the embedded private cluster of this checkout (see app/embedded_pg.py).
    # The app serves every request through this URL's role: give it only the privileges the app
    # needs (README, "The database"), never a superuser or the schema's owner.
    "DATABASE_URL": None,
    # The role that owns the schema and runs the migrations (`gridgov migrate`, and the upgrade
    # `gridgov serve` does on start); after each upgrade it grants DATABASE_URL's role its
    # privileges. None: the embedded cluster's owner role, or with an external DATABASE_URL that
    # same URL (one role for both, as before).
    "MIGRATION_DATABASE_URL": None,
    # Streaming replicas for the read-only paths (comma-separated URLs; app/replicas.py). None:
    # the private cluster's running replicas when DATABASE_URL is not set, else none.
    "DATABASE_READ_URL": None,
    # How long a replica found unreachable is left alone before it is tried again (seconds).
    "READ_REPLICA_RETRY_SECONDS": 5,
    "JSON_AS_ASCII": False,
    # Basemap of the e-map (app/services/basemap.py, README "Basemap"): "own" (the project's own
    # roads, buildings and water as vector tiles), "pmtiles" (the file BASEMAP_PMTILES),
    # "tianditu" (needs TIANDITU_KEY), "xyz" (BASEMAP_URL) or "none". None: "pmtiles" when
    # BASEMAP_PMTILES is set, else "own". GCJ-02/BD-09 basemaps are refused at start-up.
    "BASEMAP": None,
    "BASEMAP_PMTILES": None,
    "BASEMAP_URL": None,
    "BASEMAP_SUBDOMAINS": "abc",
    "BASEMAP_ATTRIBUTION": "",
    "BASEMAP_MAX_ZOOM": None,
    "BASEMAP_CRS": "wgs84",
    "TIANDITU_KEY": None,
    # Default service-circle radius (metres) and the five-minute-walk preset.
    "SERVICE_RADIUS_M": 1000.0,
    "FIVE_MINUTE_RADIUS_M": 400.0,
    # Limits every grid boundary drawn or edited must respect.
    "GRID_MIN_AREA_M2": 100.0,
    "GRID_MAX_VERTICES": 20_000,
    # Road lines (GeoJSON) that automatic divisions follow; None: the sample street's roads.
    "ROADS_FILE": None,
    # Accounts and sessions. The sign-in and session limits (SESSION_IDLE_MINUTES, LOGIN_* …)
    # default to app.services.users.DEFAULT_LIMITS; set them here or in the environment.
    "SESSION_COOKIE_SECURE": True,
    # How many proxies in front of the app add to X-Forwarded-For (0: none, read the
    # connection's address; 1: one proxy, take the rightmost entry; true counts as 1).
    "TRUST_PROXY": 0,
    # Photos a resident without an account may upload from one address in the window.
    "ANON_PHOTO_LIMIT": 20,
    "ANON_PHOTO_WINDOW_MINUTES": 10,
    # The shared cache of grid tiles in PostgreSQL (table tile_cache) is kept under this size
    # (megabytes; the tiles used longest ago go first; 0: nothing stored, empty: no bound).
    "TILE_CACHE_MAX_MB": 512,
    # Request bodies larger than this are refused (bytes).
    "MAX_CONTENT_LENGTH": 64 * 1024 * 1024,
    # The plain GET /api/locate answered below Flask, the same answer for less CPU
    # (app/api/locate_fast.py); false: Flask answers every locate.
    "LOCATE_FAST_PATH": True,
}

ENV_KEYS = (
    "DATABASE_URL",
    "DATABASE_READ_URL",
    "READ_REPLICA_RETRY_SECONDS",
    "MIGRATION_DATABASE_URL",
    "BASEMAP",
    "BASEMAP_PMTILES",
    "BASEMAP_URL",
    "BASEMAP_SUBDOMAINS",
    "BASEMAP_ATTRIBUTION",
    "BASEMAP_MAX_ZOOM",
    "BASEMAP_CRS",
    "TIANDITU_KEY",
    "SECRET_KEY",
    "SERVICE_RADIUS_M",
    "FIVE_MINUTE_RADIUS_M",
    "ROADS_FILE",
    "SESSION_COOKIE_SECURE",
    "SESSION_IDLE_MINUTES",
    "SESSION_ABSOLUTE_HOURS",
    "LOGIN_MAX_FAILURES",
    "LOGIN_LOCK_MINUTES",
    "LOGIN_IP_LIMIT",
    "LOGIN_IP_WINDOW_MINUTES",
    "PUBLIC_CASE_LIMIT",
    "PUBLIC_CASE_WINDOW_MINUTES",
    "TRUST_PROXY",
    "ANON_PHOTO_LIMIT",
    "ANON_PHOTO_WINDOW_MINUTES",
    "IMPORT_JOBS_INLINE",
    "TILE_CACHE_MAX_MB",
    "LOCATE_FAST_PATH",
)
# Settings read from the environment as true/false.
BOOL_KEYS = {"SESSION_COOKIE_SECURE", "IMPORT_JOBS_INLINE", "LOCATE_FAST_PATH"}


def from_environment() -> dict[str, Any]:
    """Return the settings given by GRIDGOV_* (or plain DATABASE_URL) environment variables."""
    found: dict[str, Any] = {}
    for key in ENV_KEYS:
        value = os.environ.get(f"GRIDGOV_{key}") or (
            os.environ.get(key) if key in ("DATABASE_URL", "DATABASE_READ_URL") else None
        )
        if value:
            if key in BOOL_KEYS:
                found[key] = value.strip().lower() in ("1", "true", "yes", "on")
            else:
                found[key] = value
    return found
