"""The e-map's MapLibre layer drawn as one canvas (gl_layer.js, what a browser with a GPU gets;
here asked for by `/emap?gl=canvas`): it moves with the map without repainting while a software
renderer draws it, stays on the places Leaflet shows, and follows the view once the movement
ends or a zoom is done. The drawing of the micro-grid outlines in software is checked both ways
it can be drawn: on that canvas and on the Leaflet tiles of gl_tiles.js."""

from __future__ import annotations

import pytest

# Where a place is drawn: on the MapLibre canvas (its page position plus MapLibre's own
# projection of the place) and where Leaflet puts it (the map's page position plus Leaflet's
# projection); the two must agree while and after the map moves.
WHERE_JS = """() => {
  var m = GridGov.map, gl = GridGov.gl, ll = m.getCenter();
  var canvas = gl.getCanvas().getBoundingClientRect(), box = m.getContainer().getBoundingClientRect();
  var scale = canvas.width / gl.getCanvas().clientWidth;  // the zoom animation scales the canvas
  var p = gl.project([ll.lng, ll.lat]), q = m.latLngToContainerPoint(ll);
  var c = gl.getCenter();
  return { drawn: [canvas.left + p.x * scale, canvas.top + p.y * scale],
           shown: [box.left + q.x, box.top + q.y],
           glCentre: [c.lng, c.lat], glZoom: gl.getZoom(),
           centre: [ll.lng, ll.lat], zoom: m.getZoom(), renders: window.__renders };
}"""


def _open(page, live_server: str, mode: str = "canvas") -> None:  # type: ignore[no-untyped-def]
    page.goto(f"{live_server}/emap?gl={mode}")
    page.wait_for_selector("html[data-emap-ready='1']", timeout=20000)
    page.evaluate("GridGov.tilesIdle()")
    page.evaluate(
        "window.__renders = 0; GridGov.gl.on('render', function () { window.__renders += 1; })"
    )


def _aligned(w: dict) -> None:
    assert abs(w["drawn"][0] - w["shown"][0]) <= 1.5, w
    assert abs(w["drawn"][1] - w["shown"][1]) <= 1.5, w


def _follows(w: dict) -> None:
    assert w["glZoom"] == pytest.approx(w["zoom"] - 1, abs=1e-9), w
    assert w["glCentre"][0] == pytest.approx(w["centre"][0], abs=1e-7), w
    assert w["glCentre"][1] == pytest.approx(w["centre"][1], abs=1e-7), w


@pytest.mark.browser
def test_dragging_moves_the_drawn_map_without_repainting_it(live_server: str, page) -> None:  # type: ignore[no-untyped-def]
    _open(page, live_server)
    # The test browser draws WebGL in software: the layer knows it.
    assert page.evaluate("GridGov.layers.tiles._slow()") is True
    # The drag does not pause: on a loaded machine its mouse moves may still arrive further
    # apart than the layer's pause (150 ms), which it rightly takes for one and redraws.
    page.evaluate("GridGov.layers.tiles.options.pause = 10000")
    before = page.evaluate(WHERE_JS)
    box = page.locator("#gg-map").bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    for k in range(1, 11):
        page.mouse.move(x - 8 * k, y - 5 * k)
    page.wait_for_timeout(50)
    during = page.evaluate(WHERE_JS)
    # Leaflet moved (80 × 50 px), MapLibre did not repaint, and what it drew moved along.
    assert during["centre"] != before["centre"]
    assert during["renders"] == before["renders"]
    assert during["glCentre"] == before["glCentre"]
    _aligned(during)
    # A drag that pauses (the mouse held still, still down, longer than the pause) is redrawn
    # for the view it paused at.
    page.evaluate("GridGov.layers.tiles.options.pause = 150")
    page.mouse.move(x - 88, y - 55)
    page.wait_for_function("(n) => window.__renders > n", arg=during["renders"], timeout=10000)
    page.mouse.up()
    page.wait_for_function(
        "() => { var c = GridGov.gl.getCenter(), m = GridGov.map.getCenter();"
        " return Math.abs(c.lng - m.lng) < 1e-7 && Math.abs(c.lat - m.lat) < 1e-7; }",
        timeout=10000,
    )
    page.evaluate("GridGov.tilesIdle()")
    after = page.evaluate(WHERE_JS)
    assert after["renders"] > during["renders"]  # redrawn for the new view once it stopped
    _follows(after)
    _aligned(after)


@pytest.mark.browser
def test_the_drawn_map_follows_an_animated_zoom_and_a_pan(live_server: str, page) -> None:  # type: ignore[no-untyped-def]
    _open(page, live_server)
    page.evaluate(
        "new Promise(function (done) { GridGov.map.once('zoomend', function () { done(); });"
        " GridGov.map.setZoom(GridGov.map.getZoom() + 1, {animate: true}); })"
    )
    page.evaluate("GridGov.tilesIdle()")
    zoomed = page.evaluate(WHERE_JS)
    _follows(zoomed)
    _aligned(zoomed)
    page.evaluate(
        "new Promise(function (done) { GridGov.map.once('moveend', function () { done(); });"
        " GridGov.map.panBy([300, -200], {animate: true, duration: 0.5}); })"
    )
    page.evaluate("GridGov.tilesIdle()")
    panned = page.evaluate(WHERE_JS)
    _follows(panned)
    _aligned(panned)
    # A redraw of a view already drawn is skipped: moveend again repaints nothing.
    page.evaluate("GridGov.map.fire('moveend')")
    page.wait_for_timeout(200)
    assert page.evaluate("window.__renders") == panned["renders"]


@pytest.mark.browser
def test_an_animated_pan_is_not_redrawn_before_it_ends(live_server: str, page) -> None:  # type: ignore[no-untyped-def]
    """However far apart a loaded machine draws the frames of a pan (here: a pause shorter than
    any frame), MapLibre repaints once, when the pan ends, never during it."""
    _open(page, live_server)
    page.evaluate("GridGov.layers.tiles.options.pause = 1")
    renders = page.evaluate(
        """() => new Promise(function (done) {
             var during = null, m = GridGov.map;
             m.once('moveend', function () { during = window.__renders; });
             m.panBy([260, 120], {animate: true, duration: 0.8});
             var start = window.__renders;
             setTimeout(function () { done([start, during]); }, 1500);
           })"""
    )
    assert renders[1] is not None, "the pan ended"
    assert renders[1] == renders[0], renders
    page.wait_for_function(
        "() => { var c = GridGov.gl.getCenter(), m = GridGov.map.getCenter();"
        " return Math.abs(c.lng - m.lng) < 1e-7 && Math.abs(c.lat - m.lat) < 1e-7; }",
        timeout=10000,
    )
    page.evaluate("GridGov.tilesIdle()")
    _aligned(page.evaluate(WHERE_JS))


@pytest.mark.browser
def test_a_zoom_is_not_repainted_again_for_the_same_view(live_server: str, page) -> None:  # type: ignore[no-untyped-def]
    """The end of an animated zoom moves MapLibre to the new view once; it is not moved there
    again (each move of MapLibre is a full repaint, a second on a loaded machine drawing in
    software) once the zoom has ended, and the map is in place."""
    _open(page, live_server)
    zoom = """(dz) => new Promise(function (done) {
      var gl = GridGov.gl, jump = gl.jumpTo, after = null;
      gl.jumpTo = function () { if (after !== null) { after += 1; } return jump.apply(this, arguments); };
      GridGov.map.once('zoomend', function () { after = 0; });
      GridGov.map.setZoom(GridGov.map.getZoom() + dz, {animate: true});
      setTimeout(function () { gl.jumpTo = jump; done(after); }, 1500);
    })"""
    for dz in (1, -1):
        assert page.evaluate(zoom, dz) == 0
        page.evaluate("GridGov.tilesIdle()")
        w = page.evaluate(WHERE_JS)
        _follows(w)
        _aligned(w)


# The pixels MapLibre drew (5 × 5 around each place, premultiplied RGBA), read in its `render`
# event, while the frame is still in the drawing buffer.
PIXELS_JS = """(places) => new Promise(function (done) {
  var gl = GridGov.gl;
  gl.once('render', function () {
    var c = gl.painter.context.gl, h = c.drawingBufferHeight;
    var ratio = c.drawingBufferWidth / gl.getCanvas().clientWidth;
    done(places.map(function (ll) {
      var p = gl.project(ll), x = Math.round(p.x * ratio), y = Math.round(h - 1 - p.y * ratio);
      var buf = new Uint8Array(5 * 5 * 4);
      c.readPixels(x - 2, y - 2, 5, 5, c.RGBA, c.UNSIGNED_BYTE, buf);
      return Array.from(buf);
    }));
  });
  gl.triggerRepaint();
})"""


# The same pixels as shown on the Leaflet tiles drawn in software (gl_tiles.js): the tile that
# holds each place, copied to a 2D canvas (premultiplied, as above).
TILE_PIXELS_JS = """(places) => {
  var m = GridGov.map, layer = GridGov.layers.glTiles, z = m.getZoom(), out = [];
  places.forEach(function (ll) {
    var p = m.project([ll[1], ll[0]], z), x = Math.floor(p.x / 512), y = Math.floor(p.y / 512);
    var t = layer._tiles[x + ':' + y + ':' + z];
    if (!t) { out.push([]); return; }
    var ratio = t.el.width / 512, c = document.createElement('canvas');
    c.width = t.el.width; c.height = t.el.height;
    var ctx = c.getContext('2d');
    ctx.drawImage(t.el, 0, 0);
    var px = Math.round((p.x - x * 512) * ratio), py = Math.round((p.y - y * 512) * ratio);
    var d = ctx.getImageData(px - 2, py - 2, 5, 5).data, block = [];
    for (var k = 0; k < d.length; k += 4) {
      var a = d[k + 3];
      block.push(Math.round(d[k] * a / 255), Math.round(d[k + 1] * a / 255), Math.round(d[k + 2] * a / 255), a);
    }
    out.push(block);
  });
  return out;
}"""


def _drawn_in(block: list[int], colour: tuple[int, int, int]) -> bool:
    """Whether some pixel of a 5 × 5 block is drawn (mostly opaque) in this colour."""
    for k in range(0, len(block), 4):
        r, g, b, a = block[k : k + 4]
        if a >= 100 and all(
            abs(v * 255 / a - want) <= 60 for v, want in zip((r, g, b), colour, strict=True)
        ):
            return True
    return False


@pytest.mark.browser
@pytest.mark.parametrize("mode", ["canvas", "tiles"])
def test_in_software_the_micro_grid_outlines_are_the_fills_own_and_visible(  # type: ignore[no-untyped-def]
    live_server: str, page, mode: str
) -> None:
    """Where WebGL is drawn in software (the test browser), a level drawn with one-pixel lines
    has its outlines drawn by its fill layer (no line layer, whose triangles cost a software
    repaint most of its time at city scale): along a grid's border the level's colour is drawn,
    inside only its light tint — on MapLibre's canvas, and on the Leaflet tiles drawn from it,
    where the layers shown are those of the view's MapLibre map and each place lies where
    Leaflet shows it."""
    import json
    from pathlib import Path

    from shapely.geometry import shape

    _open(page, live_server, mode)
    assert page.evaluate("GridGov.softwareGL") is True
    assert page.evaluate("GridGov.glMode") == mode
    grids = json.loads(
        (Path(__file__).resolve().parents[2] / "data/sample_boundaries/grids.geojson").read_text()
    )["features"]
    grid = shape(next(f for f in grids if f["properties"]["level"] == 4)["geometry"])
    # Zoom 15: MapLibre's 14, where level 4 is the tinted level.
    c = grid.representative_point()
    page.evaluate(
        "([lat, lon]) => GridGov.map.setView([lat, lon], 15, {animate: false})", [c.y, c.x]
    )
    page.evaluate("GridGov.tilesIdle()")
    page.wait_for_function(
        "() => { var c = GridGov.gl.getCenter(), m = GridGov.map.getCenter();"
        " return Math.abs(c.lng - m.lng) < 1e-7 && Math.abs(c.lat - m.lat) < 1e-7; }",
        timeout=10000,
    )
    page.evaluate("GridGov.tilesIdle()")
    # No line layer draws level 4 here; its fill layer has an outline of the level's colour.
    layer = page.evaluate(
        """() => { var gl = GridGov.gl, z = gl.getZoom(), line = gl.getLayer('grids-line-4');
             return { z: z, lineFrom: line.minzoom,
                      outline: gl.getPaintProperty('grids-fill-4', 'fill-outline-color') }; }"""
    )
    assert layer["lineFrom"] > layer["z"], layer
    assert str(layer["outline"]).lower() == "#2e7d32", layer
    # Only that fill layer drawn: its pixels along the border, and inside.
    page.evaluate(
        """() => { var gl = GridGov.gl;
             gl.getStyle().layers.forEach(function (l) {
               gl.setLayoutProperty(l.id, 'visibility', l.id === 'grids-fill-4' ? 'visible' : 'none'); }); }"""
    )
    ring = (
        list(grid.geoms[0].exterior.coords)
        if hasattr(grid, "geoms")
        else list(grid.exterior.coords)
    )
    places = []
    for (x0, y0), (x1, y1) in zip(ring, ring[1:], strict=False):
        for t in (0.3, 0.5, 0.7):
            places.append([x0 + (x1 - x0) * t, y0 + (y1 - y0) * t])
    if mode == "tiles":
        page.evaluate("GridGov.tilesIdle()")
        blocks = page.evaluate(TILE_PIXELS_JS, places + [[c.x, c.y]])
    else:
        blocks = page.evaluate(PIXELS_JS, places + [[c.x, c.y]])
    on_border = [_drawn_in(b, (0x2E, 0x7D, 0x32)) for b in blocks[:-1]]
    assert sum(on_border) >= 0.8 * len(on_border), on_border
    inside = blocks[-1][12 * 4 : 12 * 4 + 4]  # the middle pixel: the tint only
    assert inside[3] < 60, inside


@pytest.mark.browser
def test_in_software_the_names_are_hidden_while_a_zoom_animates(live_server: str, page) -> None:  # type: ignore[no-untyped-def]
    """Hundreds of names moving with a zoom's animation were most of each of its frames where the
    page is composited in software: there they are hidden until the zoom ends, then shown."""
    _open(page, live_server)
    page.evaluate("GridGov.refreshLabels()")
    assert page.evaluate("document.querySelectorAll('.gg-label').length") > 10
    during = page.evaluate(
        """() => new Promise(function (done) {
             var m = GridGov.map, seen = null;
             m.once('zoomanim', function () {
               seen = Array.from(document.querySelectorAll('.gg-label')).map(function (el) {
                 return getComputedStyle(el).visibility; });
             });
             m.once('zoomend', function () { done(seen); });
             m.setZoom(m.getZoom() + 1, {animate: true});
           })"""
    )
    assert during and set(during) == {"hidden"}, during
    page.evaluate("GridGov.refreshLabels()")
    after = page.evaluate(
        "Array.from(document.querySelectorAll('.gg-label')).map(el => getComputedStyle(el).visibility)"
    )
    assert after and set(after) == {"visible"}, after
