"""Vector tiles of the e-map: ``GET /tiles/<layer>/<z>/<x>/<y>.mvt``, scoped to the caller."""

from __future__ import annotations

import gzip

from flask import Blueprint, Response, request

from app.auth import current_principal
from app.db import get_session
from app.services import tiles as svc

bp = Blueprint("tiles", __name__)

MVT = "application/vnd.mapbox-vector-tile"


@bp.get("/tiles/<layer>/<int:z>/<int:x>/<int:y>.mvt")
def tile(layer: str, z: int, x: int, y: int):  # type: ignore[no-untyped-def]
    """One tile of a layer (grids, households, points, cases, overrides, basemap)."""
    body, etag = svc.tile(get_session(), current_principal(), layer, z, x, y)
    headers = {
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
