"""The local PMTiles basemap (``BASEMAP_PMTILES``): the archive itself with range requests, and
its tiles one by one. Same origin as the page, so the CSP needs nothing more."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, request, send_file

from app.errors import NotFound
from app.services import basemap as svc

bp = Blueprint("basemap", __name__)


def _path() -> str:
    path = current_app.config.get("BASEMAP_PMTILES")
    if not path:
        raise NotFound("no PMTiles basemap is configured (BASEMAP_PMTILES)")
    return str(path)


@bp.get("/basemap/basemap.pmtiles")
def archive():  # type: ignore[no-untyped-def]
    """The whole PMTiles archive; clients read it with HTTP range requests (206)."""
    path = _path()
    svc.pmtiles_reader(path)  # refuse a file that is not an archive
    res = send_file(path, mimetype="application/vnd.pmtiles", conditional=True, etag=True)
    res.headers["Cache-Control"] = "private, max-age=3600"
    return res


@bp.get("/basemap/tiles/<int:z>/<int:x>/<int:y>")
def tile(z: int, x: int, y: int):  # type: ignore[no-untyped-def]
    """One tile of the archive (204 where it holds none)."""
    body, media, encoding = svc.pmtiles_tile(_path(), z, x, y)
    headers = {"Cache-Control": "private, max-age=3600", "Vary": "Accept-Encoding"}
    if body is None:
        return Response(status=204, headers=headers)
    if encoding == "gzip" and "gzip" not in (request.headers.get("Accept-Encoding") or ""):
        import gzip

        body = gzip.decompress(body)
        encoding = None
    if encoding:
        headers["Content-Encoding"] = encoding
    return Response(body, mimetype=media, headers=headers)
