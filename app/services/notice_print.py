"""The printable notice board (网格公示牌) of a grid: its map drawn as SVG on the server and the
data of the sheet; ``html_to_pdf`` / ``html_to_png`` print a rendered sheet with the headless
Chromium the project already drives.

The map is projected to the grid's local metric CRS (Gauss-Krüger zone, ``gis.metric``), so the
scale bar is true in metres and north is up; the grid's micro-grids (its children) are drawn with
their names at a point inside each, service points as markers.
"""

from __future__ import annotations

import base64
import concurrent.futures
import io
import os
import threading
from typing import Any

import shapely
from shapely.geometry.base import BaseGeometry
from sqlalchemy import text
from sqlalchemy.orm import Session

from app.errors import BadParameter, NotFound
from app.models.grid import LEVEL_NAMES
from app.privacy import mask_phone
from app.services import grid_tree
from app.services import grids as grid_svc
from gis.metric import centre_of, to_metric

PAPERS = {"A4": (210, 297), "A3": (297, 420)}
CHROMIUM = os.environ.get("GRIDGOV_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
NICE_LENGTHS = [10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 2500, 5000, 10000, 20000, 50000]


def paper_arg(value: str | None) -> str:
    paper = (value or "A4").upper()
    if paper not in PAPERS:
        raise BadParameter("paper", f"纸张 '{value}' 不可用（A4 或 A3）")
    return paper


def grid_shape(session: Session, grid_id: int) -> BaseGeometry:
    wkb = session.scalar(
        text("SELECT ST_AsBinary(geom) FROM grid WHERE id = :g AND valid_to IS NULL"),
        {"g": grid_id},
    )
    if wkb is None:
        raise NotFound(f"网格 {grid_id} 不存在 / grid {grid_id} not found")
    return shapely.from_wkb(bytes(wkb))


def show_phones(session: Session, grid_id: int) -> bool:
    return bool(
        session.scalar(
            text("SELECT show_phones FROM notice_setting WHERE grid_id = :g"), {"g": grid_id}
        )
    )


def set_notice_setting(session: Session, grid_id: int, show: bool) -> dict[str, Any]:
    session.execute(
        text(
            """INSERT INTO notice_setting (grid_id, show_phones) VALUES (:g, :s)
               ON CONFLICT (grid_id) DO UPDATE SET show_phones = :s, updated_at = now()"""
        ),
        {"g": grid_id, "s": show},
    )
    return {"grid_id": grid_id, "show_phones": show}


def sheet_grids(session: Session, grid_id: int, scope: frozenset[int] | None) -> list[int]:
    """The grids that get a sheet: the grid itself, or for a street or community every 网格 below
    it within ``scope`` (one sheet each, in code order)."""
    level = session.scalar(
        text("SELECT level FROM grid WHERE id = :g AND valid_to IS NULL"), {"g": grid_id}
    )
    if level is None:
        raise NotFound(f"网格 {grid_id} 不存在 / grid {grid_id} not found")
    if level >= 3:
        return [grid_id]
    ids = list(
        session.scalars(
            text(
                "SELECT id FROM grid WHERE level = 3 AND valid_to IS NULL AND id IN "
                + grid_tree.subtree_in("id = :g", current=True)
                + " ORDER BY code"
            ),
            {"g": grid_id},
        )
    )
    ids = [i for i in ids if scope is None or i in scope]
    return ids or [grid_id]


def _people(session: Session, grid_ids: list[int], phones: bool) -> list[dict[str, Any]]:
    rows = session.execute(
        text(
            """SELECT a.role, a.grid_id, g.name AS grid_name, g.level, w.name, w.phone,
                      ph.media_type, ph.content AS photo
               FROM grid_assignment a JOIN worker w ON w.id = a.worker_id
               JOIN grid g ON g.id = a.grid_id
               LEFT JOIN worker_photo ph ON ph.worker_id = w.id
               WHERE a.grid_id = ANY(CAST(:ids AS integer[])) AND w.on_duty AND a.role <> 'party_member'
               ORDER BY g.level, g.code, w.id"""
        ),
        {"ids": grid_ids},
    ).all()
    order = grid_svc.ROLE_ORDER
    out = [
        {
            "name": r.name,
            "role": r.role,
            "role_name": grid_svc.ROLE_NAMES.get(r.role, r.role),
            "grid_name": r.grid_name,
            "phone": (r.phone if phones else mask_phone(r.phone)) or "",
            "level": r.level,
            # the person's photo, inline in the self-contained sheet (None: the placeholder)
            "photo": f"data:{r.media_type};base64,{base64.b64encode(bytes(r.photo)).decode()}"
            if r.photo is not None
            else None,
        }
        for r in rows
    ]
    out.sort(key=lambda p: (p["level"], order.index(p["role"]) if p["role"] in order else 99))
    return out


def sheet(session: Session, grid_id: int, paper: str = "A4") -> dict[str, Any]:
    """Everything one notice sheet shows: the grid, its chain, its map (SVG), people, points."""
    row = session.execute(
        text(
            """SELECT id, code, name, level, household_count, area_m2, ST_AsBinary(geom) AS wkb
               FROM grid WHERE id = :g AND valid_to IS NULL"""
        ),
        {"g": grid_id},
    ).one_or_none()
    if row is None:
        raise NotFound(f"网格 {grid_id} 不存在 / grid {grid_id} not found")
    shape = shapely.from_wkb(bytes(row.wkb))
    children = session.execute(
        text(
            """SELECT id, code, name, household_count, ST_AsBinary(geom) AS wkb FROM grid
               WHERE parent_id = :g AND valid_to IS NULL ORDER BY code"""
        ),
        {"g": grid_id},
    ).all()
    points = session.execute(
        text(
            """SELECT name, kind, address, ST_X(geom) AS lon, ST_Y(geom) AS lat FROM service_point
               WHERE status = 'active' AND ST_Covers(ST_GeomFromWKB(:w, 4326), geom) ORDER BY name"""
        ),
        {"w": bytes(row.wkb)},
    ).all()
    phones = show_phones(session, grid_id)
    width, height = PAPERS[paper]
    map_w, map_h = width - 20, (height - 20) * 0.42
    svg = map_svg(
        shape,
        [(c.name, shapely.from_wkb(bytes(c.wkb))) for c in children],
        [(p.name, p.lon, p.lat) for p in points],
        map_w,
        map_h,
    )
    return {
        "grid": {
            "id": row.id,
            "code": row.code,
            "name": row.name,
            "level_name": LEVEL_NAMES.get(row.level, str(row.level)),
            "households": row.household_count,
            "area_km2": round(row.area_m2 / 1e6, 3),
        },
        "chain": [a["name"] for a in grid_svc.ancestors(session, grid_id)],
        "children": [
            {"code": c.code, "name": c.name, "households": c.household_count} for c in children
        ],
        "people": [
            p
            | {
                "grid_name": "本网格"
                if p["grid_name"] == row.name
                else p["grid_name"].removeprefix(row.name) or p["grid_name"]
            }
            for p in _people(session, [grid_id, *[c.id for c in children]], phones)
        ],
        "phones_shown": phones,
        "stars": _stars(session, grid_id),
        "points": [
            {
                "name": p.name,
                "kind": grid_svc.SERVICE_POINT_KINDS.get(p.kind, p.kind),
                "address": p.address or "",
            }
            for p in points
        ],
        "svg": svg,
        "paper": paper,
        "paper_mm": {"width": width, "height": height},
        "map_mm": {"width": map_w, "height": map_h},
    }


def _stars(session: Session, grid_id: int) -> dict[str, Any] | None:
    """The grid's latest frozen star rating (评星定级), if it has one."""
    from app.services.stars import stars_of_grids

    found = stars_of_grids(session, [grid_id]).get(grid_id)
    if found is None:
        return None
    return {**found, "text": "★" * found["stars"] + "☆" * (5 - found["stars"])}


def _esc(value: str) -> str:
    return (
        value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
    )


def _path(geom: BaseGeometry, fx: Any) -> str:
    parts = []
    for poly in shapely.get_parts(geom):
        if poly.geom_type != "Polygon":
            continue
        for ring in [poly.exterior, *poly.interiors]:
            pts = [fx(x, y) for x, y in ring.coords]
            parts.append("M" + " L".join(f"{px:.2f},{py:.2f}" for px, py in pts) + " Z")
    return " ".join(parts)


def map_svg(
    shape: BaseGeometry,
    children: list[tuple[str, BaseGeometry]],
    points: list[tuple[str, float, float]],
    width_mm: float,
    height_mm: float,
) -> str:
    """An SVG map (in mm) of ``shape`` with its children labelled, a north arrow and a metric
    scale bar; projected to the local metric CRS so that north is up and the bar is true."""
    centre = centre_of(shape)
    m_shape = to_metric(shape, centre)
    x0, y0, x1, y1 = m_shape.bounds
    pad = 8.0
    span = max(x1 - x0, 1.0), max(y1 - y0, 1.0)
    scale = min((width_mm - 2 * pad) / span[0], (height_mm - 2 * pad) / span[1])  # mm per metre
    ox = (width_mm - span[0] * scale) / 2
    oy = (height_mm - span[1] * scale) / 2

    def fx(x: float, y: float) -> tuple[float, float]:
        return ox + (x - x0) * scale, height_mm - (oy + (y - y0) * scale)

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width_mm:.1f}mm" height="{height_mm:.1f}mm" '
        f'viewBox="0 0 {width_mm:.2f} {height_mm:.2f}" font-family="WenQuanYi Zen Hei, sans-serif">',
        f'<rect x="0" y="0" width="{width_mm:.2f}" height="{height_mm:.2f}" fill="#fbfaf6" stroke="#888" stroke-width="0.3"/>',
    ]
    palette = ["#fde2c8", "#d7ecd9", "#d6e4f5", "#f7d9e3", "#ece3c4", "#dcd6f0"]
    labels = []
    for i, (name, geom) in enumerate(children):
        m = to_metric(geom, centre)
        out.append(
            f'<path d="{_path(m, fx)}" fill="{palette[i % len(palette)]}" stroke="#555" '
            'stroke-width="0.35" fill-rule="evenodd"/>'
        )
        p = m.representative_point()
        labels.append((name, *fx(p.x, p.y)))
    out.append(
        f'<path d="{_path(m_shape, fx)}" fill="{"none" if children else "#fde2c8"}" stroke="#c0392b" '
        'stroke-width="0.9" fill-rule="evenodd"/>'
    )
    for name, lon, lat in points:
        p = to_metric(shapely.Point(lon, lat), centre)
        px, py = fx(p.x, p.y)
        out.append(
            f'<circle cx="{px:.2f}" cy="{py:.2f}" r="1.6" fill="#c0392b" stroke="#fff" stroke-width="0.4"/>'
        )
        out.append(
            f'<text x="{px + 2.2:.2f}" y="{py + 1:.2f}" font-size="2.6" fill="#7b241c">{_esc(name)}</text>'
        )
    size = 3.2 if len(children) <= 12 else 2.4
    for name, px, py in labels:
        out.append(
            f'<text x="{px:.2f}" y="{py:.2f}" font-size="{size}" text-anchor="middle" fill="#222" '
            f'stroke="#fff" stroke-width="0.5" paint-order="stroke">{_esc(name)}</text>'
        )
    # north arrow (top right)
    nx, ny = width_mm - 10, 6
    out.append(
        f'<g><path d="M{nx},{ny} L{nx - 3},{ny + 9} L{nx},{ny + 7} L{nx + 3},{ny + 9} Z" fill="#222"/>'
        f'<text x="{nx}" y="{ny + 13.5}" font-size="3.6" text-anchor="middle">北</text>'
        f'<text x="{nx}" y="{ny - 0.8}" font-size="2.6" text-anchor="middle">N</text></g>'
    )
    # scale bar (bottom left): a round length near a fifth of the map's width
    target = (width_mm / 5) / scale
    length = max((n for n in NICE_LENGTHS if n <= target), default=NICE_LENGTHS[0])
    bar = length * scale
    bx, by = 6, height_mm - 6
    label = f"{length // 1000} 公里" if length >= 1000 and length % 1000 == 0 else f"{length} 米"
    out.append(
        f'<g><rect x="{bx}" y="{by - 1.6}" width="{bar / 2:.2f}" height="1.6" fill="#222"/>'
        f'<rect x="{bx + bar / 2:.2f}" y="{by - 1.6}" width="{bar / 2:.2f}" height="1.6" fill="#fff" stroke="#222" stroke-width="0.3"/>'
        f'<text x="{bx}" y="{by - 2.6}" font-size="2.6">0</text>'
        f'<text x="{bx + bar:.2f}" y="{by - 2.6}" font-size="2.6" text-anchor="middle">{label}</text>'
        f'<text x="{bx + bar + 4:.2f}" y="{by}" font-size="2.4" fill="#555">比例尺 1:{round(1000 / scale):,}</text></g>'
    )
    out.append("</svg>")
    return "".join(out)


# --------------------------------------------------------------------------------- printing


#: At most this many sheets are printed at once per process (each starts a Chromium).
_PRINTING = threading.BoundedSemaphore(2)


def _render_here(html: str, paper: str, fmt: str) -> bytes:
    from playwright.sync_api import sync_playwright

    width, height = PAPERS[paper]
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            # The sheet is static HTML and SVG: no script runs in it, nothing is fetched.
            if fmt == "pdf":
                page = browser.new_page(java_script_enabled=False)
                page.set_content(html, wait_until="load")
                return page.pdf(format=paper, print_background=True, prefer_css_page_size=True)
            # PNG: the first sheet at 150 dpi
            px_w, px_h = round(width / 25.4 * 96), round(height / 25.4 * 96)
            page = browser.new_page(
                viewport={"width": px_w, "height": px_h},
                device_scale_factor=150 / 96,
                java_script_enabled=False,
            )
            page.set_content(html, wait_until="load")
            return page.screenshot(type="png", clip={"x": 0, "y": 0, "width": px_w, "height": px_h})
        finally:
            browser.close()


def _render(html: str, paper: str, fmt: str) -> bytes:
    """Print in a thread of its own: Playwright's synchronous API refuses to run in a thread
    whose event loop is running (an asyncio server, or a test process that drives a browser)."""
    with _PRINTING, concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(_render_here, html, paper, fmt).result()


def html_to_pdf(html: str, paper: str = "A4") -> bytes:
    """Print a self-contained HTML document to PDF on ``paper`` (A4 or A3)."""
    return _render(html, paper, "pdf")


def html_to_png(html: str, paper: str = "A4") -> bytes:
    """Take the first sheet of a self-contained HTML document as a PNG image (150 dpi)."""
    return _render(html, paper, "png")


PHOTO_SIDE = 480  # px, the long side of a stored notice-board photo


def set_worker_photo(session: Session, worker_id: int, data: bytes) -> dict[str, Any]:
    """Store a responsible person's notice-board photo: the upload's limits and cleaning of
    every photo (JPEG, PNG or WebP, ``photos.MAX_BYTES``, metadata dropped), shrunk to
    ``PHOTO_SIDE`` and kept as JPEG (one per person, a new one replaces it)."""
    from PIL import Image

    from app.services import photos

    cleaned, _, _, _ = photos.clean_image(data)
    image = Image.open(io.BytesIO(cleaned))
    image.thumbnail((PHOTO_SIDE, PHOTO_SIDE))
    out = io.BytesIO()
    image.convert("RGB").save(out, "JPEG", quality=85)
    session.execute(
        text(
            """INSERT INTO worker_photo (worker_id, media_type, content)
               VALUES (:w, 'image/jpeg', :c)
               ON CONFLICT (worker_id) DO UPDATE
               SET media_type = EXCLUDED.media_type, content = EXCLUDED.content, updated_at = now()"""
        ),
        {"w": worker_id, "c": out.getvalue()},
    )
    return {
        "worker_id": worker_id,
        "media_type": "image/jpeg",
        "width": image.width,
        "height": image.height,
        "bytes": len(out.getvalue()),
    }


def photo_limit() -> int:
    """The largest photo upload accepted (as every photo: ``photos.MAX_BYTES``)."""
    from app.services import photos

    return photos.MAX_BYTES
