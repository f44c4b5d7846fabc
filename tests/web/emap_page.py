"""Helpers for browser tests of the tiled e-map: where to click inside a grid, what is drawn."""

from __future__ import annotations

from typing import Any

from shapely.geometry import Point, shape

FREE_SPOT = """async (spots) => {
  // A spot where a click reaches the map itself: on what MapLibre draws, its canvas or the tiles
  // drawn from it in software (gl_tiles.js, in the tile pane) (no panel, control or
  // label over it) and clear of the markers drawn above the grids (cases, service points,
  // cameras). Page coordinates, or null.
  await GridGov.tilesIdle();
  const map = GridGov.map, gl = GridGov.gl, r = map.getContainer().getBoundingClientRect();
  for (const [lon, lat] of spots) {
    const p = map.latLngToContainerPoint([lat, lon]);
    if (p.x < 0 || p.y < 0 || p.x > r.width || p.y > r.height) continue;
    const el = document.elementFromPoint(r.left + p.x, r.top + p.y);
    if (!el || !el.closest('.leaflet-gl-layer, .leaflet-tile-pane')) continue;
    const q = GridGov.glPoint({lng: lon, lat: lat});
    const near = gl.queryRenderedFeatures([[q.x - 25, q.y - 25], [q.x + 25, q.y + 25]],
                                          {layers: ['service_points', 'cameras', 'cases']});
    if (near.length) continue;
    return {x: r.left + p.x, y: r.top + p.y, lon: lon, lat: lat};
  }
  return null;
}"""


def spots_inside(geometry: dict[str, Any], n: int = 9) -> list[list[float]]:
    """Points well inside a grid (lon, lat), middle first."""
    g = shape(geometry)
    minx, miny, maxx, maxy = g.bounds
    inner = g.buffer(-0.08 * min(maxx - minx, maxy - miny))
    pts = []
    for i in range(1, n + 1):
        for j in range(1, n + 1):
            p = Point(minx + (maxx - minx) * j / (n + 1), miny + (maxy - miny) * i / (n + 1))
            if inner.contains(p):
                pts.append(p)
    c = g.representative_point()
    pts.sort(key=lambda p: p.distance(c))
    return [[p.x, p.y] for p in pts]


def free_spot(page, geometry: dict[str, Any]) -> dict[str, float] | None:  # type: ignore[no-untyped-def]
    """A free spot inside the grid to click on, in page coordinates."""
    return page.evaluate(FREE_SPOT, spots_inside(geometry))


def settle(page) -> None:  # type: ignore[no-untyped-def]
    """Wait until the tiles in view are drawn and the names of the view are placed."""
    page.evaluate("() => GridGov.tilesIdle()")
    page.evaluate("() => GridGov.refreshLabels()")


def rendered_grids(page, level: int | None = None) -> list[int]:  # type: ignore[no-untyped-def]
    """Ids of the grids drawn in view (of a level, or all), once the tiles are in."""
    page.evaluate("() => GridGov.tilesIdle()")
    return page.evaluate("(level) => GridGov.renderedGrids(level)", level)


# Vertices of the shape being drawn with Geoman (its working line), or -1 when nothing is drawn.
DRAWN_VERTICES = """() => {
  const d = GridGov.map.pm.Draw, s = d.getActiveShape && d.getActiveShape();
  return s && d[s] && d[s]._layer ? d[s]._layer.getLatLngs().length : -1;
}"""


def click_vertex(page, x: float, y: float) -> None:  # type: ignore[no-untyped-def]
    """Click a vertex of the shape being drawn at page point (x, y), and wait until the map has
    taken it (the drawn shape has one vertex more): the next click is then a vertex of its own.
    Each click is a single click (Playwright's clickCount 1), so no pause is needed to keep two
    clicks from making a double click."""
    before = page.evaluate(DRAWN_VERTICES)
    page.mouse.click(x, y)
    page.wait_for_function(f"(n) => ({DRAWN_VERTICES})() > n", arg=before, timeout=5000)


def sign_in(page, base: str, username: str) -> None:  # type: ignore[no-untyped-def]
    """Sign in through the login page as a person does, and wait until it has moved on."""
    from tests.conftest import TEST_PASSWORD

    page.goto(f"{base}/login")
    page.fill("#username", username)
    page.fill("#password", TEST_PASSWORD)
    page.click("#login-submit")
    page.wait_for_url(lambda url: "/login" not in url)
