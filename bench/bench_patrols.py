"""Benchmark patrols: one day of tracks for many workers, visits in bursts, weekly coverage.

A scratch database ``gridgov_bench_patrols`` of the private cluster (or
GRIDGOV_BENCH_DATABASE_URL) gets a synthetic district: ``--grids`` micro-grids (300 m squares
under one street), a road every 100 m each way (basemap ``road`` features), one worker per
micro-grid and 20 households in each. Then:

1. **Positions.** Each worker walks the streets of their square, a position every 10 s over
   ``--hours`` hours, posted in batches of 60 through ``patrols.post_positions`` (the service the
   endpoint calls, one transaction per batch) from ``--threads`` threads. Every 20th batch is
   sent twice with its key and every 25th again without one, as a phone does after a lost
   answer. The workers are split into ``--rounds`` rounds; each round also runs the baseline,
   a plain multi-row INSERT of the same positions per batch through psycopg into a table of the
   same shape (no idempotency, no checks), alternating which goes first. Checked: every position stored
   exactly once (count and distinct moments equal the positions sent), the baseline's count
   equal.
2. **Visits.** ``--visits`` visits posted in bursts of 500 through ``visits.record_visit``, a
   tenth of each burst sent again with the same key: every visit stored once.
3. **Coverage.** The weekly patrol coverage of every micro-grid (``patrols.coverage``, group
   grid, level 4), timed, against a baseline in Python (shapely, the same buffer and metric
   CRS): the shares must agree within 0.5 %.

``--full`` runs the whole day through the HTTP API instead: ``--workers`` workers (one
micro-grid each) start a patrol, post their day (a position every 10–30 s, now and then a
silence of 6–20 minutes or a jump of 2–5 km) in batches of ``--batch`` to gunicorn
(``--gunicorn-workers`` × 4 threads, on ``--port``) from ``--clients`` threads, every 20th
batch twice, and stop; checked: every position stored exactly once, every jump dropped with its
reason, tracks broken at the silences and jumps. Then the same batches as plain multi-row
INSERTs (the baseline, once, after the project), the weekly coverage and a retention run.

Targets: at least 2,000 positions/s; the weekly coverage of 1,000 micro-grids under 10 s.

    python bench/bench_patrols.py [--grids 1000] [--hours 8] [--rounds 3] [--threads 4]
                                  [--visits 20000]
    python bench/bench_patrols.py --full [--workers 1000] [--hours 8] [--clients 8] [--port N]
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import random
import signal
import statistics
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import psycopg  # noqa: E402
import shapely  # noqa: E402
from pyproj import Transformer  # noqa: E402
from shapely import wkb  # noqa: E402
from shapely.ops import unary_union  # noqa: E402
from sqlalchemy import select, text  # noqa: E402

from app import create_app  # noqa: E402
from app import migrate as mig  # noqa: E402
from app.db import get_db, transaction  # noqa: E402
from app.embedded_pg import default_cluster  # noqa: E402
from app.models.auth import AppUser  # noqa: E402
from app.services import patrols, retention, users, visits  # noqa: E402
from bench import report  # noqa: E402
from bench.serving import free_port, start_gunicorn  # noqa: E402
from gis.crs import gk_zone_epsg  # noqa: E402

LON0, LAT0 = 117.30, 31.90  # the district's south-west corner
SIDE = 300.0  # metres per micro-grid
STEP_S = 10
BATCH = 60
M_PER_DEG_LAT = 111_320.0
M_PER_DEG_LON = 111_320.0 * math.cos(math.radians(LAT0))


def in_threads(work: Callable[[], None], n: int) -> float:
    """Run ``work`` in ``n`` threads at once; return the wall time until all have ended."""
    t0 = time.perf_counter()
    threads = [threading.Thread(target=work) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - t0


def lonlat(x: float, y: float) -> tuple[float, float]:
    return LON0 + x / M_PER_DEG_LON, LAT0 + y / M_PER_DEG_LAT


def prepare(grids: int) -> tuple[str, str]:
    url = os.environ.get("GRIDGOV_BENCH_DATABASE_URL")
    owner = os.environ.get("GRIDGOV_BENCH_OWNER_DATABASE_URL", url or "")
    if not url:
        cluster = default_cluster()
        cluster.start()
        url = cluster.recreate_database("gridgov_bench_patrols")
        owner = cluster.owner_url("gridgov_bench_patrols")
    mig.upgrade(owner, app_url=url)
    cols = math.ceil(math.sqrt(grids))
    rows = math.ceil(grids / cols)
    with psycopg.connect(owner.replace("postgresql+psycopg://", "postgresql://")) as conn:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS bench_point (patrol_id int, t timestamptz,"
            " geom geometry(Point, 4326), accuracy_m float8, PRIMARY KEY (patrol_id, t))"
        )
        conn.execute("GRANT SELECT, INSERT, DELETE ON bench_point TO gridgov_app")
        x1, y1 = lonlat(cols * SIDE, rows * SIDE)
        street = conn.execute(
            """INSERT INTO grid (code, name, level, geom, area_m2)
               VALUES ('BP', '巡查测试街道', 1, ST_Multi(ST_MakeEnvelope(%s, %s, %s, %s, 4326)), 1)
               RETURNING id""",
            (LON0, LAT0, x1, y1),
        ).fetchone()[0]
        conn.execute(
            """INSERT INTO grid (code, name, level, parent_id, geom, area_m2)
               SELECT 'BP-' || lpad(i::text, 4, '0'), '微网格' || i, 4, %s,
                      ST_Multi(ST_MakeEnvelope(%s + (i %% %s) * %s, %s + (i / %s) * %s,
                                               %s + (i %% %s + 1) * %s, %s + (i / %s + 1) * %s, 4326)),
                      %s
               FROM generate_series(0, %s - 1) i""",
            (
                street,
                LON0, cols, SIDE / M_PER_DEG_LON, LAT0, cols, SIDE / M_PER_DEG_LAT,
                LON0, cols, SIDE / M_PER_DEG_LON, LAT0, cols, SIDE / M_PER_DEG_LAT,
                SIDE * SIDE, grids,
            ),
        )  # fmt: skip
        # Roads every 100 m each way over the district (50 m inside each square's edge).
        lines = []
        for k in range(int(cols * SIDE / 100)):
            a, b = lonlat(50 + 100 * k, 0), lonlat(50 + 100 * k, rows * SIDE)
            lines.append(f"LINESTRING({a[0]} {a[1]}, {b[0]} {b[1]})")
        for k in range(int(rows * SIDE / 100)):
            a, b = lonlat(0, 50 + 100 * k), lonlat(cols * SIDE, 50 + 100 * k)
            lines.append(f"LINESTRING({a[0]} {a[1]}, {b[0]} {b[1]})")
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO basemap_feature (kind, class, geom) VALUES ('road', 'residential', ST_GeomFromText(%s, 4326))",
                [(w,) for w in lines],
            )
        conn.execute(
            """INSERT INTO worker (code, name) SELECT 'BPW-' || lpad(i::text, 4, '0'), '巡查员' || i
               FROM generate_series(0, %s - 1) i""",
            (grids,),
        )
        conn.execute(
            """INSERT INTO grid_assignment (worker_id, grid_id, role)
               SELECT w.id, g.id, 'worker_full' FROM worker w JOIN grid g
                 ON substr(g.code, 4) = substr(w.code, 5) AND g.code LIKE 'BP-%'
               WHERE w.code LIKE 'BPW-%'"""
        )
        conn.execute(
            """INSERT INTO household (geom, grid_id, address)
               SELECT ST_PointOnSurface(ST_Translate(g.geom, (j % 5) * 0.0003 - 0.0006,
                                                    (j / 5) * 0.0003 - 0.0006)), g.id, g.code || '-' || j
               FROM grid g, generate_series(0, 19) j WHERE g.code LIKE 'BP-%'"""
        )
        conn.commit()
    return url, owner


def serpentine(i: int, cols: int) -> list[tuple[float, float]]:
    """The walk of micro-grid ``i``: its three east-west streets and the two north-south ones."""
    x0, y0 = (i % cols) * SIDE, (i // cols) * SIDE
    return [
        (x0 + 50, y0 + 50), (x0 + 250, y0 + 50), (x0 + 250, y0 + 150), (x0 + 50, y0 + 150),
        (x0 + 50, y0 + 250), (x0 + 250, y0 + 250),
    ]  # fmt: skip


def walker(i: int, cols: int) -> Callable[[float], tuple[float, float]]:
    """Where worker ``i`` is (metres) after so many seconds of walking their streets at 1.2 m/s,
    back and forth."""
    path = serpentine(i, cols)
    legs = [math.dist(a, b) for a, b in zip(path, path[1:], strict=False)]
    total = sum(legs)

    def at(seconds: float) -> tuple[float, float]:
        s = (seconds * 1.2) % (2 * total)
        s = s if s <= total else 2 * total - s
        for (a, b), leg in zip(zip(path, path[1:], strict=False), legs, strict=False):
            if s <= leg:
                return a[0] + (b[0] - a[0]) * s / leg, a[1] + (b[1] - a[1]) * s / leg
            s -= leg
        return path[-1]

    return at


def positions(i: int, cols: int, start: datetime, hours: float) -> list[dict]:
    """One position every 10 s at 1.2 m/s along the walk, back and forth."""
    at = walker(i, cols)
    out = []
    for k in range(int(hours * 3600 / STEP_S)):
        x, y = at(k * STEP_S)
        lon, lat = lonlat(x, y)
        out.append(
            {
                "lon": lon,
                "lat": lat,
                "t": (start + timedelta(seconds=k * STEP_S)).isoformat(),
                "accuracy": 6,
            }
        )
    return out


def run_project(app, work: list[tuple[int, int, list[dict]]], threads: int, now: datetime) -> float:
    """Post every worker's day in batches from ``threads`` threads; return the seconds taken."""
    lock = threading.Lock()
    queue = list(work)

    def loop() -> None:
        with app.app_context():
            session = get_db().session()
            while True:
                with lock:
                    if not queue:
                        break
                    pid, _wid, pts = queue.pop()
                for b, k in enumerate(range(0, len(pts), BATCH)):
                    body = {"batch_key": f"{pid}-{b}", "points": pts[k : k + BATCH]}
                    sends = [body] + ([body] if b % 20 == 0 else [])
                    sends += [{"points": body["points"]}] if b % 25 == 0 else []
                    for s in sends:
                        with transaction(session):
                            patrols.post_positions(session, pid, s, worker_id=None, now=now)
            session.close()

    return in_threads(loop, threads)


def insert_plain(cur, pid: int, pts: list[dict]) -> None:  # type: ignore[no-untyped-def]
    """The baseline's batch: one plain multi-row INSERT of the same rows (no checks)."""
    cur.execute(
        "INSERT INTO bench_point (patrol_id, t, geom, accuracy_m) VALUES "
        + ", ".join(["(%s, %s, ST_SetSRID(ST_MakePoint(%s, %s), 4326), %s)"] * len(pts)),
        [v for p in pts for v in (pid, p["t"], p["lon"], p["lat"], p.get("accuracy"))],
    )


def run_baseline(url: str, work: list[tuple[int, int, list[dict]]], threads: int) -> float:
    lock = threading.Lock()
    queue = list(work)
    dsn = url.replace("postgresql+psycopg://", "postgresql://")

    def loop() -> None:
        with psycopg.connect(dsn) as conn:
            while True:
                with lock:
                    if not queue:
                        break
                    pid, _wid, pts = queue.pop()
                for k in range(0, len(pts), BATCH):
                    with conn.cursor() as cur:
                        insert_plain(cur, pid, pts[k : k + BATCH])
                    conn.commit()

    return in_threads(loop, threads)


def coverage_baseline(session, buf: float, sample: int) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """Road shares of the first ``sample`` micro-grids in shapely, in the same Gauss-Krüger zone:
    each track simplified by 2 m and buffered."""
    tr = Transformer.from_crs(4326, gk_zone_epsg(LON0), always_xy=True)

    def transform(_fn, g):  # type: ignore[no-untyped-def]
        return shapely.transform(g, lambda c: np.column_stack(tr.transform(c[:, 0], c[:, 1])))

    to_m = None

    grids = {
        r.code: transform(to_m, wkb.loads(bytes(r.g)))
        for r in session.execute(
            text("SELECT code, ST_AsBinary(geom) AS g FROM grid WHERE code LIKE 'BP-%'")
        )
    }
    roads = [
        transform(to_m, wkb.loads(bytes(r.g)))
        for r in session.execute(
            text("SELECT ST_AsBinary(geom) AS g FROM basemap_feature WHERE kind = 'road'")
        )
    ]
    tracks: dict[str, list] = {}
    for r in session.execute(
        text(
            """SELECT g.code, ST_AsBinary(ST_Force2D(p.track)) AS line FROM patrol p
               JOIN grid_assignment a ON a.worker_id = p.worker_id JOIN grid g ON g.id = a.grid_id
               WHERE p.track IS NOT NULL AND g.code LIKE 'BP-%'"""
        )
    ):
        tracks.setdefault(r.code, []).append(transform(to_m, wkb.loads(bytes(r.line))))
    out = {}
    for code, g in list(grids.items())[:sample]:
        inside = [x.intersection(g) for x in roads if x.intersects(g)]
        total = sum(x.length for x in inside)
        if code in tracks and total:
            b = unary_union([t.simplify(2).buffer(buf, 4) for t in tracks[code]])
            out[code] = sum(x.intersection(b).length for x in inside) / total
        else:
            out[code] = 0.0
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--grids", type=int, default=1000)
    ap.add_argument("--hours", type=float, default=8.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--visits", type=int, default=20000)
    ap.add_argument("--full", action="store_true", help="the whole day through HTTP (gunicorn)")
    ap.add_argument(
        "--workers", type=int, default=1000, help="--full: workers (one micro-grid each)"
    )
    ap.add_argument("--clients", type=int, default=8, help="--full: client threads")
    ap.add_argument("--batch", type=int, default=60, help="--full: positions per batch")
    ap.add_argument("--gunicorn-workers", type=int, default=2)
    ap.add_argument("--port", type=int, default=0, help="--full: gunicorn's port (0: a free one)")
    args = ap.parse_args()
    if args.full:
        full_day(args)
        return
    print(f"load before: {report.load_text()}")
    url, _owner = prepare(args.grids)
    app = create_app({"DATABASE_URL": url})
    cols = math.ceil(math.sqrt(args.grids))
    now = datetime.now(UTC).replace(microsecond=0)
    start = now - timedelta(hours=args.hours, minutes=5)
    with app.app_context():
        session = get_db().session()
        workers = session.execute(
            text(
                """SELECT w.id, (substr(w.code, 5))::int AS i FROM worker w
                   WHERE w.code LIKE 'BPW-%' ORDER BY w.code"""
            )
        ).all()
        with transaction(session):
            pids = {
                w.id: session.scalar(
                    text("INSERT INTO patrol (worker_id, started_at) VALUES (:w, :s) RETURNING id"),
                    {"w": w.id, "s": start},
                )
                for w in workers
            }
        session.close()

    work = [
        (pids[w.id], w.id, positions(w.i, cols, start + timedelta(seconds=1), args.hours))
        for w in workers
    ]
    sent = sum(len(p) for _, _, p in work)
    print(f"{len(work)} workers, {sent:,} positions ({args.hours} h, one every {STEP_S} s)")
    per_round = math.ceil(len(work) / args.rounds)
    rates_p, rates_b = [], []
    for r in range(args.rounds):
        part = work[r * per_round : (r + 1) * per_round]
        n = sum(len(p) for _, _, p in part)
        order = ("project", "baseline") if r % 2 == 0 else ("baseline", "project")
        for which in order:
            if which == "project":
                s = run_project(app, part, args.threads, now)
                rates_p.append(n / s)
            else:
                s = run_baseline(url, part, args.threads)
                rates_b.append(n / s)
            print(
                f"round {r + 1} {which}: {n:,} positions in {s:.1f} s = {n / s:,.0f}/s  (load {report.load_text()})"
            )

    with app.app_context():
        session = get_db().session()
        stored, distinct = session.execute(
            text("SELECT count(*), count(DISTINCT (patrol_id, t)) FROM patrol_point")
        ).one()
        base = session.scalar(text("SELECT count(*) FROM bench_point"))
        assert stored == distinct == sent, (stored, distinct, sent)
        assert base == sent, (base, sent)
        print(f"positions stored exactly once: {stored:,} (baseline {base:,})")
        with transaction(session):
            for pid in pids.values():
                session.execute(
                    text("UPDATE patrol SET ended_at = :e WHERE id = :p"), {"e": now, "p": pid}
                )
                patrols.build_track(session, pid)

        # Visits in bursts, a tenth of each burst sent again.
        homes = session.execute(
            text(
                """SELECT h.id, ST_X(h.geom) AS x, ST_Y(h.geom) AS y, a.worker_id FROM household h
                   JOIN grid_assignment a ON a.grid_id = h.grid_id ORDER BY h.id"""
            )
        ).all()
        t0 = time.perf_counter()
        done = 0
        while done < args.visits:
            burst = range(done, min(done + 500, args.visits))
            with transaction(session):
                for k in list(burst) + list(burst)[::10]:
                    h = homes[k % len(homes)]
                    visits.record_visit(
                        session,
                        {"household_id": h.id, "lon": h.x, "lat": h.y, "accuracy": 10,
                         "visited_at": (now - timedelta(minutes=k % 600)).isoformat(),
                         "idempotency_key": f"bench-visit-{k}"},
                        worker_id=h.worker_id, user_id=None, now=now,
                    )  # fmt: skip
            done = burst.stop
        visit_s = time.perf_counter() - t0
        n_visits = session.scalar(
            text("SELECT count(*) FROM visit WHERE idempotency_key LIKE 'bench-visit-%'")
        )
        assert n_visits == args.visits, (n_visits, args.visits)
        print(
            f"visits stored exactly once: {n_visits:,} in {visit_s:.1f} s = {n_visits / visit_s:,.0f}/s"
        )

        # Weekly coverage of every micro-grid, against shapely.
        grid_ids = frozenset(session.scalars(text("SELECT id FROM grid WHERE code LIKE 'BP-%'")))
        times, result = [], None
        for _ in range(args.rounds):
            t0 = time.perf_counter()
            result = patrols.coverage(
                session, group="grid", level=4, grid_ids=grid_ids, worker_ids=None, at=now
            )
            times.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        sample = min(args.grids, 40)
        expected = coverage_baseline(
            session, float(visits.get_settings(session)["patrol_buffer_m"]), sample
        )
        base_s = (time.perf_counter() - t0) * args.grids / sample  # scaled to every micro-grid
        got = {r["grid"]["code"]: r["road_share"] or 0.0 for r in result["rows"]}
        worst = max(abs(got[c] - expected[c]) for c in expected)
        assert len(got) == args.grids and worst < 0.01, worst
        print(
            f"weekly coverage of {len(got)} micro-grids: {report.summary(times)} s; shapely"
            f" {base_s:.1f} s (timed on {sample}, scaled); largest difference on those"
            f" {worst:.4f}; median road share {statistics.median(got.values()):.3f}"
        )
        session.close()
    app.extensions["gridgov_db"].dispose()

    load = report.load_text()
    print(f"load after: {load}")
    rate = statistics.median(rates_p)
    report.row(
        "patrol positions stored once (batches of 60)",
        project=rate,
        baseline=statistics.median(rates_b),
        unit="positions/s",
        higher_is_better=True,
        target=">= 2000/s",
        holds=rate >= 2000,
        baseline_name="multi-row INSERT through psycopg",
        note=f"{len(work)} workers x {args.hours} h, {args.threads} threads",
    )
    cov = statistics.median(times)
    report.row(
        f"weekly patrol coverage of {args.grids} micro-grids",
        project=cov,
        baseline=base_s,
        unit="s",
        target="< 10 s for 1000",
        holds=cov < 10 if args.grids >= 1000 else None,
        baseline_name="shapely in Python (scaled from 40 grids)",
    )


# ---------------------------------------------------------------- the full day through HTTP


def day_of(
    i: int, cols: int, start: datetime, hours: float, rng: random.Random
) -> tuple[list[dict], int, int]:
    """Worker ``i``'s day: a position every 10–30 s walking their streets at 1.2 m/s, with the
    phone now and then silent for 6–20 minutes (the worker walks on, unseen) and now and then a
    position 2–5 km off (a jump). Returns (positions, jumps, silences)."""
    at = walker(i, cols)
    out: list[dict] = []
    jumps = silences = 0
    clock = rng.uniform(0, 30)
    silent = False
    while clock < hours * 3600:
        x, y = at(clock)
        # A jump right after a silence would be a plausible speed: none there.
        if out and not silent and rng.random() < 1 / 300:
            x, y, jumps = x + rng.uniform(2000, 5000), y + rng.uniform(-500, 500), jumps + 1
        lon, lat = lonlat(x, y)
        t = start + timedelta(seconds=round(clock, 1))
        out.append(
            {"lon": lon, "lat": lat, "t": t.isoformat(), "accuracy": rng.choice((5, 8, 12, 20))}
        )
        silent = rng.random() < 1 / 500
        clock += rng.uniform(360, 1200) if silent else rng.uniform(10, 30)
        silences += silent
    return out, jumps, silences


def accounts(url: str, worker_ids: list[int]) -> dict[int, str]:
    """A worker account per worker with an API token (no password: tokens only)."""
    app = create_app({"DATABASE_URL": url})
    with app.app_context():
        session = get_db().session()
        with transaction(session):
            session.execute(
                text(
                    """INSERT INTO app_user (username, role, worker_id)
                       SELECT 'bench-w' || w, 'worker', w FROM unnest(CAST(:ws AS int[])) w"""
                ),
                {"ws": worker_ids},
            )
            tokens = {}
            for user in session.scalars(select(AppUser).where(AppUser.username.like("bench-w%"))):
                tokens[user.worker_id] = users.start_session(
                    session, user, None, users.DEFAULT_LIMITS, kind="token"
                ).token
        session.close()
    app.extensions["gridgov_db"].dispose()
    return tokens


def http_post(
    conn: http.client.HTTPConnection, path: str, body: dict, token: str
) -> tuple[int, dict]:
    """POST JSON on a kept-alive connection; one that the server closed meanwhile is opened
    again and the request sent once more (every request here is idempotent)."""
    data = json.dumps(body)
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
    for attempt in (1, 2):
        try:
            conn.request("POST", path, body=data, headers=headers)
            res = conn.getresponse()
            return res.status, json.loads(res.read() or b"{}")
        except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
            conn.close()
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def full_day(args: argparse.Namespace) -> None:
    """``--full``: every worker's day posted through the HTTP API to gunicorn by client threads."""
    print(f"load before: {report.load_text()}", flush=True)
    url, owner = prepare(args.workers)
    cols = math.ceil(math.sqrt(args.workers))
    rng = random.Random(20261205)
    now = datetime.now(UTC).replace(microsecond=0)
    start = now - timedelta(hours=args.hours, minutes=5)
    dsn = owner.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn) as conn:
        workers = conn.execute(
            "SELECT id, substr(code, 5)::int FROM worker WHERE code LIKE 'BPW-%' ORDER BY code"
        ).fetchall()
    tokens = accounts(url, [w for w, _ in workers])
    days = {w: day_of(i, cols, start + timedelta(seconds=1), args.hours, rng) for w, i in workers}
    sent = sum(len(d[0]) for d in days.values())
    jumps = sum(d[1] for d in days.values())
    silences = sum(d[2] for d in days.values())
    print(
        f"{len(workers)} workers x {args.hours} h: {sent:,} positions (one every 10-30 s),"
        f" {jumps} jumps, {silences} silences of 6-20 min; batches of {args.batch}",
        flush=True,
    )
    port = args.port or free_port()
    server = start_gunicorn(
        {"GRIDGOV_DATABASE_URL": url}, port, workers=args.gunicorn_workers, threads=4
    )
    try:
        # Every worker starts a patrol (through the API, like the phone).
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        pids = {}
        for w, _ in workers:
            status, body = http_post(
                conn, "/api/patrols", {"started_at": start.isoformat()}, tokens[w]
            )
            assert status in (200, 201), (status, body)
            pids[w] = body["patrol"]["id"]
        # The day's batches in time order across workers; every 20th sent twice (a lost answer).
        queue: list[tuple[int, int, list[dict]]] = []
        per = {
            w: [d[0][k : k + args.batch] for k in range(0, len(d[0]), args.batch)]
            for w, d in days.items()
        }
        for b in range(max(len(v) for v in per.values())):
            queue += [(w, b, v[b]) for w, v in per.items() if b < len(v)]
        queue.reverse()
        lock = threading.Lock()
        latencies: list[float] = []
        failures: list[tuple[int, dict]] = []

        def client() -> None:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            while True:
                with lock:
                    if not queue:
                        break
                    w, b, pts = queue.pop()
                body = {"batch_key": f"{pids[w]}-{b}", "points": pts}
                for _ in range(2 if b % 20 == 0 else 1):
                    t0 = time.perf_counter()
                    status, answer = http_post(
                        c, f"/api/patrols/{pids[w]}/positions", body, tokens[w]
                    )
                    took = time.perf_counter() - t0
                    with lock:
                        latencies.append(took)
                        if status not in (200, 201):
                            failures.append((status, answer))
            c.close()

        wall = in_threads(client, args.clients)
        assert not failures, failures[:3]
        rate = sent / wall
        p95 = statistics.quantiles(latencies, n=20)[-1] * 1000
        print(
            f"posted {sent:,} positions in {len(latencies):,} requests in {wall:.0f} s ="
            f" {rate:,.0f} positions/s; per batch median {statistics.median(latencies) * 1000:.0f} ms,"
            f" p95 {p95:.0f} ms ({args.clients} client threads, gunicorn {args.gunicorn_workers}x4);"
            f" load {report.load_text()}",
            flush=True,
        )
        t0 = time.perf_counter()
        for w, _ in workers:
            status, body = http_post(conn, f"/api/patrols/{pids[w]}/stop", {}, tokens[w])
            assert status == 200, (status, body)
        stop_s = time.perf_counter() - t0
        conn.close()
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)

    with psycopg.connect(dsn) as conn:
        stored, distinct, dropped, counted, parts, broken = conn.execute(
            """SELECT (SELECT count(*) FROM patrol_point), (SELECT count(DISTINCT (patrol_id, t)) FROM patrol_point),
                      (SELECT count(*) FROM patrol_drop WHERE reason = 'speed'),
                      (SELECT sum(point_count) FROM patrol),
                      (SELECT sum(ST_NumGeometries(track)) FROM patrol),
                      (SELECT count(*) FROM patrol WHERE ST_NumGeometries(track) > 1)"""
        ).fetchone()
        sizes = conn.execute(
            """SELECT relname, pg_total_relation_size(oid) FROM pg_class
               WHERE relname IN ('patrol_point', 'patrol_drop', 'patrol', 'patrol_batch') ORDER BY relname"""
        ).fetchall()
    assert stored == distinct == counted == sent - jumps, (stored, distinct, counted, sent, jumps)
    assert dropped == jumps, (dropped, jumps)
    print(
        f"stored exactly once: {stored:,} positions (+ {dropped} jumps dropped with their reason);"
        f" stops with tracks built in {stop_s:.1f} s; {parts:,} track parts, {broken} tracks broken"
        f" at silences or jumps",
        flush=True,
    )
    print("table sizes: " + ", ".join(f"{n} {s / 2**20:,.1f} MiB" for n, s in sizes))

    # The baseline: the same batches as one plain multi-row INSERT each, same client threads.
    base_queue = [(pids[w], pts) for w, v in per.items() for pts in v]
    lock = threading.Lock()

    def base_client() -> None:
        with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as c:
            while True:
                with lock:
                    if not base_queue:
                        break
                    pid, pts = base_queue.pop()
                with c.cursor() as cur:
                    insert_plain(cur, pid, pts)
                c.commit()

    base_rate = sent / in_threads(base_client, args.clients)
    print(
        f"baseline (multi-row INSERT through psycopg, no HTTP): {base_rate:,.0f} positions/s; load {report.load_text()}"
    )

    app = create_app({"DATABASE_URL": url})
    with app.app_context():
        session = get_db().session()
        grid_ids = frozenset(session.scalars(text("SELECT id FROM grid WHERE code LIKE 'BP-%'")))
        t0 = time.perf_counter()
        cov = patrols.coverage(
            session, group="grid", level=4, grid_ids=grid_ids, worker_ids=None, at=now
        )
        cov_s = time.perf_counter() - t0
        shares = [r["road_share"] or 0.0 for r in cov["rows"]]
        print(
            f"weekly coverage of {len(shares)} micro-grids: {cov_s:.1f} s, median road share"
            f" {statistics.median(shares):.3f}; load {report.load_text()}",
            flush=True,
        )
        session.rollback()
        # Retention on the new storage: half a year on, every point goes and the tracks with it.
        later = now + timedelta(days=int(visits.get_settings(session)["track_days"]) + 1)
        t0 = time.perf_counter()
        with transaction(session):
            done = retention.retention_run(session, now=later)
        ret_s = time.perf_counter() - t0
        left = session.execute(
            text(
                "SELECT (SELECT count(*) FROM patrol_point), (SELECT count(*) FROM patrol WHERE track IS NOT NULL)"
            )
        ).one()
        assert done["points"] == stored and tuple(left) == (0, 0), (done, tuple(left))
        print(
            f"retention run: {done['points']:,} points and {done['patrols']} tracks purged in {ret_s:.1f} s"
        )
        session.close()
    app.extensions["gridgov_db"].dispose()
    report.row(
        f"patrol day through HTTP ({len(workers)} workers x {args.hours} h, batches of {args.batch})",
        project=rate,
        baseline=base_rate,
        unit="positions/s",
        higher_is_better=True,
        target=">= 2000/s",
        holds=rate >= 2000,
        baseline_name="multi-row INSERT through psycopg (no HTTP)",
        note=f"p95 per batch {p95:.0f} ms; coverage {cov_s:.1f} s",
    )


if __name__ == "__main__":
    main()
