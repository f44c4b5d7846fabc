"""Fixtures on a real PostGIS: a migrated test database with the sample loaded, per-test
transactions that roll back, a live server for browser tests, and a headless Chromium page.

The database is the private cluster's ``gridgov_test`` (recreated each run), or the server named
by GRIDGOV_TEST_DATABASE_URL (a throwaway database: the tests write to it).
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session
from werkzeug.serving import make_server

from app import create_app
from app import migrate as mig
from app.db import get_db, transaction
from app.embedded_pg import default_cluster
from app.services import importer

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
]


@pytest.fixture(scope="session")
def cluster():  # type: ignore[no-untyped-def]
    """The private PostgreSQL + PostGIS cluster of this checkout, started when needed."""
    c = default_cluster()
    c.start()
    return c


@pytest.fixture(scope="session")
def database_url(cluster) -> str:  # type: ignore[no-untyped-def]
    """A fresh, migrated test database with the sample street and village loaded."""
    url = os.environ.get("GRIDGOV_TEST_DATABASE_URL") or cluster.recreate_database("gridgov_test")
    mig.upgrade(url)
    app = create_app({"DATABASE_URL": url, "TESTING": True})
    with app.app_context():
        session = get_db().session()
        with transaction(session):
            importer.load_directory(session)
        session.close()
    app.extensions["gridgov_db"].dispose()
    return url


@pytest.fixture(scope="session")
def app(database_url: str):  # type: ignore[no-untyped-def]
    """The app on the test database."""
    return create_app({"DATABASE_URL": database_url, "TESTING": True})


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


@pytest.fixture()
def client(app, db_session):  # type: ignore[no-untyped-def]
    """A test client whose requests run inside the test's rolled-back transaction."""
    return app.test_client()


@pytest.fixture()
def runner(app):  # type: ignore[no-untyped-def]
    return app.test_cli_runner()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def live_server(database_url: str) -> Iterator[str]:
    """Serve a separate app instance on a free loopback port; yields its base URL.

    It sees committed data only; tests that write through it must clean up after themselves.
    """
    server_app = create_app({"DATABASE_URL": database_url, "TESTING": True})
    port = _free_port()
    server = make_server("127.0.0.1", port, server_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.shutdown()
        thread.join(timeout=5)
        server_app.extensions["gridgov_db"].dispose()


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


@pytest.fixture()
def page(browser):  # type: ignore[no-untyped-def]
    """A fresh browser page that fails the test on any page error or failed request."""
    context = browser.new_context(viewport={"width": 1400, "height": 900}, locale="zh-CN")
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(f"page error: {e}"))
    pg.on("requestfailed", lambda r: errors.append(f"request failed: {r.url}"))
    pg.page_errors = errors  # type: ignore[attr-defined]
    yield pg
    context.close()
    assert not errors, errors
