"""Benchmark batch locate: 1,000,000 points to their micro-grid and owner, at 10k, 100k and 300k
micro-grids, against shapely 2 STRtree baselines, alternating in rounds.

Each size is a synthetic city (``gis.synthetic.city``: jittered lattice micro-grids sharing their
edges, grids, communities and streets above them, one full-time worker per grid and a chief per
community) written straight into a scratch database ``gridgov_bench_locate_<size>`` of the private
cluster (kept between runs). The points: 1 % exactly on micro-grid vertices (shared-edge ties),
the rest uniform over the city with a margin around it (nearest within 30 m, unassigned).

Timed, alternating in rounds in one run:

- ``locate_batch``, end to end: read the database version, fetch the grids and people (first
  batch only: kept per version), place every point (inside/boundary with the byte-order tie,
  nearest within 30 m, ancestor, unassigned) and work out every point's owner. The first, cold
  batch (fetch, index build, owners) is printed on its own;
- baseline ``STRtree(points)``: a tree over the points, queried with the micro-grids (predicate
  intersects, polygons prepared by GEOS), then the smallest code per point — the placing only,
  polygons already in memory, no nearest, ancestors or owners;
- baseline ``STRtree(polygons)``: a tree over the micro-grids built once (not timed), queried
  with the points, the smallest code per point.

Every answer is checked: the grid of each point ``locate_batch`` places inside or on a boundary
is the baseline's, for every point, and ``inside`` holds exactly where the point lies in the
interior of that one grid. Target: at or ahead of STRtree(points) at every size, and at least
250,000 points/s at 100k micro-grids.

    python bench/bench_locate_batch.py [--points 1000000] [--sizes 10000,100000,300000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import psycopg
import shapely
from shapely import STRtree
from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app import create_app  # noqa: E402
from app import migrate as mig  # noqa: E402
from app.db import get_db  # noqa: E402
from app.embedded_pg import default_cluster  # noqa: E402
from app.services.locate import METHODS, locate_batch  # noqa: E402
from bench.city import code_version  # noqa: E402
from bench.report import load_text, row, summary  # noqa: E402
from gis.assign import _first_by_rank, _ranks  # noqa: E402
from gis.synthetic import city  # noqa: E402

TARGET_PER_S = 250_000


def _copy_rows(cur: psycopg.Cursor, sql: str, rows: list[tuple]) -> None:
    with cur.copy(sql) as copy:
        for r in rows:
            copy.write_row(r)


def build_city_database(cluster, micro: int) -> str:  # type: ignore[no-untyped-def]
    """The scratch database of a city of about ``micro`` micro-grids (made once, then kept)."""
    name = f"gridgov_bench_locate_{micro // 1000}k"
    url = cluster.url(name)
    owner = cluster.owner_url(name).replace("postgresql+psycopg://", "postgresql://")
    try:
        with psycopg.connect(owner) as conn:
            got = conn.execute("SELECT value FROM bench_marker").fetchone()
            if got and got[0] == f"city {micro} {code_version()}":
                return url
    except psycopg.Error:
        pass
    started = time.perf_counter()
    cluster.recreate_database(name)
    mig.upgrade(cluster.owner_url(name), app_url=url)
    c = city(micro, 0, seed=5)
    shapes = np.array([g[4] for g in c.grids], dtype=object)
    multi = shapely.multipolygons(shapes.reshape(-1, 1))
    multi = shapely.set_srid(multi, 4326)
    wkb = shapely.to_wkb(multi, hex=True, include_srid=True)
    lat = shapely.get_y(shapely.centroid(shapes))
    area = shapely.area(shapes) * (111_320.0**2) * np.cos(np.radians(lat))
    id_of = {g[0]: i + 1 for i, g in enumerate(c.grids)}
    parent = {i + 1: (id_of[g[3]] if g[3] else None) for i, g in enumerate(c.grids)}

    def path(gid: int) -> list[int]:
        """The grid's ids from the top down to itself (``grid.path``, which the grid triggers
        of revision 0027 would fill)."""
        up: list[int] = []
        at: int | None = gid
        while at is not None:
            up.append(at)
            at = parent[at]
        return up[::-1]

    grids = [
        (i + 1, g[0], g[1], g[2], parent[i + 1], wkb[i], float(area[i]), path(i + 1))
        for i, g in enumerate(c.grids)
    ]
    workers, assignments = [], []
    for gid, code, _name, level, *_rest in grids:
        if level == 3:
            workers.append((len(workers) + 1, f"W{code}", f"网格员{code[-3:]}", "13900000000"))
            assignments.append((len(workers), gid, "worker_full"))
        elif level == 2:
            workers.append((len(workers) + 1, f"C{code}", f"社区长{code[-3:]}", "13800000000"))
            assignments.append((len(workers), gid, "grid_chief"))
    with psycopg.connect(owner) as conn, conn.cursor() as cur:
        # The grid triggers (tiles, paths, locate cards) are off: of no use to a batch locate;
        # the path, which the schema requires, is written here.
        cur.execute("ALTER TABLE grid DISABLE TRIGGER USER")
        _copy_rows(
            cur,
            "COPY grid (id, code, name, level, parent_id, geom, area_m2, path) FROM STDIN",
            grids,
        )
        _copy_rows(cur, "COPY worker (id, code, name, phone) FROM STDIN", workers)
        _copy_rows(cur, "COPY grid_assignment (worker_id, grid_id, role) FROM STDIN", assignments)
        for table in ("grid", "worker", "grid_assignment"):
            cur.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"(SELECT max(id) FROM {table}))"
            )
        cur.execute("ALTER TABLE grid ENABLE TRIGGER USER")
        cur.execute("CREATE TABLE bench_marker (value text)")
        cur.execute("INSERT INTO bench_marker VALUES (%s)", (f"city {micro} {code_version()}",))
        cur.execute("GRANT SELECT ON bench_marker TO PUBLIC")
        cur.execute("ANALYZE")
    print(
        f"  built {name}: {len(grids):,} grids ({micro:,} micro-grids asked), "
        f"{len(assignments):,} assignments in {time.perf_counter() - started:.0f} s",
        flush=True,
    )
    return url


def points_over(leaves: np.ndarray, n: int, seed: int = 11) -> tuple[np.ndarray, np.ndarray]:
    """1 % on vertices of the micro-grids, the rest uniform over the city and a margin of 200 m."""
    rng = np.random.default_rng(seed)
    x0, y0, x1, y1 = shapely.total_bounds(leaves)
    lon = rng.uniform(x0 - 0.002, x1 + 0.002, n)
    lat = rng.uniform(y0 - 0.002, y1 + 0.002, n)
    xy = np.unique(shapely.get_coordinates(leaves), axis=0)
    k = min(n // 100, len(xy))
    pick = rng.choice(len(xy), k, replace=False)
    at = rng.choice(n, k, replace=False)
    lon[at], lat[at] = xy[pick, 0], xy[pick, 1]
    return lon, lat


def strtree_points(lon, lat, leaves, rank) -> np.ndarray:  # type: ignore[no-untyped-def]
    tree = STRtree(shapely.points(lon, lat))
    poly_idx, pt_idx = tree.query(leaves, predicate="intersects")
    return _first_by_rank(pt_idx, poly_idx, rank, lon.size)


def strtree_polygons(tree, lon, lat, rank) -> np.ndarray:  # type: ignore[no-untyped-def]
    pt_idx, poly_idx = tree.query(shapely.points(lon, lat), predicate="intersects")
    return _first_by_rank(pt_idx, poly_idx, rank, lon.size)


def run_size(cluster, micro: int, n: int, rounds: int) -> None:  # type: ignore[no-untyped-def]
    url = build_city_database(cluster, micro)
    app = create_app({"DATABASE_URL": url})
    with app.app_context():
        session = get_db().session()
        count = session.execute(
            text("SELECT count(*) FROM grid WHERE valid_to IS NULL")
        ).scalar_one()
        # The baselines get the micro-grids in memory, untimed, in the project's code order.
        rows = session.execute(
            text(
                "SELECT g.id, g.code, ST_AsBinary(g.geom) FROM grid g WHERE g.level = 4 "
                "AND g.valid_to IS NULL ORDER BY g.code"
            )
        ).all()
        session.commit()
        leaf_ids = np.array([r[0] for r in rows])
        leaves = shapely.from_wkb([bytes(r[2]) for r in rows])
        rank = _ranks([r[1] for r in rows])
        lon, lat = points_over(leaves, n)
        print(
            f"\n{len(leaves):,} micro-grids ({count:,} grids in all), {n:,} points; "
            f"load {load_text()}",
            flush=True,
        )
        t = time.perf_counter()
        result = locate_batch(session, lon, lat)
        session.commit()
        cold = time.perf_counter() - t
        print(f"  locate_batch, first batch (fetch, index build, owners): {cold:.2f} s", flush=True)
        shapely.prepare(leaves)
        poly_tree = STRtree(leaves)
        ours: list[float] = []
        base_pts: list[float] = []
        base_polys: list[float] = []
        expected = None
        for _ in range(rounds):
            t = time.perf_counter()
            result = locate_batch(session, lon, lat)
            session.commit()
            ours.append(time.perf_counter() - t)
            t = time.perf_counter()
            expected = strtree_points(lon, lat, leaves, rank)
            base_pts.append(time.perf_counter() - t)
            t = time.perf_counter()
            other = strtree_polygons(poly_tree, lon, lat, rank)
            base_polys.append(time.perf_counter() - t)
            assert (other == expected).all(), "the two baselines disagree"
        session.close()
    app.extensions["gridgov_db"].dispose()
    assert expected is not None

    # Answers: the micro-grid of every placed point, and the interior flag.
    placed = np.isin(result.method, [METHODS.index("inside"), METHODS.index("boundary")])
    grid_ids = np.array([g["id"] for g in result.grids] + [-1])
    ours_ids = np.where(placed, grid_ids[result.grid_row], -1)
    base_ids = np.where(expected >= 0, leaf_ids[np.maximum(expected, 0)], -1)
    agree = ours_ids == base_ids
    hits = np.bincount(STRtree(leaves).query(shapely.points(lon, lat), "intersects")[0], None, n)
    got = np.flatnonzero(expected >= 0)
    interior = np.zeros(n, dtype=bool)
    interior[got] = (hits[got] == 1) & shapely.contains_xy(
        leaves[expected[got]], lon[got], lat[got]
    )
    inside_ok = (result.method == METHODS.index("inside")) == interior
    counts = ", ".join(f"{k} {v:,}" for k, v in result.counts().items() if v)
    print(f"  methods: {counts}")
    print(
        f"  answers: same micro-grid as STRtree for {agree.mean():.4%} of points "
        f"({int((~agree).sum())} differ); inside/boundary right for {inside_ok.mean():.4%}"
    )
    med = statistics.median(ours)
    rate = n / med
    print(
        f"  locate_batch end to end: {summary(ours)} s — {rate:,.0f} points/s (median); "
        f"owners for {len(set(result.grid_row[result.grid_row >= 0].tolist())):,} grids"
    )
    print(f"  STRtree(points) queried with the micro-grids: {summary(base_pts)} s")
    print(f"  STRtree(micro-grids) queried with the points: {summary(base_polys)} s")
    print(f"  load {load_text()}")
    base = statistics.median(base_pts)
    holds = bool(agree.all() and inside_ok.all() and med <= base)
    if micro == 100_000:
        holds = holds and rate >= TARGET_PER_S
    label = f"{micro // 1000}k"
    row(
        f"batch locate, {n // 1000:,}k points, {label} micro-grids (end to end)",
        project=med,
        baseline=base,
        unit="s",
        target="≤ STRtree(points)" + (", ≥ 250k points/s" if micro == 100_000 else ""),
        holds=holds,
        baseline_name="STRtree(points)",
        note=f"first batch {cold:.2f} s; STRtree(polygons) {statistics.median(base_polys):.2f} s; "
        f"{rate:,.0f} points/s",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--sizes", default="10000,100000,300000")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    cluster = default_cluster()
    cluster.start()
    for size in (int(s) for s in args.sizes.split(",")):
        run_size(cluster, size, args.points, args.rounds)


if __name__ == "__main__":
    main()
