"""The embedded default: a private cluster on a Unix socket, managed by `gridgov db`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from click.testing import CliRunner

from app.cli import main
from app.embedded_pg import IO_CONCURRENCY, Cluster


def test_db_status_reports_a_running_socket_only_cluster(cluster, run_database) -> None:  # type: ignore[no-untyped-def]
    result = CliRunner().invoke(main, ["db", "status"])
    assert result.exit_code == 0, result.output
    status = json.loads(result.output)
    assert status["running"] is True
    assert status["initialised"] is True
    assert "host=/" in status["url"]  # a socket folder, not a TCP host
    assert cluster.psql("postgres", "SHOW listen_addresses") == ""
    # Read-ahead for bitmap scans (PostgreSQL's default of 1 page doubles a cold e-map tile).
    assert cluster.psql("postgres", "SHOW effective_io_concurrency") == str(IO_CONCURRENCY)
    # A stopped replica may not hold the primary's WAL without bound.
    assert cluster.psql("postgres", "SHOW max_slot_wal_keep_size") == "2GB"
    # Room for the full pools of every worker `gridgov serve` starts by default, twice over
    # (a second server, or the test suite's two processes), besides commands and autovacuum.
    assert int(cluster.psql("postgres", "SHOW max_connections")) >= 2 * _serve_connections() + 20
    assert (
        cluster.psql(run_database, "SELECT extname FROM pg_extension WHERE extname = 'postgis'")
        == "postgis"
    )


def _serve_connections() -> int:
    """The most connections the default `gridgov serve` holds: each worker's three pools full."""
    from app.cli import serve
    from app.db import READ_POOL, WRITE_POOL

    workers = next(p.default for p in serve.params if p.name == "workers")
    writing = WRITE_POOL["pool_size"] + WRITE_POOL["max_overflow"]
    reading = READ_POOL["pool_size"] + READ_POOL["max_overflow"]
    return workers * (writing + 2 * reading)


def test_db_start_is_idempotent(cluster) -> None:  # type: ignore[no-untyped-def]
    runner = CliRunner()
    for _ in range(2):
        result = runner.invoke(main, ["db", "start"])
        assert result.exit_code == 0, result.output
        assert "running" in result.output


START_ONE = """
import sys
from pathlib import Path
from app.embedded_pg import Cluster
Cluster(Path(sys.argv[1])).start()
print("started")
"""


def test_two_processes_starting_a_new_cluster_at_once_both_get_it() -> None:
    """Two processes (two test runs, a command while the server starts) start the same
    cluster at once: one creates and starts it, the other waits its turn and finds it running,
    instead of failing on PostgreSQL's own lock file ("another postmaster is running")."""
    root = Path(tempfile.mkdtemp(prefix="gridgov-twostarts-"))
    os.chmod(root, 0o755)  # the account that runs PostgreSQL must reach it
    cluster = Cluster(root / "pg")
    try:
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", START_ONE, str(cluster.root)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(2)
        ]
        outs = [p.communicate(timeout=120) for p in procs]
        for p, (out, err) in zip(procs, outs, strict=True):
            assert p.returncode == 0, err[-2000:]
            assert out.strip() == "started"
        assert cluster.is_running()
        assert (
            cluster.psql("gridgov", "SELECT extname FROM pg_extension WHERE extname = 'postgis'")
            == "postgis"
        )
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
