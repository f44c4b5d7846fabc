"""Benchmark one locate over HTTP (GET /api/locate under gunicorn) against a minimal app.

The ceiling is ``bench/minimal_locate_app.py``: Flask, psycopg and one ``ST_Contains`` query
(no accounts, no routing, no CRS), served by the same gunicorn set-up as ``gridgov serve``
(2 worker processes of 4 threads, gthread, no access log). Both serve the same database at
once, on two loopback ports:

- the sample street (scratch database ``gridgov_bench_locate``, or GRIDGOV_BENCH_DATABASE_URL);
- a synthetic city of ``--city`` micro-grids (about 109k grids at 100,000: the city the
  benchmarks share, ``bench/city.py``, built once and kept; ``--city 0`` skips it).

Both get the same requests: random WGS84 points over the grids' extent (the project locates
the point, walks its chain and names its owner and fallback; the ceiling names the micro-grid).
The answers are checked first — the same micro-grid code for the same points (the project's
``grid.code`` where the minimal app finds one; where it finds none, the project's point is not
``inside``). Then, in ``--rounds`` rounds alternating which app goes first, Debian's ``wrk``
(a C load generator) measures one connection (latency p50/p95/p99) and 8 connections
(requests/s, latency under load) and the server's CPU time per request (gunicorn and
PostgreSQL). Min / median of the rounds, the ratio of the medians and the load average are
printed, and one ``bench.report`` row per data set.

Target (issue 16): the project's throughput at 8 connections at least 80 % of the minimal
app's, and its one-connection p50 under 2 ms. On a loaded machine the throughput of either
swings from round to round; the CPU a request (printed beside it, and in the row's note) is
the steadier comparison. The project's plain locate is answered below Flask
(``app/api/locate_fast.py``); ``GRIDGOV_LOCATE_FAST_PATH=false`` measures the Flask route.

    python bench/bench_locate_http.py [--rounds 3] [--seconds 6] [--city 100000] [--port N]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app import create_app  # noqa: E402
from app import migrate as mig  # noqa: E402
from app.db import get_db, transaction  # noqa: E402
from app.embedded_pg import default_cluster  # noqa: E402
from app.services import importer  # noqa: E402
from bench import report  # noqa: E402
from bench.serving import free_port  # noqa: E402

TARGET_RATIO = 0.8
MINIMAL_APP_NAME = "gridgov_bench_minimal"  # the minimal app's connections' application_name
TARGET_P50_MS = 2.0


# -- the data sets -------------------------------------------------------------------------------
def prepare_sample() -> str:
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


def current_grids(url: str) -> int:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return int(
                conn.execute(text("SELECT count(*) FROM grid WHERE valid_to IS NULL")).scalar()
            )
    except Exception:  # no such database, or not migrated
        return 0
    finally:
        engine.dispose()


def prepare_city(micro: int) -> str:
    """The shared synthetic city of about ``micro`` micro-grids (``bench/city.py``: built once,
    kept for every benchmark and run)."""
    from bench.city import city_database

    return city_database(micro, 20 * micro)[0]


def issue_token(url: str) -> str:
    """A bearer token of the bench's command-centre account (created once per database)."""
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
    return f"Bearer {token.token}"


def query_paths(url: str, n: int, seed: int = 3) -> list[str]:
    """WGS84 points: 90 % at random inside random current leaf grids (the common case), 10 %
    anywhere over the grids' extent (edges, holes, outside: the nearest-grid and ancestor
    rules)."""
    from sqlalchemy import create_engine, text

    inside = n - n // 10
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT setseed(0.3)"))
            pts = conn.execute(
                text(
                    "SELECT ST_X(p), ST_Y(p) FROM (SELECT (ST_Dump(ST_GeneratePoints(geom, 1, "
                    "id))).geom AS p FROM (SELECT id, geom FROM grid g WHERE valid_to IS NULL AND "
                    "NOT EXISTS (SELECT 1 FROM grid c WHERE c.parent_id = g.id AND c.valid_to "
                    "IS NULL) ORDER BY random() LIMIT :n) s) t"
                ),
                {"n": inside},
            ).all()
            box = conn.execute(
                text(
                    "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM "
                    "(SELECT ST_Extent(geom) AS e FROM grid WHERE valid_to IS NULL) s"
                )
            ).one()
    finally:
        engine.dispose()
    rng = np.random.default_rng(seed)
    while len(pts) < inside:  # fewer leaf grids than points: each gets more
        pts = pts + pts
    pts = list(pts[:inside]) + list(
        zip(
            rng.uniform(box[0], box[2], n - inside),
            rng.uniform(box[1], box[3], n - inside),
            strict=True,
        )
    )
    order = rng.permutation(len(pts))
    return [f"/api/locate?lon={pts[i][0]:.7f}&lat={pts[i][1]:.7f}" for i in order]


# -- the servers ---------------------------------------------------------------------------------
def wait_for(proc: subprocess.Popen, port: int, path: str, headers: dict[str, str]) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited: {proc.stderr.read().decode()[-2000:]}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", path, headers=headers)
            if conn.getresponse().status == 200:
                conn.close()
                return
        except OSError:
            time.sleep(0.2)
    stop_server(proc)
    raise SystemExit("server did not answer within 90 s")


def start_project(url: str, port: int, workers: int, auth: str, probe: str) -> subprocess.Popen:
    """``gridgov serve`` (gunicorn, gthread, 4 threads a worker), without the access log:
    formatting a log line is not what is measured."""
    cmd = [sys.executable, "-m", "app.cli", "serve", "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--workers", str(workers), "--no-access-log"]
    proc = subprocess.Popen(
        cmd,
        cwd=ROOT,
        env=dict(os.environ, DATABASE_URL=url, PYTHONPATH=str(ROOT)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    wait_for(proc, port, probe, {"Authorization": auth})
    return proc


def start_minimal(url: str, port: int, workers: int, probe: str) -> subprocess.Popen:
    """The minimal app under the same gunicorn settings as ``gridgov serve``."""
    cmd = [sys.executable, "-m", "gunicorn", "--chdir", str(ROOT), "--bind", f"127.0.0.1:{port}"]
    cmd += ["--workers", str(workers), "--threads", "4", "--worker-class", "gthread"]
    cmd += ["--log-level", "warning", "bench.minimal_locate_app:app"]
    proc = subprocess.Popen(
        cmd,
        cwd=ROOT,
        env=dict(os.environ, DATABASE_URL=url, PYTHONPATH=str(ROOT)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    wait_for(proc, port, probe, {})
    return proc


def stop_server(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)  # gunicorn's master and its workers: ours alone
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


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


def database_backends(url: str) -> dict[str, list[int]]:
    """The PostgreSQL backends serving each app: the minimal app's connections name themselves
    (``application_name``), the rest are the project's."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT pid, application_name FROM pg_stat_activity WHERE datname = "
                    "current_database() AND backend_type = 'client backend' "
                    "AND pid <> pg_backend_pid()"
                )
            ).all()
    finally:
        engine.dispose()
    out: dict[str, list[int]] = {"project": [], "minimal": []}
    for pid, name in rows:
        out["minimal" if name == MINIMAL_APP_NAME else "project"].append(pid)
    return out


def cpu_seconds(pids: list[int]) -> float:
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


# -- the answers ---------------------------------------------------------------------------------
def get_json(port: int, paths: list[str], headers: dict[str, str]) -> list[dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    out = []
    for path in paths:
        conn.request("GET", path, headers=headers)
        res = conn.getresponse()
        body = res.read()
        if res.status != 200:
            raise SystemExit(f"{res.status} for {path}: {body[:300]!r}")
        out.append(json.loads(body))
    conn.close()
    return out


def check_answers(project_port: int, minimal_port: int, auth: str, paths: list[str]) -> str:
    """The same micro-grid code for the same points; raise SystemExit on any difference."""
    ours = get_json(project_port, paths, {"Authorization": auth})
    ceiling = get_json(minimal_port, paths, {})
    bad, inside = [], 0
    for path, a, b in zip(paths, ours, ceiling, strict=True):
        if b["code"] is not None:
            inside += 1
            if (a.get("grid") or {}).get("code") != b["code"]:
                bad.append(f"{path}: project {a.get('grid')} {a['method']}, minimal {b['code']}")
        elif a["method"] == "inside":
            bad.append(f"{path}: project inside {a['grid']['code']}, minimal none")
    if bad:
        raise SystemExit(f"{len(bad)} answers differ, e.g. {bad[:3]}")
    return f"{len(paths)} points: same micro-grid code ({inside} in a micro-grid, the rest outside)"


# -- wrk -----------------------------------------------------------------------------------------
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


def run_wrk(port: int, script: str, auth: str | None, connections: int, seconds: int) -> dict:
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "-s", script]
    if auth:
        cmd += ["-H", f"Authorization: {auth}"]
    out = subprocess.run(
        [*cmd, f"http://127.0.0.1:{port}"],
        capture_output=True,
        text=True,
        timeout=seconds + 30,
        check=True,
    ).stdout
    pct = re.search(r"^PCTL (\d+) (\d+) (\d+)$", out, re.M)
    p50, p95, p99 = (int(v) / 1000 for v in pct.groups()) if pct else (float("nan"),) * 3
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rate": float(rate.group(1)) if rate else float("nan"),
        "p50": p50,
        "p95": p95,
        "p99": p99,
        "non_2xx": int(bad.group(1)) if bad else 0,
    }


def measure(
    name: str,
    port: int,
    script: str,
    auth: str | None,
    pids: list[int],
    db: list[int],
    seconds: int,
):  # type: ignore[no-untyped-def]
    one = run_wrk(port, script, auth, 1, 3)
    cpu0, db0 = cpu_seconds(pids), cpu_seconds(db)
    many = run_wrk(port, script, auth, 8, seconds)
    served = many["rate"] * seconds or float("nan")
    cpu_ms = (cpu_seconds(pids) - cpu0) / served * 1000
    db_ms = (cpu_seconds(db) - db0) / served * 1000
    print(
        f"  {name:<8} 1 connection p50 {one['p50']:.2f} ms, p95 {one['p95']:.2f} ms, "
        f"p99 {one['p99']:.2f} ms; 8 connections {many['rate']:,.0f} requests/s, p50 "
        f"{many['p50']:.2f} ms, p99 {many['p99']:.2f} ms; CPU a request: gunicorn "
        f"{cpu_ms:.2f} ms, PostgreSQL {db_ms:.2f} ms; load {report.load_text()}"
        + (
            f"; {many['non_2xx'] + one['non_2xx']} non-2xx"
            if many["non_2xx"] + one["non_2xx"]
            else ""
        ),
        flush=True,
    )
    if many["non_2xx"] or one["non_2xx"]:
        raise SystemExit(f"{name}: answers other than 200 under load")
    return {
        "rate": many["rate"],
        "p50": one["p50"],
        "p50_load": many["p50"],
        "cpu": cpu_ms,
        "db": db_ms,
    }


def bench_dataset(label: str, url: str, args: argparse.Namespace) -> None:
    print(f"\n== {label}: {current_grids(url):,} current grids", flush=True)
    auth = issue_token(url)
    paths = query_paths(url, 2000)
    if args.port:
        ours_port, ceiling_port = args.port, args.port + 1
    else:
        ours_port, ceiling_port = free_port(), free_port()
        while ceiling_port == ours_port:
            ceiling_port = free_port()
    ours = start_project(url, ours_port, args.workers, auth, paths[0])
    ceiling = None
    try:
        ceiling = start_minimal(url, ceiling_port, args.workers, paths[0])
        print("  answers: " + check_answers(ours_port, ceiling_port, auth, paths[: args.check]))
        with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
            f.write(WRK_SCRIPT % ", ".join(f'"{p}"' for p in paths))
            script = f.name
        # Warm both (every worker's imports, pools and caches) before the clock starts.
        run_wrk(ours_port, script, auth, 8, 2)
        run_wrk(ceiling_port, script, None, 8, 2)
        backends = database_backends(url)
        servers = {
            "project": (ours_port, auth, process_tree(ours.pid), backends["project"]),
            "minimal": (ceiling_port, None, process_tree(ceiling.pid), backends["minimal"]),
        }
        got: dict[str, list[dict]] = {"project": [], "minimal": []}
        for r in range(args.rounds):
            order = ["project", "minimal"] if r % 2 == 0 else ["minimal", "project"]
            print(f" round {r + 1}", flush=True)
            for name in order:
                port, key, pids, db = servers[name]
                got[name].append(measure(name, port, script, key, pids, db, args.seconds))
        os.unlink(script)
    finally:
        stop_server(ours)
        if ceiling is not None:
            stop_server(ceiling)

    def med(name: str, key: str) -> float:
        return statistics.median(m[key] for m in got[name])

    for name in ("project", "minimal"):
        print(
            f"  {name}: requests/s {report.summary([m['rate'] for m in got[name]])}; "
            f"1-connection p50 ms {report.summary([m['p50'] for m in got[name]])}; "
            f"CPU ms a request: gunicorn {report.summary([m['cpu'] for m in got[name]])}, "
            f"PostgreSQL {report.summary([m['db'] for m in got[name]])}"
        )
    rate, base, p50 = med("project", "rate"), med("minimal", "rate"), med("project", "p50")
    ratio = rate / base
    holds = ratio >= TARGET_RATIO and p50 < TARGET_P50_MS
    print(
        f"  ratio project / minimal app (medians): {ratio:.2f}; project p50 {p50:.2f} ms "
        f"(minimal {med('minimal', 'p50'):.2f} ms); load {report.load_text()}"
    )
    report.row(
        f"single locate over HTTP, {label}",
        project=rate,
        baseline=base,
        unit="req/s",
        higher_is_better=True,
        baseline_name="Flask + psycopg + ST_Contains, same gunicorn",
        target=f"≥ {TARGET_RATIO:.0%} of the minimal app, 1-connection p50 < {TARGET_P50_MS:g} ms",
        holds=holds,
        note=f"p50 {p50:.2f} ms; CPU a request, gunicorn + PostgreSQL: "
        f"{med('project', 'cpu'):.2f} + {med('project', 'db'):.2f} ms, minimal app "
        f"{med('minimal', 'cpu'):.2f} + {med('minimal', 'db'):.2f} ms",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds")
    parser.add_argument("--seconds", type=int, default=6, help="length of one 8-connection run")
    parser.add_argument("--check", type=int, default=500, help="points whose answers are compared")
    parser.add_argument(
        "--city", type=int, default=100_000, help="micro-grids of the city (0: skip)"
    )
    parser.add_argument("--skip-sample", action="store_true")
    parser.add_argument(
        "--port", type=int, default=0, help="serve on this port and the next (default: free ones)"
    )
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is needed (apt-get install wrk)")
    print(f"before: load {report.load_text()}", flush=True)
    if not args.skip_sample:
        bench_dataset("sample street", prepare_sample(), args)
    if args.city:
        bench_dataset(f"{args.city:,} micro-grid city", prepare_city(args.city), args)
    print(f"\nafter: load {report.load_text()}")


if __name__ == "__main__":
    main()
