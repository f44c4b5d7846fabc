"""The session limits a deployment gets when it sets none (the rest of the suite lengthens the
idle time): 30 minutes idle, 12 hours at most, as the README says."""

from __future__ import annotations

from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from app import create_app
from app.services import users as user_svc

PASSWORD = "Correct-horse-42"


def test_a_deployment_without_settings_ends_sessions_after_30_idle_minutes_and_12_hours(
    database_url,
) -> None:  # type: ignore[no-untyped-def]
    engine = create_engine(database_url)
    app = create_app({"DATABASE_URL": database_url, "TESTING": True})  # no limit overridden
    try:
        with Session(engine) as s, s.begin():
            user_svc.create_user(s, "t-default-limits", "centre", PASSWORD, grid_code="340188001")
        c = app.test_client()

        def sign_in() -> None:
            res = c.post(
                "/api/auth/login", json={"username": "t-default-limits", "password": PASSWORD}
            )
            assert res.status_code == 200, res.get_json()

        def age(column: str, minutes: float) -> None:
            with engine.begin() as conn:
                conn.execute(
                    text(
                        f"UPDATE user_session SET {column} = now() - make_interval(secs => :s) "
                        "WHERE user_id = (SELECT id FROM app_user WHERE username = 't-default-limits') AND ended_at IS NULL"
                    ),
                    {"s": minutes * 60},
                )

        sign_in()
        with engine.connect() as conn:
            span = conn.execute(
                text(
                    "SELECT extract(epoch FROM s.expires_at - s.created_at) / 3600 FROM user_session s "
                    "JOIN app_user u ON u.id = s.user_id WHERE u.username = 't-default-limits' AND s.ended_at IS NULL"
                )
            ).scalar_one()
        assert 11.99 < float(span) < 12.01  # at most twelve hours
        age("last_seen_at", 29)
        assert c.get("/api/grids?level=1").status_code == 200  # 29 idle minutes: still signed in
        age("last_seen_at", 31)
        assert c.get("/api/grids?level=1").status_code == 401  # 31: signed out
        sign_in()
        with engine.begin() as conn:
            conn.execute(
                text(
                    "UPDATE user_session SET expires_at = now() - interval '1 second' "
                    "WHERE user_id = (SELECT id FROM app_user WHERE username = 't-default-limits') AND ended_at IS NULL"
                )
            )
        assert (
            c.get("/api/grids?level=1").status_code == 401
        )  # past the twelve hours, however active
    finally:
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM app_user WHERE username = 't-default-limits'"))
        app.extensions["gridgov_db"].dispose()
        engine.dispose()
