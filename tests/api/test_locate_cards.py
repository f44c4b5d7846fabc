"""The locate's cards (revision 0035: each grid's leaf flag and assigned people, kept by
triggers) never go stale: after each kind of change to what a locate answer depends on — an
owner reassigned, a person's name, phone or duty changed, a grid drawn, split, merged, deleted
and each change undone, an override area of a category put at the point — every card equals a
computation from the source tables, and the very next locate answer names the chain, owner and
fallback that the source tables give (``route`` over ``chain_and_people``, which reads no card).
Checked through the Flask route inside a rolled-back transaction, and through the fast path
below Flask on a committed database of its own, whose kept connections see each change on
their very next request."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from shapely import LineString, box
from shapely.geometry import mapping, shape
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from app import create_app
from app.db import get_db, transaction
from app.services import locate as svc
from app.services import users as user_svc
from tests.api.test_locate_fast import Counting
from tests.conftest import copy_database, own_database

AREA_CATEGORY = "road_occupation"  # 占道经营


def fresh_cards(conn: Any) -> dict[int, tuple[bool, list[dict[str, Any]]]]:
    """Every grid's leaf flag and people, worked out in Python from the source tables."""
    grids = conn.execute(text("SELECT id, parent_id, valid_to IS NULL FROM grid")).all()
    with_child = {parent for _id, parent, current in grids if current and parent is not None}
    people: dict[int, list[dict[str, Any]]] = {}
    for grid_id, worker_id, name, role, phone, on_duty in conn.execute(
        text(
            "SELECT a.grid_id, w.id, w.name, a.role, w.phone, w.on_duty "
            "FROM grid_assignment a JOIN worker w ON w.id = a.worker_id"
        )
    ).all():
        people.setdefault(grid_id, []).append(
            {"worker_id": worker_id, "name": name, "role": role, "phone": phone, "on_duty": on_duty}
        )
    return {
        gid: (
            gid not in with_child,
            sorted(people.get(gid, []), key=lambda p: (p["worker_id"], p["role"])),
        )
        for gid, _parent, _current in grids
    }


def stored_cards(conn: Any) -> dict[int, tuple[bool, list[dict[str, Any]]]]:
    return {
        gid: (leaf, people)
        for gid, leaf, people in conn.execute(
            text("SELECT grid_id, is_leaf, people FROM locate_card")
        ).all()
    }


def assert_cards_exact(conn: Any) -> None:
    fresh, stored = fresh_cards(conn), stored_cards(conn)
    wrong = [(gid, fresh.get(gid), stored.get(gid)) for gid in fresh.keys() | stored.keys()]
    assert [w for w in wrong if w[1] != w[2]][:3] == []


def assert_answer_fresh(conn: Any, answer: dict[str, Any], grid_id: int) -> None:
    """The located grid is ``grid_id``; its chain, owner and fallback are those the source
    tables give."""
    assert (answer["grid"] or answer["chain"][-1])["id"] == grid_id
    chain, people = svc.chain_and_people(conn, grid_id)
    owner, fallback = svc.route(chain, people)
    assert answer["chain"] == chain
    if answer["override"] is None:
        assert (answer["owner"], answer["fallback"]) == (owner, fallback)


def point_in(conn: Any, grid_id: int) -> tuple[float, float]:
    return conn.execute(
        text(
            "SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_PointOnSurface(geom) AS p FROM grid "
            "WHERE id = :g) s"
        ),
        {"g": grid_id},
    ).one()


def _ok(res, status: int = 200) -> dict:  # type: ignore[no-untyped-def]
    assert res.status_code == status, res.get_json()
    return res.get_json()


def _version(client, grid_id: int) -> int:  # type: ignore[no-untyped-def]
    return _ok(client.get(f"/api/grids/{grid_id}"))["properties"]["version"]


class Scenario:
    """Each kind of change in turn, with the locate checked after each (``check``: the point,
    the grid it must fall in, and optionally a category)."""

    def __init__(self, conn: Any, client: Any, check: Any) -> None:
        self.conn, self.client, self.check = conn, client, check

    def sql(self, sql: str, **params: Any) -> Any:
        return self.conn.execute(text(sql), params)

    def run(self) -> None:
        micro = self.sql(
            "SELECT g.id FROM grid g JOIN grid_assignment a ON a.grid_id = g.id "
            "AND a.role IN ('worker_full', 'worker_part') WHERE g.level = 4 "
            "AND g.valid_to IS NULL AND NOT EXISTS (SELECT 1 FROM grid c WHERE c.parent_id = g.id) "
            "ORDER BY g.code LIMIT 1"
        ).scalar_one()
        pt = point_in(self.conn, micro)
        self.check(pt, micro)

        # The owner reassigned: the grid's workers go to another worker.
        other = self.sql(
            "SELECT id FROM worker WHERE id NOT IN (SELECT worker_id FROM grid_assignment "
            "WHERE grid_id = :g) ORDER BY id LIMIT 1",
            g=micro,
        ).scalar_one()
        self.sql(
            "UPDATE grid_assignment SET worker_id = :w WHERE grid_id = :g "
            "AND role IN ('worker_full', 'worker_part')",
            w=other,
            g=micro,
        )
        assert self.check(pt, micro)["owner"]["worker_id"] == other

        # The person's name and phone changed, then off duty, then a new full-time worker.
        self.sql(
            "UPDATE worker SET name = '卡片测试员', phone = '13900009999' WHERE id = :w", w=other
        )
        answer = self.check(pt, micro)
        assert (answer["owner"]["name"], answer["owner"]["phone"]) == ("卡片测试员", "13900009999")
        self.sql("UPDATE worker SET on_duty = false WHERE id = :w", w=other)
        assert self.check(pt, micro)["owner"]["worker_id"] != other
        newcomer = self.sql(
            "INSERT INTO worker (code, name, phone) VALUES ('W-CARD-1', '新来的', '13700000000') "
            "RETURNING id"
        ).scalar_one()
        self.sql(
            "INSERT INTO grid_assignment (worker_id, grid_id, role) VALUES (:w, :g, 'worker_full')",
            w=newcomer,
            g=micro,
        )
        assert self.check(pt, micro)["owner"]["worker_id"] == newcomer
        # A chief of a grid above, renamed: every card below is read fresh.
        chief = self.sql(
            "SELECT a.worker_id FROM grid_assignment a JOIN grid g ON g.id = a.grid_id "
            "WHERE a.role = 'grid_chief' AND :g = ANY(g.path) AND g.id <> :g LIMIT 1",
            g=micro,
        ).scalar()
        if chief is not None:
            self.sql("UPDATE worker SET phone = '13600001234' WHERE id = :w", w=chief)
            answer = self.check(pt, micro)
            assert "13600001234" in [p.get("phone") for p in answer["fallback"]]
        # The worker deleted: its assignments go with it.
        self.sql("DELETE FROM worker WHERE id = :w", w=newcomer)
        self.check(pt, micro)

        # An override area of a category at the point: it owns that category's cases there.
        dept = self.sql("SELECT id FROM department WHERE code = 'CG-AH'").scalar_one()
        self.sql(
            "INSERT INTO override_area (name, category, geom, area_m2, department_id) "
            "SELECT '卡片测试路段', :cat, g, ST_Area(g::geography), :d FROM (SELECT ST_Multi("
            "ST_Buffer(ST_SetSRID(ST_MakePoint(:x, :y), 4326), 0.0003, 2)) AS g) s",
            cat=AREA_CATEGORY,
            d=dept,
            x=pt[0],
            y=pt[1],
        )
        answer = self.check(pt, micro, AREA_CATEGORY)
        assert answer["owner"]["department_id"] == dept

        # A patch drawn inside the micro-grid: the point now falls in the patch, the
        # micro-grid is no leaf; undone, the micro-grid is a leaf again.
        geom = shape(_ok(self.client.get(f"/api/grids/{micro}"))["geometry"])
        made = _ok(
            self.client.post(
                "/api/grids?clip_to_parent=true",
                json={
                    "type": "Feature",
                    "geometry": mapping(geom.buffer(0.001)),
                    "properties": {"parent_id": micro, "name": "卡片片区"},
                },
            ),
            201,
        )
        patch = made["features"][0]["id"]
        self.check(pt, patch)
        _ok(self.client.post(f"/api/grids/changes/{made['change']['id']}/undo"))
        self.check(pt, micro)

        # Split the micro-grid through the point's side, then undo.
        minx, miny, maxx, maxy = geom.bounds
        xm = (minx + maxx) / 2
        line = mapping(LineString([(xm, miny - 0.001), (xm, maxy + 0.001)]))
        split = _ok(
            self.client.post(
                f"/api/grids/{micro}/split",
                json={"line": line, "version": _version(self.client, micro)},
            )
        )
        parts = [f["id"] for f in split["features"]]
        for part in parts:
            self.check(point_in(self.conn, part), part)
        _ok(self.client.post(f"/api/grids/changes/{split['change']['id']}/undo"))
        self.check(pt, micro)

        # Merge two neighbouring leaves, then undo.
        a, b = self.sql(
            """
            SELECT a.id, b.id FROM grid a JOIN grid b
              ON a.parent_id = b.parent_id AND a.id < b.id AND a.level = 4
             AND a.valid_to IS NULL AND b.valid_to IS NULL
             AND ST_Relate(a.geom, b.geom, 'F***1****')
            WHERE NOT EXISTS (SELECT 1 FROM grid c WHERE c.parent_id IN (a.id, b.id))
            ORDER BY a.code LIMIT 1
            """
        ).one()
        pa = point_in(self.conn, a)
        versions = {str(g): _version(self.client, g) for g in (a, b)}
        merged = _ok(
            self.client.post("/api/grids/merge", json={"ids": [a, b], "versions": versions}), 201
        )
        self.check(pa, merged["features"][0]["id"])
        _ok(self.client.post(f"/api/grids/changes/{merged['change']['id']}/undo"))
        self.check(pa, a)

        # A patch drawn and deleted: the micro-grid is the leaf again.
        made = _ok(
            self.client.post(
                "/api/grids?clip_to_parent=true",
                json={
                    "type": "Feature",
                    "geometry": mapping(box(*geom.bounds).buffer(0.001)),
                    "properties": {"parent_id": micro, "name": "待删片区"},
                },
            ),
            201,
        )
        patch = made["features"][0]["id"]
        self.check(pt, patch)
        _ok(
            self.client.delete(
                f"/api/grids/{patch}", json={"version": _version(self.client, patch)}
            )
        )
        self.check(pt, micro)


def test_cards_and_answers_follow_every_change_through_flask(client, db_session) -> None:  # type: ignore[no-untyped-def]
    conn = db_session

    def check(pt, grid_id, category=None):  # type: ignore[no-untyped-def]
        db_session.flush()
        assert_cards_exact(conn)
        query = f"/api/locate?lon={pt[0]}&lat={pt[1]}"
        answer = _ok(client.get(query + (f"&category={category}" if category else "")))
        assert_answer_fresh(conn, answer, grid_id)
        return answer

    Scenario(conn, client, check).run()


@pytest.fixture()
def own_db(cluster, sample_template: str) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """A committed copy of the sample, for this test alone."""
    name = own_database("gridgov_test_locate_cards")
    yield copy_database(cluster, sample_template, name)
    cluster.psql("postgres", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_cards_and_answers_follow_every_change_on_the_fast_path(own_db: str) -> None:
    config = {"DATABASE_URL": own_db, "TESTING": True, "SESSION_IDLE_MINUTES": 600}
    fast = create_app(config)
    fast.wsgi_app = Counting(fast, fast.wsgi_app.inner)  # type: ignore[attr-defined]
    slow = create_app({**config, "LOCATE_FAST_PATH": False})
    with slow.app_context():
        session = get_db().session()
        with transaction(session):
            user = user_svc.create_user(session, "t-cards", "admin", "Test-password-2026")
            token = user_svc.start_session(
                session, user, None, user_svc.DEFAULT_LIMITS, kind="token"
            ).token
        session.close()
    headers = {"Authorization": f"Bearer {token}"}
    writer = slow.test_client()
    writer.environ_base["HTTP_AUTHORIZATION"] = headers["Authorization"]
    engine = create_engine(own_db, isolation_level="AUTOCOMMIT")
    try:
        with Session(engine) as conn:

            def check(pt, grid_id, category=None):  # type: ignore[no-untyped-def]
                assert_cards_exact(conn)
                query = f"/api/locate?lon={pt[0]}&lat={pt[1]}"
                query += f"&category={category}" if category else ""
                before = Counting.served
                got = fast.test_client().get(query, headers=headers)
                assert Counting.served == before + 1  # the fast path answered it
                answer = _ok(got)
                assert answer == _ok(slow.test_client().get(query, headers=headers))
                assert_answer_fresh(conn, answer, grid_id)
                return answer

            Scenario(conn, writer, check).run()
    finally:
        engine.dispose()
        fast.wsgi_app.close()  # type: ignore[attr-defined]
        for a in (fast, slow):
            a.extensions["gridgov_db"].dispose()


def test_two_writers_at_once_leave_no_stale_card(own_db: str) -> None:
    """A worker's new phone and, at the same time in another transaction, a new assignment of
    that worker: whichever commits last, the new grid's card carries the new phone (each
    writer's cards are built after the other's commit, under the cards' lock)."""
    engine = create_engine(own_db)
    try:
        with engine.connect() as a, engine.connect() as b:
            worker, grid = a.execute(
                text(
                    "SELECT w.id, g.id FROM worker w, grid g WHERE g.valid_to IS NULL "
                    "AND NOT EXISTS (SELECT 1 FROM grid_assignment x "
                    "WHERE x.worker_id = w.id AND x.grid_id = g.id) "
                    "AND EXISTS (SELECT 1 FROM grid_assignment y WHERE y.worker_id = w.id) "
                    "ORDER BY w.id, g.id LIMIT 1"
                )
            ).one()
            a.commit()
            a.execute(text("UPDATE worker SET phone = '13500002222' WHERE id = :w"), {"w": worker})
            b_pid = b.execute(text("SELECT pg_backend_pid()")).scalar_one()
            b.commit()
            failed: list[BaseException] = []

            def assign() -> None:
                try:
                    b.execute(
                        text(
                            "INSERT INTO grid_assignment (worker_id, grid_id, role) "
                            "VALUES (:w, :g, 'worker_part')"
                        ),
                        {"w": worker, "g": grid},
                    )
                    b.commit()
                except BaseException as exc:  # noqa: BLE001 - reported by the test thread
                    failed.append(exc)

            thread = threading.Thread(target=assign)
            thread.start()
            # The assignment waits for the cards' lock, which the phone's transaction holds
            # (without the lock it would commit first, its card built without the new phone).
            deadline = time.monotonic() + 10
            with engine.connect() as watch:
                while thread.is_alive() and time.monotonic() < deadline:
                    waiting = watch.execute(
                        text("SELECT wait_event FROM pg_stat_activity WHERE pid = :p"),
                        {"p": b_pid},
                    ).scalar()
                    watch.commit()
                    if waiting == "advisory":
                        break
                    time.sleep(0.05)
            a.commit()
            thread.join(10)
            assert not thread.is_alive() and failed == []
        with Session(engine) as conn:
            assert_cards_exact(conn)
            card = dict(stored_cards(conn))[grid][1]
            assert {"worker_id": worker, "phone": "13500002222"}.items() <= next(
                p for p in card if p["worker_id"] == worker
            ).items()
    finally:
        engine.dispose()
