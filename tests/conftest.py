"""Fixtures on a real PostGIS: a migrated test database with the sample loaded, per-test
transactions that roll back, a live server for browser tests, and a headless Chromium page.

The database is the private cluster's ``gridgov_test_<pid>`` (this run's own, created fresh and
dropped at the end: see ``own_database``), or the server named
by GRIDGOV_TEST_DATABASE_URL (a throwaway database: the tests write to it; migrated as the role
of GRIDGOV_TEST_MIGRATION_DATABASE_URL when set). It is migrated as the schema's owner, and every
test serves requests as the app's unprivileged role, so the whole suite shows that the app needs
no more (tests/test_db_roles.py).
"""

from __future__ import annotations

import collections
import os
import socket
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, pool, text
from sqlalchemy.orm import Session

from app import create_app
from app import migrate as mig
from app.db import get_db, transaction
from app.embedded_pg import OWNER_ROLE, default_cluster
from app.services import coverage, importer, tiles
from app.services import users as user_svc

CHROMIUM = os.environ.get("GRIDGOV_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    # WebGL (MapLibre draws the e-map's vector tiles) in software, headless, with no GPU.
    "--enable-unsafe-swiftshader",
]


@pytest.fixture(scope="session")
def cluster():  # type: ignore[no-untyped-def]
    """The private PostgreSQL + PostGIS cluster of this checkout, started when needed."""
    c = default_cluster()
    c.start()
    return c


def own_database(name: str) -> str:
    """The name of this test run's own copy of database ``name`` on the checkout's cluster.

    Two test runs in one checkout at once (two pytest commands) share its cluster: with one
    fixed name each would drop and refill the other's database mid-run (the second to create
    the test accounts finds them there already). Each run's databases carry its process id.
    """
    return f"{name}_{os.getpid()}"


def _drop_leftovers(cluster, name: str) -> None:  # type: ignore[no-untyped-def]
    """Drop the copies of ``name`` left by test runs that ended without dropping them."""
    listed = cluster.psql(
        "postgres", f"SELECT datname FROM pg_database WHERE datname LIKE '{name}\\_%'"
    )
    for db in listed.split():
        pid = db.rsplit("_", 1)[1]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            cluster.psql("postgres", f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


@pytest.fixture(scope="session")
def run_database(cluster) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """The name of this run's test database on the cluster: fresh and empty, dropped at the end."""
    _drop_leftovers(cluster, "gridgov_test")
    name = own_database("gridgov_test")
    cluster.recreate_database(name)
    yield name
    cluster.psql("postgres", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def copy_database(cluster, template: str, name: str) -> str:  # type: ignore[no-untyped-def]
    """Make database ``name`` afresh as a copy of ``template`` (``CREATE DATABASE … TEMPLATE``),
    owned and granted as ``recreate_database`` leaves a database; return its URL as the app's
    role. The template must have no open connection."""
    cluster.psql("postgres", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    cluster.psql("postgres", f'CREATE DATABASE "{name}" TEMPLATE "{template}" OWNER "{OWNER_ROLE}"')
    cluster.ensure_database(name)
    return cluster.url(name)


def close_template(cluster, name: str) -> None:  # type: ignore[no-untyped-def]
    """Make database ``name`` a template nobody can connect to: a copy of a database fails
    while another session is connected to it, so no connection (a pool left open, a test's
    engine) may reach it once it is made; a session still open is ended."""
    cluster.psql("postgres", f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false')
    cluster.psql(
        "postgres",
        "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity "
        f"WHERE datname = '{name}' AND pid <> pg_backend_pid()",
    )


@pytest.fixture(scope="session")
def migrated_template(cluster) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """A database of this run migrated to every head (as the owner, the app's role granted) and
    holding no data: what a test that needs a fresh migrated database of its own copies
    (``copy_database``) instead of running every migration again; closed to connections
    (``close_template``). Dropped at the end."""
    _drop_leftovers(cluster, "gridgov_test")
    name = own_database("gridgov_test_migrated")
    url = cluster.recreate_database(name)
    mig.upgrade(cluster.owner_url(name), app_url=url)
    close_template(cluster, name)
    yield name
    cluster.psql("postgres", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def sample_template(cluster, migrated_template: str) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """A copy of ``migrated_template`` with the sample street and village loaded (by the app's
    role, as `gridgov load-sample` does): what the run's test database and the tests that
    need the sample in a database of their own copy; closed to connections. Dropped at the end."""
    name = own_database("gridgov_test_sample")
    url = copy_database(cluster, migrated_template, name)
    _load_sample(url)
    _analyze(cluster.owner_url(name))
    close_template(cluster, name)
    yield name
    cluster.psql("postgres", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _load_sample(url: str) -> None:
    """Load the sample street and village into the database of ``url`` (the app's role).

    The caller then gathers the tables' statistics (``_analyze``, as their owner), as
    autovacuum does on a running server within a minute or so of a load. A
    database copied from a template gets them with it. Without them the planner takes every
    table for nearly empty, and plans that a real database never runs: the visit coverage per
    worker took 4–5 s a call instead of 0.2 s, which alone made the API fuzz of
    `/api/field-kpis` take 2½ minutes."""
    app = create_app({"DATABASE_URL": url, "TESTING": True})
    with app.app_context():
        session = get_db().session()
        with transaction(session):
            importer.load_directory(session)
        session.close()
    app.extensions["gridgov_db"].dispose()


def _analyze(owner_url: str) -> None:
    """Gather the statistics of the tables of the database of ``owner_url`` (their owner)."""
    engine = create_engine(owner_url, poolclass=pool.NullPool)
    try:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("ANALYZE"))
    finally:
        engine.dispose()


@pytest.fixture(scope="session")
def owner_database_url(request) -> str:  # type: ignore[no-untyped-def]
    """The test database as its owner (the migrations' role): a fresh, empty database."""
    external = os.environ.get("GRIDGOV_TEST_DATABASE_URL")
    if external:
        return os.environ.get("GRIDGOV_TEST_MIGRATION_DATABASE_URL") or external
    cluster = request.getfixturevalue("cluster")
    return cluster.owner_url(request.getfixturevalue("run_database"))


@pytest.fixture(scope="session")
def database_url(request, owner_database_url: str) -> str:  # type: ignore[no-untyped-def]
    """The test database as the app's role, migrated (by the owner), with the sample street and
    village loaded (by the app's role, as `gridgov load-sample` does)."""
    external = os.environ.get("GRIDGOV_TEST_DATABASE_URL")
    if external:
        mig.upgrade(owner_database_url, app_url=external)
        _load_sample(external)
        _analyze(owner_database_url)
        return external
    # On the checkout's cluster: a copy of the run's sample template (migrated the same way,
    # the same sample loaded the same way), made in a second instead of migrating again.
    cluster = request.getfixturevalue("cluster")
    name = request.getfixturevalue("run_database")
    url = copy_database(cluster, request.getfixturevalue("sample_template"), name)
    # Migrating a current schema finds nothing to do: the copy is at every head.
    mig.upgrade(owner_database_url, app_url=url)
    return url


TEST_PASSWORD = "Test-password-2026"


@pytest.fixture(scope="session")
def admin_auth(database_url: str) -> dict[str, str]:
    """A committed admin account with an API token and a browser session (cookie + CSRF)."""
    app = create_app({"DATABASE_URL": database_url, "TESTING": True})
    with app.app_context():
        session = get_db().session()
        with transaction(session):
            user = user_svc.create_user(session, "test-admin", "admin", TEST_PASSWORD)
            limits = dict(user_svc.DEFAULT_LIMITS, SESSION_IDLE_MINUTES=600)
            token = user_svc.start_session(session, user, None, limits, kind="token")
            browser = user_svc.start_session(session, user, None, limits)
        session.close()
    app.extensions["gridgov_db"].dispose()
    return {
        "token": token.token,
        "cookie": browser.token,
        "csrf": browser.csrf_token,
        "password": TEST_PASSWORD,
    }


@pytest.fixture(scope="session")
def app(database_url: str):  # type: ignore[no-untyped-def]
    """The app on the test database."""
    return create_app({"DATABASE_URL": database_url, "TESTING": True, "SESSION_IDLE_MINUTES": 600})


@pytest.fixture()
def db_session(app) -> Iterator[Session]:  # type: ignore[no-untyped-def]
    """A session inside a transaction that is rolled back after the test; the app's requests join it."""
    database = app.extensions["gridgov_db"]
    original = database.factory, database.read_factory
    connection = database.engine.connect()
    outer = connection.begin()
    database.bind_to(connection)
    session = database.session()
    try:
        yield session
    finally:
        session.close()
        outer.rollback()
        connection.close()
        database.factory, database.read_factory = original
        forget_cached_data()


def forget_cached_data() -> None:
    """Empty the in-process caches of database data (tiles, the coverage model): what they hold
    was read inside a transaction that is now rolled back, and the next test starts from the
    committed data alone."""
    coverage.CACHE.clear()
    tiles.CACHE.clear()


@pytest.fixture(autouse=True)
def _config_restored(request):  # type: ignore[no-untyped-def]
    """Put the test app's configuration back as it was before the test, whatever the test set."""
    if "app" not in request.fixturenames:
        yield
        return
    app = request.getfixturevalue("app")
    saved = dict(app.config)
    try:
        yield
    finally:
        app.config.clear()
        app.config.update(saved)


@pytest.fixture()
def client(app, db_session, admin_auth):  # type: ignore[no-untyped-def]
    """A test client signed in as an administrator (API token), whose requests run inside the
    test's rolled-back transaction."""
    c = app.test_client()
    c.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {admin_auth['token']}"
    return c


@pytest.fixture()
def anon_client(app, db_session):  # type: ignore[no-untyped-def]
    """A test client signed in as nobody (a resident), inside the test's transaction."""
    return app.test_client()


@pytest.fixture()
def runner(app):  # type: ignore[no-untyped-def]
    return app.test_cli_runner()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _BearerFor(urllib.request.BaseHandler):
    """Add a bearer token to requests for one base URL that carry no Authorization header."""

    def __init__(self, base: str, token: str) -> None:
        self.base, self.token = base, token

    def http_request(self, req: urllib.request.Request) -> urllib.request.Request:
        if req.full_url.startswith(self.base) and not req.has_header("Authorization"):
            req.add_unredirected_header("Authorization", f"Bearer {self.token}")
        return req


# What the live server runs with, beside the test database: the tests' idle limit (browser
# sessions of the fixtures outlive a slow run) and secure cookies, as in production.
LIVE_SETTINGS = {"SESSION_IDLE_MINUTES": "600", "SESSION_COOKIE_SECURE": "1"}


@pytest.fixture(scope="session")
def live_server(database_url: str, admin_auth: dict[str, str]) -> Iterator[str]:
    """Serve the app with gunicorn, the production server (two worker processes of threads, as
    `gridgov serve` runs it), on a free loopback port; yields its base URL.

    The server is a process of its own: it sees committed data only (tests that write through it
    must clean up after themselves), and nothing the tests change in their own ``app`` (its
    config, module caches, monkeypatches) reaches it; its settings are ``LIVE_SETTINGS``.
    No test needs the server's app in-process, so there is no Werkzeug variant.
    """
    from tests.own_server import own_server

    with own_server(
        database_url,
        threads=8,
        workers=2,
        app_spec="tests.own_server:testing_app()",
        **LIVE_SETTINGS,
    ) as server:
        # Requests from the tests to this server (urllib) are an administrator's API calls unless
        # they say otherwise; anonymous and per-role calls set their own Authorization header.
        urllib.request.install_opener(
            urllib.request.build_opener(_BearerFor(server.base, admin_auth["token"]))
        )
        try:
            yield server.base
        finally:
            urllib.request.install_opener(None)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def browser():  # type: ignore[no-untyped-def]
    """Debian's Chromium, headless, driven by Playwright (no browser download).

    Every test gets a new browser context, which is a fresh, empty profile.
    """
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"{CHROMIUM} is missing: install Debian's 'chromium' (./scripts/setup.sh does it)"
        )
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


def _cancelled_tile(request) -> bool:  # type: ignore[no-untyped-def]
    """A tile request the map cancelled because the view moved on: not a failure."""
    return "/tiles/" in request.url and "ERR_ABORTED" in (request.failure or "")


@pytest.fixture()
def page(browser, live_server, admin_auth):  # type: ignore[no-untyped-def]
    """A fresh browser page, signed in as an administrator, that fails the test on any page
    error or failed request."""
    # Playwright's wait_for_function evaluates strings, which the app's CSP forbids (no
    # 'unsafe-eval'); tests/web/test_auth_browser.py holds every page to the CSP unbypassed.
    context = browser.new_context(
        viewport={"width": 1400, "height": 900}, locale="zh-CN", bypass_csp=True
    )
    context.add_cookies(
        [
            {
                "name": "gridgov_session",
                "value": admin_auth["cookie"],
                "url": live_server,
                "httpOnly": True,
                "secure": True,
                "sameSite": "Lax",
            }
        ]
    )
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(f"page error: {e}"))
    pg.on(
        "requestfailed",
        lambda r: None if _cancelled_tile(r) else errors.append(f"request failed: {r.url}"),
    )
    pg.page_errors = errors  # type: ignore[attr-defined]
    yield pg
    context.close()
    assert not errors, errors


def pytest_collection_modifyitems(items) -> None:  # type: ignore[no-untyped-def]
    """Give each schemathesis case its operation in its node id.

    schemathesis names a case ``test_no_server_error[GET /api/grids]``, but pytest 9 builds a
    test's node id from the function's name and its parametrize ids, which schemathesis does not
    use: all of a module's operations then share one node id. A test run spread over processes
    (pytest-xdist) schedules tests by node id and ran one operation of each fuzz module instead
    of all of them; ``--durations`` and failure reports could not tell them apart either.
    """
    from _pytest.nodeid import NodeId

    seen = collections.Counter(item.nodeid for item in items)
    for item in items:
        if seen[item.nodeid] > 1 and "[" in item.name and hasattr(item, "_id"):
            item._id = NodeId.parse(f"{item.parent.nodeid}::{item.name}")
    ids = [item.nodeid for item in items]
    assert len(ids) == len(set(ids)), "two tests share a node id"


# One committed account per role, for the tests of every folder (tests/accounts.py).
from tests.accounts import accounts  # noqa: E402,F401
