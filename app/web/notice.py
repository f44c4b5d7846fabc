"""The notice board (网格公示牌) to print: one grid, or every 网格 of a community or street, as
a PDF (A4 or A3) or the first sheet as PNG, drawn from a self-contained sheet template."""

from __future__ import annotations

from flask import Blueprint, Response, render_template, request

from app.auth import current_principal
from app.auth.policy import grid_scope
from app.db import get_session
from app.services import notice_print

bp = Blueprint("notice_pages", __name__)


def _html(grid_id: int, paper: str) -> tuple[str, str]:
    session = get_session()
    ids = notice_print.sheet_grids(session, grid_id, grid_scope(session, current_principal()))
    sheets = [notice_print.sheet(session, gid, paper) for gid in ids]
    html = render_template(
        "notice/board.html", sheets=sheets, paper=paper, paper_mm=notice_print.PAPERS[paper]
    )
    return html, sheets[0]["grid"]["code"]


@bp.get("/grids/<int:grid_id>/notice.pdf")
def notice_pdf(grid_id: int):  # type: ignore[no-untyped-def]
    """The notice board as PDF (``paper`` A4 or A3); a community or street: one sheet per 网格."""
    paper = notice_print.paper_arg(request.args.get("paper"))
    html, code = _html(grid_id, paper)
    return Response(
        notice_print.html_to_pdf(html, paper),
        mimetype="application/pdf",
        headers={"Content-Disposition": f'inline; filename="notice-{code}-{paper}.pdf"'},
    )


@bp.get("/grids/<int:grid_id>/notice.png")
def notice_png(grid_id: int):  # type: ignore[no-untyped-def]
    """The notice board's first sheet as a PNG image (150 dpi)."""
    paper = notice_print.paper_arg(request.args.get("paper"))
    html, code = _html(grid_id, paper)
    return Response(
        notice_print.html_to_png(html, paper),
        mimetype="image/png",
        headers={"Content-Disposition": f'inline; filename="notice-{code}-{paper}.png"'},
    )


@bp.get("/tiles/networks/<int:z>/<int:x>/<int:y>.mvt")
def network_tile(z: int, x: int, y: int):  # type: ignore[no-untyped-def]
    """A vector tile of the departmental networks the caller sees (layer ``networks``)."""
    import gzip
    import hashlib

    from app.services import networks, tiles

    tiles.check_tile(z, x, y)
    session = get_session()
    p = current_principal()
    ids = networks.visible_network_ids(session, p.role, p.department_id, grid_scope(session, p))
    body = networks.network_tile(session, ids, z, x, y)
    etag = hashlib.blake2b(body + repr(ids).encode(), digest_size=10).hexdigest()
    headers = {
        "ETag": f'"{etag}"',
        "Cache-Control": "private, no-cache",
        "Vary": "Cookie, Authorization, Accept-Encoding",
    }
    if request.if_none_match.contains(etag):
        return Response(status=304, headers=headers)
    if "gzip" in (request.headers.get("Accept-Encoding") or ""):
        headers["Content-Encoding"] = "gzip"
        return Response(
            gzip.compress(body, compresslevel=1, mtime=0),
            mimetype="application/vnd.mapbox-vector-tile",
            headers=headers,
        )
    return Response(body, mimetype="application/vnd.mapbox-vector-tile", headers=headers)
