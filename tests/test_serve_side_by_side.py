"""Two checkouts served by the same account side by side: each `gridgov serve` has its own
gunicorn control socket (not one per account in the home folder), and both answer."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.own_server import _free_port

ROOT = Path(__file__).resolve().parents[1]


def _wait(base: str, process: subprocess.Popen, log: Path) -> int:
    deadline = time.monotonic() + 90
    while True:
        try:
            with urllib.request.urlopen(base + "/login", timeout=5) as res:
                return res.status
        except (urllib.error.URLError, ConnectionError, OSError):
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(
                    "the server did not start: " + log.read_text()[-2000:]
                ) from None
            time.sleep(0.3)


def test_two_servers_of_one_account_each_have_their_own_control_socket(
    database_url: str, owner_database_url: str, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "XDG_RUNTIME_DIR"}
    env.update(
        HOME=str(home),
        DATABASE_URL=database_url,
        GRIDGOV_MIGRATION_DATABASE_URL=owner_database_url,
        GRIDGOV_SESSION_COOKIE_SECURE="0",
    )
    gridgov = str(Path(sys.executable).parent / "gridgov")
    ports = [_free_port(), _free_port()]
    procs: list[subprocess.Popen] = []
    try:
        for port in ports:
            log = tmp_path / f"serve-{port}.log"
            procs.append(
                subprocess.Popen(
                    [
                        gridgov,
                        "serve",
                        "--no-sample",
                        "--port",
                        str(port),
                        "--workers",
                        "1",
                        "--no-access-log",
                    ],
                    cwd=ROOT,
                    env=env,
                    stdout=log.open("w"),
                    stderr=subprocess.STDOUT,
                )
            )
        for port, proc in zip(ports, procs, strict=True):
            assert _wait(f"http://127.0.0.1:{port}", proc, tmp_path / f"serve-{port}.log") == 200
        for port in ports:
            ctl = ROOT / "var" / f"gunicorn-{port}.ctl"
            deadline = time.monotonic() + 20  # gunicorn opens it once it listens
            while not ctl.exists() and time.monotonic() < deadline:
                time.sleep(0.1)
            assert ctl.exists(), port
        assert not (
            home / ".gunicorn" / "gunicorn.ctl"
        ).exists()  # nothing shared in the home folder
        assert all(p.poll() is None for p in procs)  # neither pushed the other out
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()


def test_app_nodes_starting_together_upgrade_and_grant_one_at_a_time(
    database_url: str, owner_database_url: str
) -> None:
    """Each app node upgrades the schema and grants the app's role when it starts; started at
    the same moment, none may fail (two GRANTs on one object at once: "tuple concurrently
    updated")."""
    import threading

    from app import migrate as mig

    n = 4
    barrier = threading.Barrier(n)
    errors: list[BaseException] = []

    def start() -> None:
        barrier.wait()
        try:
            mig.upgrade(owner_database_url, app_url=database_url)
        except BaseException as exc:  # noqa: BLE001 - every failure is the finding
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
