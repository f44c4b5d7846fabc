"""The app under gunicorn in a process of its own, for tests that measure the server itself
(its memory) or need settings of their own (trusted proxy hops, limits), over the committed
test data."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class OwnServer:
    base: str
    process: subprocess.Popen  # the gunicorn master

    def worker_pids(self) -> list[int]:
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return [int(p) for p in children.read_text().split()]

    def peak_rss_mb(self) -> float:
        """The largest resident set any worker process has had (VmHWM), in MiB."""
        peaks = []
        for pid in self.worker_pids():
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peaks.append(int(line.split()[1]) / 1024)
        return max(peaks)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def own_server(database_url: str, threads: int = 8, **settings: str) -> Iterator[OwnServer]:
    """Run one gunicorn worker (``threads`` threads) with ``GRIDGOV_<KEY>`` = value settings."""
    port = _free_port()
    env = dict(os.environ)
    env.update({f"GRIDGOV_{k}": str(v) for k, v in settings.items()})
    env["DATABASE_URL"] = database_url
    env.setdefault("GRIDGOV_SESSION_COOKIE_SECURE", "0")
    log = tempfile.TemporaryFile()
    process = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "gunicorn"),
            "--workers", "1",
            "--threads", str(threads),
            "--bind", f"127.0.0.1:{port}",
            "--timeout", "120",
            "app:create_app()",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(
                    urllib.request.Request(base + "/api/auth/me", headers={"Authorization": ""}),
                    timeout=5,
                )
                break
            except (urllib.error.URLError, ConnectionError, OSError):
                if process.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    raise RuntimeError(
                        "the server did not start: " + log.read().decode()[-2000:]
                    ) from None
                time.sleep(0.3)
        yield OwnServer(base, process)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
