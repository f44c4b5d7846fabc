"""The single locate reads the caller's session in the same statement as the point's grids:
who may locate, and what they see, stays exactly what every other request is held to."""

from __future__ import annotations

from sqlalchemy import select

from app.models import AppUser
from app.services import users as user_svc

POINT = (117.23, 31.82)  # inside a micro-grid of the sample street
URL = f"/api/locate?lon={POINT[0]}&lat={POINT[1]}"


def _token(db_session, username: str, role: str, **links) -> tuple[str, int]:  # type: ignore[no-untyped-def]
    user = db_session.scalar(select(AppUser).where(AppUser.username == username))
    if user is None:
        user = user_svc.create_user(db_session, username, role, "Locate-test-2026", **links)
    new = user_svc.start_session(db_session, user, None, user_svc.DEFAULT_LIMITS, kind="token")
    db_session.flush()
    return new.token, new.session.id


def test_an_ended_token_is_refused_at_once(anon_client, db_session) -> None:  # type: ignore[no-untyped-def]
    token, session_id = _token(db_session, "locate-centre", "centre")
    auth = {"Authorization": f"Bearer {token}"}
    assert anon_client.get(URL, headers=auth).status_code == 200
    user_svc.end_session(db_session, session_id)
    db_session.flush()
    res = anon_client.get(URL, headers=auth)
    assert res.status_code == 401
    assert "owner" not in res.get_json()


def test_unknown_tokens_get_401_before_any_word_on_the_point(anon_client) -> None:  # type: ignore[no-untyped-def]
    bad = {"Authorization": "Bearer not-a-token-of-anyone"}
    assert anon_client.get(URL, headers=bad).status_code == 401
    assert anon_client.get(URL).status_code == 401
    # Bad coordinates from an unknown caller: still "sign in first", not a 400 about the point.
    assert anon_client.get("/api/locate?lon=500&lat=31", headers=bad).status_code == 401
    assert anon_client.get("/api/locate?lon=500&lat=31").status_code == 401


def test_bad_coordinates_from_a_signed_in_caller_say_why(client) -> None:  # type: ignore[no-untyped-def]
    res = client.get("/api/locate?lon=500&lat=31")
    assert res.status_code == 400
    assert res.get_json()["error"]["message"]


def test_roles_and_scope_hold_on_the_one_statement_path(anon_client, accounts) -> None:  # type: ignore[no-untyped-def]
    def get(role: str, url: str = URL):  # type: ignore[no-untyped-def]
        return anon_client.get(url, headers={"Authorization": f"Bearer {accounts[role].token}"})

    assert get("department").status_code == 403
    assert get("camera_feed").status_code == 403
    centre = get("centre")
    assert centre.status_code == 200 and centre.get_json()["owner"]["phone"]
    # A worker locates in its own grids only: a point of the village is not the worker's.
    assert get("worker", "/api/locate?lon=117.2269175&lat=31.7007770").status_code == 404
    assert centre.headers["Cache-Control"] == "no-store"
    assert "script-src 'self'" in centre.headers["Content-Security-Policy"]
