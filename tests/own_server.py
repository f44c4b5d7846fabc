"""The app under gunicorn (the production server) in a process of its own: the live server of
the browser tests (tests/conftest.py), and the server of tests that measure the server itself
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


def testing_app():  # type: ignore[no-untyped-def]
    """The app as the tests' own in-process app is built (``TESTING``), with the environment's
    ``GRIDGOV_*`` settings: what gunicorn serves for the live server."""
    from app import create_app

    return create_app({"TESTING": True})


@contextmanager
def own_server(
    database_url: str,
    threads: int = 8,
    workers: int = 1,
    app_spec: str = "app:create_app()",
    **settings: str,
) -> Iterator[OwnServer]:
    """Run gunicorn (``workers`` processes of ``threads`` threads each) serving ``app_spec``, with
    ``GRIDGOV_<KEY>`` = value settings."""
    port = _free_port()
    env = dict(os.environ)
    env.update({f"GRIDGOV_{k}": str(v) for k, v in settings.items()})
    env["DATABASE_URL"] = database_url
    env.setdefault("GRIDGOV_SESSION_COOKIE_SECURE", "0")
    log = tempfile.TemporaryFile()
    process = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "gunicorn"),
            "--workers",
            str(workers),
            "--threads",
            str(threads),
            "--bind",
            f"127.0.0.1:{port}",
            "--timeout",
            "120",
            # Not the control socket in the home folder, which other checkouts share.
            "--no-control-socket",
            app_spec,
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
