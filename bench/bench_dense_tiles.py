"""Benchmark the grid tiles of the 100k city before and after revision 0036, in one run.

Before: revision 0025's grid tile function over the ``grid_tile`` rows as the import and the
household recount had left them, in no order in space (rebuilt here as ``bench_old_grid_tile``,
ordered by a hash of the grid id: a z13 tile's 5,300 rows then lie on about 4,260 pages, as in
the city as built, 4,242). After: today's function over ``grid_tile`` as revision 0036 keeps it.

- PostGIS: each tile of a block around the city's centre at zooms 10–17 cut by both functions
  (every grid, as an admin sees them), alternating which goes first tile by tile: the backend's
  CPU time a tile (p95 by zoom) and the wall time; each pair of tiles decoded
  (mapbox-vector-tile) and compared feature by feature (id, properties, geometry); repeated
  ``--sql-rounds`` times, the row taking the median of the rounds' worst-zoom p95.
- HTTP: gunicorn (2 workers × 4 threads) started afresh for each round, the shared tile cache
  emptied, each process warmed with a z9 tile 8 times (as ``bench_emap_scale.py``), then every
  tile of the block requested once (cold: the cut). Rounds alternate the function the app calls
  (``gridgov_tile_grids`` is replaced by the old one for an old round and put back after);
  p50/p95 over HTTP per round, the p95 by zoom, and where the time of requests over 50 ms went
  (the responses' Server-Timing).

    python bench/bench_dense_tiles.py [--rounds 3] [--sql-rounds 3] [--side 4] [--port N]

The load average is printed with every figure; the machine has two cores shared with other
work, so the figures say what they were measured under.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import mapbox_vector_tile  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402

from app.embedded_pg import default_cluster  # noqa: E402
from bench.bench_emap_scale import (  # noqa: E402
    admin_token,
    backend_cpu_s,
    get,
    pct,
    server_timing,
    tile_block,
    warm_up,
    where_time_went,
)
from bench.city import LARGE, city_database, database_name  # noqa: E402
from bench.report import load_text, row, summary  # noqa: E402
from bench.serving import free_port, start_gunicorn  # noqa: E402

ZOOMS = range(10, 18)
OLD_TABLE = "bench_old_grid_tile"


def _revision(filename: str):  # type: ignore[no-untyped-def]
    path = ROOT / "migrations" / "versions" / filename
    spec = importlib.util.spec_from_file_location("bench_rev_" + path.stem, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def function_sql(which: str, name: str = "gridgov_tile_grids") -> str:
    """``CREATE OR REPLACE`` of the new grid tile function (revision 0036) or the old one
    (revision 0025's, reading ``bench_old_grid_tile``), under ``name``."""
    if which == "new":
        sql = _revision("0036_dense_tile_geometry.py").GRID_FUNCTION
    else:
        sql = _revision("0025_dense_grid_tiles.py").GRID_FUNCTION.replace(
            "FROM grid_tile", f"FROM {OLD_TABLE}"
        )
    return sql.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION").replace(
        "gridgov_tile_grids(", f"{name}("
    )


def prepare(owner_url: str) -> None:
    """Build the old table (afresh, from today's rows) and function beside today's, and put the
    new function back (a run cut short leaves the old one in place)."""
    engine = create_engine(owner_url)
    with engine.begin() as conn:
        started = time.perf_counter()
        conn.execute(text(f"DROP TABLE IF EXISTS {OLD_TABLE}"))
        conn.execute(
            text(
                f"CREATE TABLE {OLD_TABLE} AS SELECT * FROM grid_tile "
                "ORDER BY hashint4(grid_id), band"
            )
        )
        for band in (1, 2, 3, 4):
            conn.execute(text(f"CREATE INDEX ON {OLD_TABLE} USING gist (geom) WHERE band = {band}"))
        conn.execute(text(f"ANALYZE {OLD_TABLE}"))
        conn.execute(text(f"GRANT SELECT ON {OLD_TABLE} TO PUBLIC"))
        print(f"{OLD_TABLE} built in {time.perf_counter() - started:.1f} s", flush=True)
        conn.execute(text(function_sql("old", "bench_0025_tile_grids")))
        conn.execute(text("GRANT EXECUTE ON FUNCTION bench_0025_tile_grids TO PUBLIC"))
        conn.execute(text(function_sql("new")))
    engine.dispose()


def use_function(owner_url: str, which: str) -> None:
    """Make the app's grid tile function the old or the new one, and empty the shared cache."""
    engine = create_engine(owner_url)
    with engine.begin() as conn:
        conn.execute(text(function_sql(which)))
        conn.execute(text("DELETE FROM tile_cache WHERE layer = 'grids'"))
    engine.dispose()


def features(body: bytes) -> dict:
    tile = mapbox_vector_tile.decode(body)
    return {
        layer: {f["id"]: (f["properties"], f["geometry"]) for f in content["features"]}
        for layer, content in tile.items()
    }


def compare_sql(url: str, centre: tuple[float, float], side: int) -> dict:
    """Both functions on every tile of the block, alternating which goes first; the answers
    compared feature by feature."""
    engine = create_engine(url)
    cpu: dict[str, dict[int, list[float]]] = {"new": {}, "old": {}}
    wall: dict[str, dict[int, list[float]]] = {"new": {}, "old": {}}
    sql = {
        "new": text("SELECT gridgov_tile_grids(:z, :x, :y, NULL, ARRAY[]::integer[])"),
        "old": text("SELECT bench_0025_tile_grids(:z, :x, :y, NULL, ARRAY[]::integer[])"),
    }
    features_compared = 0
    with engine.connect() as conn:
        backend = conn.execute(text("SELECT pg_backend_pid()")).scalar()
        # The first call of each function in the connection compiles it: not timed.
        for which in ("new", "old"):
            for z in (10, 12, 13, 15):
                x, y = tile_block(centre, z, 1)[0]
                conn.execute(sql[which], {"z": z, "x": x, "y": y}).scalar()
        k = 0
        for z in ZOOMS:
            bodies: dict[str, bytes] = {}
            for x, y in tile_block(centre, z, side):
                order = ("new", "old") if k % 2 == 0 else ("old", "new")
                k += 1
                for which in order:
                    spent = backend_cpu_s(backend)
                    started = time.perf_counter()
                    body = conn.execute(sql[which], {"z": z, "x": x, "y": y}).scalar()
                    wall[which].setdefault(z, []).append(time.perf_counter() - started)
                    cpu[which].setdefault(z, []).append(backend_cpu_s(backend) - spent)
                    bodies[which] = bytes(body or b"")
                new, old = features(bodies["new"]), features(bodies["old"])
                if new != old:
                    raise SystemExit(f"tile {z}/{x}/{y}: the new function's features differ")
                features_compared += sum(len(v) for v in new.values())
        conn.rollback()
    engine.dispose()
    return {"cpu": cpu, "wall": wall, "features": features_compared}


def http_round(
    url: str,
    owner_url: str,
    which: str,
    token: str,
    centre: tuple[float, float],
    side: int,
    port: int,
) -> dict:
    """One round over HTTP with the ``which`` function: new processes, cold tiles."""
    use_function(owner_url, which)
    proc = start_gunicorn({"GRIDGOV_DATABASE_URL": url}, port)
    try:
        warm_up(port, token, centre)
        times: list[float] = []
        by_zoom: dict[int, list[float]] = {}
        spent: list[dict[str, float]] = []
        for z in ZOOMS:
            for x, y in tile_block(centre, z, side):
                status, body, t, headers = get(port, f"/tiles/grids/{z}/{x}/{y}.mvt", token)
                if status != 200:
                    raise SystemExit(f"tile {z}/{x}/{y}: HTTP {status} {body[:200]!r}")
                times.append(t)
                by_zoom.setdefault(z, []).append(t)
                spent.append({"http": t * 1000, **server_timing(headers)})
    finally:
        proc.terminate()
        proc.wait(30)
    return {"times": times, "by_zoom": by_zoom, "spent": spent, "load": load_text()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="HTTP rounds of each function")
    parser.add_argument("--sql-rounds", type=int, default=3, help="PostGIS rounds")
    parser.add_argument("--side", type=int, default=4, help="tiles a side of each zoom's block")
    parser.add_argument("--port", type=int, default=None)
    args = parser.parse_args()

    print(f"load at the start: {load_text()}", flush=True)
    url, _figures = city_database(*LARGE)
    cluster = default_cluster()
    owner_url = cluster.owner_url(database_name(*LARGE))
    prepare(owner_url)
    engine = create_engine(url)
    with engine.connect() as conn:
        row_ = conn.execute(
            text(
                "SELECT ST_X(c), ST_Y(c) FROM (SELECT ST_Centroid(ST_Extent(geom)::geometry) c "
                "FROM grid WHERE level = 1) t"
            )
        ).one()
        grids = conn.execute(text("SELECT count(*) FROM grid WHERE valid_to IS NULL")).scalar()
    engine.dispose()
    centre = (float(row_[0]), float(row_[1]))
    print(f"city: {grids:,} current grids; centre {centre[0]:.4f}, {centre[1]:.4f}", flush=True)

    try:
        worst: dict[str, list[float]] = {"new": [], "old": []}
        for r in range(args.sql_rounds):
            sql = compare_sql(url, centre, args.side)
            print(
                f"PostGIS round {r + 1}, {args.side}x{args.side} tiles a zoom, both functions "
                f"alternating: {sql['features']:,} features the same in both "
                f"(load {load_text()})",
                flush=True,
            )
            print(
                "  zoom: CPU p95 new / old ms, median new / old (wall p95 new / old ms)",
                flush=True,
            )
            for z in ZOOMS:
                print(
                    f"  z{z}: {pct(sql['cpu']['new'][z], 95) * 1000:6.1f} / "
                    f"{pct(sql['cpu']['old'][z], 95) * 1000:6.1f}, "
                    f"{statistics.median(sql['cpu']['new'][z]) * 1000:6.1f} / "
                    f"{statistics.median(sql['cpu']['old'][z]) * 1000:6.1f}   "
                    f"({pct(sql['wall']['new'][z], 95) * 1000:6.1f} / "
                    f"{pct(sql['wall']['old'][z], 95) * 1000:6.1f})",
                    flush=True,
                )
            for which in ("new", "old"):
                worst[which].append(max(pct(v, 95) for v in sql["cpu"][which].values()) * 1000)
        for which in ("new", "old"):
            print(
                f"PostGIS {which}: CPU p95 of the worst zoom {summary(worst[which])} ms "
                f"over {args.sql_rounds} rounds",
                flush=True,
            )
        cpu_new, cpu_old = statistics.median(worst["new"]), statistics.median(worst["old"])

        token = admin_token(url)
        port = args.port or free_port()
        rounds: dict[str, list[dict]] = {"new": [], "old": []}
        for r in range(args.rounds):
            for which in ("old", "new") if r % 2 == 0 else ("new", "old"):
                res = http_round(url, owner_url, which, token, centre, args.side, port)
                rounds[which].append(res)
                zooms = " ".join(f"z{z}:{pct(v, 95) * 1000:.0f}" for z, v in res["by_zoom"].items())
                print(
                    f"HTTP round {r + 1} {which}: {len(res['times'])} cold tiles, p50 "
                    f"{pct(res['times'], 50) * 1000:.1f} ms, p95 "
                    f"{pct(res['times'], 95) * 1000:.1f} ms (p95 by zoom {zooms}); "
                    f"load {res['load']}",
                    flush=True,
                )
                print(f"  where it went (ms): {where_time_went(res['spent'])}", flush=True)
    finally:
        use_function(owner_url, "new")

    p95 = {w: [pct(r["times"], 95) * 1000 for r in rs] for w, rs in rounds.items()}
    p50 = {w: [pct(r["times"], 50) * 1000 for r in rs] for w, rs in rounds.items()}
    for which in ("new", "old"):
        print(
            f"HTTP {which}: p95 {summary(p95[which])} ms, p50 {summary(p50[which])} ms "
            f"over {args.rounds} rounds",
            flush=True,
        )
    print(f"load at the end: {load_text()}", flush=True)
    row(
        "grid tiles, 100k city, first cut, PostGIS CPU p95, worst zoom of z10–17 (median of rounds)",
        project=cpu_new,
        baseline=cpu_old,
        unit="ms",
        target="< 50 ms",
        holds=cpu_new < 50,
        baseline_name="revision 0025's function over the rows in import order",
    )
    new95, old95 = statistics.median(p95["new"]), statistics.median(p95["old"])
    row(
        "grid tiles, 100k city, first cut over HTTP, p95 (median of rounds)",
        project=new95,
        baseline=old95,
        unit="ms",
        target="< 50 ms",
        holds=new95 < 50,
        baseline_name="the same before revision 0036",
        note=f"p50 {statistics.median(p50['new']):.1f} ms; rounds p95 "
        + ", ".join(f"{v:.1f}" for v in p95["new"]),
    )


if __name__ == "__main__":
    main()
