"""Benchmark the e-map at city scale: a 10k and a 100k micro-grid city, imported with the CLI,
then the page, the vector tiles and the server's memory.

For each size it
- takes the shared city (``bench/city.py``: generated with ``gis.synthetic.city`` — grids of four
  levels, households, roads and building footprints for the own basemap — and imported with
  ``gridgov import``, timed once when it was built); the grid import's growth exponent between
  the sizes is printed (1.0 = linear);
- starts gunicorn (2 workers × 4 threads) on the city and measures ``GET /emap`` (HTML size),
  vector tiles at zooms 10–17 (grids, households, basemap; cold = first request of a tile, the
  PostGIS cut, the shared grid tile cache in PostgreSQL emptied first; warm = the fastest of
  three more requests, from a worker's tile cache; p50/p95 and the largest tile; where the
  cold requests over 50 ms spent their time, from the responses' Server-Timing), then the grid
  tiles again from new gunicorn processes (first request = a lookup in the shared cache),
  the gunicorn workers' RSS while serving tiles, and the baseline: the whole city as GeoJSON in
  one response (``GET /api/emap/layers``, what the page loaded before tiles);
- times the tile functions in PostGIS beside the previous ones (the grids' function of revision
  0015, the other layers' queries of revision 0010, installed in the scratch database as
  ``bench_old_tile_*``), alternating old and new tile by tile;
- checks answers: the grids in a tile (decoded with mapbox-vector-tile) against a SQL count, and
  the households of density tiles at each zoom against a direct count of the households in the
  tile's envelope.
``--browser`` also opens the page in Debian's Chromium (Playwright, software WebGL), in rounds
alternating the two ways the page draws its tiles — Leaflet tiles drawn one a frame
(``gl_tiles.js``, what a software renderer gets) and one MapLibre canvas of the view redrawn
when a movement ends (``gl_layer.js``, what a GPU gets: the baseline), a new page each — and
reports the time until ``html[data-emap-ready='1']`` and until every tile in view is drawn, the
JS heap, the time between animation frames during a mouse drag, a ``panBy`` and an animated
zoom, each until the map is drawn again (p95, the longest frame, when the drawing ended), the
CPU time of the renderer and the GPU process for the zoom, what one full repaint of the canvas
costs, and checks that both ways draw the same opening view (screenshots compared pixel by
pixel) (``browser_figures``). ``--reuse --browser-only`` measures only that, in a few minutes.

    python bench/bench_emap_scale.py [--sizes 10000,100000] [--households 200000,2000000] [--browser]
                                     [--reuse] [--browser-only] [--port N]

Each city is the shared one of ``bench/city.py`` (``gridgov_city_<micro-grids>_<households>_s3``),
generated and imported once and kept; the import figures are those measured when it was built.
``--reuse`` is accepted for older command lines: a built city is always reused.

Why one script of this size: every figure above is measured on the same imported city and the
same running server, which take most of the run to set up.
"""

from __future__ import annotations

import argparse
import base64
import gzip
import http.client
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import text  # noqa: E402

from app import create_app  # noqa: E402
from app.db import get_db, transaction  # noqa: E402
from app.embedded_pg import default_cluster  # noqa: E402
from app.services import users as user_svc  # noqa: E402
from app.services.tiles import id_array_text  # noqa: E402
from bench.report import load_text  # noqa: E402
from bench.serving import free_port, start_gunicorn  # noqa: E402

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--enable-unsafe-swiftshader",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
# The same browser with WebGL drawn by Mesa's llvmpipe (ANGLE over EGL) instead of SwiftShader:
# both are software renderers, installed with Debian's chromium.
LLVMPIPE_ARGS = [
    a for a in CHROMIUM_ARGS if a not in ("--disable-gpu", "--enable-unsafe-swiftshader")
] + [
    "--use-angle=gl-egl",
    "--ignore-gpu-blocklist",
]
RENDERER_ARGS = {"swiftshader": CHROMIUM_ARGS, "llvmpipe": LLVMPIPE_ARGS}


# -- the city -----------------------------------------------------------------------------------


def admin_token(url: str) -> str:
    app = create_app({"DATABASE_URL": url})
    with app.app_context():
        session = get_db().session()
        with transaction(session):
            user = user_svc.create_user(
                session, f"bench-admin-{int(time.time())}", "admin", "Bench-password-2026"
            )
            limits = dict(user_svc.DEFAULT_LIMITS, SESSION_IDLE_MINUTES=600)
            token = user_svc.start_session(session, user, None, limits, kind="token").token
        session.close()
    app.extensions["gridgov_db"].engine.dispose()
    return token


# -- the server ---------------------------------------------------------------------------------
def worker_rss_mb(master: int) -> list[float]:
    """Resident memory of each gunicorn worker (children of the master), in MB."""
    out = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        if fields.get("PPid", "").strip() == str(master):
            out.append(int(fields["VmRSS"].split()[0]) / 1024)
    return sorted(out)


def get(port: int, path: str, token: str) -> tuple[int, bytes, float, dict[str, str]]:
    started = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    conn.request(
        "GET", path, headers={"Authorization": f"Bearer {token}", "Accept-Encoding": "gzip"}
    )
    res = conn.getresponse()
    body = res.read()
    elapsed = time.perf_counter() - started
    headers = {k.lower(): v for k, v in res.getheaders()}
    conn.close()
    return res.status, body, elapsed, headers


def tile_of(lon: float, lat: float, z: int) -> tuple[int, int]:
    n = 1 << z
    x = int((lon + 180.0) / 360.0 * n)
    y = int((1.0 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2.0 * n)
    return x, y


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


def measure_tiles(
    port: int,
    token: str,
    centre: tuple[float, float],
    per_zoom: int = 16,
    layers: tuple[str, ...] = ("grids", "households", "basemap"),
) -> dict:
    """Request a block of tiles around the centre at zooms 10–17, each twice (cold, warm)."""
    out: dict[str, dict] = {}
    side = int(math.sqrt(per_zoom))
    for layer in layers:
        cold: list[float] = []
        warm: list[float] = []
        sizes: list[int] = []
        spent: list[dict[str, float]] = []
        by_zoom: dict[int, tuple[float, float]] = {}
        for z in range(10, 18):
            zc: list[float] = []
            zw: list[float] = []
            addrs = tile_block(centre, z, side)
            for x, y in addrs:
                status, body, t, headers = get(port, f"/tiles/{layer}/{z}/{x}/{y}.mvt", token)
                assert status == 200, (status, body[:200])
                zc.append(t)
                spent.append({"http": t * 1000, **server_timing(headers)})
                sizes.append(len(body))
            for x, y in addrs:
                # Each gunicorn worker keeps its own tile cache: of three more requests of the
                # tile, the fastest is the one served from a cache.
                zw.append(
                    min(get(port, f"/tiles/{layer}/{z}/{x}/{y}.mvt", token)[2] for _ in range(3))
                )
            by_zoom[z] = (pct(zc, 95), pct(zw, 95))
            cold += zc
            warm += zw
        out[layer] = {
            "cold_p50": pct(cold, 50),
            "cold_p95": pct(cold, 95),
            "warm_p95": pct(warm, 95),
            "max_kb": max(sizes) / 1024,
            "tiles": len(cold),
            "by_zoom": by_zoom,
            "spent": spent,
        }
    return out


def server_timing(headers: dict[str, str]) -> dict[str, float]:
    """The phases of a tile response's Server-Timing header (ms)."""
    out: dict[str, float] = {}
    for part in headers.get("server-timing", "").split(","):
        if ";dur=" in part:
            name, dur = part.strip().split(";dur=")
            out[name] = float(dur)
    return out


def where_time_went(spent: list[dict[str, float]], over_ms: float = 50.0) -> str:
    """Where the time of the slow cold requests (over ``over_ms`` over HTTP) went: the mean of
    each server phase, and "outside" — the time over HTTP the app did not see (waiting for a
    gunicorn thread, for a core, the client's own side)."""
    slow = [s for s in spent if s["http"] > over_ms]
    if not slow:
        return f"no cold request over {over_ms:.0f} ms"
    names = [n for n in ("auth", "version", "lookup", "cut", "gzip", "store", "trim", "gc")]
    mean = {n: statistics.mean(s.get(n, 0.0) for s in slow) for n in names}
    outside = statistics.mean(s["http"] - s.get("total", 0.0) for s in slow)
    phases = ", ".join(f"{n} {v:.1f}" for n, v in mean.items() if v >= 0.05)
    totals = statistics.mean(s.get("total", 0.0) for s in slow)
    return (
        f"{len(slow)} of {len(spent)} cold requests over {over_ms:.0f} ms, mean "
        f"{statistics.mean(s['http'] for s in slow):.0f} ms over HTTP = app {totals:.1f} "
        f"({phases}) + outside the app {outside:.1f} ms; server total p95 of all "
        f"{pct([s.get('total', 0.0) for s in spent], 95):.1f} ms"
    )


def warm_up(port: int, token: str, centre: tuple[float, float]) -> list[int]:
    """The first requests of freshly started app processes: a z9 tile of each layer (outside the
    zooms measured), 8 times, so that each worker has opened its connections and each backend
    has compiled the tile functions before the cold tiles are timed (ms of each request)."""
    x, y = tile_of(centre[0], centre[1], 9)
    return [
        round(get(port, f"/tiles/{layer}/9/{x}/{y}.mvt", token)[2] * 1000)
        for _ in range(8)
        for layer in ("grids", "households", "basemap")
    ]


def tile_block(centre: tuple[float, float], z: int, side: int) -> list[tuple[int, int]]:
    """A side × side block of tile addresses around the centre at zoom z."""
    cx, cy = tile_of(centre[0], centre[1], z)
    return [
        (cx + dx, cy + dy)
        for dx in range(-(side // 2), side - side // 2)
        for dy in range(-(side // 2), side - side // 2)
    ]


OLD_TILE_FUNCTIONS = ("grids", "households", "basemap")
# Where each baseline tile function comes from: the grids' is the function revision 0025
# replaced (revision 0015's: every grid with code, name and count, and the grid_labels layer,
# whatever the tile holds); the others are revision 0010's queries (before the pre-aggregated
# and pre-simplified tables).
OLD_TILE_SOURCES = {
    "grids": "0015_tile_speed.py",
    "households": "0010_map_tiles.py",
    "basemap": "0010_map_tiles.py",
}


def _revision_functions(filename: str) -> list[str]:
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "bench_rev_" + filename.split("_")[0], ROOT / "migrations" / "versions" / filename
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if hasattr(module, "FUNCTIONS"):
        return list(module.FUNCTIONS)
    return [module.GRID_FUNCTION, module.HOUSEHOLD_FUNCTION, module.BASEMAP_FUNCTION]


def install_old_tile_functions(owner_url: str) -> None:
    """Install the baseline tile functions (``OLD_TILE_SOURCES``) as ``bench_old_tile_*`` to
    time them beside today's."""
    from sqlalchemy import create_engine

    engine = create_engine(owner_url)
    with engine.begin() as conn:
        for name in OLD_TILE_FUNCTIONS:
            for sql in _revision_functions(OLD_TILE_SOURCES[name]):
                if f"gridgov_tile_{name}(" in sql:
                    conn.execute(
                        text(
                            sql.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION").replace(
                                f"gridgov_tile_{name}(", f"bench_old_tile_{name}("
                            )
                        )
                    )
                    conn.execute(text(f"GRANT EXECUTE ON FUNCTION bench_old_tile_{name} TO PUBLIC"))
    engine.dispose()


def compare_sql(
    url: str, centre: tuple[float, float], side: int = 2
) -> dict[str, dict[int, tuple[float, float]]]:
    """Time each tile function in PostGIS (as the app's role, every grid) beside the previous one,
    alternating which goes first tile by tile; p95 per zoom, seconds (new, old)."""
    from sqlalchemy import create_engine

    calls = {
        "grids": ("{f}(:z, :x, :y, NULL, ARRAY[]::integer[])"),
        "households": ("{f}(:z, :x, :y, NULL, NULL)"),
        "basemap": ("{f}(:z, :x, :y)"),
    }
    engine = create_engine(url)
    out: dict[str, dict[int, tuple[float, float]]] = {}
    with engine.connect() as conn:
        backend = conn.execute(text("SELECT pg_backend_pid()")).scalar()
        for layer, call in calls.items():
            new_sql = text("SELECT length(" + call.format(f=f"gridgov_tile_{layer}") + ")")
            old_sql = text("SELECT length(" + call.format(f=f"bench_old_tile_{layer}") + ")")
            out[layer] = {}
            k = 0
            for z in range(10, 18):
                times: dict[str, list[float]] = {"new": [], "old": []}
                cpu: dict[str, list[float]] = {"new": [], "old": []}
                for x, y in tile_block(centre, z, side):
                    order = (
                        (("new", new_sql), ("old", old_sql))
                        if k % 2 == 0
                        else (("old", old_sql), ("new", new_sql))
                    )
                    k += 1
                    for which, sql in order:
                        spent = backend_cpu_s(backend)
                        started = time.perf_counter()
                        conn.execute(sql, {"z": z, "x": x, "y": y}).scalar()
                        times[which].append(time.perf_counter() - started)
                        cpu[which].append(backend_cpu_s(backend) - spent)
                out[layer][z] = (pct(times["new"], 95), pct(times["old"], 95))
                CPU_A_TILE.setdefault(layer, {})[z] = (pct(cpu["new"], 95), pct(cpu["old"], 95))
            conn.rollback()
    engine.dispose()
    return out


# CPU time the PostgreSQL backend spent on a tile, p95 per layer and zoom (new, old), seconds:
# what a cut costs whatever else loads the machine.
CPU_A_TILE: dict[str, dict[int, tuple[float, float]]] = {}


def backend_cpu_s(pid: int) -> float:
    """CPU time a PostgreSQL backend (of this machine's private cluster) has run so far."""
    try:
        return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0]) / 1e9
    except OSError:
        return float("nan")


# The street nearest a point and every grid under it, the street first.
STREET_SCOPE = """WITH RECURSIVE t AS (
    (SELECT id, 0 AS d FROM grid WHERE valid_to IS NULL AND level = 1 ORDER BY ST_Distance(
      ST_PointOnSurface(geom), ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)) LIMIT 1)
  UNION SELECT g.id, t.d + 1 FROM grid g JOIN t ON g.parent_id = t.id WHERE g.valid_to IS NULL)
  SELECT array_agg(id ORDER BY d, id) FROM t"""


def scoped_sql(
    url: str, centre: tuple[float, float], side: int = 2
) -> tuple[int, dict[str, dict[int, float]], list]:
    """Tiles of a street centre (the street nearest the centre and every grid under it): p95 per
    zoom, seconds, of the grid tiles and of the density tiles as the app asks them (from the
    street, the scope's root: revision 0038) and as before it (a probe per grid of the scope),
    the two alternating tile by tile and checked equal byte for byte; and the density totals
    checked against a direct count of the street's households in each tile's envelope. Each
    function runs once at zoom 9 first, so that its compilation in the connection is not timed
    (as the HTTP figures warm each new app process with a zoom-9 tile)."""
    import mapbox_vector_tile
    from sqlalchemy import create_engine

    engine = create_engine(url)
    out: dict[str, dict[int, float]] = {"grids": {}, "households": {}, "households, each grid": {}}
    checks = []
    with engine.connect() as conn:
        ids = conn.execute(text(STREET_SCOPE), {"lon": centre[0], "lat": centre[1]}).scalar()
        scope, roots = id_array_text(ids), id_array_text(ids[:1])
        grids = text(
            "SELECT gridgov_tile_grids(:z, :x, :y, CAST(:s AS integer[]), ARRAY[]::integer[])"
        )
        households = text(
            "SELECT gridgov_tile_households(:z, :x, :y, CAST(:s AS integer[]), NULL, "
            "CAST(:r AS integer[]))"
        )
        x9, y9 = tile_of(centre[0], centre[1], 9)
        for sql, extra in ((grids, {}), (households, {"r": roots}), (households, {"r": None})):
            conn.execute(sql, {"z": 9, "x": x9, "y": y9, "s": scope, **extra}).scalar()
        for z in range(10, 18):
            times: dict[str, list[float]] = {k: [] for k in out}
            for i, (x, y) in enumerate(tile_block(centre, z, side)):
                args = {"z": z, "x": x, "y": y, "s": scope}
                started = time.perf_counter()
                conn.execute(grids, args).scalar()
                times["grids"].append(time.perf_counter() - started)
                order = [("households", roots), ("households, each grid", None)]
                bodies = {}
                for name, r in order if i % 2 == 0 else order[::-1]:
                    started = time.perf_counter()
                    bodies[name] = bytes(conn.execute(households, {**args, "r": r}).scalar() or b"")
                    times[name].append(time.perf_counter() - started)
                if bodies["households"] != bodies["households, each grid"]:
                    raise SystemExit(f"the scoped density tile {z}/{x}/{y} differs by the two ways")
            for name, values in times.items():
                out[name][z] = pct(values, 95)
            x, y = tile_of(centre[0], centre[1], z)
            raw = conn.execute(
                households, {"z": z, "x": x, "y": y, "s": scope, "r": roots}
            ).scalar()
            feats = (
                mapbox_vector_tile.decode(bytes(raw or b""))
                .get("households", {})
                .get("features", [])
            )
            counted = conn.execute(
                text(
                    "SELECT count(*) FROM household WHERE geom && ST_Transform(ST_TileEnvelope(:z, :x, :y), 4326) "
                    "AND ST_Intersects(ST_Transform(geom, 3857), ST_TileEnvelope(:z, :x, :y)) "
                    "AND grid_id IN (SELECT unnest(CAST(:s AS integer[])))"
                ),
                {"z": z, "x": x, "y": y, "s": scope},
            ).scalar()
            checks.append((z, sum(f["properties"]["households"] for f in feats), int(counted)))
        conn.rollback()
    engine.dispose()
    return len(ids), out, checks


def check_density_tiles(
    url: str, port: int, token: str, centre: tuple[float, float]
) -> list[tuple[int, int, int]]:
    """Households in the centre's density tile at zooms 10–17 (decoded) vs a direct count of the
    households in the tile's envelope: (z, in the tile, counted)."""
    import mapbox_vector_tile
    from sqlalchemy import create_engine

    engine = create_engine(url)
    out = []
    with engine.connect() as conn:
        for z in range(10, 18):
            x, y = tile_of(centre[0], centre[1], z)
            status, body, _, headers = get(port, f"/tiles/households/{z}/{x}/{y}.mvt", token)
            raw = gzip.decompress(body) if headers.get("content-encoding") == "gzip" else body
            feats = mapbox_vector_tile.decode(raw).get("households", {}).get("features", [])
            in_tile = sum(f["properties"]["households"] for f in feats)
            counted = conn.execute(
                text(
                    "SELECT count(*) FROM household WHERE geom && ST_Transform(ST_TileEnvelope(:z, :x, :y), 4326) "
                    "AND ST_Intersects(ST_Transform(geom, 3857), ST_TileEnvelope(:z, :x, :y))"
                ),
                {"z": z, "x": x, "y": y},
            ).scalar()
            out.append((z, in_tile, int(counted)))
    engine.dispose()
    return out


def check_grid_tile(
    url: str, port: int, token: str, centre: tuple[float, float]
) -> tuple[int, int]:
    """Grids (and labels) in one z15 tile: decoded tile vs a SQL count of what it must hold."""
    import mapbox_vector_tile

    z = 15
    x, y = tile_of(centre[0], centre[1], z)
    status, body, _, headers = get(port, f"/tiles/grids/{z}/{x}/{y}.mvt", token)
    raw = gzip.decompress(body) if headers.get("content-encoding") == "gzip" else body
    decoded = mapbox_vector_tile.decode(raw)
    in_tile = len(decoded.get("grids", {}).get("features", []))
    app = create_app({"DATABASE_URL": url})
    with app.app_context():
        session = get_db().session()
        expected = session.scalar(
            text(
                "SELECT count(*) FROM grid WHERE valid_to IS NULL AND level <= 5 "
                "AND geom && ST_Transform(ST_TileEnvelope(:z, :x, :y), 4326) AND ST_Intersects("
                "ST_Transform(geom, 3857), ST_TileEnvelope(:z, :x, :y, margin => 64.0 / 4096))"
            ),
            {"z": z, "x": x, "y": y},
        )
        session.close()
    app.extensions["gridgov_db"].engine.dispose()
    return in_tile, int(expected)


def chromium_pids() -> dict[int, str]:
    """Running Chromium processes and their kind (browser, gpu-process, renderer, ...)."""
    out = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            # Chromium rewrites its command line as one string: split on spaces too.
            argv = (entry / "cmdline").read_bytes().replace(b"\0", b" ").split()
        except OSError:
            continue
        if argv and argv[0].endswith(b"chromium"):
            kind = next((a[7:].decode() for a in argv if a.startswith(b"--type=")), "browser")
            out[int(entry.name)] = kind
    return out


def cpu_ms(pids: dict[int, str]) -> dict[str, float]:
    """CPU time (user + system, ms) used so far by processes, summed by kind."""
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[str, float] = {}
    for pid, kind in pids.items():
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[kind] = out.get(kind, 0.0) + (int(fields[11]) + int(fields[12])) * 1000.0 / tick
    return out


# Frames of an animated zoom (by dz): the gaps between animation frames from its start until
# two frames after it ends (emap_repaint_split.py; this benchmark times movements with MOVE_JS).
ZOOM_JS = """(dz) => new Promise(function (done) {
  var f = [], on = true;
  (function loop(t) { f.push(t); if (on) { requestAnimationFrame(loop); } })(performance.now());
  GridGov.map.once('zoomend', function () {
    var end = f.length;
    requestAnimationFrame(function () { requestAnimationFrame(function () { on = false; done([f, end]); }); });
  });
  GridGov.map.setZoom(GridGov.map.getZoom() + dz, {animate: true});
})"""
# Every tile in view drawn (at most 30 s: a figure is never lost to a wait).
IDLE_JS = "Promise.race([GridGov.tilesIdle(), new Promise(function (r) { setTimeout(r, 30000); })])"
# One full MapLibre repaint of the view, n times: wall ms a repaint.
REPAINT_JS = """(n) => new Promise(function (done) {
  var gl = GridGov.gl, k = 0, t0 = performance.now();
  function one() {
    if (k++ >= n) { done((performance.now() - t0) / n); return; }
    gl.once('render', function () { requestAnimationFrame(function () { setTimeout(one, 0); }); });
    gl.triggerRepaint();
  }
  one();
})"""


# A pan (``panBy`` by dx px, one second) or an animated zoom (by dz), timed until the map is
# drawn again: the animation frames from its start until every tile in view is drawn (the view
# map idle, and in the tiles way every Leaflet tile drawn) and two frames more, the index of
# the last frame of the movement, and when (ms from the start) the movement ended and the
# last drawing of the map happened (a MapLibre render of the view's canvas, or a tile drawn).
MOVE_JS = """([kind, step]) => new Promise(function (done) {
  var f = [], on = true, m = GridGov.map, gl = GridGov.gl, tiles = GridGov.layers.glTiles;
  var t0 = performance.now(), drawn = 0;
  var canvasMode = GridGov.glMode === 'canvas';
  var onRender = function () { drawn = performance.now(); };
  if (canvasMode) { gl.on('render', onRender); }
  var painted0 = tiles ? tiles.painted : 0;
  (function loop(t) { f.push(t); if (on) { requestAnimationFrame(loop); } })(t0);
  m.once(kind === 'pan' ? 'moveend' : 'zoomend', function () {
    var end = f.length, t1 = performance.now();
    GridGov.tilesIdle().then(function () {
      requestAnimationFrame(function () { requestAnimationFrame(function () {
        on = false;
        if (canvasMode) { gl.off('render', onRender); }
        var last = canvasMode ? drawn : (tiles.painted > painted0 ? tiles.paintedAt : t1);
        done([f, end, t1 - t0, Math.max(last, t1) - t0, tiles ? tiles.painted - painted0 : null]);
      }); });
    });
  });
  if (kind === 'pan') { m.panBy([step, 0], {animate: true, duration: 1}); }
  else { m.setZoom(m.getZoom() + step, {animate: true}); }
})"""

# Two screenshots (PNG, base64) of the same view: the share of pixels of the first with no pixel
# within one pixel of its place in the second that is alike (every channel within 48). The one
# canvas lies on Leaflet's whole pixels with MapLibre's centre between them, the tiles exactly on
# their pixels: the same picture may sit up to half a pixel apart.
SHOT_DIFF_JS = """async ([a, b]) => {
  async function pixels(b64) {
    var bytes = Uint8Array.from(atob(b64), function (c) { return c.charCodeAt(0); });
    var bm = await createImageBitmap(new Blob([bytes], {type: 'image/png'}));
    var c = document.createElement('canvas'); c.width = bm.width; c.height = bm.height;
    var ctx = c.getContext('2d'); ctx.drawImage(bm, 0, 0);
    return ctx.getImageData(0, 0, c.width, c.height);
  }
  var P = await pixels(a), Q = await pixels(b), p = P.data, q = Q.data, w = P.width, h = P.height, n = 0;
  if (P.width !== Q.width || P.height !== Q.height) { return 1; }
  for (var y = 0; y < h; y++) {
    for (var x = 0; x < w; x++) {
      var i = (y * w + x) * 4, alike = false;
      for (var dy = -1; dy <= 1 && !alike; dy++) {
        for (var dx = -1; dx <= 1 && !alike; dx++) {
          var xx = x + dx, yy = y + dy;
          if (xx < 0 || yy < 0 || xx >= w || yy >= h) { continue; }
          var j = (yy * w + xx) * 4;
          alike = Math.abs(p[i] - q[j]) <= 48 && Math.abs(p[i + 1] - q[j + 1]) <= 48 && Math.abs(p[i + 2] - q[j + 2]) <= 48;
        }
      }
      if (!alike) { n++; }
    }
  }
  return n / (w * h);
}"""

# The Leaflet overlays off the map (names, service circles, the hover) for a screenshot of what
# MapLibre draws.
BARE_JS = """() => {
  var m = GridGov.map, l = GridGov.layers;
  [l.labels, l.service_circles].forEach(function (x) { if (x && m.hasLayer(x)) { m.removeLayer(x); } });
  m.closeTooltip && m.eachLayer(function (x) { if (x instanceof L.Tooltip) { m.closeTooltip(x); } });
}"""


def gaps_of(frames: list[float]) -> list[float]:
    return [b - a for a, b in zip(frames, frames[1:], strict=False)]


def _open_page(browser, base: str, token: str, mode: str, timeout_s: float):  # type: ignore[no-untyped-def]
    context = browser.new_context(
        viewport={"width": 1600, "height": 1000},
        extra_http_headers={"Authorization": f"Bearer {token}"},
    )
    page = context.new_page()
    cdp = context.new_cdp_session(page)
    cdp.send("Performance.enable")
    started = time.perf_counter()
    page.goto(f"{base}/emap?gl={mode}", timeout=timeout_s * 1000)
    page.wait_for_selector("html[data-emap-ready='1']", state="attached", timeout=timeout_s * 1000)
    ready = time.perf_counter() - started
    metrics = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
    page.evaluate(IDLE_JS)
    drawn = time.perf_counter() - started
    return context, page, ready, metrics.get("JSHeapUsedSize", 0) / 1e6, drawn


def browser_figures(
    base: str,
    token: str,
    timeout_s: float = 180.0,
    extra_args: tuple[str, ...] = (),
    rounds: int = 3,
) -> dict:
    """Open ``/emap`` in Debian's Chromium (software WebGL), in ``rounds`` rounds alternating the
    two ways the page draws its vector tiles — ``tiles`` (gl_tiles.js: Leaflet tiles drawn one a
    frame, what a software renderer gets) and ``canvas`` (gl_layer.js: one MapLibre canvas of the
    view, redrawn when a movement ends, what a GPU gets; the baseline) — each round a new page:
    seconds until html[data-emap-ready='1'] and until every tile in view is drawn, the JS heap
    then; the animation frames of a mouse drag (30 moves) until the map is drawn again, of a
    one-second ``panBy`` 240 px and back, and of an animated zoom in and out, each until every
    tile in view is drawn (frames while moving, every frame, the longest, and when the map was
    last drawn after the movement began); the CPU time of the renderer and the GPU process for
    the zoom (the GPU process's is the software rasteriser's work, not the load's); and one
    full repaint of the view on the canvas. Checks its answer: a screenshot of the opening view
    (names and circles off) drawn each way, the share of pixels that differ."""
    from playwright.sync_api import sync_playwright

    args = [a for a in CHROMIUM_ARGS if not (extra_args and a == "--disable-gpu")] + list(
        extra_args
    )
    modes = ("tiles", "canvas")
    kinds = ("drag", "pan", "zoom")
    runs: dict[str, dict[str, list]] = {
        m: {
            "ready": [],
            "drawn": [],
            "heap": [],
            "cpu_zoom": [],
            "tiles_zoom": [],
            **{f"{k}_{w}": [] for k in kinds for w in ("every", "moving", "max", "settled")},
        }
        for m in modes
    }
    shots: dict[str, bytes] = {}
    out: dict = {}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=args)
        for k in range(rounds):
            for mode in modes if k % 2 == 0 else modes[::-1]:
                before = set(chromium_pids())
                context, page, ready, heap, drawn = _open_page(
                    browser, base, token, mode, timeout_s
                )
                procs = {pid: kind for pid, kind in chromium_pids().items() if pid not in before}
                procs.update(
                    {pid: kind for pid, kind in chromium_pids().items() if kind == "gpu-process"}
                )
                r = runs[mode]
                r["ready"].append(ready)
                r["drawn"].append(drawn)
                r["heap"].append(heap)
                if k == 0:
                    page.evaluate(BARE_JS)
                    page.mouse.move(5, 995)
                    page.evaluate(IDLE_JS)
                    page.wait_for_timeout(500)  # Leaflet fades a new tile in over 200 ms
                    shots[mode] = page.screenshot()
                    out["gl"] = page.evaluate(
                        "(function(){var g=GridGov.gl.painter.context.gl, d=g.getExtension("
                        "'WEBGL_debug_renderer_info'); return d ? g.getParameter("
                        "d.UNMASKED_RENDERER_WEBGL) : g.getParameter(g.RENDERER);})()"
                    )
                # A mouse drag: the frames from its first move until the map is drawn again.
                page.evaluate(
                    "window.__frames = []; window.__on = true; (function f(t){ window.__frames.push(t);"
                    " if (window.__on) requestAnimationFrame(f); })(performance.now())"
                )
                page.mouse.move(800, 500)
                page.mouse.down()
                for step in range(30):
                    page.mouse.move(800 - 10 * step, 500 - 6 * step)
                end = page.evaluate("window.__frames.length")
                page.mouse.up()
                page.wait_for_timeout(300)
                page.evaluate(IDLE_JS)
                frames = page.evaluate("window.__on = false; window.__frames")
                every, moving = gaps_of(frames), gaps_of(frames[:end])
                r["drag_every"].append(pct(every, 95))
                r["drag_moving"].append(pct(moving, 95) if moving else float("nan"))
                r["drag_max"].append(max(every))
                r["drag_settled"].append(frames[-1] - frames[0])
                for kind, steps in (("pan", (240, -240)), ("zoom", (1, -1))):
                    every, moving, longest, settled = [], [], [], []
                    cpu0 = cpu_ms(procs)
                    painted = 0
                    for step in steps:
                        frames, end, _, last, n = page.evaluate(MOVE_JS, [kind, step])
                        every += gaps_of(frames)
                        moving += gaps_of(frames[:end])
                        longest.append(max(gaps_of(frames)))
                        settled.append(last)
                        painted += n or 0
                        page.evaluate(IDLE_JS)
                    cpu1 = cpu_ms(procs)
                    r[f"{kind}_every"].append(pct(every, 95))
                    r[f"{kind}_moving"].append(pct(moving, 95) if moving else float("nan"))
                    r[f"{kind}_max"].append(max(longest))
                    r[f"{kind}_settled"].append(max(settled))
                    if kind == "zoom":
                        r["cpu_zoom"].append(
                            (
                                cpu1.get("renderer", 0) - cpu0.get("renderer", 0),
                                cpu1.get("gpu-process", 0) - cpu0.get("gpu-process", 0),
                            )
                        )
                        r["tiles_zoom"].append(painted)
                if mode == "canvas" and k == rounds - 1:
                    # What one full repaint of the view costs on the canvas.
                    page.evaluate(REPAINT_JS, 1)
                    cpu0 = cpu_ms(procs)
                    out["repaint_ms"] = page.evaluate(REPAINT_JS, 5)
                    cpu1 = cpu_ms(procs)
                    out["cpu_renderer_ms"] = (cpu1.get("renderer", 0) - cpu0.get("renderer", 0)) / 5
                    out["cpu_gpu_ms"] = (
                        cpu1.get("gpu-process", 0) - cpu0.get("gpu-process", 0)
                    ) / 5
                    out["canvas"] = page.evaluate(
                        "[GridGov.gl.getCanvas().width, GridGov.gl.getCanvas().height]"
                    )
                context.close()
        diff_page = browser.new_page()
        out["shot_diff"] = diff_page.evaluate(
            SHOT_DIFF_JS,
            [base64.b64encode(shots["tiles"]).decode(), base64.b64encode(shots["canvas"]).decode()],
        )
        browser.close()
    out["runs"] = runs
    return out


# -- one city -----------------------------------------------------------------------------------


def run_city(  # type: ignore[no-untyped-def]
    cluster,
    micro: int,
    households: int,
    browser: bool,
    reuse: bool = False,
    tiles_too: bool = True,
    port: int | None = None,
) -> dict:
    from bench.city import city_database, database_name

    result: dict = {"size": micro}
    # The shared city (bench/city.py): generated and imported once, kept; the import times are
    # those measured when it was built.
    url, made = city_database(micro, households)
    result.update(made)
    print(
        f"\n== {made['micro']:,} micro-grids ({made['grids']:,} grids), "
        f"{made['households']:,} households; imported {made['built']} at load {made['load']}: "
        f"grids {made['import_grids_s']:.1f} s, households {made['import_households_s']:.1f} s, "
        f"basemap {made['import_basemap_s']:.1f} s",
        flush=True,
    )
    measure_city(cluster, database_name(micro, households), url, result, browser, tiles_too, port)
    return result


def browser_pass(port: int, token: str, result: dict) -> None:
    """The browser's figures (``browser_figures``), printed."""
    try:
        f = browser_figures(f"http://127.0.0.1:{port}", token)
    except Exception as exc:  # a page that never gets ready is a figure too
        print(f"Chromium: {type(exc).__name__}: {str(exc).splitlines()[0]}", flush=True)
        return
    result["browser"] = f

    def ms(values: list[float]) -> str:
        return "/".join(f"{v:.0f}" for v in values)

    print(f"Chromium [{f['gl']}], viewport 1600×1000; tiles / canvas, by round:", flush=True)
    for mode in ("tiles", "canvas"):
        r = f["runs"][mode]
        print(
            f"  {mode:6s} ready {'/'.join(f'{v:.1f}' for v in r['ready'])} s, every tile drawn "
            f"{'/'.join(f'{v:.1f}' for v in r['drawn'])} s, JS heap {ms(r['heap'])} MB",
            flush=True,
        )
    for kind, what in (
        ("drag", "mouse drag (30 moves)"),
        ("pan", "panBy 240 px and back"),
        ("zoom", "zoom in and out"),
    ):
        t, c = f["runs"]["tiles"], f["runs"]["canvas"]
        print(
            f"  {what}, tiles / canvas (ms): frames while moving p95 {ms(t[kind + '_moving'])} / "
            f"{ms(c[kind + '_moving'])}; every frame until drawn p95 {ms(t[kind + '_every'])} / "
            f"{ms(c[kind + '_every'])}; longest frame {ms(t[kind + '_max'])} / "
            f"{ms(c[kind + '_max'])}; drawn again after {ms(t[kind + '_settled'])} / "
            f"{ms(c[kind + '_settled'])}",
            flush=True,
        )
    for mode in ("tiles", "canvas"):
        r = f["runs"][mode]
        cpu = " ".join(f"{a:.0f}+{b:.0f}" for a, b in r["cpu_zoom"])
        extra = f", {ms(r['tiles_zoom'])} tiles drawn" if mode == "tiles" else ""
        print(f"  zoom in and out, CPU ms renderer+GPU process ({mode}): {cpu}{extra}", flush=True)
    print(
        f"  one full repaint of the view on the canvas ({f['canvas'][0]}×{f['canvas'][1]}): "
        f"{f['repaint_ms']:.0f} ms wall, CPU renderer {f['cpu_renderer_ms']:.0f} ms + GPU "
        f"process {f['cpu_gpu_ms']:.0f} ms",
        flush=True,
    )
    print(
        f"check: the opening view drawn as tiles vs on the canvas (names and circles off): "
        f"{f['shot_diff'] * 100:.2f} % of the pixels have nothing alike within a pixel",
        flush=True,
    )
    print(f"load average: {load_text()}", flush=True)


def measure_city(  # type: ignore[no-untyped-def]
    cluster,
    name: str,
    url: str,
    result: dict,
    browser: bool,
    tiles_too: bool = True,
    port: int | None = None,
) -> None:
    """Serve the city with gunicorn and measure the page, the tiles, memory and the baseline
    (``tiles_too=False``: the page and the browser only)."""
    token = admin_token(url)
    app = create_app({"DATABASE_URL": url})
    with app.app_context():
        session = get_db().session()
        row = session.execute(
            text(
                "SELECT ST_X(c), ST_Y(c) FROM (SELECT ST_Centroid(ST_Extent(geom)::geometry) c "
                "FROM grid WHERE level = 1) t"
            )
        ).one()
        session.close()
    app.extensions["gridgov_db"].engine.dispose()
    centre = (float(row[0]), float(row[1]))
    # Grid tiles are kept in PostgreSQL (revision 0022): empty that cache, so that the first
    # request of a tile below is a cut by PostGIS.
    app = create_app({"DATABASE_URL": url})
    with app.app_context():
        session = get_db().session()
        with transaction(session):
            session.execute(text("DELETE FROM tile_cache"))
        session.close()
    app.extensions["gridgov_db"].engine.dispose()
    port = port or free_port()
    proc = start_gunicorn({"GRIDGOV_DATABASE_URL": url}, port)
    try:
        status, body, t, _ = get(port, "/emap", token)
        result["emap_kb"], result["emap_s"] = len(body) / 1024, t
        print(f"GET /emap: {status}, {len(body) / 1024:.0f} KB in {t * 1000:.0f} ms", flush=True)
        result["rss_start"] = worker_rss_mb(proc.pid)
        if not tiles_too:
            browser_pass(port, token, result)
            return
        result["warmup_ms"] = warm_up(port, token, centre)
        print(
            "first requests of the new gunicorn processes (a z9 tile of each layer, 8 times; "
            f"connections opened, functions compiled): {result['warmup_ms']} ms",
            flush=True,
        )
        tiles = measure_tiles(port, token, centre)
        result["tiles"] = tiles
        result["rss_tiles"] = worker_rss_mb(proc.pid)
        for layer, f in tiles.items():
            zooms = " ".join(
                f"z{z}:{c * 1000:.0f}/{w * 1000:.0f}" for z, (c, w) in f["by_zoom"].items()
            )
            print(
                f"tiles {layer:10s} {f['tiles']} tiles: cold p50 {f['cold_p50'] * 1000:5.1f} ms, "
                f"p95 {f['cold_p95'] * 1000:5.1f} ms; warm p95 {f['warm_p95'] * 1000:5.1f} ms; "
                f"largest {f['max_kb']:.0f} KB (p95 by zoom, cold/warm ms: {zooms})",
                flush=True,
            )
            print(f"  where it went (ms): {where_time_went(f['spent'])}", flush=True)
        print(f"load average: {' '.join(f'{v:.2f}' for v in os.getloadavg())}", flush=True)
        # New app processes (empty memory caches): a grid tile's first request is now one
        # lookup in the shared cache that the requests above filled.
        proc.terminate()
        proc.wait(30)
        proc = start_gunicorn({"GRIDGOV_DATABASE_URL": url}, port)
        warm_up(port, token, centre)
        shared = measure_tiles(port, token, centre, layers=("grids",))["grids"]
        went = where_time_went(shared.pop("spent"))
        result["tiles_shared"] = shared
        zooms = " ".join(
            f"z{z}:{c * 1000:.0f}/{w * 1000:.0f}" for z, (c, w) in shared["by_zoom"].items()
        )
        print(
            f"tiles grids, new processes, first request from the shared cache: p50 "
            f"{shared['cold_p50'] * 1000:5.1f} ms, p95 {shared['cold_p95'] * 1000:5.1f} ms; warm p95 "
            f"{shared['warm_p95'] * 1000:5.1f} ms (p95 by zoom, first/warm ms: {zooms})",
            flush=True,
        )
        print(f"  where it went (ms): {went}", flush=True)
        print(f"load average: {' '.join(f'{v:.2f}' for v in os.getloadavg())}", flush=True)
        install_old_tile_functions(cluster.owner_url(name))
        sql = compare_sql(url, centre)
        result["sql"] = sql
        for layer, zs in sql.items():
            zooms = " ".join(f"z{z}:{n * 1000:.1f}/{o * 1000:.0f}" for z, (n, o) in zs.items())
            print(f"PostGIS {layer:10s} p95 by zoom, new/old ms (alternating): {zooms}", flush=True)
            zooms = " ".join(
                f"z{z}:{n * 1000:.1f}/{o * 1000:.1f}" for z, (n, o) in CPU_A_TILE[layer].items()
            )
            print(f"PostGIS {layer:10s} backend CPU a tile, p95 new/old ms: {zooms}", flush=True)
        result["sql_cpu"] = dict(CPU_A_TILE)
        n_scope, scoped, scoped_check = scoped_sql(url, centre)
        result["scoped"], result["scoped_check"] = scoped, scoped_check
        for layer, zs in scoped.items():
            zooms = " ".join(f"z{z}:{v * 1000:.1f}" for z, v in zs.items())
            print(
                f"PostGIS {layer} p95 by zoom for a street centre ({n_scope:,} grids), ms: {zooms}",
                flush=True,
            )
        print(
            "check: a street centre's density tile vs a direct count of its households in the envelope: "
            + ", ".join(f"z{z} {a}{'=' if a == b else '≠'}{b}" for z, a, b in scoped_check),
            flush=True,
        )
        print(f"load average: {' '.join(f'{v:.2f}' for v in os.getloadavg())}", flush=True)
        density = check_density_tiles(url, port, token, centre)
        result["density_check"] = density
        print(
            "check: households in the centre's density tile vs a direct count in its envelope: "
            + ", ".join(f"z{z} {a}{'=' if a == b else '≠'}{b}" for z, a, b in density),
            flush=True,
        )
        print(
            f"gunicorn workers' RSS: {result['rss_start']} MB at start, "
            f"{[round(r) for r in result['rss_tiles']]} MB after the tiles",
            flush=True,
        )
        in_tile, expected = check_grid_tile(url, port, token, centre)
        result["check"] = (in_tile, expected)
        print(
            f"check: grids in a z15 tile {in_tile}, SQL count {expected} — "
            f"{'match' if in_tile == expected else 'DIFFER'}",
            flush=True,
        )
        if browser:
            browser_pass(port, token, result)
        # Baseline: the whole city as GeoJSON in one response (what the page loaded before tiles).
        status, body, t, headers = get(port, "/api/emap/layers", token)
        if status == 404:
            print(
                "baseline GET /api/emap/layers: 404, the whole-city GeoJSON is no longer served",
                flush=True,
            )
        else:
            raw = gzip.decompress(body) if headers.get("content-encoding") == "gzip" else body
            result["baseline_mb"], result["baseline_s"] = len(raw) / 1e6, t
            result["rss_baseline"] = worker_rss_mb(proc.pid)
            print(
                f"baseline GET /api/emap/layers (every grid and household as GeoJSON): {status}, "
                f"{len(raw) / 1e6:.1f} MB in {t:.1f} s; workers' RSS after it "
                f"{[round(r) for r in result['rss_baseline']]} MB",
                flush=True,
            )
    finally:
        proc.terminate()
        proc.wait(30)
    print(f"load average: {' '.join(f'{v:.2f}' for v in os.getloadavg())}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", default="10000,100000", help="micro-grid counts, comma-separated"
    )
    parser.add_argument(
        "--households",
        default="200000,2000000",
        help="households of each city, comma-separated (the issue's 2M for 100k micro-grids "
        "needs about twice the 1M household import time)",
    )
    parser.add_argument("--browser", action="store_true", help="also time the page in Chromium")
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="accepted for older command lines: the shared city is always reused",
    )
    parser.add_argument(
        "--browser-only",
        action="store_true",
        help="measure the page in Chromium only (no tiles, no SQL comparisons)",
    )
    parser.add_argument(
        "--port", type=int, default=None, help="the server's port (default: a free one)"
    )
    args = parser.parse_args()
    print(
        f"load average at start: {' '.join(f'{v:.2f}' for v in os.getloadavg())}; "
        f"{os.cpu_count()} cores"
    )
    cluster = default_cluster()
    cluster.start()
    sizes = [int(s) for s in args.sizes.split(",")]
    households = [int(h) for h in args.households.split(",")]
    results = [
        run_city(
            cluster,
            s,
            h,
            args.browser or args.browser_only,
            args.reuse,
            not args.browser_only,
            args.port,
        )
        for s, h in zip(sizes, households, strict=False)
    ]
    if len(results) > 1 and all("import_grids_s" in r for r in results):
        a, b = results[0], results[-1]
        k = math.log(b["import_grids_s"] / a["import_grids_s"]) / math.log(b["grids"] / a["grids"])
        print(
            f"\ngrid import growth exponent {a['grids']:,} → {b['grids']:,} grids: {k:.2f} "
            f"(1.0 = linear); {b['import_grids_s']:.1f} s at the larger size (target < 60 s)"
        )
    print(
        json.dumps([{k: v for k, v in r.items() if k != "tiles"} for r in results], default=str)[
            :4000
        ]
    )
    for r in results:
        report_rows(r)


def report_rows(r: dict) -> None:
    """One table row per hot path of a city (worst zoom's p95 over zooms 10–17, ms)."""
    from bench.report import row

    size = f"{r['micro']:,} micro-grids"
    for layer, base in (("grids", "revision 0015's function"), ("households", "revision 0010's")):
        zs = r.get("sql", {}).get(layer)
        if not zs:
            continue
        new = max(n for n, _ in zs.values()) * 1000
        old = max(o for _, o in zs.values()) * 1000
        row(
            f"e-map {layer} tile cut in PostGIS, {size}, worst zoom p95",
            project=new,
            baseline=old,
            unit="ms",
            target="< 50 ms",
            holds=new < 50,
            baseline_name=base,
        )
        cpu = r.get("sql_cpu", {}).get(layer)
        if cpu:
            new = max(n for n, _ in cpu.values()) * 1000
            old = max(o for _, o in cpu.values()) * 1000
            row(
                f"e-map {layer} tile cut, PostgreSQL backend CPU, {size}, worst zoom p95",
                project=new,
                baseline=old,
                unit="ms",
                target="(load-independent cost of the < 50 ms cut)",
                baseline_name=base,
            )
    tiles = r.get("tiles", {}).get("grids")
    if tiles:
        row(
            f"e-map grid tile over HTTP, {size}, cold p95",
            project=tiles["cold_p95"] * 1000,
            baseline=None,
            unit="ms",
            target="< 50 ms",
            holds=tiles["cold_p95"] * 1000 < 50,
            note=f"warm p95 {tiles['warm_p95'] * 1000:.1f} ms",
        )
    if "import_grids_s" in r:
        row(
            f"grid import, {r['grids']:,} grids",
            project=r["import_grids_s"],
            baseline=None,
            unit="s",
            target="< 60 s at 100k micro-grids",
            holds=r["import_grids_s"] < 60 if r["micro"] >= 100_000 else None,
        )
    b = r.get("browser")
    if b:
        med = statistics.median
        t, c = b["runs"]["tiles"], b["runs"]["canvas"]
        row(
            f"e-map ready in Chromium, {size}",
            project=med(t["ready"]),
            baseline=med(c["ready"]),
            unit="s",
            target="< 3 s",
            holds=med(t["ready"]) < 3,
            baseline_name="the view drawn on one MapLibre canvas (gl_layer.js)",
            note=f"JS heap {max(t['heap']):.0f} MB; {b['gl']}",
        )
        for kind, what in (
            ("drag", "mouse drag"),
            ("pan", "panBy over loaded tiles"),
            ("zoom", "animated zoom in and out"),
        ):
            row(
                f"e-map {kind} ({what}), every frame until the map is drawn again, {size}, p95",
                project=med(t[f"{kind}_every"]),
                baseline=med(c[f"{kind}_every"]),
                unit="ms",
                target="< 100 ms",
                holds=med(t[f"{kind}_every"]) < 100,
                baseline_name="the view drawn on one MapLibre canvas (gl_layer.js)",
                note=f"longest frame {max(t[kind + '_max']):.0f} ms against "
                f"{max(c[kind + '_max']):.0f} ms",
            )


if __name__ == "__main__":
    main()
