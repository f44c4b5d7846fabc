"""The scheduled and administrative commands, run as an operator runs them: `gridgov cases sweep`,
`gridgov calendar load`, `gridgov users create`. They work on committed data (their own
connection), so each test puts back what it changed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine

from app.cli import main
from tests.committed import committed_state_restored


@pytest.fixture()
def engine(database_url: str) -> Iterator[Engine]:
    e = create_engine(database_url)
    yield e
    e.dispose()


def run(database_url: str, *args: str, stdin: str | None = None):  # type: ignore[no-untyped-def]
    return CliRunner(env={"GRIDGOV_DATABASE_URL": database_url}).invoke(
        main, list(args), input=stdin
    )


def test_cases_sweep_closes_verified_cases_whose_rating_window_passed(database_url, engine) -> None:  # type: ignore[no-untyped-def]
    with committed_state_restored(database_url):
        with engine.begin() as conn:
            ids = {}
            for code, hours_ago in (("SJSWEEP000001", 1000), ("SJSWEEP000002", 1)):
                cid = conn.execute(
                    text(
                        'INSERT INTO "case" (code, category, source, reported_x, reported_y, reported_crs, geom, status) '
                        "VALUES (:c, 'garbage', 'patrol', 117.2287, 31.8149, 'wgs84', "
                        "ST_SetSRID(ST_MakePoint(117.2287, 31.8149), 4326), 'verified') RETURNING id"
                    ),
                    {"c": code},
                ).scalar_one()
                conn.execute(
                    text(
                        "INSERT INTO case_event (case_id, action, from_status, to_status, actor_role, at) "
                        "VALUES (:i, 'verify', 'resolved', 'verified', 'centre', now() - make_interval(hours => :h))"
                    ),
                    {"i": cid, "h": hours_ago},
                )
                ids[code] = cid
        result = run(database_url, "cases", "sweep")
        assert result.exit_code == 0, result.output
        assert "SJSWEEP000001" in result.output and "SJSWEEP000002" not in result.output
        with engine.connect() as conn:
            status = dict(
                conn.execute(
                    text('SELECT code, status FROM "case" WHERE id = ANY(:i)'),
                    {"i": list(ids.values())},
                ).all()
            )
            closing = conn.execute(
                text(
                    "SELECT actor_role, note FROM case_event WHERE case_id = :i AND to_status = 'closed'"
                ),
                {"i": ids["SJSWEEP000001"]},
            ).one()
        assert status == {"SJSWEEP000001": "closed", "SJSWEEP000002": "verified"}
        assert closing.actor_role == "system" and "评价期满" in closing.note
        again = run(database_url, "cases", "sweep")  # nothing left to close
        assert again.exit_code == 0 and "SJSWEEP000001" not in again.output


def test_calendar_load_replaces_the_years_it_names_and_refuses_a_bad_file(
    database_url, engine, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "cal.csv"
    path.write_text(
        "date,is_workday,name,source\n2031-10-01,false,国庆节,测试\n2031-10-11,true,国庆调休,测试\n",
        encoding="utf-8",
    )
    try:
        result = run(database_url, "calendar", "load", str(path))
        assert result.exit_code == 0, result.output
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT day::text, is_workday, name FROM work_calendar "
                    "WHERE extract(year FROM day) = 2031 ORDER BY day"
                )
            ).all()
        assert [tuple(r) for r in rows] == [
            ("2031-10-01", False, "国庆节"),
            ("2031-10-11", True, "国庆调休"),
        ]
        shown = run(database_url, "calendar", "show")
        assert shown.exit_code == 0 and "2031-10-01" in shown.output
        bad = tmp_path / "bad.csv"
        bad.write_text(
            "date,is_workday,name,source\n2031-13-01,false,坏日期,测试\n", encoding="utf-8"
        )
        refused = run(database_url, "calendar", "load", str(bad))
        assert refused.exit_code != 0 and "2031-13-01" in refused.output
        with engine.connect() as conn:
            assert (
                conn.execute(
                    text("SELECT count(*) FROM work_calendar WHERE extract(year FROM day) = 2031")
                ).scalar()
                == 2
            )
    finally:
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM work_calendar WHERE extract(year FROM day) = 2031"))


def test_users_create_links_the_account_and_refuses_an_unknown_worker(database_url, engine) -> None:  # type: ignore[no-untyped-def]
    try:
        result = run(
            database_url,
            "users",
            "create",
            "t-cli-chief",
            "--role",
            "micro_chief",
            "--worker-code",
            "W00002",
            "--name",
            "命令行测试",
            "--password-stdin",
            stdin="a-long-enough-password-1\n",
        )
        assert result.exit_code == 0, result.output
        with engine.connect() as conn:
            row = conn.execute(
                text(
                    "SELECT u.role, w.code FROM app_user u JOIN worker w ON w.id = u.worker_id WHERE u.username = 't-cli-chief'"
                )
            ).one()
        assert tuple(row) == ("micro_chief", "W00002")
        refused = run(
            database_url,
            "users",
            "create",
            "t-cli-nobody",
            "--role",
            "worker",
            "--worker-code",
            "W99999",
            "--password-stdin",
            stdin="a-long-enough-password-1\n",
        )
        assert refused.exit_code != 0 and "W99999" in refused.output
        with engine.connect() as conn:
            assert (
                conn.execute(
                    text("SELECT count(*) FROM app_user WHERE username = 't-cli-nobody'")
                ).scalar()
                == 0
            )
    finally:
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM app_user WHERE username LIKE 't-cli-%'"))
