"""Benchmark one locate over HTTP: GET /api/locate served by gunicorn (``gridgov serve``).

Starts the production server of this checkout (``python -m app.cli serve --no-access-log``:
gunicorn, 2 worker processes of 4 threads) on a free loopback port against a scratch database
``gridgov_bench_locate`` of the private cluster (or GRIDGOV_BENCH_DATABASE_URL) with the sample
loaded, then measures (keep-alive connections, loopback only, bounded request counts):

- with a Python client in this process: one connection (latency p50 / p95 / p99), then several
  at once (requests per second). Its threads take a good part of the two cores from the server;
- with Debian's ``wrk`` (a C load generator, far lighter; ``apt-get install wrk``), in
  ``--rounds`` rounds: one connection (latency), then 8 (throughput and latency under load),
  and the server's CPU time per request (gunicorn and PostgreSQL). The verdict uses the
  median of the rounds (the Python client's figures when wrk is missing).

The load averages before and after and the busiest other processes are printed: the machine
may be shared, and the figures then fall short of an idle machine's.

Targets (2 cores, server and load generator on the same machine): p50 under 5 ms and at least
1,000 requests/s.

    python bench/bench_locate_http.py [--rounds 3] [--seconds 8] [--workers 2]
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from app import create_app
from app import migrate as mig
from app.db import get_db, transaction
from app.embedded_pg import default_cluster
from app.services import importer
from gis.crs import from_wgs84

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prepare_database() -> str:
    url = os.environ.get("GRIDGOV_BENCH_DATABASE_URL")
    owner_url = url
    if not url:
        cluster = default_cluster()
        cluster.start()
        url = cluster.recreate_database("gridgov_bench_locate")
        owner_url = cluster.owner_url("gridgov_bench_locate")
    mig.upgrade(owner_url, app_url=url)
    app = create_app({"DATABASE_URL": url})
    with app.app_context():
        session = get_db().session()
        with transaction(session):
            importer.load_directory(session)
        session.close()
    app.extensions["gridgov_db"].dispose()
    return url


# The locate API needs an account: the bench signs in as a command centre with an API token.
AUTH: dict[str, str] = {}


def issue_token(url: str) -> None:
    """Create the bench's centre account (once) and put its bearer token in ``AUTH``."""
    from sqlalchemy import select

    from app.models import AppUser
    from app.services import users

    app = create_app({"DATABASE_URL": url})
    with app.app_context():
        session = get_db().session()
        with transaction(session):
            user = session.scalar(select(AppUser).where(AppUser.username == "bench-centre"))
            if user is None:
                user = users.create_user(
                    session, "bench-centre", "centre", users.secrets.token_urlsafe(16) + "a1"
                )
            token = users.start_session(session, user, None, users.DEFAULT_LIMITS, kind="token")
        session.close()
    app.extensions["gridgov_db"].dispose()
    AUTH["Authorization"] = f"Bearer {token.token}"


def query_paths(n: int, seed: int = 3) -> list[str]:
    """Random points over the sample street: 70 % WGS84, 20 % GCJ-02, 10 % Gauss-Krüger metres."""
    rng = np.random.default_rng(seed)
    lon = rng.uniform(117.2275, 117.2540, n)
    lat = rng.uniform(31.8148, 31.8318, n)
    kind = rng.random(n)
    paths = []
    for i in range(n):
        if kind[i] < 0.7:
            paths.append(f"/api/locate?lon={lon[i]:.7f}&lat={lat[i]:.7f}")
        elif kind[i] < 0.9:
            x, y = from_wgs84(lon[i], lat[i], "gcj02")
            paths.append(f"/api/locate?lon={float(x):.7f}&lat={float(y):.7f}&crs=gcj02")
        else:
            x, y = from_wgs84(lon[i], lat[i], "EPSG:4548")
            paths.append(f"/api/locate?x={float(x):.2f}&y={float(y):.2f}&crs=EPSG:4548")
    return paths


def start_server(url: str, port: int, workers: int) -> subprocess.Popen:
    env = dict(os.environ, DATABASE_URL=url, PYTHONPATH=str(ROOT))
    cmd = [
        sys.executable,
        "-m",
        "app.cli",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--no-access-log",
    ]
    # Served without the per-request access log (``--no-access-log``): formatting a log line
    # costs a good part of a fast request, and it is not what is measured here.
    proc = subprocess.Popen(
        cmd,
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/api/locate?lon=117.24&lat=31.82", headers=AUTH)
            if conn.getresponse().status == 200:
                conn.close()
                return proc
        except OSError:
            time.sleep(0.2)
        if proc.poll() is not None:
            raise SystemExit(f"server exited: {proc.stderr.read().decode()[-2000:]}")
    stop_server(proc)
    raise SystemExit("server did not answer within 60 s")


def stop_server(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)  # gunicorn's master and its workers: ours alone
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def run_client(port: int, paths: list[str], out: list[float], errors: list[str]) -> None:
    """Send the requests one after another on one keep-alive connection; record latencies."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    for path in paths:
        t = time.perf_counter()
        conn.request("GET", path, headers=AUTH)
        res = conn.getresponse()
        res.read()
        out.append(time.perf_counter() - t)
        if res.status != 200:
            errors.append(f"{res.status} {path}")
    conn.close()


def process_tree(pid: int) -> list[int]:
    """Return a process and all its descendants (the gunicorn master and workers)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    todo.extend(int(c) for c in f.read().split())
        except OSError:
            pass
    return out


def database_backends(url: str) -> list[int]:
    """Return the PostgreSQL backend processes serving the benchmark database."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return list(
                conn.execute(
                    text(
                        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                        "AND backend_type = 'client backend' AND pid <> pg_backend_pid()"
                    )
                ).scalars()
            )
    finally:
        engine.dispose()


def cpu_seconds(pids: list[int]) -> float:
    """Return the CPU time (user + system) the processes have used so far."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
        except (OSError, IndexError, ValueError):
            pass
    return total


def percentiles(lat: list[float]) -> str:
    a = np.asarray(lat) * 1000
    return (
        f"p50 {np.percentile(a, 50):.2f} ms, p95 {np.percentile(a, 95):.2f} ms, "
        f"p99 {np.percentile(a, 99):.2f} ms"
    )


# wrk's own summary has no p95: the script's done() prints the percentiles it needs (in µs).
WRK_SCRIPT = """
local paths = {%s}
local i = 0
request = function()
  i = i %% #paths + 1
  return wrk.format("GET", paths[i])
end
done = function(summary, latency, requests)
  io.write(string.format("PCTL %%d %%d %%d\\n", latency:percentile(50), latency:percentile(95),
                         latency:percentile(99)))
end
"""


def run_wrk(port: int, paths: list[str], connections: int, threads: int, seconds: int) -> dict:
    """Run wrk for ``seconds`` (bounded) over the paths; return requests/s and latency
    p50/p95/p99 (ms)."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(WRK_SCRIPT % ", ".join(f'"{p}"' for p in paths))
        script = f.name
    try:
        out = subprocess.run(
            [
                "wrk",
                f"-t{threads}",
                f"-c{connections}",
                f"-d{seconds}s",
                "-H",
                f"Authorization: {AUTH['Authorization']}",
                "-s",
                script,
                f"http://127.0.0.1:{port}",
            ],
            capture_output=True,
            text=True,
            timeout=seconds + 30,
            check=True,
        ).stdout
    finally:
        os.unlink(script)
    pct = re.search(r"^PCTL (\d+) (\d+) (\d+)$", out, re.M)
    p50, p95, p99 = (int(v) / 1000 for v in pct.groups()) if pct else (float("nan"),) * 3
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)$", out, re.M)
    return {
        "rate": float(rate.group(1)) if rate else float("nan"),
        "p50": p50,
        "p95": p95,
        "p99": p99,
        "non_2xx": int(bad.group(1)) if bad else 0,
        "socket_errors": errors.group(1) if errors else "",
    }


def load_line() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} cores"


def busiest_others(exclude: set[int], n: int = 3) -> str:
    """Name the processes (not this benchmark's) that used the most CPU over the last second."""
    tick = os.sysconf("SC_CLK_TCK")

    def sample() -> dict[int, tuple[str, int]]:
        out = {}
        for name in os.listdir("/proc"):
            if not name.isdigit() or int(name) in exclude:
                continue
            try:
                with open(f"/proc/{name}/stat") as f:
                    head, rest = f.read().rsplit(")", 1)
                fields = rest.split()
                out[int(name)] = (head.split("(", 1)[1], int(fields[11]) + int(fields[12]))
            except (OSError, IndexError, ValueError):
                pass
        return out

    a = sample()
    time.sleep(1.0)
    b = sample()
    used = sorted(
        ((b[p][1] - a[p][1]) / tick, b[p][0], p) for p in b if p in a and b[p][1] > a[p][1]
    )[::-1][:n]
    return ", ".join(f"{name}[{pid}] {cpu * 100:.0f} %" for cpu, name, pid in used) or "none"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=10000, help="Python load phase requests")
    parser.add_argument("--clients", type=int, default=8, help="concurrent keep-alive clients")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    parser.add_argument("--rounds", type=int, default=3, help="wrk rounds (the range is shown)")
    parser.add_argument("--seconds", type=int, default=8, help="length of one wrk round")
    args = parser.parse_args()

    print(f"before: {load_line()}")
    url = prepare_database()
    issue_token(url)
    port = free_port()
    proc = start_server(url, port, args.workers)
    ours = {os.getpid()}
    try:
        paths = query_paths(max(args.requests, 2000))
        errors: list[str] = []
        warm: list[float] = []
        run_client(port, paths[:1000], warm, errors)

        single: list[float] = []
        run_client(port, paths[:2000], single, errors)
        p50 = float(np.percentile(single, 50) * 1000)
        print(f"Python client, 1 connection, {len(single)} requests: {percentiles(single)}")

        per = args.requests // args.clients
        lat: list[float] = []
        threads = [
            threading.Thread(
                target=run_client, args=(port, paths[i * per : (i + 1) * per], lat, errors)
            )
            for i in range(args.clients)
        ]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        took = time.perf_counter() - t0
        rate = len(lat) / took
        print(
            f"Python client, {args.clients} connections, {len(lat)} requests in {took:.2f} s: "
            f"{rate:,.0f} requests/s; under load {percentiles(lat)} (the client's threads take "
            "CPU from the server)"
        )
        if errors:
            print(f"{len(errors)} non-200 answers, e.g. {errors[:3]}")
        source = "Python client"
        if shutil.which("wrk"):
            source = "wrk (median of rounds)"
            web, dbs = process_tree(proc.pid), database_backends(url)
            ours.update(web + dbs)
            singles, loads, cpus = [], [], []
            for r in range(args.rounds):
                one = run_wrk(port, paths[:2000], connections=1, threads=1, seconds=3)
                singles.append(one)
                web0, db0 = cpu_seconds(web), cpu_seconds(dbs)
                many = run_wrk(port, paths[:2000], connections=8, threads=1, seconds=args.seconds)
                served = many["rate"] * args.seconds or float("nan")
                web_ms = (cpu_seconds(web) - web0) / served * 1000
                db_ms = (cpu_seconds(dbs) - db0) / served * 1000
                loads.append(many)
                cpus.append(web_ms + db_ms)
                print(
                    f"wrk round {r + 1}: 1 connection p50 {one['p50']:.2f} ms, "
                    f"p95 {one['p95']:.2f} ms, p99 {one['p99']:.2f} ms ({one['rate']:,.0f}/s); "
                    f"8 connections {many['rate']:,.0f} requests/s, under load "
                    f"p50 {many['p50']:.2f} ms, p95 {many['p95']:.2f} ms, p99 {many['p99']:.2f} ms"
                    f"; server CPU {web_ms + db_ms:.2f} ms a request (gunicorn {web_ms:.2f}, "
                    f"PostgreSQL {db_ms:.2f}); {load_line()}"
                    + (f"; {many['non_2xx']} non-2xx" if many["non_2xx"] else "")
                    + (f"; socket errors {many['socket_errors']}" if many["socket_errors"] else "")
                )
            rates = sorted(m["rate"] for m in loads)
            p50s = sorted(o["p50"] for o in singles)
            cpu = float(np.median(cpus))
            p50, rate = float(np.median(p50s)), float(np.median(rates))
            print(
                f"wrk over {args.rounds} rounds: 1-connection p50 {p50s[0]:.2f}–{p50s[-1]:.2f} ms; "
                f"8-connection throughput {rates[0]:,.0f}–{rates[-1]:,.0f} requests/s; server "
                f"CPU {cpu:.2f} ms a request — about {2000 / cpu:,.0f} requests/s if the two "
                "cores served nothing else"
            )
        else:
            print("(wrk not installed — apt-get install wrk: the Python client's figures stand)")
        print(f"busiest other processes just now: {busiest_others(ours)}")
    finally:
        stop_server(proc)
    print(
        f"targets ({source}): p50 under 5 ms — {'met' if p50 < 5 else 'NOT met'} "
        f"({p50:.2f} ms); at least 1,000 requests/s — {'met' if rate >= 1000 else 'NOT met'} "
        f"({rate:,.0f}/s)"
    )
    print(f"after: {load_line()}")
    if os.getloadavg()[0] > 2.5:
        print("note: other work shares the machine; the figures are lower than on an idle one")


if __name__ == "__main__":
    main()
