"""Benchmark: reads on a streaming replica against the primary alone, read-your-writes, and the
replica's lag under a burst of case reports.

Run from the repository root: ``python bench/bench_replicas.py [--rounds 3] [--seconds 10]
[--tries 10000] [--burst 200]``. It starts the private cluster with one streaming replica
(``gridgov db start --replicas 1`` does the same), makes a throwaway database
(``gridgov_bench_replicas``) on the primary, migrates it and loads the sample street, and starts
two gunicorn servers on free loopback ports: one reading everything from the primary, one with
``DATABASE_READ_URL`` naming the replica. Then:

1. Throughput of locate and vector-tile reads, rounds alternating between the two servers (the
   load average printed with each); every answer is checked against the one the primary gave
   before the rounds, and the replica server's answers must say they came from the replica.
2. Read-your-writes: ``--tries`` times, a case is reported and at once looked up through the
   search (a replica-routed read) with the write position the report answered; a look-up that
   does not find the case is stale. Prints p50/p99 of the pair and the stale count.
3. ``--burst`` case reports fired at once at the replica server while the primary's
   ``pg_stat_replication`` is sampled every 20 ms: the largest lag in bytes and seconds.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import signal
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, text  # noqa: E402

from app import create_app  # noqa: E402
from app import embedded_replica as er  # noqa: E402
from app import migrate as mig  # noqa: E402
from app.db import get_db, transaction  # noqa: E402
from app.embedded_pg import default_cluster  # noqa: E402
from app.services import importer  # noqa: E402
from app.services import users as user_svc  # noqa: E402
from bench import report as table  # noqa: E402
from bench.bench_cases import CATEGORIES, pct  # noqa: E402
from bench.serving import free_port, start_gunicorn  # noqa: E402

DB = "gridgov_bench_replicas"


def prepare(cluster) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    url = cluster.recreate_database(DB)
    mig.upgrade(cluster.owner_url(DB), app_url=url)
    app = create_app({"DATABASE_URL": url})
    with app.app_context():
        session = get_db().session()
        with transaction(session):
            importer.load_directory(session)
            admin = user_svc.create_user(session, "bench-admin", "admin", "Bench-pass-2026")
            token = user_svc.start_session(
                session, admin, None, user_svc.DEFAULT_LIMITS, kind="token"
            ).token
        session.close()
    app.extensions["gridgov_db"].dispose()
    return url, token


def caught_up(primary, replica, timeout: float = 120.0) -> None:  # type: ignore[no-untyped-def]
    want = primary.psql("postgres", "SELECT pg_current_wal_lsn()")
    deadline = time.monotonic() + timeout
    while replica.psql("postgres", f"SELECT pg_last_wal_replay_lsn() >= '{want}'") != "t":
        if time.monotonic() > deadline:
            raise SystemExit("the replica did not catch up")
        time.sleep(0.05)


def tree_rss_mb(pid: int) -> float:
    """Resident memory of a process and its children (a gunicorn master and its workers), MB."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
            todo += [int(c) for c in Path(f"/proc/{p}/task/{p}/children").read_text().split()]
        except OSError:
            continue
    return total / 1024


def postmaster(cluster) -> int:  # type: ignore[no-untyped-def]
    return int((cluster.data_dir / "postmaster.pid").read_text().split()[0])


class Client:
    """One keep-alive connection."""

    def __init__(self, port: int, token: str) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.auth = {"Authorization": f"Bearer {token}"}

    def request(
        self, method: str, path: str, body: dict | None = None, headers: dict | None = None
    ):  # type: ignore[no-untyped-def]
        h = {**self.auth, **(headers or {})}
        data = None
        if body is not None:
            data = json.dumps(body)
            h["Content-Type"] = "application/json"
        self.conn.request(method, path, data, h)
        res = self.conn.getresponse()
        return res.status, res.getheader("X-Read-From"), res.getheader("X-After-LSN"), res.read()


def tile_of(lon: float, lat: float, z: int) -> tuple[int, int, int]:
    import math

    n = 1 << z
    return (
        z,
        int((lon + 180.0) / 360.0 * n),
        int((1.0 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2.0 * n),
    )


_CANON: dict[bytes, object] = {}


def canonical(url: str, body: bytes) -> object:
    """What an answer says, whatever the order the database wrote a tile's features in."""
    if not url.startswith("/tiles/"):
        return body
    if body not in _CANON:
        import gzip

        import mapbox_vector_tile

        raw = gzip.decompress(body) if body[:2] == b"\x1f\x8b" else body
        _CANON[body] = {
            name: sorted(
                json.dumps([f["properties"], f["geometry"]], sort_keys=True)
                for f in layer["features"]
            )
            for name, layer in mapbox_vector_tile.decode(raw).items()
        }
    return _CANON[body]


def throughput(
    port: int,
    token: str,
    urls: list[str],
    expected: dict[str, bytes],
    seconds: float,
    clients: int,
    want_from: str | None,
) -> tuple[float, int]:
    """Requests per second over ``seconds`` with ``clients`` keep-alive clients; wrong answers."""
    stop = time.monotonic() + seconds
    counts, wrong = [0] * clients, [0] * clients

    def run(i: int) -> None:
        c = Client(port, token)
        rng = random.Random(i)
        while time.monotonic() < stop:
            url = rng.choice(urls)
            status, where, _lsn, body = c.request("GET", url)
            counts[i] += 1
            if status != 200 or canonical(url, body) != expected[url] or where != want_from:
                wrong[i] += 1
                if wrong[i] <= 2:
                    print(f"   wrong: {url} {status} from {where}: {body[:120]!r}", flush=True)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(clients)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts) / (time.monotonic() - started), sum(wrong)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0, help="length of one round")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--tries", type=int, default=10000, help="report-then-read-back pairs")
    parser.add_argument("--burst", type=int, default=200, help="reports fired at once")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args()

    primary = default_cluster()
    primary.start()
    # A replica left running would take the reads of a later `gridgov serve` on this cluster:
    # the benchmark stops the one it started (not one that was running before it).
    was_running = er.replica(primary, 1).is_running()
    (replica,) = er.start_replicas(primary, 1)
    print("preparing the bench database (migrate, load the sample) …", flush=True)
    url, token = prepare(primary)
    caught_up(primary, replica)
    replica_url = replica.url(DB)
    engine = create_engine(url)
    with engine.connect() as conn:
        points = conn.execute(
            text("SELECT ST_X(geom), ST_Y(geom) FROM household ORDER BY id")
        ).all()
    rng = random.Random(20261205)
    sample = rng.sample(points, 200)
    urls = [f"/api/locate?lon={lon:.7f}&lat={lat:.7f}" for lon, lat in sample[:150]]
    urls += [
        "/tiles/grids/{}/{}/{}.mvt".format(*tile_of(lon, lat, rng.choice((14, 15, 16))))
        for lon, lat in sample[150:]
    ]

    ports = {"primary": free_port(), "replica": free_port()}
    servers = {
        "primary": start_gunicorn(
            {"GRIDGOV_DATABASE_URL": url},
            ports["primary"],
            workers=args.workers,
            threads=args.threads,
            ready_path="/api/case-categories",
        ),
        "replica": start_gunicorn(
            {"GRIDGOV_DATABASE_URL": url, "GRIDGOV_DATABASE_READ_URL": replica_url},
            ports["replica"],
            workers=args.workers,
            threads=args.threads,
            ready_path="/api/case-categories",
        ),
    }
    try:
        # The answers to hold every round to: the primary's, read one by one before the rounds.
        c = Client(ports["primary"], token)
        expected = {}
        for u in urls:
            status, _w, _l, body = c.request("GET", u)
            assert status == 200, (u, status, body[:200])
            expected[u] = canonical(u, body)
        print(
            f"\n1. locate + tile reads ({len(urls)} addresses, {args.clients} clients, "
            f"{args.workers}×{args.threads} gunicorn threads per server)"
        )
        rates: dict[str, list[float]] = {"primary": [], "replica": []}
        for rnd in range(1, args.rounds + 1):
            for mode in ("primary", "replica"):
                rate, wrong = throughput(
                    ports[mode],
                    token,
                    urls,
                    expected,
                    args.seconds,
                    args.clients,
                    "replica-1" if mode == "replica" else None,
                )
                rates[mode].append(rate)
                load = os.getloadavg()
                print(
                    f"   round {rnd} {mode:8s} {rate:8.1f} req/s  wrong answers {wrong}  "
                    f"load {load[0]:.2f} {load[1]:.2f}",
                    flush=True,
                )
                if wrong:
                    print("   WRONG ANSWERS: the replica path is not correct")
                    return 1
        best = {m: max(v) for m, v in rates.items()}
        print(
            "   memory of each server (master + workers): "
            + ", ".join(f"{m} {tree_rss_mb(s.pid):.0f} MB" for m, s in servers.items())
        )
        print(
            "   PostgreSQL (postmaster + backends, shared memory counted once per process): "
            + ", ".join(
                f"{c.name if hasattr(c, 'number') else 'primary'} {tree_rss_mb(postmaster(c)):.0f} MB"
                for c in (primary, replica)
            )
        )
        print(
            f"   best: primary alone {best['primary']:.1f} req/s, reads on the replica "
            f"{best['replica']:.1f} req/s, ratio {best['replica'] / best['primary']:.2f}"
        )
        table.row(
            "locate + tile reads with a streaming replica",
            project=statistics.median(rates["replica"]),
            baseline=statistics.median(rates["primary"]),
            unit="req/s",
            higher_is_better=True,
            target="the same answers as the primary",
            holds=True,  # a wrong answer ended the benchmark above
            baseline_name="the primary alone",
            note=f"rounds {table.summary(rates['replica'])} vs {table.summary(rates['primary'])}",
        )

        print(f"\n2. read-your-writes: {args.tries} reports, each read back at once")
        lon, lat = sample[0]
        c = Client(ports["replica"], token)
        times, stale, where = [], 0, {"primary": 0, "replica-1": 0}
        for i in range(args.tries):
            started = time.perf_counter()
            status, _w, lsn, body = c.request(
                "POST",
                "/api/cases",
                {
                    "x": lon,
                    "y": lat,
                    "category": CATEGORIES[i % len(CATEGORIES)],
                    "description": f"回读压测 {i}",
                    "source": "resident",
                },
            )
            assert status == 201, body[:300]
            code = json.loads(body)["case"]["code"]
            status, w, _l, body = c.request(
                "GET", f"/api/search?q={code}&kinds=case", headers={"X-After-LSN": lsn}
            )
            times.append(time.perf_counter() - started)
            found = status == 200 and code in [r["label"] for r in json.loads(body)["items"]]
            stale += not found
            where[w or "primary"] += 1
        print(
            f"   p50 {pct(times, 50) * 1000:.1f} ms  p99 {pct(times, 99) * 1000:.1f} ms  "
            f"stale {stale} of {args.tries}  read back from {where}"
        )
        table.row(
            "report a case, read it back at once (replica-routed)",
            project=pct(times, 99) * 1000,
            baseline=None,
            unit="ms (p99)",
            target="no stale read",
            holds=stale == 0,
            note=f"p50 {pct(times, 50) * 1000:.1f} ms; {stale} stale of {args.tries}",
        )

        print(f"\n3. replica lag under a burst of {args.burst} reports")
        samples: list[tuple[int, float]] = []
        done = threading.Event()

        def sample_lag() -> None:
            while not done.is_set():
                row = primary.psql(
                    "postgres",
                    "SELECT coalesce(max(pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)), 0)::bigint, "
                    "coalesce(max(EXTRACT(EPOCH FROM replay_lag)), 0) FROM pg_stat_replication",
                )
                b, s = row.split("|")
                samples.append((int(b), float(s)))
                time.sleep(0.02)

        sampler = threading.Thread(target=sample_lag)
        sampler.start()
        gate = threading.Barrier(args.burst + 1)

        def report(i: int) -> int:
            cl = Client(ports["replica"], token)
            p = rng.choice(points)
            gate.wait()
            return cl.request(
                "POST",
                "/api/cases",
                {
                    "x": p[0],
                    "y": p[1],
                    "category": CATEGORIES[i % len(CATEGORIES)],
                    "description": f"突发上报 {i}",
                    "source": "resident",
                },
            )[0]

        with ThreadPoolExecutor(max_workers=args.burst) as pool:
            futures = [pool.submit(report, i) for i in range(args.burst)]
            gate.wait()
            started = time.perf_counter()
            statuses = [f.result() for f in futures]
            wall = time.perf_counter() - started
        caught_up(primary, replica)
        done.set()
        sampler.join()
        print(
            f"   {statuses.count(201)} of {args.burst} stored in {wall:.1f} s; largest lag "
            f"{max(b for b, _ in samples)} bytes, {max(s for _, s in samples) * 1000:.1f} ms "
            f"({len(samples)} samples); load {os.getloadavg()[0]:.2f}"
        )
        table.row(
            f"replica lag, {args.burst} reports at once",
            project=max(s for _, s in samples) * 1000,
            baseline=None,
            unit="ms (largest)",
            target=f"all {args.burst} stored",
            holds=statuses.count(201) == args.burst,
            note=f"{max(b for b, _ in samples)} bytes at most",
        )
    finally:
        for s in servers.values():
            s.send_signal(signal.SIGTERM)
            s.wait(timeout=30)
        engine.dispose()
        if not was_running:
            replica.stop()
            print("   the replica this benchmark started is stopped again")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
