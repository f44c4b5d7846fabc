"""Run the private PostgreSQL + PostGIS cluster used when no DATABASE_URL is set.

The cluster lives in a folder of the project (``var/pg`` by default) and listens on a Unix socket
only, never on TCP. PostgreSQL refuses to run as root, so when the caller is root the cluster is
created and served by the unprivileged ``postgres`` account that Debian's package creates.

Three roles: the cluster's bootstrap superuser (``gridgov``) only creates the roles, databases and
the PostGIS extension; ``gridgov_owner`` owns the database and its schema and runs the
migrations; the app serves requests as ``gridgov_app``, which has no more privileges than it needs
(see app/db_roles.py). A cluster made by an older version, where the app connected as the
superuser, is brought to this on its next start.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import pwd
import re
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from app import db_roles

LOGGER = logging.getLogger(__name__)

PG_BIN_CANDIDATES = (
    "/usr/lib/postgresql/17/bin",
    "/usr/lib/postgresql/16/bin",
    "/usr/lib/postgresql/15/bin",
)
DB_NAME = "gridgov"
#: The cluster's bootstrap superuser: administration only, never the app's connection.
SUPERUSER = "gridgov"
#: Owns the database and its schema; runs the migrations.
OWNER_ROLE = "gridgov_owner"
#: Serves requests: no superuser, no DDL, only the privileges the app needs.
APP_ROLE = "gridgov_app"
# Two processes starting at once (a command while the server starts) take turns setting the
# roles and grants up: psql runs the statements of one call in one transaction.
LOCK_STARTS = "SELECT pg_advisory_xact_lock(7302, 0)"
# Unix socket paths are limited to 107 bytes; keep a margin for ".s.PGSQL.5432".
MAX_SOCKET_DIR = 90


class EmbeddedDatabaseError(RuntimeError):
    """The private cluster cannot be created or started; the message says what to install or fix."""


def _pg_bin() -> Path:
    override = os.environ.get("GRIDGOV_PG_BIN")
    candidates = (override,) if override else PG_BIN_CANDIDATES
    for cand in candidates:
        if cand and (Path(cand) / "pg_ctl").exists():
            return Path(cand)
    raise EmbeddedDatabaseError(
        "PostgreSQL server binaries not found (looked in "
        + ", ".join(c for c in candidates if c)
        + "). Install the Debian packages 'postgresql-15' and 'postgresql-15-postgis-3' "
        "(as root: ./scripts/setup.sh does it), or set DATABASE_URL to a PostGIS server."
    )


def _postgis_available(bin_dir: Path) -> bool:
    share = subprocess.run(
        [str(bin_dir / "pg_config"), "--sharedir"], capture_output=True, text=True, check=False
    ).stdout.strip()
    if not share:
        version = bin_dir.parent.name
        share = f"/usr/share/postgresql/{version}"
    return (Path(share) / "extension" / "postgis.control").exists()


@dataclass
class Cluster:
    """Where the private cluster lives and how to reach it."""

    root: Path
    port: int = 5432

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def log_file(self) -> Path:
        return self.root / "server.log"

    @property
    def socket_dir(self) -> Path:
        wanted = self.root / "run"
        if len(str(wanted)) <= MAX_SOCKET_DIR:
            return wanted
        digest = hashlib.sha1(str(self.root).encode()).hexdigest()[:12]
        return Path(tempfile.gettempdir()) / f"gridgov-{digest}"

    def url(self, database: str = DB_NAME, role: str = APP_ROLE) -> str:
        """Return the SQLAlchemy URL of a database on this cluster, as the app's role unless
        another role is named."""
        return f"postgresql+psycopg://{role}@/{database}?host={self.socket_dir}&port={self.port}"

    def owner_url(self, database: str = DB_NAME) -> str:
        """Return the URL of a database as its owner (migrations)."""
        return self.url(database, OWNER_ROLE)

    # -- process ownership -------------------------------------------------------------------
    def _run_as(self) -> str | None:
        """Return the account that runs the server when we are root, else None."""
        if os.geteuid() != 0:
            return None
        account = os.environ.get("GRIDGOV_PG_USER", "postgres")
        try:
            pwd.getpwnam(account)
        except KeyError as exc:
            raise EmbeddedDatabaseError(
                f"running as root, but the account '{account}' that should run PostgreSQL does not "
                "exist; install Debian's 'postgresql' package (it creates it) or set GRIDGOV_PG_USER"
            ) from exc
        return account

    def _cmd(self, *args: str) -> list[str]:
        account = self._run_as()
        if account:
            return ["runuser", "-u", account, "--", *args]
        return list(args)

    def _chown(self, path: Path) -> None:
        account = self._run_as()
        if account:
            info = pwd.getpwnam(account)
            os.chown(path, info.pw_uid, info.pw_gid)

    # -- lifecycle ---------------------------------------------------------------------------
    def is_running(self) -> bool:
        """Tell whether the server answers on its socket."""
        bin_dir = _pg_bin()
        res = subprocess.run(
            [str(bin_dir / "pg_isready"), "-q", "-h", str(self.socket_dir), "-p", str(self.port)],
            check=False,
        )
        return res.returncode == 0

    def init(self) -> bool:
        """Create the cluster unless it exists; return True when it was created now."""
        bin_dir = _pg_bin()
        if not _postgis_available(bin_dir):
            raise EmbeddedDatabaseError(
                "PostGIS is not installed for this PostgreSQL: install the Debian package "
                "'postgresql-15-postgis-3' (as root: ./scripts/setup.sh does it)."
            )
        if (self.data_dir / "PG_VERSION").exists():
            return False
        self.root.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(mode=0o700, exist_ok=True)
        self._chown(self.root)
        self._chown(self.data_dir)
        account = self._run_as()
        if account and not self._reachable_by(account):
            raise EmbeddedDatabaseError(
                f"the folder {self.root} is not reachable by the account '{account}' that runs "
                "PostgreSQL (a parent folder is not searchable); set GRIDGOV_PG_DIR to a folder "
                "it can reach, or DATABASE_URL"
            )
        LOGGER.info("creating the private PostgreSQL cluster in %s", self.data_dir)
        res = subprocess.run(
            self._cmd(
                str(bin_dir / "initdb"),
                "-D",
                str(self.data_dir),
                "-U",
                SUPERUSER,
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C.UTF-8",
            ),
            capture_output=True,
            text=True,
            check=False,
        )
        if res.returncode != 0:
            raise EmbeddedDatabaseError(
                f"initdb failed: {res.stderr.strip() or res.stdout.strip()}"
            )
        return True

    def _reachable_by(self, account: str) -> bool:
        res = subprocess.run(
            ["runuser", "-u", account, "--", "test", "-w", str(self.data_dir)], check=False
        )
        return res.returncode == 0

    @contextlib.contextmanager
    def _starting(self) -> Iterator[None]:
        """Hold the cluster's start lock (a file lock in its folder): two processes starting
        it at once (two test runs, a command while the server starts) take turns, and the
        second finds it running instead of failing on PostgreSQL's own lock file."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / "start.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def start(self, timeout: float = 30.0) -> None:
        """Start the server (creating the cluster first if needed) and the database."""
        with self._starting():
            self._start_server(timeout)
            self.ensure_database()

    def start_server(self, timeout: float = 30.0) -> None:
        """Start the server unless it runs, creating the cluster first if needed."""
        with self._starting():
            self._start_server(timeout)

    def _start_server(self, timeout: float) -> None:
        if self.is_running():
            return
        self.init()
        bin_dir = _pg_bin()
        sock = self.socket_dir
        sock.mkdir(parents=True, exist_ok=True)
        self._chown(sock)
        if not self.log_file.exists():
            self.log_file.touch()
        self._chown(self.log_file)
        opts = (
            f"-k {sock} -p {self.port} -c listen_addresses= -c unix_socket_permissions=0700 "
            f"-c max_slot_wal_keep_size={replica_wal_keep()} "
            f"-c effective_io_concurrency={IO_CONCURRENCY} "
            f"-c max_connections={MAX_CONNECTIONS}"
        )
        res = subprocess.run(
            self._cmd(
                str(bin_dir / "pg_ctl"),
                "-D",
                str(self.data_dir),
                "-l",
                str(self.log_file),
                "-o",
                opts,
                "-w",
                "-t",
                str(int(timeout)),
                "start",
            ),
            capture_output=True,
            text=True,
            check=False,
        )
        if res.returncode != 0:
            tail = (
                self.log_file.read_text(errors="replace")[-2000:] if self.log_file.exists() else ""
            )
            raise EmbeddedDatabaseError(
                f"PostgreSQL did not start: {res.stderr.strip() or res.stdout.strip()}\n{tail}"
            )
        deadline = time.monotonic() + timeout
        while not self.is_running():
            if time.monotonic() > deadline:
                raise EmbeddedDatabaseError("PostgreSQL started but does not answer on its socket")
            time.sleep(0.1)

    def stop(self) -> bool:
        """Stop the server; return False when it was not running."""
        if not (self.data_dir / "PG_VERSION").exists() or not self.is_running():
            return False
        bin_dir = _pg_bin()
        subprocess.run(
            self._cmd(
                str(bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w", "stop"
            ),
            check=True,
            capture_output=True,
        )
        return True

    def status(self) -> dict[str, object]:
        """Describe the cluster: where it is, whether it runs, how to connect."""
        return {
            "data_dir": str(self.data_dir),
            "socket_dir": str(self.socket_dir),
            "initialised": (self.data_dir / "PG_VERSION").exists(),
            "running": self.is_running(),
            "url": self.url(),
            "owner_url": self.owner_url(),
        }

    def psql(self, database: str, sql: str) -> str:
        """Run one SQL statement through psql as the cluster's superuser."""
        bin_dir = _pg_bin()
        res = subprocess.run(
            [
                str(bin_dir / "psql"),
                "-X",
                "-q",
                "-t",
                "-A",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                str(self.socket_dir),
                "-p",
                str(self.port),
                "-U",
                SUPERUSER,
                "-d",
                database,
                "-c",
                sql,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if res.returncode != 0:
            raise EmbeddedDatabaseError(f"psql failed: {res.stderr.strip()}")
        return res.stdout.strip()

    def ensure_roles(self) -> None:
        """Create the owner's and the app's roles unless they exist, with their attributes."""
        statements = [LOCK_STARTS, *db_roles.role_statements(OWNER_ROLE, APP_ROLE)]
        self.psql("postgres", ";\n".join(statements))

    def ensure_database(self, name: str = DB_NAME) -> None:
        """Create the roles, the database (owned by the owner role) and its postgis extension
        unless they exist, and give the app's role its privileges.

        Idempotent; on a database made by an older version (everything owned by the
        superuser, the app connecting as it) this hands the database and its objects to the
        owner role and grants the app's role what it needs, in one transaction.
        """
        self.ensure_roles()
        exists = self.psql(
            "postgres", f"SELECT 1 FROM pg_database WHERE datname = {db_roles.literal(name)}"
        )
        if exists != "1":
            self.psql(
                "postgres",
                f"CREATE DATABASE {db_roles.ident(name)} OWNER {db_roles.ident(OWNER_ROLE)}",
            )
        statements = [
            LOCK_STARTS,
            "CREATE EXTENSION IF NOT EXISTS postgis",
            "CREATE EXTENSION IF NOT EXISTS pg_trgm",
            *db_roles.own_statements(OWNER_ROLE),
            *db_roles.hardening_statements(OWNER_ROLE, APP_ROLE),
            *db_roles.grant_statements(OWNER_ROLE, APP_ROLE),
        ]
        self.psql(name, ";\n".join(statements))

    def recreate_database(self, name: str) -> str:
        """Drop and create a database (for test runs); return its URL as the app's role
        (``owner_url(name)`` migrates it)."""
        self.psql("postgres", f"DROP DATABASE IF EXISTS {db_roles.ident(name)} WITH (FORCE)")
        self.ensure_database(name)
        return self.url(name)


# Pages a bitmap heap scan asks the kernel for ahead of reading them. PostgreSQL's default (1)
# asks for one page at a time, which also defeats the kernel's own read-ahead: a dense e-map
# tile whose 600 pages were not in memory read them in 37 ms with 1, 20 ms with 0 and 10 ms
# with 16 or more (bench/bench_emap_scale.py's cold tiles).
IO_CONCURRENCY = 64

# Every app process keeps up to 60 connections (app.db: a writing pool of 10 + 20 and two reading
# pools of 5 + 10), so PostgreSQL's default of 100 is used up by two busy `gridgov serve` workers.
# 300 leaves room for four such processes besides imports, backups and autovacuum.
MAX_CONNECTIONS = 300


def replica_wal_keep() -> str:
    """How much WAL a replica's slot may hold back on the primary (``GRIDGOV_REPLICA_WAL_KEEP``,
    default 2GB). A replica that stays stopped longer loses its slot instead of filling the
    primary's disk, and is copied afresh when it next starts."""
    value = os.environ.get("GRIDGOV_REPLICA_WAL_KEEP", "").strip() or "2GB"
    if not re.fullmatch(r"\d+\s*(kB|MB|GB|TB)?", value):
        raise EmbeddedDatabaseError(
            f"GRIDGOV_REPLICA_WAL_KEEP={value!r} is not a size: write a number with kB, MB, GB "
            "or TB, such as 2GB"
        )
    return value.replace(" ", "")


def default_cluster(project_root: Path | None = None) -> Cluster:
    """Return the cluster of this checkout (``GRIDGOV_PG_DIR`` overrides the folder).

    As root, the server runs as ``postgres``, which must be able to reach the folder; when a parent
    of the checkout is closed to other accounts (a checkout under /root, say), the cluster lives in
    a folder of the system's temporary area named after the checkout instead.
    """
    root = os.environ.get("GRIDGOV_PG_DIR")
    if root:
        return Cluster(Path(root).resolve())
    base = (project_root or Path(__file__).resolve().parent.parent).resolve()
    if os.geteuid() == 0 and not _searchable_by_others(base):
        digest = hashlib.sha1(str(base).encode()).hexdigest()[:12]
        fallback = Path("/var/tmp") / f"gridgov-pg-{digest}"
        LOGGER.info("%s is closed to the postgres account; the cluster lives in %s", base, fallback)
        return Cluster(fallback)
    return Cluster(base / "var" / "pg")


def _searchable_by_others(path: Path) -> bool:
    """Tell whether every folder from / down to ``path`` lets other accounts pass through."""
    for folder in [path, *path.parents]:
        try:
            if not os.stat(folder).st_mode & 0o001:
                return False
        except OSError:
            return False
    return True
