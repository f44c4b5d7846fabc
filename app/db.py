"""The database engine, the per-request session and the driver-level ``Reader``.

Created unbound and wired into the app by ``init_app``. Views and services get the session of
the current request with ``get_session()``; it is closed when the app context ends.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from flask import Flask, current_app, g, has_app_context
from psycopg.rows import namedtuple_row
from sqlalchemy import Engine, TextClause, create_engine
from sqlalchemy.dialects.postgresql import psycopg as pg_dialect
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

from app import replicas
from app.embedded_pg import DB_NAME, default_cluster

LOGGER = logging.getLogger(__name__)
T = TypeVar("T")

#: The pool of sessions (transactions, writes): a connection is pinged before each use.
WRITE_POOL: dict[str, Any] = {"pool_size": 10, "max_overflow": 20, "pool_pre_ping": True}

#: The pools of reads that need no transaction (the primary's read pools, each replica's):
#: statements on their own (autocommit), so nothing to reset when a connection goes back, and
#: no ping before each use; connections renewed hourly.
READ_POOL: dict[str, Any] = {
    "pool_size": 5,
    "max_overflow": 10,
    "pool_recycle": 3600,
    "pool_reset_on_return": None,
    "isolation_level": "AUTOCOMMIT",
}


class Database:
    """Hold the engine and the session factory of one app."""

    def __init__(self) -> None:
        self.engine: Engine | None = None
        self.read_engine: Engine | None = None
        self.dbapi_engine: Engine | None = None
        self.fast_engine: Engine | None = None
        self.factory: sessionmaker[Session] | None = None
        self.read_factory: sessionmaker[Session] | None = None
        self.own_read_factory: sessionmaker[Session] | None = None
        # The read replicas (app/replicas.py: where each request reads), None without any.
        self.router: replicas.Router | None = None
        # Called with the session inside every ``transaction`` just before it commits (the
        # audit entry of the change is written there, so both commit or neither).
        self.before_commit: list[Callable[[Session], None]] = []

    def init_app(self, app: Flask) -> None:
        url = app.config.get("DATABASE_URL")
        if not url:
            cluster = default_cluster()
            cluster.start()
            url = cluster.url()
            app.config["DATABASE_URL"] = url
            app.config["MIGRATION_DATABASE_URL"] = cluster.owner_url()
            if not app.config.get("DATABASE_READ_URL"):
                from app.embedded_replica import running_urls

                app.config["DATABASE_READ_URL"] = running_urls(cluster, DB_NAME)
        elif not app.config.get("MIGRATION_DATABASE_URL"):
            app.config["MIGRATION_DATABASE_URL"] = url
        self.engine = create_engine(url, **WRITE_POOL)
        self.factory = sessionmaker(self.engine, expire_on_commit=False)
        # Reads that need no transaction (a locate) skip BEGIN and ROLLBACK: two round trips
        # fewer per request, which is most of a single locate's time.
        # Its own small pool without a ping before each use (another round trip and a good
        # part of a locate's CPU); a dead connection is caught by ``run_read`` instead.
        # In autocommit there is no transaction to roll back when a connection goes back to
        # the pool, so it is not reset (a good part of a pooled checkout's cost).
        self.read_engine = create_engine(url, **READ_POOL)
        self.read_factory = sessionmaker(self.read_engine, expire_on_commit=False)
        self.own_read_factory = self.read_factory
        # The driver-level reads (``run_read_dbapi``: every request's session look-up and the
        # single locate) get a pool of their own whose connections always run the generic plan
        # of a prepared statement. Their statements find rows by key or through the spatial
        # index whatever the values, but with PostgreSQL's default choice the locate's
        # statement was planned afresh on every call at 100k grids (its generic plan's cost
        # estimate looks worse than a custom one's), which cost more CPU than running it.
        self.dbapi_engine = create_engine(url, **READ_POOL, connect_args=generic_plans(url))
        # The locate below Flask (app/api/locate_fast.py) keeps one connection per server
        # thread for the thread's life: not taken from the pool above, which Flask's requests
        # on the same threads need as well (more threads than it holds would wait for ever).
        self.fast_engine = create_engine(
            url,
            poolclass=NullPool,
            isolation_level="AUTOCOMMIT",
            connect_args=generic_plans(url),
        )
        app.extensions["gridgov_db"] = self
        app.teardown_appcontext(_close_session)
        replicas.init_app(app, self)

    def bind_to(self, connection: Connection) -> None:
        """Make every session join ``connection``'s transaction through savepoints (tests)."""
        self.factory = sessionmaker(
            bind=connection, expire_on_commit=False, join_transaction_mode="create_savepoint"
        )
        self.read_factory = self.factory

    def dispose(self) -> None:
        """Close every pooled connection (before a fork, at shutdown)."""
        for engine in (self.engine, self.read_engine, self.dbapi_engine, self.fast_engine):
            if engine is not None:
                engine.dispose()
        if self.router is not None:
            self.router.dispose()

    def session(self) -> Session:
        assert self.factory is not None, "init_app() was not called"
        return self.factory()

    def read_session(self) -> Session:
        """Return a session for reads only: each statement runs on its own (autocommit)."""
        assert self.read_factory is not None, "init_app() was not called"
        return self.read_factory()


def generic_plans(url: str) -> dict[str, Any]:
    """Connection arguments that make a connection's prepared statements run their generic
    plan (``plan_cache_mode``), unless the URL sets server options of its own."""
    if "options=" in str(url):
        return {}
    return {"options": "-c plan_cache_mode=force_generic_plan"}


def get_db() -> Database:
    """Return the Database of the current app."""
    return current_app.extensions["gridgov_db"]


def get_session() -> Session:
    """Return the session of the current request, opening it on first use."""
    if "db_session" not in g:
        g.db_session = replicas.session_for_request() or get_db().session()
    return g.db_session


def get_read_session() -> Session:
    """Return the read-only session of the current request (no transaction), opening it on
    first use. Never write through it."""
    if "db_read_session" not in g:
        g.db_read_session = replicas.session_for_request() or get_db().read_session()
    return g.db_read_session


def run_read(read: Callable[[Session], T]) -> T:
    """Run ``read`` on the request's read session; once more on a fresh connection when the
    pooled one turns out dead (the read pool does not ping before use)."""
    try:
        return read(get_read_session())
    except DBAPIError as exc:
        if not exc.connection_invalidated:
            raise
        LOGGER.warning("a pooled database connection was dead; reading again on a new one")
        stale = g.pop("db_read_session", None)
        if stale is not None:
            stale.close()
        return read(get_read_session())


def run_read_dbapi(read: Callable[[Any], T], primary: bool = False) -> T:
    """Run ``read`` on a DBAPI connection checked out of the read pool, with no ORM session
    (the hot single locate: the session's set-up and close cost more CPU than its query).

    Once more on a fresh connection when the pooled one turns out dead. While the app's
    sessions are bound to a test's transaction (``bind_to``), ``read`` gets the request's read
    session instead, so that it sees what the test wrote. A routed read runs on its replica
    (app/replicas.py) unless ``primary``.
    """
    replica = None if primary else replicas.dbapi_for_request()
    if replica is not None:
        return read(replica)
    db = get_db()
    if db.read_factory is not db.own_read_factory or db.dbapi_engine is None:
        return run_read(read)
    engine = db.dbapi_engine
    # One connection serves every such read of a request (the session look-up, then the
    # locate): it goes back to the pool when the request ends (``_close_session``).
    # Every pooled connection may have died together (a server restart): each dead one found is
    # thrown away, and the read tried again, at most once per connection the pool can hold.
    attempts = engine.pool.size() + engine.pool._max_overflow + 1  # type: ignore[attr-defined]
    for attempt in range(attempts):
        conn = g.get("db_dbapi_conn")
        if conn is None:
            conn = g.db_dbapi_conn = engine.raw_connection()
        try:
            return read(conn)
        except engine.dialect.loaded_dbapi.Error as exc:
            dead = engine.dialect.is_disconnect(exc, conn.dbapi_connection, None)
            if not dead:
                raise
            LOGGER.warning("a pooled database connection was dead; reading again on another")
            g.pop("db_dbapi_conn", None)
            conn.invalidate(exc)
            conn.close()
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


def _close_session(_exc: BaseException | None = None) -> None:
    for key in ("db_session", "db_read_session"):
        sess = g.pop(key, None)
        if sess is not None:
            sess.close()
    conn = g.pop("db_dbapi_conn", None)
    if conn is not None:
        conn.close()


@contextmanager
def transaction(session: Session) -> Iterator[Session]:
    """Run a block as one transaction: commit on success, roll back on any error."""
    try:
        yield session
        if has_app_context():
            for hook in get_db().before_commit:
                hook(session)
        session.commit()
    except BaseException:
        session.rollback()
        raise


def driver_sql(stmt: TextClause) -> str:
    """Return a statement in the driver's own parameter style (``%(name)s``)."""
    return str(stmt.compile(dialect=pg_dialect.dialect()))


def binary_rows(
    session: Session, sql: str, params: dict[str, Any]
) -> tuple[list[str], list[tuple]]:
    """The column names and rows (plain tuples) of a read in the driver's parameter style
    (``driver_sql``), run on the session's connection inside its transaction with the rows sent
    in PostgreSQL's binary format. For reads of tens of thousands of rows: parsing their text
    and building SQLAlchemy rows is most of the client's CPU (the household ranking's 100,000
    rows: three times as much)."""
    raw = session.connection().connection.driver_connection
    with raw.cursor() as cur:
        cur.execute(sql, params, binary=True)
        return [d.name for d in cur.description or ()], cur.fetchall()


class Reader:
    """Run the single locate's statements straight on the driver, skipping SQLAlchemy's
    compiling and result layers (a good part of a locate's CPU).

    ``db`` is a Session — the statements run on its connection, inside its transaction if it
    has one, and SQLAlchemy still sees their errors (a dead connection is invalidated) — or a
    DBAPI connection checked out of the read pool (``app.db.run_read_dbapi``: no ORM session
    at all). Rows come back with attribute access either way.
    """

    __slots__ = ("_session", "_dbapi")

    def __init__(self, db: Session | Any) -> None:
        self._session = db if isinstance(db, Session) else None
        self._dbapi = None if isinstance(db, Session) else db

    def all(self, sql: str, params: dict[str, Any]) -> list[Any]:
        if self._session is not None:
            return list(self._session.connection().exec_driver_sql(sql, params).all())
        cur = self._dbapi.cursor(row_factory=namedtuple_row)
        try:
            cur.execute(sql, params)
            return cur.fetchall()
        finally:
            cur.close()

    def first(self, sql: str, params: dict[str, Any]) -> Any:
        rows = self.all(sql, params)
        return rows[0] if rows else None
