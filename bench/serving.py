"""What the benchmarks share to serve the app: a free port, and gunicorn started the way
`gridgov serve` runs it (gthread workers), answering before the clock starts."""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A loopback port nobody listens on. When ``GRIDGOV_BENCH_PORTS`` names a range
    (``8100-8109``), the port is taken from it, each at most once a process (two servers started
    one after the other get two ports); otherwise the system picks one."""
    span = os.environ.get("GRIDGOV_BENCH_PORTS", "").strip()
    if not span:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]
    first, _, last = span.partition("-")
    for port in range(int(first), int(last or first) + 1):
        if port in _HANDED_OUT:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _HANDED_OUT.add(port)
        return port
    raise SystemExit(f"no free port left in GRIDGOV_BENCH_PORTS={span}")


def start_gunicorn(
    env: Mapping[str, str],
    port: int,
    *,
    workers: int = 2,
    threads: int = 4,
    backlog: int | None = None,
    ready_path: str = "/login",
) -> subprocess.Popen:
    """Start gunicorn on ``port`` with the settings ``env`` adds to this process's environment;
    return once ``ready_path`` answers 200 (a SystemExit after 60 s, or when it exits)."""
    cmd = [sys.executable, "-m", "gunicorn", "--chdir", str(ROOT)]
    cmd += ["--bind", f"127.0.0.1:{port}", "--workers", str(workers), "--threads", str(threads)]
    cmd += ["--worker-class", "gthread", "--log-level", "warning"]
    if backlog is not None:
        cmd += ["--backlog", str(backlog)]
    proc = subprocess.Popen([*cmd, "app:create_app()"], env={**os.environ, **env}, cwd=ROOT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"gunicorn exited with {proc.returncode}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", ready_path)
            if conn.getresponse().status == 200:
                return proc
        except OSError:
            time.sleep(0.2)
    proc.terminate()
    raise SystemExit("gunicorn did not answer within 60 s")
