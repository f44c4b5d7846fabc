"""The embedded default: a private cluster on a Unix socket, managed by `gridgov db`."""

from __future__ import annotations

import json

from click.testing import CliRunner

from app.cli import main
from app.embedded_pg import IO_CONCURRENCY


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
    assert (
        cluster.psql(run_database, "SELECT extname FROM pg_extension WHERE extname = 'postgis'")
        == "postgis"
    )


def test_db_start_is_idempotent(cluster) -> None:  # type: ignore[no-untyped-def]
    runner = CliRunner()
    for _ in range(2):
        result = runner.invoke(main, ["db", "start"])
        assert result.exit_code == 0, result.output
        assert "running" in result.output
