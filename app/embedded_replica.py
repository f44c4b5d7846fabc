"""Streaming replicas of the private cluster (``gridgov db start --replicas N``).

A replica is a copy of the primary made with ``pg_basebackup -R -X stream`` in a folder beside
it (``var/pg-replica-1`` next to ``var/pg``), kept up to date by PostgreSQL's own streaming
replication through a replication slot, and answering read-only queries (hot standby). Like the
primary it listens on a Unix socket of its own folder only, and runs as ``postgres`` when the
caller is root.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.embedded_pg import SUPERUSER, Cluster, EmbeddedDatabaseError, _pg_bin

LOGGER = logging.getLogger(__name__)


@dataclass
class ReplicaCluster(Cluster):
    """A streaming replica of ``primary``, number ``number`` (1, 2, …)."""

    primary: Cluster = field(default_factory=lambda: Cluster(Path(".")))
    number: int = 1

    @property
    def name(self) -> str:
        return f"replica-{self.number}"

    @property
    def slot(self) -> str:
        return f"gridgov_replica_{self.number}"

    def init(self) -> bool:
        """Copy the running primary into this folder unless it holds a replica already; return
        True when it was made now."""
        if (self.data_dir / "PG_VERSION").exists():
            return False
        if not self.primary.is_running():
            raise EmbeddedDatabaseError("the primary must run before a replica is made of it")
        self.root.mkdir(parents=True, exist_ok=True)
        self._chown(self.root)
        # A slot left by an earlier copy of this replica would keep WAL for nobody.
        self.primary.psql(
            "postgres",
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
            f"WHERE slot_name = '{self.slot}' AND NOT active",
        )
        conninfo = (
            f"host={self.primary.socket_dir} port={self.primary.port} user={SUPERUSER} "
            f"application_name={self.slot}"
        )
        LOGGER.info("copying the primary into %s", self.data_dir)
        res = subprocess.run(
            self._cmd(
                str(_pg_bin() / "pg_basebackup"),
                "-D",
                str(self.data_dir),
                "-d",
                conninfo,
                "-R",
                "-X",
                "stream",
                "-C",
                "-S",
                self.slot,
                "-c",
                "fast",
            ),
            capture_output=True,
            text=True,
            check=False,
        )
        if res.returncode != 0:
            raise EmbeddedDatabaseError(
                f"pg_basebackup failed: {res.stderr.strip() or res.stdout.strip()}"
            )
        # Long reads on the replica are not cancelled by the primary's clean-up of old rows.
        auto = self.data_dir / "postgresql.auto.conf"
        with auto.open("a") as fh:
            fh.write("hot_standby_feedback = on\n")
        return True

    def slot_state(self) -> str | None:
        """The primary's word on this replica's slot: PostgreSQL's ``wal_status`` ('reserved',
        'extended', 'unreserved', 'lost'), or None when the slot is gone."""
        return (
            self.primary.psql(
                "postgres",
                f"SELECT wal_status FROM pg_replication_slots WHERE slot_name = '{self.slot}'",
            )
            or None
        )

    def start(self, timeout: float = 60.0) -> None:
        """Start the replica (copying the primary first when needed). Its database comes from
        the primary: nothing is created here. A replica whose slot the primary gave up (it was
        stopped while more WAL than ``max_slot_wal_keep_size`` went by) can never catch up, so
        it is copied afresh."""
        if (
            not self.is_running()
            and (self.data_dir / "PG_VERSION").exists()
            and self.primary.is_running()
            and self.slot_state() in (None, "lost")
        ):
            LOGGER.warning(
                "%s fell too far behind the primary (its slot %s is gone); copying it afresh",
                self.name,
                self.slot,
            )
            shutil.rmtree(self.data_dir)
        self.start_server(timeout)

    def status(self) -> dict[str, object]:
        running = self.is_running()
        found: dict[str, object] = {
            "name": self.name,
            "data_dir": str(self.data_dir),
            "socket_dir": str(self.socket_dir),
            "running": running,
            "url": self.url(),
        }
        if running:
            row = self.psql(
                "postgres",
                "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn(), "
                "CASE WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0 "
                "ELSE round(EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp())::numeric, 3) END",
            ).split("|")
            found["streaming"] = row[0] == "t"
            found["replay_lsn"] = row[1]
            found["lag_seconds"] = float(row[2]) if row[2] else None
        return found


def replicas_of(primary: Cluster) -> list[ReplicaCluster]:
    """Return the replicas made beside ``primary`` (folders ``<name>-replica-N``), in order."""
    found = []
    for folder in primary.root.parent.glob(f"{primary.root.name}-replica-*"):
        suffix = folder.name.rsplit("-", 1)[-1]
        if suffix.isdigit() and (folder / "data" / "PG_VERSION").exists():
            found.append(replica(primary, int(suffix)))
    return sorted(found, key=lambda r: r.number)


def replica(primary: Cluster, number: int) -> ReplicaCluster:
    """Return replica ``number`` of ``primary`` (made or not)."""
    root = primary.root.parent / f"{primary.root.name}-replica-{number}"
    return ReplicaCluster(root, primary.port, primary=primary, number=number)


def start_replicas(primary: Cluster, count: int) -> list[ReplicaCluster]:
    """Start replicas 1..count of the running ``primary``, making those that do not exist."""
    started = []
    for number in range(1, count + 1):
        r = replica(primary, number)
        r.start()
        started.append(r)
    return started


def running_urls(primary: Cluster, database: str) -> list[str]:
    """The app's URLs of ``database`` on every replica of ``primary`` that runs."""
    return [r.url(database) for r in replicas_of(primary) if r.is_running()]


def lag_bytes(primary: Cluster) -> dict[str, Any]:
    """By slot name: the bytes of WAL each replica has not replayed yet (the primary's
    ``pg_stat_replication``, None when it does not stream), the slot's ``wal_status`` and the
    WAL the slot holds back on the primary."""
    if not primary.is_running():
        return {}
    out = primary.psql(
        "postgres",
        "SELECT s.slot_name, r.state, "
        "pg_wal_lsn_diff(pg_current_wal_lsn(), r.replay_lsn)::bigint, s.wal_status, "
        "pg_wal_lsn_diff(pg_current_wal_lsn(), s.restart_lsn)::bigint "
        "FROM pg_replication_slots s LEFT JOIN pg_stat_replication r "
        "ON r.application_name = s.slot_name",
    )
    lags: dict[str, Any] = {}
    for line in filter(None, out.splitlines()):
        name, state, diff, wal_status, held = line.split("|")
        lags[name] = {
            "state": state or None,
            "lag_bytes": int(diff) if diff else None,
            "slot": wal_status or None,
            "wal_held_bytes": int(held) if held else None,
        }
    return lags


def status(primary: Cluster) -> list[dict[str, object]]:
    """Each replica of ``primary``: where, whether it runs, its lag in bytes and in seconds."""
    lags = lag_bytes(primary)
    rows = []
    for r in replicas_of(primary):
        row = r.status()
        seen = lags.get(r.slot, {})
        row["state"] = seen.get("state")
        row["lag_bytes"] = seen.get("lag_bytes")
        # WAL the primary keeps for this replica (bounded by max_slot_wal_keep_size).
        row["slot"] = seen.get("slot")
        row["wal_held_bytes"] = seen.get("wal_held_bytes")
        rows.append(row)
    return rows


def stop_replicas(primary: Cluster) -> list[str]:
    """Stop every replica of ``primary`` that runs; return their names."""
    return [r.name for r in replicas_of(primary) if r.stop()]
