"""Reads on streaming replicas: the one place that decides where a request reads.

``DATABASE_READ_URL`` names one or more replicas (comma-separated URLs; with no ``DATABASE_URL``
the private cluster's running replicas, ``gridgov db start --replicas N``). The rule:

* A ``GET``/``HEAD`` request of one of ``READ_ENDPOINTS`` — the heavy read-only paths: vector
  tiles, locate, the e-map's labels, pick and home, coverage reads, KPIs, the overview and the
  search — reads from a replica (round robin). None of them writes: no audit entry, no cache
  table; a read of personal data that writes its audit entry is not in the list and stays on
  the primary.
* Every other request — every write, every page, every read of personal data — uses the
  primary, as does a routed read while no replica can serve it.
* Read-your-writes: a state-changing request that succeeds answers the primary's WAL position
  after its commit (``pg_current_wal_lsn()``) in the ``X-After-LSN`` header and a short-lived
  cookie; a read that brings a position back (the cookie, or the header from a token client)
  goes to a replica only when the replica has replayed that far. The replica's replay position
  (``pg_last_wal_replay_lsn()``) is read then, once, on the connection the request will use; a
  read that brings no position costs no round trip more than on the primary.
* A replica that cannot be reached (no new connection, or a pooled one found dead by the
  request's first statement, the session look-up) is marked down for
  ``READ_REPLICA_RETRY_SECONDS`` (one log line) and the request, and the reads after it, go to
  another replica or the primary meanwhile; the first request after that tries it again.
* The sign-in session look-up of a routed read runs on the replica (a session the replica does
  not hold yet is looked up on the primary); its once-a-minute ``last_seen_at`` update goes to
  the primary and is skipped while the primary is down, so reads go on from the replica.

Answers of the routable paths say where they read in ``X-Read-From`` (``primary`` or the
replica's name).
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import psycopg
from flask import Flask, Response, current_app, g, has_request_context, request
from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

LOGGER = logging.getLogger(__name__)
T = TypeVar("T")

#: Endpoints whose GET/HEAD requests read from a replica (each reads only; see the docstring).
READ_ENDPOINTS = frozenset(
    {
        "tiles.tile",
        "locate_api.locate",
        "locate_api.neighbours",
        "emap.home",
        "emap.labels",
        "emap.pick",
        "coverage_api.report",
        "coverage_api.circles",
        "coverage_api.uncovered",
        "cases_api.kpis",
        "overview_api.overview",
        "search_api.search",
    }
)
LSN_HEADER = "X-After-LSN"
LSN_COOKIE = "gg_after_lsn"
WHERE_HEADER = "X-Read-From"
#: How long the read-your-writes cookie lives (seconds): far longer than a replica's lag.
LSN_COOKIE_SECONDS = 60
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
#: Errors that mean the database cannot be reached (as raised by SQLAlchemy or the driver).
DOWN_ERRORS = (DBAPIError, psycopg.OperationalError, psycopg.InterfaceError)


def parse_lsn(text: str | None) -> int | None:
    """Return a WAL position such as ``16/B374D848`` as a number, or None when malformed."""
    if not text or "/" not in text or len(text) > 20:
        return None
    high, _, low = text.strip().partition("/")
    try:
        return (int(high, 16) << 32) + int(low, 16)
    except ValueError:
        return None


@dataclass
class Replica:
    name: str
    engine: Engine
    down_until: float = 0.0
    down: bool = False


@dataclass
class Route:
    """Where a request reads: a replica and the connection checked out of its pool."""

    replica: Replica
    conn: Connection


class Router:
    """The replicas of one app: their pools, which are down, whose turn it is."""

    def __init__(self, urls: list[str], retry_seconds: float = 5.0) -> None:
        from app.db import READ_POOL  # app.db imports this module

        self.retry_seconds = retry_seconds
        self.replicas = [
            Replica(
                f"replica-{i}",
                # Like the primary's read pool: statements on their own, no reset on return;
                # no ping either — the replay position read on checkout is the ping.
                create_engine(url, **READ_POOL),
            )
            for i, url in enumerate(urls, start=1)
        ]
        self._turn = itertools.count()

    def pick(self, after: int | None) -> Route | None:
        """Check out a connection of a replica that is up and has replayed ``after`` (a WAL
        position, or None), or return None (read from the primary)."""
        now = time.monotonic()
        first = next(self._turn)
        for i in range(len(self.replicas)):
            r = self.replicas[(first + i) % len(self.replicas)]
            if r.down_until > now:
                continue
            found = self._checkout(r, after)
            if found is not None:
                return found
        return None

    def _checkout(self, r: Replica, after: int | None) -> Route | None:
        for attempt in (1, 2):  # a pooled connection dead since a restart: once more, fresh
            try:
                conn = r.engine.connect()
            except DBAPIError as exc:
                self._mark_down(r, exc)
                return None
            if after is None:
                # Nothing to wait for: no round trip here. A pooled connection that turns out
                # dead on its first statement (the session look-up) sends the request to
                # another replica or the primary (``abandon``).
                self._back(r)
                return Route(r, conn)
            try:
                replay = conn.exec_driver_sql("SELECT pg_last_wal_replay_lsn()::text").scalar()
            except DBAPIError as exc:
                conn.close()
                if exc.connection_invalidated and attempt == 1:
                    continue
                self._mark_down(r, exc)
                return None
            if replay is None:  # not (or no longer) a standby: never read it as a replica
                conn.close()
                self._mark_down(r, RuntimeError("not a streaming replica"))
                return None
            self._back(r)
            if after is not None and (parse_lsn(replay) or 0) < after:
                conn.close()
                return None
            return Route(r, conn)
        return None

    def _back(self, r: Replica) -> None:
        if r.down:
            r.down = False
            LOGGER.warning("read replica %s is back; reads go to it again", r.name)

    def abandon(self, route: Route, exc: BaseException) -> None:
        """Give up a replica whose connection failed: mark it down, drop its pool."""
        try:
            route.conn.invalidate()
            route.conn.close()
        except DBAPIError:
            pass
        route.replica.engine.dispose()
        self._mark_down(route.replica, exc)

    def _mark_down(self, r: Replica, exc: BaseException) -> None:
        r.down_until = time.monotonic() + self.retry_seconds
        if not r.down:
            r.down = True
            first = (str(getattr(exc, "orig", exc)).splitlines() or ["?"])[0]
            LOGGER.warning(
                "read replica %s is unreachable (%s); reading from the primary, retrying every %g s",
                r.name,
                first,
                self.retry_seconds,
            )

    def dispose(self) -> None:
        for r in self.replicas:
            r.engine.dispose()


def read_urls(value: str | list[str] | None) -> list[str]:
    """Split a ``DATABASE_READ_URL`` setting into its URLs."""
    if not value:
        return []
    items = value if isinstance(value, list) else value.split(",")
    return [u.strip() for u in items if u and u.strip()]


def init_app(app: Flask, db: Any) -> None:
    """Set the app's replicas up from ``DATABASE_READ_URL`` (nothing to do without one)."""
    urls = read_urls(app.config.get("DATABASE_READ_URL"))
    db.router = None
    if not urls:
        return
    db.router = Router(urls, float(app.config.get("READ_REPLICA_RETRY_SECONDS") or 5.0))
    app.after_request(_after_request)
    app.teardown_appcontext(_release)


def _router() -> Router | None:
    if not has_request_context():
        return None
    db = current_app.extensions.get("gridgov_db")
    if db is None or getattr(db, "router", None) is None:
        return None
    if db.read_factory is not db.own_read_factory:  # bound to a test's transaction
        return None
    return db.router


def _routable() -> bool:
    return request.method in ("GET", "HEAD") and request.endpoint in READ_ENDPOINTS


def _wanted_lsn() -> int | None:
    return parse_lsn(request.headers.get(LSN_HEADER) or request.cookies.get(LSN_COOKIE))


def route() -> Route | None:
    """Where the current request reads (None: the primary); decided on first use."""
    if "db_route" in g:
        return g.db_route
    router = _router()
    g.db_route = router.pick(_wanted_lsn()) if router is not None and _routable() else None
    return g.db_route


def session_for_request() -> Session | None:
    """A session on the request's replica connection, or None when it reads from the primary."""
    r = route()
    if r is None:
        return None
    # ``info["replica"]``: services that would write beside a read (the tile cache) do not.
    return Session(bind=r.conn, expire_on_commit=False, info={"replica": True})


def dbapi_for_request() -> Any | None:
    """The request's replica connection at the driver level, or None (the primary)."""
    r = route()
    return r.conn.connection if r is not None else None


def _primary(read: Callable[[Any], T]) -> T:
    from app.db import run_read_dbapi

    return run_read_dbapi(read, primary=True)


class _TouchOnPrimary:
    """A driver-level reader whose writes (the session's ``last_seen_at``) go to the primary,
    and are skipped while it is down."""

    def __init__(self, reader_cls: type, conn: Any) -> None:
        self._cls = reader_cls
        self._reader = reader_cls(conn)

    def all(self, sql: str, params: dict[str, Any]) -> list[Any]:
        if sql.lstrip()[:6].upper() not in ("UPDATE", "INSERT", "DELETE"):
            return self._reader.all(sql, params)
        try:
            return _primary(lambda db: self._cls(db).all(sql, params))
        except DOWN_ERRORS:
            LOGGER.info("the primary is unreachable; a session's last use is not recorded")
            return []

    def first(self, sql: str, params: dict[str, Any]) -> Any:
        rows = self.all(sql, params)
        return rows[0] if rows else None


def look_up_session(reader_cls: type, read: Callable[[Any], T]) -> T | None:
    """Run the sign-in session look-up ``read(reader)`` where the request reads (see the
    module's docstring); ``reader_cls`` wraps a driver connection."""
    router = _router()
    if router is None:
        return _primary(lambda db: read(reader_cls(db)))
    r = route()
    while r is not None:
        try:
            row = read(_TouchOnPrimary(reader_cls, r.conn.connection))
        except DOWN_ERRORS as exc:
            # The replica went away since its connection was pooled: read elsewhere.
            router.abandon(r, exc)
            g.db_route = r = router.pick(_wanted_lsn())
            continue
        if row is not None:
            return row
        break
    try:
        return _primary(lambda db: read(reader_cls(db)))
    except DOWN_ERRORS:
        # The primary is down: a routed read that waited for a position goes on from a replica.
        if r is not None or not _routable():
            raise
        g.db_route = r = router.pick(None)
        if r is None:
            raise
        LOGGER.warning(
            "the primary is unreachable; %s %s reads from %s",
            request.method,
            request.path,
            r.replica.name,
        )
        return read(_TouchOnPrimary(reader_cls, r.conn.connection))


def _primary_lsn() -> str | None:
    def current(conn: Any) -> str:
        cur = conn.cursor()
        try:
            cur.execute("SELECT pg_current_wal_lsn()::text")
            return cur.fetchone()[0]
        finally:
            cur.close()

    try:
        return _primary(current)
    except DOWN_ERRORS:
        return None


def _after_request(response: Response) -> Response:
    if _router() is None:
        return response
    r = g.get("db_route")
    if r is not None:
        response.headers[WHERE_HEADER] = r.replica.name
    elif _routable():
        response.headers[WHERE_HEADER] = "primary"
    if request.method not in SAFE_METHODS and response.status_code < 400:
        lsn = _primary_lsn()
        if lsn:
            response.headers[LSN_HEADER] = lsn
            response.set_cookie(
                LSN_COOKIE,
                lsn,
                max_age=LSN_COOKIE_SECONDS,
                path="/",
                httponly=True,
                samesite="Lax",
                secure=bool(current_app.config.get("SESSION_COOKIE_SECURE")),
            )
    return response


def _release(_exc: BaseException | None = None) -> None:
    r = g.pop("db_route", None)
    if r is None:
        return
    # Sessions on the replica's connection go first, then the connection back to its pool.
    for key in ("db_session", "db_read_session"):
        sess = g.get(key)
        if sess is not None and sess.bind is r.conn:
            g.pop(key).close()
    r.conn.close()
