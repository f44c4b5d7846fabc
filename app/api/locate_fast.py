"""The plain single locate answered below Flask: the same answer as ``GET /api/locate``, for less.

A locate is the hot path of the field app (a tap on the phone, every case reported). Flask's
dispatch and hooks cost about as much CPU as the locate itself, so the common request — a GET
of ``/api/locate`` with ``lon``/``lat`` (or ``x``/``y``), perhaps ``crs``, ``tolerance`` and a
plain ``category``, from a live bearer token or session cookie, on an app without read
replicas — is answered here, at the WSGI level, by the very functions the Flask route and its
hooks call:

- the caller's session and the point's grids in one statement
  (``locate.locate_with_session``, ``users.LOOKUP_SQL``), the principal by
  ``auth.principal_of_row``, a browser session kept alive by ``users.keep_alive``;
- the access rule of ``locate_api.locate`` from ``policy.RULES`` (the role);
- ``locate.locate_point`` for the answer, serialised by the app's JSON provider as
  ``jsonify`` does;
- the security headers of every answer (``auth.security_headers``).

Anything else goes to Flask unchanged, which then answers as always: other methods (HEAD
included), other or repeated parameters, values that are not plain numbers or words, an
unknown CRS or coordinates out of range, no live session (401), a role the rule refuses (403),
a point the caller's grids cannot be shown to hold (Flask's scope check answers 200 or 404),
read replicas or a read-your-writes position, a debug app, an app with ``TRUSTED_HOSTS``
(Flask checks the Host header), and any error at all on the way
(nothing here writes but the session's keep-alive, which Flask would write the same).
``LOCATE_FAST_PATH = False`` turns it off; tests/api/test_locate_fast.py holds both ways to the
same status, body and headers.
"""

from __future__ import annotations

import logging
import re
import secrets
import threading
from typing import Any

from flask import Flask
from werkzeug.http import parse_cookie

from app import auth
from app.auth.policy import rule_for, sees_every_grid
from app.db import Reader
from app.replicas import LSN_COOKIE
from app.services import locate as svc
from app.services import users as user_svc

LOGGER = logging.getLogger(__name__)

PATH = "/api/locate"
ENDPOINT = "locate_api.locate"
#: A plain decimal number (no exponent, no blanks, no sign but a leading minus).
_NUMBER = re.compile(r"-?\d{1,12}(?:\.\d{1,17})?")
#: A CRS name or a category code as sent without escapes.
_WORD = re.compile(r"[A-Za-z0-9_.:-]{1,40}")
_NUMBERS = frozenset({"lon", "lat", "x", "y", "tolerance"})
_WORDS = frozenset({"crs", "category"})
_WORKER_ROLES = frozenset({"grid_chief", "micro_chief", "worker", "party_member"})


def _args(query: str) -> tuple[float, float, float, str | None, str | None] | None:
    """The parameters of a plain locate, or None (Flask parses it)."""
    found: dict[str, str] = {}
    for part in query.split("&"):
        name, eq, value = part.partition("=")
        if not eq or name in found:
            return None
        if name in _NUMBERS:
            if not _NUMBER.fullmatch(value):
                return None
        elif name not in _WORDS or not _WORD.fullmatch(value):
            return None
        found[name] = value
    if "lon" in found and "lat" in found and "x" not in found and "y" not in found:
        x, y = float(found["lon"]), float(found["lat"])
    elif "x" in found and "y" in found and "lon" not in found and "lat" not in found:
        x, y = float(found["x"]), float(found["y"])
    else:
        return None
    tolerance = svc.NEAREST_TOLERANCE_M
    if "tolerance" in found:
        tolerance = float(found["tolerance"])
        if not 0 <= tolerance <= 500:
            return None
    return x, y, tolerance, found.get("crs"), found.get("category")


def _token(environ: dict[str, Any]) -> tuple[str, str] | None:
    """The token and how it came (as ``auth`` reads it), or None (Flask looks it up)."""
    header = environ.get("HTTP_AUTHORIZATION")
    if header is not None:
        if header[:7].lower() != "bearer ":
            return None
        token, via = header[7:].strip(), "token"
    else:
        cookie = environ.get("HTTP_COOKIE")
        if not cookie:
            return None
        cookies = parse_cookie(cookie)
        if LSN_COOKIE in cookies:
            return None
        token, via = cookies.get(auth.SESSION_COOKIE) or "", "browser"
    if not token or len(token) > 200:
        return None
    return token, via


def _own_grid(p: auth.Principal, mine: set[int], result: dict[str, Any]) -> bool:
    """True when the located grid is surely the caller's: the caller answers for every grid,
    or a grid on its chain is the caller's own (``mine``: the grids a worker is assigned to,
    among those at the point); otherwise Flask's scope check answers (200 or 404)."""
    if sees_every_grid(p):
        return True
    chain_ids = {grid["id"] for grid in result.get("chain") or []}
    if not chain_ids:
        return False
    if p.role == "centre":
        return p.grid_id is not None and p.grid_id in chain_ids
    if p.role in _WORKER_ROLES and p.worker_id:
        return not mine.isdisjoint(chain_ids)
    return False


class FastLocate:
    """WSGI middleware in front of the Flask app: answers the plain locate, passes the rest."""

    def __init__(self, app: Flask, inner: Any) -> None:
        self.app = app
        self.inner = inner
        self._local = threading.local()
        # Every connection kept, by the thread that keeps it: one of a thread that has ended
        # is closed when the next is opened, and all of them by ``close``.
        self._kept: dict[threading.Thread, Any] = {}
        self._lock = threading.Lock()

    def close(self) -> None:
        """Close every thread's connection (an app being shut down)."""
        with self._lock:
            kept, self._kept = self._kept, {}
        self._local = threading.local()
        for conn in kept.values():
            conn.close()

    def _connection(self, engine: Any) -> Any:
        """The calling thread's connection, opened on its first locate."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            return conn
        with self._lock:
            ended = [t for t in self._kept if not t.is_alive()]
            stale = [self._kept.pop(t) for t in ended]
        for old in stale:
            old.close()
        conn = engine.raw_connection()
        with self._lock:
            self._kept[threading.current_thread()] = conn
        self._local.conn = conn
        return conn

    def _drop(self, conn: Any) -> None:
        """Forget the calling thread's connection (it failed) and close it."""
        self._local.conn = None
        with self._lock:
            self._kept.pop(threading.current_thread(), None)
        conn.close()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get("PATH_INFO") == PATH and environ.get("REQUEST_METHOD") == "GET":
            answer = self.answer(environ)
            if answer is not None:
                headers, body = answer
                start_response("200 OK", headers)
                return [body]
        return self.inner(environ, start_response)

    def answer(self, environ: dict[str, Any]) -> tuple[list[tuple[str, str]], bytes] | None:
        """The headers and body of a 200 answer, or None: Flask answers."""
        app = self.app
        config = app.config
        if not config.get("LOCATE_FAST_PATH", True) or app.debug or app.json.compact is False:
            return None
        if config.get("TRUSTED_HOSTS"):
            return None  # Flask checks the Host header against them
        db = app.extensions["gridgov_db"]
        if db.router is not None or db.read_factory is not db.own_read_factory:
            return None  # replicas decide where it reads; a test's transaction: Flask
        if environ.get("HTTP_X_AFTER_LSN") is not None:
            return None
        args = _args(environ.get("QUERY_STRING", ""))
        if args is None:
            return None
        found = _token(environ)
        if found is None:
            return None
        rule = rule_for(ENDPOINT)
        if rule is None or rule.check is not None:
            return None
        x, y, tolerance, crs, category = args
        token, via = found
        limits = {
            k: v if config.get(k) is None else config[k] for k, v in user_svc.DEFAULT_LIMITS.items()
        }
        engine = db.fast_engine
        # Each server thread keeps a connection of its own for its locates (opening one, or a
        # checkout and return per request, cost a tenth of the request or more); one that fails
        # is closed, invalidated when it is dead, and Flask answers.
        conn = None
        try:
            conn = self._connection(engine)
            result = self._locate(conn, rule, x, y, tolerance, crs, category, token, via, limits)
        except Exception as exc:  # noqa: BLE001 - whatever failed, Flask answers as always
            if conn is not None and isinstance(exc, engine.dialect.loaded_dbapi.Error):
                if engine.dialect.is_disconnect(exc, conn.dbapi_connection, None):
                    conn.invalidate(exc)
                self._drop(conn)
            LOGGER.debug("locate fast path passed a request to Flask: %r", exc)
            return None
        if result is None:
            return None
        body = (app.json.dumps(result, separators=(",", ":")) + "\n").encode()
        headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
        headers += auth.security_headers(
            config,
            secrets.token_urlsafe(16),
            environ.get("wsgi.url_scheme") == "https",
            True,
        )
        return headers, body

    @staticmethod
    def _locate(
        conn: Any,
        rule: Any,
        x: float,
        y: float,
        tolerance: float,
        crs: str | None,
        category: str | None,
        token: str,
        via: str,
        limits: dict[str, Any],
    ) -> dict[str, Any] | None:
        row = svc.locate_with_session(conn, x, y, crs, user_svc.lookup_params(token, limits))
        p = auth.principal_of_row(row, via)
        if p is None or p.role not in rule.roles:
            return None
        if row.kind == "browser":
            user_svc.keep_alive(Reader(conn), row)
        # The grids at the point the caller is assigned to (from their cards).
        mine = (
            {
                h["id"]
                for h in row.hits or ()
                if any(a["worker_id"] == p.worker_id for a in h["people"])
            }
            if p.worker_id
            else set()
        )
        result = svc.locate_point(
            conn, x, y, crs, category=category, tolerance_m=tolerance, prefetched=row
        )
        if not _own_grid(p, mine, result):
            return None
        return result


def install(app: Flask) -> None:
    """Put the fast path in front of the app's WSGI callable."""
    app.wsgi_app = FastLocate(app, app.wsgi_app)  # type: ignore[method-assign]
