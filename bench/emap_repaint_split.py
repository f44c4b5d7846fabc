"""Where one software repaint of the e-map goes: the cost of a full MapLibre repaint of a view,
split by layer, by canvas size and pixel ratio, and for the cheaper ways of drawing the grid
outlines, with the vertices MapLibre holds for each layer in view.

It serves a shared city (``bench/city.py``) with gunicorn, opens ``/emap?gl=canvas`` (the view drawn
on one MapLibre canvas, gl_layer.js) in Debian's Chromium
(software WebGL, as ``bench_emap_scale.py`` does) and, for each view (the opening view and
``--zooms``), repaints the view ``--repaints`` times per variant and prints the wall time and the
CPU time of the renderer and the GPU process a repaint (the GPU process's CPU is the software
rasteriser's work and does not depend on the load), then the vertices and draw segments of every
visible layer (MapLibre's buffers, summed over the tiles in view). Variants, each alone on the
page as the user sees it:

- ``all``: the page as it is; ``none``: every layer hidden (clearing and compositing the canvas);
- ``only:<layer>``: one style layer visible;
- ``padding:<p>``: the canvas a margin ``p`` of the view wider on each side (the library's 0.1);
- ``ratio:<r>``: MapLibre's pixel ratio;
- ``solid``: the grid lines not dashed; ``edges``: the grid outlines drawn as the fills' own
  one-pixel outlines (``fill-outline-color``) instead of line layers.

``--zoom-frames`` times instead the frames of an animated zoom (in and out, three rounds) with
the page as it is, the MapLibre canvas hidden, the grid names off the map, and both: what the
animation's frames wait on.

    python bench/emap_repaint_split.py [--micro 100000 --households 2000000] [--zooms 13,14]
                                       [--port N] [--repaints 4] [--shots PREFIX] [--zoom-frames]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_emap_scale import (  # noqa: E402
    IDLE_JS,
    RENDERER_ARGS,
    REPAINT_JS,
    ZOOM_JS,
    admin_token,
    chromium_pids,
    cpu_ms,
    gaps_of,
    pct,
)
from bench.report import load_text  # noqa: E402
from bench.serving import free_port, start_gunicorn  # noqa: E402

# Vertices and draw segments of each visible layer, over the tiles MapLibre draws.
COUNTS_JS = """() => {
  var gl = GridGov.gl, st = gl.style, out = {};
  st._order.forEach(function (id) {
    var layer = st._layers[id];
    if (layer.visibility === 'none' || layer.isHidden(gl.getZoom())) { return; }
    var tm = st.tileManagers[layer.source];
    if (!tm) { return; }
    var v = 0, i = 0, s = 0, i2 = 0;
    tm.getVisibleCoordinates(false).forEach(function (c) {
      var b = tm.getTile(c).getBucket(layer);
      if (!b) { return; }
      v += b.layoutVertexArray ? b.layoutVertexArray.length : 0;
      i += b.indexArray ? b.indexArray.length : 0;
      i2 += b.indexArray2 ? b.indexArray2.length : 0;
      s += b.segments ? b.segments.get().length : 0;
    });
    if (v) { out[id] = [v, i, i2, s]; }
  });
  return out;
}"""

# Show only the layers named (null: restore what was visible before).
SHOW_JS = """(ids) => {
  var gl = GridGov.gl;
  if (!window.__vis) {
    window.__vis = {};
    gl.getStyle().layers.forEach(function (l) { window.__vis[l.id] = gl.getLayoutProperty(l.id, 'visibility') || 'visible'; });
  }
  Object.keys(window.__vis).forEach(function (id) {
    var v = ids === null ? window.__vis[id] : (ids.indexOf(id) >= 0 ? window.__vis[id] : 'none');
    gl.setLayoutProperty(id, 'visibility', v);
  });
}"""

PADDING_JS = """(p) => {
  var l = GridGov.layers.tiles;
  l.options.padding = p; l._resizeContainer(); l._glMap.resize(); l._syncedKey = null; l._update();
}"""

# The grid outlines of some levels drawn by the fills' outline pass at every zoom: the level's
# fill layer drawn at every zoom, its tint only where it had one (elsewhere a transparent fill),
# its outline 1 px, no line layer; an empty list puts back what was there.
EDGES_JS = """(levels) => {
  var gl = GridGov.gl, FILL = ['fill-color', 'fill-opacity', 'fill-antialias', 'fill-outline-color'];
  if (!levels.length) {
    (window.__edges || []).forEach(function (k) {
      gl.setLayerZoomRange(k.fill, k.fillZoom[0], k.fillZoom[1]);
      gl.setLayerZoomRange(k.line, k.lineZoom[0], k.lineZoom[1]);
      FILL.forEach(function (p) { gl.setPaintProperty(k.fill, p, k.paint[p]); });
      gl.setLayoutProperty(k.line, 'visibility', k.visible);
    });
    window.__edges = [];
    return;
  }
  window.__edges = [];
  levels.forEach(function (level) {
    var s = GridGov.levelStyle(level), fill = 'grids-fill-' + level, line = 'grids-line-' + level;
    var f = gl.getLayer(fill), l = gl.getLayer(line);
    if (!f || !l) { return; }
    var k = { fill: fill, line: line, fillZoom: [f.minzoom || 0, f.maxzoom || 24],
              lineZoom: [l.minzoom || 0, l.maxzoom || 24], paint: {},
              visible: gl.getLayoutProperty(line, 'visibility') || 'visible' };
    FILL.forEach(function (p) { k.paint[p] = gl.getPaintProperty(fill, p); });
    window.__edges.push(k);
    var z = gl.getZoom(), tinted = z >= k.fillZoom[0] && z < k.fillZoom[1];
    gl.setLayerZoomRange(fill, 0, 24);
    gl.setPaintProperty(fill, 'fill-color', tinted ? s.color : 'rgba(0,0,0,0)');
    gl.setPaintProperty(fill, 'fill-opacity', tinted ? s.fillOpacity : 1);
    gl.setPaintProperty(fill, 'fill-antialias', true);
    gl.setPaintProperty(fill, 'fill-outline-color', s.color);
    gl.setLayoutProperty(line, 'visibility', 'none');
  });
}"""

SOLID_JS = """(on) => {
  var gl = GridGov.gl;
  [4, 5].forEach(function (level) {
    var id = 'grids-line-' + level;
    if (!gl.getLayer(id)) { return; }
    if (!window.__dash) { window.__dash = {}; }
    if (!(id in window.__dash)) { window.__dash[id] = gl.getPaintProperty(id, 'line-dasharray'); }
    gl.setPaintProperty(id, 'line-dasharray', on ? undefined : window.__dash[id]);
  });
}"""


NOSTROKE_JS = "(w) => GridGov.gl.setPaintProperty('households', 'circle-stroke-width', w)"


def repaint(page, procs: dict[int, str], n: int) -> tuple[float, float, float]:
    """Wall ms, renderer CPU ms and GPU-process CPU ms of one full repaint (median wall)."""
    page.evaluate(IDLE_JS)
    page.evaluate(REPAINT_JS, 1)
    cpu0 = cpu_ms(procs)
    wall = page.evaluate(REPAINT_JS, n)
    cpu1 = cpu_ms(procs)
    return (
        wall,
        (cpu1.get("renderer", 0) - cpu0.get("renderer", 0)) / n,
        (cpu1.get("gpu-process", 0) - cpu0.get("gpu-process", 0)) / n,
    )


def measure_view(page, procs: dict[int, str], n: int, label: str, split: bool = True) -> None:
    zoom = page.evaluate("GridGov.map.getZoom()")
    size = page.evaluate("[GridGov.gl.getCanvas().width, GridGov.gl.getCanvas().height]")
    counts = page.evaluate(COUNTS_JS)
    print(f"\n-- {label}: Leaflet zoom {zoom}, canvas {size[0]}×{size[1]}", flush=True)
    for layer, (v, i, i2, s) in counts.items():
        print(
            f"   {layer:22s} vertices {v:8,}  indices {i:8,}  outline indices {i2:8,}  segments {s}",
            flush=True,
        )

    def show(what: str, setup: str | None, arg, undo) -> None:
        if setup:
            page.evaluate(setup, arg)
        figures = [repaint(page, procs, n) for _ in range(2)]
        if setup:
            page.evaluate(setup, undo)
        wall = statistics.median(f[0] for f in figures)
        ren = statistics.median(f[1] for f in figures)
        gpu = statistics.median(f[2] for f in figures)
        print(
            f"   {what:34s} wall {wall:6.0f} ms  CPU renderer {ren:5.0f} ms  GPU process {gpu:6.0f} ms",
            flush=True,
        )

    show("all", None, None, None)
    show("none", SHOW_JS, [], None)
    for layer in counts if split else ():
        show(f"only:{layer}", SHOW_JS, [layer], None)
    for layer in counts:
        if layer.startswith("grids-line-"):
            show(f"without:{layer}", SHOW_JS, [k for k in counts if k != layer], None)
    show("solid (level 4/5 lines undashed)", SOLID_JS, True, False)
    show("edges:1-5 (fill outlines, no lines)", EDGES_JS, [1, 2, 3, 4, 5], [])
    show("edges:4,5", EDGES_JS, [4, 5], [])
    show("households without stroke", NOSTROKE_JS, 0, 0.5)
    if not split:
        return
    for p in (0.05, 0.0):
        show(f"padding:{p}", PADDING_JS, p, 0.1)
    page.evaluate(PADDING_JS, 0.0)
    show("none, padding:0.0", SHOW_JS, [], None)
    page.evaluate(PADDING_JS, 0.1)
    show("ratio:0.5", "(r) => GridGov.gl.setPixelRatio(r)", 0.5, 1)
    if "households" in counts:
        # Whether the circles cost by their pixels: alone, at a quarter of the pixels.
        page.evaluate(SHOW_JS, ["households"])
        show("only:households, ratio:0.5", "(r) => GridGov.gl.setPixelRatio(r)", 0.5, 1)
        page.evaluate(SHOW_JS, [])
        show("none, ratio:0.5", "(r) => GridGov.gl.setPixelRatio(r)", 0.5, 1)
        page.evaluate(SHOW_JS, None)


# What the frames of an animated zoom wait on: the page as it is, the MapLibre canvas hidden,
# the grid names (Leaflet markers) taken off the map, both.
ZOOM_PARTS = (
    ("as it is", "() => {}", "() => {}"),
    (
        "MapLibre canvas hidden",
        "() => { GridGov.gl.getCanvas().style.visibility = 'hidden'; }",
        "() => { GridGov.gl.getCanvas().style.visibility = ''; }",
    ),
    (
        "names off the map",
        "() => { GridGov.map.removeLayer(GridGov.layers.labels); }",
        "() => { GridGov.map.addLayer(GridGov.layers.labels); }",
    ),
    (
        "both",
        "() => { GridGov.gl.getCanvas().style.visibility = 'hidden';"
        " GridGov.map.removeLayer(GridGov.layers.labels); }",
        "() => { GridGov.gl.getCanvas().style.visibility = '';"
        " GridGov.map.addLayer(GridGov.layers.labels); }",
    ),
)


def zoom_frames(page, rounds: int = 3) -> None:
    """Frames of the zoom animation (p95 of the frames before zoomend, in and out), in rounds."""
    out: dict[str, list[float]] = {name: [] for name, _, _ in ZOOM_PARTS}
    for _ in range(rounds):
        for name, on, off in ZOOM_PARTS:
            page.evaluate(on)
            moving: list[float] = []
            for dz in (1, -1):
                frames, end = page.evaluate(ZOOM_JS, dz)
                moving += gaps_of(frames[:end])
                page.evaluate(IDLE_JS)
            page.evaluate(off)
            page.evaluate(IDLE_JS)
            out[name].append(pct(moving, 95))
    for name, values in out.items():
        print(
            f"   zoom animation, {name:24s} frames p95 by round "
            + " / ".join(f"{v:.0f}" for v in values)
            + " ms",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--micro", type=int, default=100_000)
    parser.add_argument("--households", type=int, default=2_000_000)
    parser.add_argument("--zooms", default="13,14", help="Leaflet zooms of the dense views")
    parser.add_argument("--repaints", type=int, default=4)
    parser.add_argument("--port", type=int, default=None)
    parser.add_argument(
        "--shots", default=None, help="save a screenshot of each view under this file prefix"
    )
    parser.add_argument(
        "--zoom-frames", action="store_true", help="only what the zoom animation's frames wait on"
    )
    parser.add_argument(
        "--no-split", action="store_true", help="skip the layers alone, the margins and the ratio"
    )
    parser.add_argument(
        "--renderer",
        default="swiftshader",
        choices=sorted(RENDERER_ARGS),
        help="software WebGL: swiftshader (the tests' browser) or Mesa's llvmpipe",
    )
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    from app.embedded_pg import default_cluster
    from bench.city import city_database

    print(f"load average at start: {load_text()}", flush=True)
    default_cluster().start()
    url, made = city_database(args.micro, args.households)
    token = admin_token(url)
    port = args.port or free_port()
    proc = start_gunicorn({"GRIDGOV_DATABASE_URL": url}, port)
    try:
        with sync_playwright() as pw:
            before = set(chromium_pids())
            browser = pw.chromium.launch(
                executable_path="/usr/bin/chromium", args=RENDERER_ARGS[args.renderer]
            )
            context = browser.new_context(
                viewport={"width": 1600, "height": 1000},
                extra_http_headers={"Authorization": f"Bearer {token}"},
            )
            page = context.new_page()
            page.goto(f"http://127.0.0.1:{port}/emap?gl=canvas", timeout=180_000)
            page.wait_for_selector("html[data-emap-ready='1']", state="attached", timeout=180_000)
            page.evaluate(IDLE_JS)
            procs = {pid: kind for pid, kind in chromium_pids().items() if pid not in before}
            print(
                "renderer: "
                + page.evaluate(
                    "(function(){var g=GridGov.gl.painter.context.gl, d=g.getExtension("
                    "'WEBGL_debug_renderer_info'); return d ? g.getParameter("
                    "d.UNMASKED_RENDERER_WEBGL) : g.getParameter(g.RENDERER);})()"
                ),
                flush=True,
            )
            if args.zoom_frames:
                zoom_frames(page)
                browser.close()
                print(f"load average: {load_text()}", flush=True)
                return
            if args.shots:
                page.screenshot(path=f"{args.shots}-opening.png")
            measure_view(page, procs, args.repaints, "opening view", not args.no_split)
            centre = page.evaluate("[GridGov.map.getCenter().lat, GridGov.map.getCenter().lng]")
            for z in (int(z) for z in args.zooms.split(",") if z):
                page.evaluate(
                    "([c, z]) => GridGov.map.setView(c, z, {animate: false})", [centre, z]
                )
                time.sleep(0.5)
                page.evaluate(IDLE_JS)
                if args.shots:
                    page.screenshot(path=f"{args.shots}-z{z}.png")
                measure_view(
                    page, procs, args.repaints, f"zoom {z} at the centre", not args.no_split
                )
            browser.close()
    finally:
        proc.terminate()
        proc.wait(30)
    print(f"\nload average: {load_text()}", flush=True)


if __name__ == "__main__":
    main()
