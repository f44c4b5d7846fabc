"""Benchmark: 200 concurrent case reports against gunicorn, each stored exactly once and routed.

The baseline is ``bench/minimal_report_app.py`` (Flask, psycopg, one SQL statement that locates,
picks the assignee, stores the case and its dispatch event once per key) under the same
gunicorn settings; bursts alternate between the two for ``--rounds`` rounds, and every
baseline case must land in the same micro-grid as the project's case for the same point.

Run from the repository root: ``python bench/bench_cases.py [--reports 200] [--workers 2]``.
It makes a throwaway database on the private cluster (``gridgov_bench``), migrates it, loads
the sample street, starts gunicorn on a free loopback port against this checkout's app, fires
the reports all at once, then fires every report again with the same idempotency key (a client
retrying after a timeout), and checks in the database that each report was stored once, routed
to a grid and dispatched. Prints the throughput and the latency percentiles.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, text  # noqa: E402

from app import create_app  # noqa: E402
from app import migrate as mig  # noqa: E402
from app.db import get_db, transaction  # noqa: E402
from app.embedded_pg import default_cluster  # noqa: E402
from app.services import importer  # noqa: E402
from bench import report  # noqa: E402
from bench.serving import free_port, start_gunicorn  # noqa: E402

CATEGORIES = ["streetlight", "garbage", "road_occupation", "noise", "facility", "dispute"]


def prepare(cluster) -> str:  # type: ignore[no-untyped-def]
    url = cluster.recreate_database("gridgov_bench")
    mig.upgrade(cluster.owner_url("gridgov_bench"), app_url=url)
    app = create_app({"DATABASE_URL": url})
    with app.app_context():
        session = get_db().session()
        with transaction(session):
            importer.load_directory(session)
        session.close()
    app.extensions["gridgov_db"].engine.dispose()
    return url


def post(port: int, body: dict) -> tuple[int, float, dict]:
    started = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request("POST", "/api/cases", json.dumps(body), {"Content-Type": "application/json"})
    res = conn.getresponse()
    data = json.loads(res.read() or b"{}")
    conn.close()
    return res.status, time.perf_counter() - started, data


def fire(port: int, bodies: list[dict]) -> tuple[list[tuple[int, float, dict]], float]:
    """Send every body at once (one thread each, released together); return results and wall time."""
    gate = threading.Barrier(len(bodies) + 1)

    def one(body: dict) -> tuple[int, float, dict]:
        gate.wait()
        return post(port, body)

    with ThreadPoolExecutor(max_workers=len(bodies)) as pool:
        futures = [pool.submit(one, b) for b in bodies]
        gate.wait()
        started = time.perf_counter()
        results = [f.result() for f in futures]
        wall = time.perf_counter() - started
    return results, wall


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reports", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=8, help="threads per worker")
    parser.add_argument("--rounds", type=int, default=3, help="alternating bursts of each")
    args = parser.parse_args()

    cluster = default_cluster()
    cluster.start()
    print("preparing the bench database (migrate, load the sample) …", flush=True)
    url = prepare(cluster)
    engine = create_engine(url)
    with engine.connect() as conn:
        points = conn.execute(
            text("SELECT ST_X(geom), ST_Y(geom) FROM household ORDER BY id")
        ).all()
    rng = random.Random(20261122)
    bodies = []
    for i in range(args.reports):
        lon, lat = rng.choice(points)
        bodies.append(
            {
                # Up to ~20 m away from a building, in any direction.
                "x": lon + rng.uniform(-0.0002, 0.0002),
                "y": lat + rng.uniform(-0.00015, 0.00015),
                "crs": "wgs84",
                "category": CATEGORIES[i % len(CATEGORIES)],
                "description": f"压测上报 {i}",
                "source": "resident",
                "reporter_contact": f"139{i:08d}",
                "idempotency_key": f"bench-{i:05d}",
            }
        )
    port = free_port()
    server = start_gunicorn(
        {"GRIDGOV_DATABASE_URL": url},
        port,
        workers=args.workers,
        threads=args.threads,
        backlog=512,
        ready_path="/api/case-categories",
    )
    base_port = free_port()
    baseline = start_minimal(url, base_port, args.workers, args.threads)
    load_before = os.getloadavg()
    rates: dict[str, list[float]] = {"project": [], "baseline": []}
    p95s: dict[str, list[float]] = {"project": [], "baseline": []}
    base_ok = True
    try:
        post(port, {**bodies[0], "idempotency_key": "bench-warmup"})  # first connections, imports
        post(base_port, {**bodies[0], "idempotency_key": "base-warmup"})
        for rnd in range(args.rounds):
            for who, p, prefix in (("project", port, "bench"), ("baseline", base_port, "base")):
                burst = [
                    {**b, "idempotency_key": f"{prefix}-{rnd}{i:05d}"} for i, b in enumerate(bodies)
                ]
                got, took = fire(p, burst)
                if who == "project" and rnd == 0:
                    results, wall = got, took
                    retry_results, retry_wall = fire(port, burst)
                if who == "baseline":
                    base_ok = base_ok and [s for s, _, _ in got].count(201) == len(burst)
                rates[who].append(len(burst) / took)
                p95s[who].append(pct([t for _, t, _ in got], 95))
                print(
                    f"round {rnd + 1} {who:8s}: {len(burst) / took:6.1f} reports/s, "
                    f"p95 {p95s[who][-1] * 1000:.0f} ms; load {report.load_text()}",
                    flush=True,
                )
        load_after = os.getloadavg()
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
        os.killpg(baseline.pid, signal.SIGTERM)
        baseline.wait(timeout=30)
    with engine.connect() as conn:
        # The same point, the same micro-grid: the baseline's answers against the project's.
        differ = conn.execute(
            text(
                """SELECT count(*) FROM "case" b JOIN "case" p
                     ON p.idempotency_key = 'bench-' || substr(b.idempotency_key, 6)
                   WHERE b.idempotency_key LIKE 'base-%' AND b.idempotency_key <> 'base-warmup'
                     AND (p.grid_id IS DISTINCT FROM b.grid_id OR b.assignee_id IS NULL)"""
            )
        ).scalar()
    base_ok = base_ok and differ == 0

    statuses = [s for s, _, _ in results]
    latencies = [t for _, t, _ in results]
    retry_statuses = [s for s, _, _ in retry_results]
    with engine.connect() as conn:
        stored = conn.execute(
            text(
                """SELECT count(*) AS n, count(DISTINCT idempotency_key) AS keys,
                          count(*) FILTER (WHERE grid_id IS NOT NULL) AS routed,
                          count(*) FILTER (WHERE status = 'dispatched'
                                           AND (assignee_id IS NOT NULL OR department_id IS NOT NULL))
                              AS dispatched,
                          count(*) FILTER (WHERE deadline IS NOT NULL) AS with_deadline
                   FROM "case" WHERE idempotency_key LIKE 'bench-0%'"""
            )
        ).one()
        events = conn.execute(
            text(
                """SELECT count(*) FROM case_event e JOIN "case" c ON c.id = e.case_id
                   WHERE c.idempotency_key LIKE 'bench-0%' AND e.action = 'dispatch'"""
            )
        ).scalar()
    engine.dispose()
    cluster.psql("postgres", 'DROP DATABASE IF EXISTS "gridgov_bench" WITH (FORCE)')

    n = args.reports
    ok = (
        statuses.count(201) == n
        and retry_statuses.count(200) == n
        and stored.n == n
        and stored.keys == n
        and stored.routed == n
        and stored.dispatched == n
        and stored.with_deadline == n
        and events == n
        # A retry answers with the case the first report stored (a resident's answer: the
        # public code, the responsible grid and person).
        and all(
            r[2]["code"] == s[2]["code"] and not r[2]["created"] and s[2]["created"]
            for r, s in zip(retry_results, results, strict=True)
        )
        # Every answer names who is responsible: the micro-grid and its owner.
        and all(s[2]["responsible"]["grid"] and s[2]["responsible"]["name"] for s in results)
    )
    print(
        f"gunicorn: {args.workers} workers × {args.threads} threads on 127.0.0.1, {os.cpu_count()} cores"
    )
    print(
        "load average (1, 5, 15 min) before {:.2f} {:.2f} {:.2f}, after {:.2f} {:.2f} {:.2f}"
        " (the machine is shared: other work in it slows the figures)".format(
            *load_before, *load_after
        )
    )
    print(f"{n} concurrent reports: {wall:.2f} s wall, {n / wall:.1f} reports/s")
    print(
        f"latency: p50 {pct(latencies, 50) * 1000:.0f} ms, p95 {pct(latencies, 95) * 1000:.0f} ms, max {max(latencies) * 1000:.0f} ms, mean {statistics.mean(latencies) * 1000:.0f} ms"
    )
    retry_lat = [t for _, t, _ in retry_results]
    print(
        f"{n} concurrent retries (same keys): {retry_wall:.2f} s, p95 {pct(retry_lat, 95) * 1000:.0f} ms, "
        f"answers {sorted(set(retry_statuses))} (200 = replayed, nothing new)"
    )
    print(
        f"stored: {stored.n} cases for {stored.keys} keys; routed {stored.routed}; "
        f"dispatched {stored.dispatched} ({events} dispatch events); with deadline {stored.with_deadline}"
    )
    print("check: every report stored exactly once and routed:", "OK" if ok else "FAILED")
    print(
        f"alternating bursts: project {report.summary(rates['project'])} reports/s, "
        f"p95 {report.summary([v * 1000 for v in p95s['project']])} ms; minimal app "
        f"{report.summary(rates['baseline'])} reports/s, p95 "
        f"{report.summary([v * 1000 for v in p95s['baseline']])} ms; baseline cases in the "
        f"project's micro-grids with an assignee: {'yes' if base_ok else f'NO ({differ} differ)'}"
    )
    report.row(
        f"case reports, {n} at once over HTTP",
        project=statistics.median(rates["project"]),
        baseline=statistics.median(rates["baseline"]),
        unit="reports/s",
        higher_is_better=True,
        target="every report stored once, routed and dispatched; retries replayed",
        holds=ok and base_ok,
        baseline_name="minimal Flask + psycopg app, one SQL statement",
        note=f"p95 {statistics.median(p95s['project']) * 1000:.0f} ms vs "
        f"{statistics.median(p95s['baseline']) * 1000:.0f} ms",
    )
    return 0 if ok else 1


def start_minimal(url: str, port: int, workers: int, threads: int) -> subprocess.Popen:
    """The minimal report app under the same gunicorn settings as the project."""
    cmd = [sys.executable, "-m", "gunicorn", "--chdir", str(ROOT), "--bind", f"127.0.0.1:{port}"]
    cmd += ["--workers", str(workers), "--threads", str(threads), "--worker-class", "gthread"]
    cmd += ["--backlog", "512", "--log-level", "warning", "bench.minimal_report_app:app"]
    proc = subprocess.Popen(
        cmd,
        cwd=ROOT,
        env=dict(os.environ, DATABASE_URL=url, PYTHONPATH=str(ROOT)),
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/api/case-categories")
            if conn.getresponse().status == 200:
                return proc
        except OSError:
            time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGTERM)
    raise SystemExit("the minimal report app did not answer within 60 s")


if __name__ == "__main__":
    sys.exit(main())
