"""Vector tiles of the e-map: ``GET /tiles/<layer>/<z>/<x>/<y>.mvt``, scoped to the caller."""

from __future__ import annotations

import gzip
import time

from flask import Blueprint, Response, current_app, g, request

from app.auth import current_principal
from app.db import get_session
from app.services import tiles as svc
from app.timing import Phases, gc_seconds

bp = Blueprint("tiles", __name__)

MVT = "application/vnd.mapbox-vector-tile"


@bp.get("/tiles/<layer>/<int:z>/<int:x>/<int:y>.mvt")
def tile(layer: str, z: int, x: int, y: int):  # type: ignore[no-untyped-def]
    """One tile of a layer (grids, households, points, cases, overrides, basemap)."""
    phases, collected = Phases(), gc_seconds()
    started = time.perf_counter()
    # Signing in (the first database connection of the request: any wait for the pool).
    phases.add("auth", started - g.get("request_started", started))
    body, etag = svc.tile(
        get_session(), current_principal(), layer, z, x, y, cache_limit=cache_limit(), phases=phases
    )
    phases.add("gc", gc_seconds() - collected)
    phases.add("total", time.perf_counter() - g.get("request_started", started))
    headers = {
        # Where the request's time went (ms): a slow tile says whether it waited, cut or stored.
        "Server-Timing": phases.header(),
        "ETag": f'"{etag}"',
        # The tile depends on who asks and on the data: revalidate each time (a 304 is cheap).
        "Cache-Control": "private, no-cache",
        "Vary": "Cookie, Authorization, Accept-Encoding",
    }
    if request.if_none_match.contains(etag):
        return Response(status=304, headers=headers)
    if "gzip" in (request.headers.get("Accept-Encoding") or ""):
        headers["Content-Encoding"] = "gzip"
        return Response(body, mimetype=MVT, headers=headers)
    return Response(gzip.decompress(body), mimetype=MVT, headers=headers)


def cache_limit() -> int | None:
    """The shared tile cache's bound in bytes (``TILE_CACHE_MAX_MB``; empty: none)."""
    value = current_app.config.get("TILE_CACHE_MAX_MB")
    if value is None or str(value).strip() == "":
        return None
    try:
        mb = float(value)
    except ValueError:
        return None  # not a number: no bound
    return max(int(mb * 1024 * 1024), 0)
