"""Accounts and sessions: Argon2 hashes, sign-in and out, lockout, rate limit, timeouts, CSRF,
security headers, the deny-by-default rule table, and the first administrator from the CLI."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from app.auth.policy import RULES
from app.cli import main
from app.services import users as user_svc
from tests.api.case_helpers import POINT

PASSWORD = "Correct-horse-42"


@pytest.fixture()
def person(db_session):  # type: ignore[no-untyped-def]
    """A centre account created inside the test's transaction."""
    user = user_svc.create_user(
        db_session, "duty-officer", "centre", PASSWORD, grid_code="340188001"
    )
    db_session.flush()
    return user


def login(client, username: str = "duty-officer", password: str = PASSWORD):  # type: ignore[no-untyped-def]
    return client.post("/api/auth/login", json={"username": username, "password": password})


def session_cookie(client) -> str | None:  # type: ignore[no-untyped-def]
    cookie = client.get_cookie("gridgov_session")
    return cookie.value if cookie else None


@pytest.fixture()
def limits(app) -> Iterator[dict]:  # type: ignore[no-untyped-def]
    """Change the sign-in limits for one test and put them back."""
    saved = {k: app.config.get(k) for k in user_svc.DEFAULT_LIMITS}
    yield app.config
    app.config.update(saved)


def test_passwords_are_stored_as_argon2id_hashes(db_session, person) -> None:  # type: ignore[no-untyped-def]
    stored = db_session.scalar(
        text("SELECT password_hash FROM app_user WHERE id = :i"), {"i": person.id}
    )
    assert stored.startswith("$argon2id$") and PASSWORD not in stored
    with pytest.raises(Exception, match="at least"):
        user_svc.create_user(db_session, "weak-one", "centre", "short1")
    with pytest.raises(Exception, match="two kinds"):
        user_svc.create_user(db_session, "weak-two", "centre", "onlyletterslong")


def test_no_account_exists_that_the_project_made(db_session) -> None:  # type: ignore[no-untyped-def]
    """Neither the migrations nor the sample load create an account: no default passwords."""
    names = db_session.scalars(text("SELECT username FROM app_user")).all()
    assert all(n == "test-admin" or n.startswith("t-") for n in names), names


def test_sign_in_sets_a_hardened_cookie_and_me_tells_who(anon_client, person) -> None:  # type: ignore[no-untyped-def]
    assert anon_client.get("/api/auth/me").get_json() == {
        "authenticated": False,
        "role": "anonymous",
    }
    res = login(anon_client)
    assert res.status_code == 200, res.get_json()
    cookie = res.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "Secure" in cookie and "SameSite=Lax" in cookie
    assert (
        res.get_json()["user"]["role"] == "centre" and "password_hash" not in res.get_json()["user"]
    )
    me = anon_client.get("/api/auth/me").get_json()
    assert me["authenticated"] and me["username"] == "duty-officer" and me["csrf_token"]
    assert anon_client.get("/api/grids?level=1").status_code == 200


def test_wrong_password_and_unknown_user_say_the_same(anon_client, person) -> None:  # type: ignore[no-untyped-def]
    a = login(anon_client, password="Wrong-password-1")
    b = login(anon_client, username="nobody-here")
    assert a.status_code == b.status_code == 401
    assert a.get_json()["error"]["message"] == b.get_json()["error"]["message"]
    assert session_cookie(anon_client) is None


def test_logout_ends_the_session_and_a_replayed_cookie_is_refused(anon_client, person) -> None:  # type: ignore[no-untyped-def]
    login(anon_client)
    stolen = session_cookie(anon_client)
    csrf = anon_client.get("/api/auth/me").get_json()["csrf_token"]
    assert anon_client.post("/api/auth/logout", headers={"X-CSRF-Token": csrf}).status_code == 200
    assert session_cookie(anon_client) is None
    anon_client.set_cookie("gridgov_session", stolen)
    res = anon_client.get("/api/grids?level=1")
    assert res.status_code == 401
    assert anon_client.get("/api/auth/me").get_json()["authenticated"] is False


def test_repeated_failures_hold_back_that_address_only_for_a_while(
    anon_client, db_session, person, limits
) -> None:  # type: ignore[no-untyped-def]
    limits.update(LOGIN_MAX_FAILURES=3, LOGIN_LOCK_MINUTES=15)
    for _ in range(3):
        assert login(anon_client, password="Wrong-password-1").status_code == 401
    locked = login(anon_client)  # the right password, but this address waits
    unknown = login(anon_client, username="nobody-here")
    assert locked.status_code == unknown.status_code == 401
    assert locked.get_json() == unknown.get_json()  # no "locked until" to tell them apart
    elsewhere = anon_client.application.test_client().post(
        "/api/auth/login",
        json={"username": "duty-officer", "password": PASSWORD},
        environ_base={"REMOTE_ADDR": "10.20.30.40"},
    )
    assert elsewhere.status_code == 200  # the account itself is not locked for everyone
    db_session.execute(
        text(
            "UPDATE login_lock SET locked_until = now() - interval '1 second' WHERE username = :u"
        ),
        {"u": person.username},
    )
    assert login(anon_client).status_code == 200  # the wait has run out


def test_one_address_may_try_only_so_often(anon_client, person, limits) -> None:  # type: ignore[no-untyped-def]
    limits.update(LOGIN_IP_LIMIT=4, LOGIN_MAX_FAILURES=100)
    statuses = [
        login(anon_client, username=f"guess{i}", password="x" * 10).status_code for i in range(4)
    ]
    assert statuses == [401] * 4
    res = login(anon_client)
    assert res.status_code == 429 and res.get_json()["error"]["code"] == "too_many_attempts"


def test_idle_and_absolute_timeouts_end_a_session(anon_client, db_session, person) -> None:  # type: ignore[no-untyped-def]
    login(anon_client)
    assert anon_client.get("/api/grids?level=1").status_code == 200
    db_session.execute(
        text(
            "UPDATE user_session SET last_seen_at = now() - interval '11 hours' WHERE user_id = :i"
        ),
        {"i": person.id},
    )  # the test app's idle limit is 600 minutes
    assert anon_client.get("/api/grids?level=1").status_code == 401
    login(anon_client)
    db_session.execute(
        text(
            "UPDATE user_session SET expires_at = now() - interval '1 second' WHERE user_id = :i AND ended_at IS NULL"
        ),
        {"i": person.id},
    )
    assert anon_client.get("/api/grids?level=1").status_code == 401


def test_cookie_sessions_need_the_csrf_token_for_changes(anon_client, person) -> None:  # type: ignore[no-untyped-def]
    login(anon_client)
    csrf = anon_client.get("/api/auth/me").get_json()["csrf_token"]
    body = {"x": POINT[0], "y": POINT[1], "category": "streetlight", "source": "patrol"}
    missing = anon_client.post("/api/cases", json=body)
    assert missing.status_code == 403 and missing.get_json()["error"]["reason"] == "csrf"
    other = ("y" if csrf[0] == "x" else "x") + csrf[1:]  # always a different token
    wrong = anon_client.post("/api/cases", json=body, headers={"X-CSRF-Token": other})
    assert wrong.status_code == 403
    ok = anon_client.post("/api/cases", json=body, headers={"X-CSRF-Token": csrf})
    assert ok.status_code == 201, ok.get_json()


def test_a_change_sent_from_another_site_is_refused(anon_client, client) -> None:  # type: ignore[no-untyped-def]
    body = {"x": POINT[0], "y": POINT[1], "category": "streetlight"}
    res = anon_client.post("/api/cases", json=body, headers={"Origin": "http://evil.example"})
    assert res.status_code == 403 and "cross-site" in res.get_json()["error"]["message"]
    res = client.post("/api/cases", json=body, headers={"Sec-Fetch-Site": "cross-site"})
    assert res.status_code == 403


def test_residents_report_only_as_residents(anon_client) -> None:  # type: ignore[no-untyped-def]
    body = {"x": POINT[0], "y": POINT[1], "category": "streetlight"}
    assert anon_client.post("/api/cases", json={**body, "source": "superior"}).status_code == 403
    assert anon_client.post("/api/cases", json=body).status_code == 201


def test_signed_out_api_gets_401_and_pages_go_to_the_sign_in_page(anon_client) -> None:  # type: ignore[no-untyped-def]
    assert anon_client.get("/api/cases").status_code == 401
    res = anon_client.get("/emap")
    assert res.status_code == 302 and res.headers["Location"].startswith("/login?next=/emap")
    assert anon_client.get("/cases/track").status_code == 200  # residents need no account


def test_the_sign_in_form_checks_its_token_and_never_redirects_off_site(
    anon_client, person
) -> None:  # type: ignore[no-untyped-def]
    page = anon_client.get("/login?next=//evil.example/x")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.get_data(as_text=True)).group(1)
    assert 'value="/emap"' in page.get_data(as_text=True)  # the off-site target was dropped
    forged = anon_client.post(
        "/login", data={"username": "duty-officer", "password": PASSWORD, "csrf_token": "forged"}
    )
    assert forged.status_code == 403
    bad = anon_client.post(
        "/login", data={"username": "duty-officer", "password": "Wrong-1234", "csrf_token": token}
    )
    assert bad.status_code == 401 and "用户名或密码错误" in bad.get_data(as_text=True)
    res = anon_client.post(
        "/login",
        data={
            "username": "duty-officer",
            "password": PASSWORD,
            "csrf_token": token,
            "next": "/cases/desk",
        },
    )
    assert res.status_code == 302 and res.headers["Location"] == "/cases/desk"
    assert anon_client.get("/cases/desk").status_code == 200


def test_pages_carry_a_strict_content_security_policy(client) -> None:  # type: ignore[no-untyped-def]
    res = client.get("/emap")
    csp = res.headers["Content-Security-Policy"]
    script_src = next(d for d in csp.split(";") if d.strip().startswith("script-src"))
    nonce = re.search(r"'nonce-([^']+)'", script_src).group(1)
    assert "unsafe-inline" not in script_src and "unsafe-eval" not in script_src
    assert "frame-ancestors 'none'" in csp and "default-src 'self'" in csp
    html = res.get_data(as_text=True)
    # No inline script runs: the page's settings are a JSON data block, without the nonce.
    inline = re.findall(r"<script(?![^>]*\bsrc=)([^>]*)>", html)
    assert inline and all('type="application/json"' in attrs for attrs in inline)
    assert nonce not in html
    assert res.headers["X-Frame-Options"] == "DENY"
    assert res.headers["X-Content-Type-Options"] == "nosniff"
    assert client.get("/api/grids?level=1").headers["Cache-Control"] == "no-store"
    assert client.get("/emap").headers["Content-Security-Policy"] != csp  # a fresh nonce each time


def test_the_csp_admits_the_configured_tile_server(app, client) -> None:  # type: ignore[no-untyped-def]
    saved = {k: app.config.get(k) for k in ("BASEMAP", "BASEMAP_URL")}
    app.config.update(BASEMAP="xyz", BASEMAP_URL="https://tiles.intranet.example/{z}/{x}/{y}.png")
    try:
        csp = client.get("/emap").headers["Content-Security-Policy"]
        assert "img-src 'self' data: blob: https://tiles.intranet.example" in csp
    finally:
        app.config.update(saved)


def test_every_endpoint_has_exactly_one_access_rule(app) -> None:  # type: ignore[no-untyped-def]
    endpoints = {r.endpoint for r in app.url_map.iter_rules()}
    assert endpoints - set(RULES) == set(), "endpoints without a rule are refused to everyone"
    assert set(RULES) - endpoints == set(), "rules for endpoints that do not exist"


def test_gridgov_creates_the_first_admin_from_the_command_line(
    database_url: str, db_session
) -> None:  # type: ignore[no-untyped-def]
    env = {"GRIDGOV_DATABASE_URL": database_url}
    weak = CliRunner(env=env).invoke(
        main, ["users", "create-admin", "root-admin", "--password-stdin"], input="short\n"
    )
    assert weak.exit_code != 0 and "at least" in weak.output
    made = CliRunner(env=env).invoke(
        main,
        ["users", "create-admin", "root-admin", "--password-stdin"],
        input="Strong-pass-2026\n",
    )
    try:
        assert made.exit_code == 0, made.output
        listed = CliRunner(env=env).invoke(main, ["users", "list"])
        assert "root-admin" in listed.output and "admin" in listed.output
        token = CliRunner(env=env).invoke(main, ["users", "token", "root-admin"]).output.strip()
        assert len(token) > 30
    finally:
        from sqlalchemy import create_engine

        engine = create_engine(database_url)
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM app_user WHERE username = 'root-admin'"))
        engine.dispose()


def test_page_menus_offer_only_what_the_role_may_open(app, anon_client, accounts) -> None:  # type: ignore[no-untyped-def]
    from tests.auth.conftest import bearer

    resident = anon_client.get("/cases/track").get_data(as_text=True)
    assert "工作人员登录" in resident and "受理台" not in resident and "电子地图" not in resident
    worker = (
        app.test_client()
        .get("/cases/worker", headers=bearer(accounts["worker"]))
        .get_data(as_text=True)
    )
    assert "网格员" in worker and "考核指标" not in worker and "受理台" not in worker
    centre = (
        app.test_client()
        .get("/cases/desk", headers=bearer(accounts["centre"]))
        .get_data(as_text=True)
    )
    assert "考核指标" in centre and "受理台" in centre


def test_signing_in_again_ends_the_earlier_session(anon_client, person) -> None:  # type: ignore[no-untyped-def]
    login(anon_client)
    first = session_cookie(anon_client)
    csrf = anon_client.get("/api/auth/me").get_json()["csrf_token"]
    again = anon_client.post(
        "/api/auth/login",
        json={"username": "duty-officer", "password": PASSWORD},
        headers={"X-CSRF-Token": csrf},
    )
    assert again.status_code == 200 and session_cookie(anon_client) != first
    anon_client.set_cookie("gridgov_session", first)
    assert anon_client.get("/api/grids?level=1").status_code == 401
