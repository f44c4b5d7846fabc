"""The e-map drawn as Leaflet tiles where WebGL is drawn in software (gl_tiles.js, the test
browser's case): the MapLibre map of the view is kept, undrawn, for what lies where; the tiles
are drawn one at a time, a pan draws only the tiles that come into view, and a layer hidden or
an edit draws the tiles in view again."""

from __future__ import annotations

import pytest

# The tiles shown (Leaflet's keys) and how many have been drawn since the page opened.
STATE_JS = """() => {
  var t = GridGov.layers.glTiles, keys = [];
  for (var k in t._tiles) { if (t._tiles[k].current && t._tiles[k].loaded) { keys.push(k); } }
  return { keys: keys.sort(), painted: t.painted };
}"""

# Pixels of the tiles shown that are drawn in one of the household dots' blues.
BLUE_JS = """() => {
  var t = GridGov.layers.glTiles, n = 0;
  var blues = [[0x90, 0xca, 0xf9], [0x1e, 0x88, 0xe5], [0x0d, 0x47, 0xa1]];
  for (var k in t._tiles) {
    var el = t._tiles[k].el, c = document.createElement('canvas');
    c.width = el.width; c.height = el.height;
    var ctx = c.getContext('2d');
    ctx.drawImage(el, 0, 0);
    var d = ctx.getImageData(0, 0, c.width, c.height).data;
    for (var i = 0; i < d.length; i += 4) {
      if (d[i + 3] < 200) { continue; }
      for (var b = 0; b < blues.length; b++) {
        if (Math.abs(d[i] - blues[b][0]) < 24 && Math.abs(d[i + 1] - blues[b][1]) < 24 &&
            Math.abs(d[i + 2] - blues[b][2]) < 24) { n++; break; }
      }
    }
  }
  return n;
}"""


def _open(page, live_server: str) -> None:  # type: ignore[no-untyped-def]
    page.goto(f"{live_server}/emap")
    page.wait_for_selector("html[data-emap-ready='1']", timeout=20000)
    page.evaluate("GridGov.tilesIdle()")


@pytest.mark.browser
def test_in_software_the_map_is_drawn_as_tiles(live_server: str, page) -> None:  # type: ignore[no-untyped-def]
    """The test browser draws WebGL in software: the page draws its map as Leaflet tiles, the
    MapLibre canvas of the view is not shown, and once the tiles are in, every tile in view is
    drawn and covers the map."""
    _open(page, live_server)
    assert page.evaluate("GridGov.softwareGL") is True
    assert page.evaluate("GridGov.glMode") == "tiles"
    assert page.evaluate("getComputedStyle(GridGov.gl.getCanvas()).visibility") == "hidden"
    covered = page.evaluate(
        """() => {
          var m = GridGov.map, t = GridGov.layers.glTiles, z = m.getZoom(), size = m.getSize();
          var nw = m.containerPointToLayerPoint([0, 0]), missing = [], drawn = 0;
          var origin = m.project(m.layerPointToLatLng(nw), z);
          for (var x = Math.floor(origin.x / 512); x <= Math.floor((origin.x + size.x - 1) / 512); x++) {
            for (var y = Math.floor(origin.y / 512); y <= Math.floor((origin.y + size.y - 1) / 512); y++) {
              var tile = t._tiles[x + ':' + y + ':' + z];
              if (!tile || !tile.loaded) { missing.push([x, y]); continue; }
              if (tile.el.width >= 512) { drawn++; }
            }
          }
          return { missing: missing, drawn: drawn, painted: t.painted };
        }"""
    )
    assert covered["missing"] == [], covered
    assert covered["drawn"] >= 2, covered
    assert page.evaluate(BLUE_JS) > 100  # the household dots are on the tiles


@pytest.mark.browser
def test_a_pan_draws_only_the_tiles_that_come_into_view(live_server: str, page) -> None:  # type: ignore[no-untyped-def]
    """A pan keeps the tiles already drawn: what is drawn afterwards is the tiles new to the
    view, each once — not the whole view again."""
    _open(page, live_server)
    before = page.evaluate(STATE_JS)
    page.evaluate("GridGov.map.panBy([600, 0], {animate: false})")
    page.evaluate("GridGov.tilesIdle()")
    after = page.evaluate(STATE_JS)
    new = set(after["keys"]) - set(before["keys"])
    assert new, (before, after)
    assert after["painted"] - before["painted"] == len(new), (before, after)
    assert len(new) < len(after["keys"]), (before, after)


@pytest.mark.browser
def test_a_layer_hidden_and_new_tiles_draw_the_view_again(live_server: str, page) -> None:  # type: ignore[no-untyped-def]
    """Hiding a layer in the layer list takes it off the tiles drawn (each tile in view drawn
    again); showing it puts it back; new tiles after an edit draw every tile in view again."""
    _open(page, live_server)
    shown = page.evaluate(STATE_JS)
    dots = page.evaluate(BLUE_JS)
    assert dots > 100
    page.evaluate("GridGov.map.removeLayer(GridGov.layers.households)")
    page.evaluate("GridGov.tilesIdle()")
    hidden = page.evaluate(STATE_JS)
    assert hidden["keys"] == shown["keys"]
    assert hidden["painted"] - shown["painted"] >= len(shown["keys"])
    # A few pixels of another layer may come near a blue (antialiased edges).
    assert page.evaluate(BLUE_JS) < dots / 20
    page.evaluate("GridGov.map.addLayer(GridGov.layers.households)")
    page.evaluate("GridGov.tilesIdle()")
    assert page.evaluate(BLUE_JS) == dots
    again = page.evaluate(STATE_JS)
    page.evaluate("GridGov.refreshTiles()")
    refreshed = page.evaluate(STATE_JS)
    assert refreshed["painted"] - again["painted"] >= len(again["keys"])
    painter_tiles = "GridGov.layers.glTiles._painter.getSource('grids').serialize().tiles[0]"
    assert page.evaluate(painter_tiles).endswith("?v=1")


@pytest.mark.browser
def test_names_that_stay_in_view_are_kept(live_server: str, page) -> None:  # type: ignore[no-untyped-def]
    """Names are placed anew after every movement: those that stay are kept as they are (each
    name made again cost a frame 100 ms and more at city scale), the others replaced."""
    _open(page, live_server)
    page.evaluate("GridGov.refreshLabels()")
    n = page.evaluate(
        "() => { var els = document.querySelectorAll('.gg-label');"
        " els.forEach(function (el) { el.__old = true; }); return els.length; }"
    )
    assert n > 10
    page.evaluate("GridGov.refreshLabels()")
    kept = page.evaluate(
        "() => Array.from(document.querySelectorAll('.gg-label')).filter(el => el.__old).length"
    )
    assert kept == n
    # Zoomed out, the micro-grids' names go; the names kept are still those of the new view.
    page.evaluate("GridGov.map.setZoom(GridGov.map.getZoom() - 2, {animate: false})")
    page.evaluate("GridGov.refreshLabels()")
    after = page.evaluate(
        """() => Array.from(document.querySelectorAll('.gg-label')).map(el =>
             [el.__old === true, el.getAttribute('data-grid-id'), el.className])"""
    )
    expected = page.evaluate(
        """() => { var b = GridGov.map.getBounds(), z = GridGov.map.getZoom();
             var bbox = [b.getWest(), b.getSouth(), b.getEast(), b.getNorth()].map(v => v.toFixed(6));
             return GridGovApi.request('GET', '/api/emap/labels?bbox=' + bbox.join(',') + '&zoom=' + z
               + '&max_level=5').then(r => r.body.labels.map(l => String(l.grid_id)).sort()); }"""
    )
    assert sorted(a[1] for a in after) == expected
    assert any(not a[0] for a in after) or len(after) < n
