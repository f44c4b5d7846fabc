"""Sign-in abuse: locks per (account, address) with growing waits, alike answers for locked,
unknown and wrong sign-ins, trusted proxy hops, password changes under the same limits, and
atomic counting under concurrency (a live server)."""

from __future__ import annotations

import json
import random
import statistics
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from sqlalchemy import create_engine, text

from app.services import users as user_svc
from tests.own_server import own_server

PASSWORD = "Correct-horse-42"


@pytest.fixture()
def person(db_session):  # type: ignore[no-untyped-def]
    user = user_svc.create_user(
        db_session, "night-officer", "centre", PASSWORD, grid_code="340188001"
    )
    db_session.flush()
    return user


@pytest.fixture()
def limits(app):  # type: ignore[no-untyped-def]
    saved = {k: app.config.get(k) for k in (*user_svc.DEFAULT_LIMITS, "TRUST_PROXY")}
    yield app.config
    app.config.update(saved)


def login(client, username="night-officer", password=PASSWORD, **kw):  # type: ignore[no-untyped-def]
    return client.post("/api/auth/login", json={"username": username, "password": password}, **kw)


def test_the_wait_grows_with_each_failure_up_to_the_limit() -> None:
    limits = {"LOGIN_MAX_FAILURES": 5, "LOGIN_LOCK_MINUTES": 15}
    waits = [user_svc.lock_delay(n, limits) for n in range(1, 11)]
    assert waits[:4] == [None] * 4
    assert waits[4:] == [timedelta(minutes=m) for m in (1, 2, 4, 8, 15, 15)]


def test_locked_unknown_and_wrong_sign_ins_answer_alike_in_body_status_and_time(
    anon_client, person, limits
) -> None:  # type: ignore[no-untyped-def]
    limits.update(LOGIN_MAX_FAILURES=2, LOGIN_IP_LIMIT=1000)
    for _ in range(2):
        login(anon_client, password="Wrong-password-1")

    def timed(**kw):  # type: ignore[no-untyped-def]
        t = time.perf_counter()
        res = login(anon_client, **kw)
        return res, time.perf_counter() - t

    runs = {
        "locked": {},
        "unknown": {"username": "no-such-officer"},
        "wrong": {"username": "t-worker", "password": "Wrong-password-1"},
    }
    answers, times = {}, {k: [] for k in runs}
    for _ in range(5):
        for name, kw in runs.items():
            res, took = timed(**kw)
            answers[name] = (res.status_code, res.get_json())
            times[name].append(took)
    assert answers["locked"] == answers["unknown"] == answers["wrong"]
    assert answers["locked"][0] == 401
    medians = {k: statistics.median(v) for k, v in times.items()}
    # A lock answered without the password hash took a few ms against ~100 ms: now each one
    # spends the same Argon2 verification.
    assert medians["locked"] > 0.5 * medians["unknown"], medians
    assert medians["unknown"] > 0.5 * medians["locked"], medians


def test_only_the_configured_number_of_proxy_hops_is_trusted(
    anon_client, db_session, person, limits
) -> None:  # type: ignore[no-untyped-def]
    def recorded_ip(xff: str | None) -> str | None:
        headers = {"X-Forwarded-For": xff} if xff is not None else {}
        login(anon_client, password="Wrong-password-1", headers=headers)
        return db_session.scalar(
            text("SELECT host(ip) FROM login_attempt ORDER BY id DESC LIMIT 1")
        )

    limits.update(TRUST_PROXY=0)
    assert recorded_ip("203.0.113.9") == "127.0.0.1"
    limits.update(TRUST_PROXY=1)
    # The client wrote the leftmost entry; the proxy appended the address it saw.
    assert recorded_ip("198.51.100.7, 203.0.113.9") == "203.0.113.9"
    assert recorded_ip("not-an-address") == "127.0.0.1"
    assert recorded_ip(None) == "127.0.0.1"
    limits.update(TRUST_PROXY=2)
    assert recorded_ip("198.51.100.7, 203.0.113.9, 192.0.2.1") == "203.0.113.9"
    assert recorded_ip("192.0.2.1") == "127.0.0.1"  # fewer entries than hops: not trusted
    limits.update(TRUST_PROXY=True)
    assert recorded_ip("198.51.100.7, 203.0.113.9") == "203.0.113.9"


def test_password_changes_count_toward_the_same_limits(
    anon_client, db_session, person, limits
) -> None:  # type: ignore[no-untyped-def]
    limits.update(LOGIN_MAX_FAILURES=3, LOGIN_IP_LIMIT=1000)
    res = login(anon_client)
    assert res.status_code == 200
    csrf = res.get_json()["csrf_token"]

    def change(old: str):  # type: ignore[no-untyped-def]
        return anon_client.post(
            "/api/auth/password",
            json={"old_password": old, "new_password": "Another-horse-43"},
            headers={"X-CSRF-Token": csrf},
        )

    for _ in range(3):
        assert change("Wrong-password-1").status_code == 401
    assert (
        change(PASSWORD).status_code == 401
    )  # the guessing address waits, even with the right one
    assert (
        db_session.scalar(
            text(
                "SELECT count(*) FROM login_attempt WHERE username = 'night-officer' AND NOT success"
            )
        )
        >= 4
    )
    limits.update(LOGIN_IP_LIMIT=5)
    assert change(PASSWORD).status_code == 429  # and the attempts count toward the address's limit


def test_concurrent_sign_ins_never_pass_the_address_limit(database_url, limits) -> None:  # type: ignore[no-untyped-def]
    """80 sign-ins at once from one address (behind one trusted proxy) against a limit of 30."""
    address = f"198.51.100.{random.randint(1, 254)}"
    engine = create_engine(database_url)

    def clean() -> None:
        with engine.begin() as db:
            db.execute(text("DELETE FROM login_attempt WHERE ip = :ip"), {"ip": address})
            db.execute(text("DELETE FROM login_lock WHERE ip = :ip"), {"ip": address})

    clean()
    try:
        with own_server(database_url, threads=16, TRUST_PROXY="1", LOGIN_IP_LIMIT="30") as server:

            def attempt(i: int) -> int:
                req = urllib.request.Request(
                    server.base + "/api/auth/login",
                    data=json.dumps(
                        {"username": f"guess-{i}", "password": "Wrong-password-1"}
                    ).encode(),
                    headers={
                        "Content-Type": "application/json",
                        "X-Forwarded-For": f"10.0.0.1, {address}",
                    },
                )
                try:
                    with urllib.request.urlopen(req, timeout=120) as res:
                        return res.status
                except urllib.error.HTTPError as err:
                    return err.code

            with ThreadPoolExecutor(max_workers=40) as pool:
                statuses = list(pool.map(attempt, range(80)))
        assert set(statuses) <= {401, 429}, statuses
        assert statuses.count(401) == 30, statuses
        with engine.connect() as db:
            counted = db.scalar(
                text("SELECT count(*) FROM login_attempt WHERE ip = :ip"), {"ip": address}
            )
        assert counted == 30
    finally:
        clean()
        engine.dispose()
