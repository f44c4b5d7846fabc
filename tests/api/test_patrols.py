"""Patrols: positions stored exactly once on every kind of retry, jumps dropped with their reason,
GCJ-02 taken as locate takes it, the track as a MULTILINESTRING M broken at gaps and jumps,
the week's coverage of the roads
and area against hand-worked figures, the day's map, who sees it, the KPIs and their exports,
and the retention run."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta

from click.testing import CliRunner
from openpyxl import load_workbook
from sqlalchemy import text

from app.cli import main
from app.db import get_db, transaction
from app.services import patrols, retention
from gis.crs import wgs84_to_gcj02
from tests.auth.conftest import bearer

OWN_GRID = "34018800100101"  # W00005's grid (tests/accounts.py)


def _as(app, account):  # type: ignore[no-untyped-def]
    c = app.test_client()
    c.environ_base["HTTP_AUTHORIZATION"] = bearer(account)["Authorization"]
    return c


def _road_walk(db_session, n: int) -> list[tuple[float, float]]:  # type: ignore[no-untyped-def]
    """``n`` positions along the longest road piece inside the worker's grid, evenly spaced."""
    rows = db_session.execute(
        text(
            """WITH r AS (
                   SELECT (ST_Dump(ST_Intersection(b.geom, g.geom))).geom AS part
                   FROM basemap_feature b JOIN grid g ON g.code = :g AND g.valid_to IS NULL
                   WHERE b.kind = 'road' AND ST_Intersects(b.geom, g.geom)),
               l AS (SELECT part FROM r WHERE GeometryType(part) = 'LINESTRING'
                     ORDER BY ST_Length(part::geography) DESC LIMIT 1)
               SELECT ST_X(p), ST_Y(p) FROM l,
                   LATERAL (SELECT ST_LineInterpolatePoint(l.part, i::float / (:n - 1)) AS p
                            FROM generate_series(0, :n - 1) i) s"""
        ),
        {"g": OWN_GRID, "n": n},
    ).all()
    assert len(rows) == n, "the sample has a road in the worker's grid"
    return [(x, y) for x, y in rows]


def _points(walk, start: datetime, step_s: int = 10):  # type: ignore[no-untyped-def]
    return [
        {
            "lon": x,
            "lat": y,
            "t": (start + timedelta(seconds=i * step_s)).isoformat(),
            "accuracy": 8,
        }
        for i, (x, y) in enumerate(walk)
    ]


def _start(worker, at: datetime) -> int:  # type: ignore[no-untyped-def]
    res = worker.post("/api/patrols", json={"started_at": at.isoformat()})
    assert res.status_code in (200, 201), res.get_json()
    return res.get_json()["patrol"]["id"]


def test_every_point_is_stored_once_whatever_is_retried(app, db_session, accounts) -> None:  # type: ignore[no-untyped-def]
    worker = _as(app, accounts["worker"])
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    pid = _start(worker, t0)
    # A second start while the patrol is open answers the same patrol.
    again = worker.post("/api/patrols", json={})
    assert again.status_code == 200 and again.get_json()["patrol"]["id"] == pid
    pts = _points(_road_walk(db_session, 30), t0 + timedelta(seconds=5))
    first = worker.post(
        f"/api/patrols/{pid}/positions", json={"batch_key": "b-1", "points": pts[:20]}
    )
    assert first.status_code == 201, first.get_json()
    assert first.get_json()["accepted"] == 20
    # The same batch again: the stored answer, nothing added.
    replay = worker.post(
        f"/api/patrols/{pid}/positions", json={"batch_key": "b-1", "points": pts[:20]}
    )
    assert replay.status_code == 200 and replay.get_json()["replay"] is True
    # Overlapping points under a new key (the phone resent part of its queue): only the new ones.
    overlap = worker.post(
        f"/api/patrols/{pid}/positions", json={"batch_key": "b-2", "points": pts[10:]}
    ).get_json()
    assert (overlap["accepted"], overlap["duplicate"]) == (10, 10)
    # And without any key.
    bare = worker.post(f"/api/patrols/{pid}/positions", json={"points": pts}).get_json()
    assert (bare["accepted"], bare["duplicate"]) == (0, 30)
    stored = db_session.execute(
        text("SELECT count(*), count(DISTINCT t) FROM patrol_point WHERE patrol_id = :p"),
        {"p": pid},
    ).one()
    assert tuple(stored) == (30, 30)
    assert worker.get(f"/api/patrols/{pid}").get_json()["point_count"] == 30


def test_a_jump_is_dropped_with_its_reason_and_breaks_the_track(app, db_session, accounts) -> None:  # type: ignore[no-untyped-def]
    worker = _as(app, accounts["worker"])
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    pid = _start(worker, t0)
    walk = _road_walk(db_session, 6)
    pts = _points(walk, t0 + timedelta(seconds=1))
    # 10 s after the third point the phone claims to be 5 km east: 500 m/s.
    x, y = walk[2]
    pts.insert(3, {"lon": x + 0.05, "lat": y, "t": (t0 + timedelta(seconds=26)).isoformat()})
    # A position with 500 m accuracy.
    pts.append(
        {"lon": x, "lat": y, "t": (t0 + timedelta(seconds=200)).isoformat(), "accuracy": 500}
    )
    res = worker.post(f"/api/patrols/{pid}/positions", json={"points": pts}).get_json()
    assert res["accepted"] == 6
    reasons = {d["reason"]: d for d in res["dropped"]}
    assert set(reasons) == {"speed", "accuracy"}
    assert reasons["speed"]["speed_mps"] > 300 and reasons["speed"]["reason_name"]
    stop = worker.post(f"/api/patrols/{pid}/stop", json={})
    assert stop.status_code == 200, stop.get_json()
    patrol = stop.get_json()["patrol"]
    assert patrol["open"] is False and patrol["dropped_count"] == 2 and patrol["length_m"] > 0
    track = db_session.execute(
        text(
            """SELECT GeometryType(track) AS kind, ST_NumGeometries(track) AS parts,
                      ST_NPoints(track) AS n, ST_M(ST_StartPoint(ST_GeometryN(track, 1))) AS m0,
                      ST_M(ST_EndPoint(ST_GeometryN(track, 1))) AS m1,
                      ST_M(ST_StartPoint(ST_GeometryN(track, 2))) AS m2,
                      ST_M(ST_EndPoint(ST_GeometryN(track, 2))) AS m3 FROM patrol WHERE id = :p"""
        ),
        {"p": pid},
    ).one()
    # The jump lies between the third and the fourth point: two stretches of three points.
    assert track.kind == "MULTILINESTRINGM" and track.parts == 2 and track.n == 6
    assert track.m0 == (t0 + timedelta(seconds=1)).timestamp()
    assert (track.m1 - track.m0, track.m2 - track.m0, track.m3 - track.m0) == (20, 30, 50)
    kept = db_session.execute(
        text("SELECT reason FROM patrol_drop WHERE patrol_id = :p ORDER BY t"), {"p": pid}
    ).scalars()
    assert list(kept) == ["speed", "accuracy"]


def test_gcj02_positions_are_stored_in_wgs84(app, db_session, accounts) -> None:  # type: ignore[no-untyped-def]
    worker = _as(app, accounts["worker"])
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)
    pid = _start(worker, t0)
    (x, y), _ = _road_walk(db_session, 2)
    gx, gy = wgs84_to_gcj02(x, y)
    res = worker.post(
        f"/api/patrols/{pid}/positions",
        json={
            "crs": "gcj02",
            "points": [{"lon": float(gx), "lat": float(gy), "t": t0.isoformat()}],
        },
    )
    assert res.status_code == 201, res.get_json()
    lon, lat = db_session.execute(
        text("SELECT ST_X(geom), ST_Y(geom) FROM patrol_point WHERE patrol_id = :p"), {"p": pid}
    ).one()
    assert abs(lon - x) < 1e-5 and abs(lat - y) < 1e-5


def test_bad_batches_are_refused_naming_the_point(app, db_session, accounts) -> None:  # type: ignore[no-untyped-def]
    worker = _as(app, accounts["worker"])
    pid = _start(worker, datetime.now(UTC) - timedelta(minutes=5))
    now = datetime.now(UTC).isoformat()
    for points, param in (
        ([], "points"),
        (
            [{"lon": 117.2, "lat": 31.8, "t": now}, {"lon": "x", "lat": 31.8, "t": now}],
            "points[1].lon",
        ),
        ([{"lon": 117.2, "lat": 31.8}], "points[0].t"),
        ([{"lon": 117.2, "lat": 31.8, "t": "2026-12-05T09:00:00"}], "points[0].t"),
    ):
        res = worker.post(f"/api/patrols/{pid}/positions", json={"points": points})
        assert res.status_code == 400, res.get_json()
        assert res.get_json()["error"]["param"] == param
    # Another worker's patrol is not theirs to post to, nor to read for a party member.
    chief = _as(app, accounts["grid_chief"])
    assert chief.post(f"/api/patrols/{pid}/positions", json={"points": []}).status_code == 404
    assert chief.get(f"/api/patrols/{pid}").status_code == 200
    assert _as(app, accounts["party_member"]).get(f"/api/patrols/{pid}").status_code == 404


def _own_row(rows, worker_id: int):  # type: ignore[no-untyped-def]
    return next(r for r in rows if r["worker"]["id"] == worker_id)


def test_coverage_and_the_day_map_follow_the_track(app, db_session, accounts) -> None:  # type: ignore[no-untyped-def]
    me = accounts["worker"].worker_id
    worker = _as(app, accounts["worker"])
    before = _own_row(worker.get("/api/patrols/coverage").get_json()["rows"], me)
    assert before["road_m"] > 0
    walk = _road_walk(db_session, 40)
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=20)
    pid = _start(worker, t0)
    assert (
        worker.post(
            f"/api/patrols/{pid}/positions", json={"points": _points(walk, t0, 1)}
        ).status_code
        == 201
    )
    open_cov = _own_row(worker.get("/api/patrols/coverage").get_json()["rows"], me)
    assert open_cov["road_covered_m"] > before["road_covered_m"]
    worker.post(f"/api/patrols/{pid}/stop", json={})
    after = _own_row(worker.get("/api/patrols/coverage").get_json()["rows"], me)
    assert after["patrols"] == before["patrols"] + 1
    # Hand-worked: the walked road piece lies wholly in the buffer, so it is covered at least.
    piece = db_session.scalar(
        text(
            """SELECT ST_Length(ST_MakeLine(ARRAY(SELECT geom FROM patrol_point
                                          WHERE patrol_id = :p ORDER BY t))::geography)"""
        ),
        {"p": pid},
    )
    assert after["road_covered_m"] >= before["road_covered_m"] + 0.9 * piece - 1
    assert (
        after["road_share"] == round(after["road_covered_m"] / after["road_m"], 4)
        or abs(after["road_share"] - after["road_covered_m"] / after["road_m"]) < 1e-3
    )
    assert 0 < after["area_share"] <= 1
    # The day's map: the track, and roads left unpatrolled that avoid the walked piece.
    day = datetime.now(UTC).astimezone(patrols.TZ).date().isoformat()
    fc = worker.get(f"/api/patrols/map?date={day}").get_json()
    layers = [f["properties"]["layer"] for f in fc["features"]]
    assert "track" in layers and "road_unpatrolled" in layers
    assert fc["properties"]["unpatrolled_m"] < after["road_m"]
    mid = walk[20]
    near = db_session.scalar(
        text(
            """SELECT min(ST_Distance(ST_GeomFromGeoJSON(:g)::geography,
                                      ST_SetSRID(ST_MakePoint(:x, :y), 4326)::geography))"""
        ),
        {
            "g": json.dumps(
                {
                    "type": "GeometryCollection",
                    "geometries": [
                        f["geometry"]
                        for f in fc["features"]
                        if f["properties"]["layer"] == "road_unpatrolled"
                    ],
                }
            ),
            "x": mid[0],
            "y": mid[1],
        },
    )
    assert near > 25  # the middle of the walk is patrolled: no open road beside it
    # Who sees the map: the chiefs and the centre, not another worker or a party member.
    for role, status in (("grid_chief", 200), ("centre", 200), ("party_member", 404)):
        res = _as(app, accounts[role]).get(f"/api/patrols/map?worker={me}&date={day}")
        assert res.status_code == status, (role, res.get_json())
    read = db_session.scalar(
        text("SELECT count(*) FROM audit_log WHERE action LIKE :s"), {"s": f"%patrol map {me}%"}
    )
    assert read >= 3


def _covered_m(worker, me: int) -> float:  # type: ignore[no-untyped-def]
    return _own_row(worker.get("/api/patrols/coverage").get_json()["rows"], me)["road_covered_m"]


def test_a_silent_phone_breaks_the_track_and_the_gap_counts_for_nothing(
    app, client, db_session, accounts
) -> None:  # type: ignore[no-untyped-def]
    me = accounts["worker"].worker_id
    worker = _as(app, accounts["worker"])
    before = _covered_m(worker, me)
    walk = _road_walk(db_session, 40)
    piece = db_session.scalar(
        text(
            "SELECT ST_Length(ST_MakeLine(ST_MakePoint(:a, :b), ST_MakePoint(:c, :d))::geography)"
        ),
        dict(zip("abcd", (*walk[0], *walk[39]), strict=True)),
    )
    assert piece > 300, "the road piece is long enough for a gap well beyond the buffer"
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)
    pid = _start(worker, t0)
    # Ten positions at the start of the road, then the phone is silent for ten minutes, then
    # ten positions at its end: the stretch between them was never walked as far as anyone knows.
    pts = _points(walk[:10], t0 + timedelta(seconds=5))
    pts += _points(walk[30:], t0 + timedelta(seconds=5 + 90 + 600))
    assert worker.post(f"/api/patrols/{pid}/positions", json={"points": pts}).status_code == 201
    # Open: the line read from the points breaks already.
    open_track = worker.get(f"/api/patrols/{pid}").get_json()["track"]
    assert open_track["type"] == "MultiLineString" and len(open_track["coordinates"]) == 2
    broken = _covered_m(worker, me)
    stopped = worker.post(f"/api/patrols/{pid}/stop", json={}).get_json()["patrol"]
    assert abs(_covered_m(worker, me) - broken) < 2  # the trace is simplified by 2 m
    # The stretch walked is the two ends, not the straight line across the gap.
    assert stopped["length_m"] < 0.6 * piece
    track = worker.get(f"/api/patrols/{pid}").get_json()["track"]
    assert [len(c) for c in track["coordinates"]] == [10, 10]
    assert [len(t) for t in track["times"]] == [10, 10]
    assert datetime.fromisoformat(track["times"][1][0]) == t0 + timedelta(seconds=695)
    # The day's map draws two stretches, and the middle of the gap lies on no track.
    day = t0.astimezone(patrols.TZ).date().isoformat()
    fc = worker.get(f"/api/patrols/map?date={day}").get_json()
    drawn = [
        f["geometry"] for f in fc["features"]
        if f["properties"]["layer"] == "track" and f["properties"]["patrol_id"] == pid
    ]  # fmt: skip
    assert len(drawn) == 1 and drawn[0]["type"] == "MultiLineString"
    assert len(drawn[0]["coordinates"]) == 2
    mid = walk[20]
    off_track = db_session.scalar(
        text(
            """SELECT ST_Distance(ST_GeomFromGeoJSON(:g)::geography,
                                 ST_SetSRID(ST_MakePoint(:x, :y), 4326)::geography)"""
        ),
        {"g": json.dumps(drawn[0]), "x": mid[0], "y": mid[1]},
    )
    assert off_track > 0.2 * piece
    # The same positions with a gap setting longer than the silence: one line, joined across
    # the gap, and the road along it counts as covered.
    assert client.put("/api/visit-settings", json={"patrol_gap_s": 3600}).status_code == 200
    worker.post(f"/api/patrols/{pid}/stop", json={})
    joined = _covered_m(worker, me)
    gap_road = piece * 20 / 39  # from walk[9] to walk[30]
    assert broken > before
    assert joined - broken > 0.8 * (gap_road - 2 * 30), (before, broken, joined, gap_road)
    assert len(worker.get(f"/api/patrols/{pid}").get_json()["track"]["coordinates"]) == 1
    # The stored reach is the buffer of its setting; another setting is buffered afresh.
    kept = db_session.execute(
        text("SELECT reach_m, ST_Area(reach::geography) FROM patrol WHERE id = :p"), {"p": pid}
    ).one()
    assert kept[0] == 30 and kept[1] > 2 * 30 * 0.9 * piece
    assert client.put("/api/visit-settings", json={"patrol_buffer_m": 0.5}).status_code == 200
    assert _covered_m(worker, me) < joined - 0.5 * (gap_road - 60)
    bad = client.put("/api/visit-settings", json={"patrol_gap_s": 1})
    assert bad.status_code == 400 and bad.get_json()["error"]["param"] == "patrol_gap_s"


def test_field_kpis_export_in_china_time_with_text_cells_guarded(
    app, client, db_session, accounts
) -> None:  # type: ignore[no-untyped-def]
    me = accounts["worker"].worker_id
    db_session.execute(text("UPDATE worker SET name = '=HYPERLINK(1)' WHERE id = :w"), {"w": me})
    data = client.get("/api/field-kpis?group=worker").get_json()
    row = _own_row(data["rows"], me)
    assert set(row) >= {"key", "all", "patrol", "attendance_days"}
    csv = client.get("/api/field-kpis?group=worker&format=csv")
    assert csv.status_code == 200 and csv.mimetype == "text/csv"
    body = csv.get_data().decode("utf-8-sig")
    assert "'=HYPERLINK(1)" in body and "统计时间" in body.splitlines()[0]
    stamp = body.splitlines()[1].rsplit(",", 1)[1]
    assert len(stamp) == 16 and stamp[10] == " "  # YYYY-MM-DD HH:mm, China time
    xlsx = client.get("/api/field-kpis?group=grid&level=3&format=xlsx")
    assert xlsx.status_code == 200
    ws = load_workbook(io.BytesIO(xlsx.get_data())).active
    assert ws.cell(1, 12).value == "道路巡查覆盖率" and ws.max_row > 1
    assert client.get("/api/field-kpis?format=pdf").status_code == 400
    # Departments do not read field work.
    assert _as(app, accounts["department"]).get("/api/field-kpis").status_code == 403


def test_retention_deletes_old_points_and_clears_old_positions(app, db_session, accounts) -> None:  # type: ignore[no-untyped-def]
    me = accounts["worker"].worker_id
    now = datetime.now(UTC)
    old = db_session.scalar(
        text(
            """INSERT INTO patrol (worker_id, started_at, ended_at) VALUES (:w, :a, :b) RETURNING id"""
        ),
        {
            "w": me,
            "a": now - timedelta(days=200),
            "b": now - timedelta(days=200) + timedelta(hours=1),
        },
    )
    recent = db_session.scalar(
        text(
            """INSERT INTO patrol (worker_id, started_at, ended_at) VALUES (:w, :a, :b) RETURNING id"""
        ),
        {"w": me, "a": now - timedelta(days=2), "b": now - timedelta(days=2) + timedelta(hours=1)},
    )
    for pid, base in ((old, now - timedelta(days=200)), (recent, now - timedelta(days=2))):
        db_session.execute(
            text(
                """INSERT INTO patrol_point (patrol_id, t, geom)
                   SELECT :p, :t + i * interval '10 seconds', ST_SetSRID(ST_MakePoint(117.2 + i * 1e-5, 31.8), 4326)
                   FROM generate_series(0, 9) i"""
            ),
            {"p": pid, "t": base},
        )
        patrols.build_track(db_session, pid)
    db_session.execute(
        text(
            """INSERT INTO visit (worker_id, household_id, kind, visited_at, geom, reported_x, reported_y)
               SELECT :w, id, 'adhoc', :t, geom, ST_X(geom), ST_Y(geom) FROM household ORDER BY id LIMIT 2"""
        ),
        {"w": me, "t": now - timedelta(days=400)},
    )
    dry = retention.retention_run(db_session, now=now, dry_run=True)
    assert (dry["patrols"], dry["points"], dry["visit_positions"]) == (1, 10, 2)
    done = retention.retention_run(db_session, now=now)
    assert done["points"] == 10
    left = db_session.execute(
        text("SELECT patrol_id, count(*) FROM patrol_point WHERE patrol_id = ANY(:p) GROUP BY 1"),
        {"p": [old, recent]},
    ).all()
    assert left == [(recent, 10)]
    kept = db_session.execute(
        text(
            "SELECT track IS NULL AS gone, length_m, purged_at IS NOT NULL AS purged FROM patrol WHERE id = :p"
        ),
        {"p": old},
    ).one()
    assert kept.gone and kept.purged and kept.length_m > 0  # the length stays as an aggregate
    assert retention.retention_run(db_session, now=now)["points"] == 0


def test_retention_command_reports_its_counts(database_url, accounts) -> None:  # type: ignore[no-untyped-def]
    from app import create_app

    app = create_app({"DATABASE_URL": database_url, "TESTING": True})
    me = accounts["worker"].worker_id
    with app.app_context():
        session = get_db().session()
        with transaction(session):
            pid = session.scalar(
                text(
                    """INSERT INTO patrol (worker_id, started_at, ended_at)
                       VALUES (:w, now() - interval '300 days', now() - interval '299 days') RETURNING id"""
                ),
                {"w": me},
            )
            session.execute(
                text(
                    """INSERT INTO patrol_point (patrol_id, t, geom)
                       SELECT :p, now() - interval '300 days' + i * interval '10 seconds',
                              ST_SetSRID(ST_MakePoint(117.2, 31.8 + i * 1e-5), 4326)
                       FROM generate_series(1, 7) i"""
                ),
                {"p": pid},
            )
        try:
            result = CliRunner(env={"GRIDGOV_DATABASE_URL": database_url}).invoke(
                main, ["retention", "run"]
            )
            assert result.exit_code == 0, result.output
            assert "deleted: 7 track points" in result.output
            assert (
                session.scalar(
                    text("SELECT count(*) FROM patrol_point WHERE patrol_id = :p"), {"p": pid}
                )
                == 0
            )
        finally:
            with transaction(session):
                session.execute(text("DELETE FROM patrol WHERE id = :p"), {"p": pid})
            session.close()
        app.extensions["gridgov_db"].dispose()


def test_the_overdue_layer_carries_places_only_and_stays_in_scope(
    app, client, db_session, accounts
) -> None:  # type: ignore[no-untyped-def]
    worker = _as(app, accounts["worker"])
    fc = worker.get("/api/visits/overdue-map").get_json()
    assert fc["type"] == "FeatureCollection" and fc["features"]
    props = {k for f in fc["features"] for k in f["properties"]}
    assert props == {"grid_code", "kind"}  # no address, no name, no tag names
    assert all(f["properties"]["grid_code"].startswith(OWN_GRID) for f in fc["features"])
    due = worker.get("/api/visits/due?limit=2000").get_json()
    assert len(fc["features"]) == due["overdue"]
    body = worker.get("/api/visits/overdue-map").get_data(as_text=True)
    address = due["items"][0]["household"]["address"]
    assert address and address not in body
    # The administrator sees every grid's points, but not who is a key household.
    admin = client.get("/api/visits/overdue-map").get_json()
    assert len(admin["features"]) > len(fc["features"])
    assert {k for f in admin["features"] for k in f["properties"]} == {"grid_code"}
    # A view's box narrows it.
    x, y = fc["features"][0]["geometry"]["coordinates"]
    boxed = worker.get(f"/api/visits/overdue-map?bbox={x - 1e-4},{y - 1e-4},{x + 1e-4},{y + 1e-4}")
    assert 1 <= len(boxed.get_json()["features"]) < len(fc["features"])
    assert _as(app, accounts["department"]).get("/api/visits/overdue-map").status_code == 403


def test_the_speed_limit_and_retention_days_are_settings(app, client, db_session, accounts) -> None:  # type: ignore[no-untyped-def]
    worker = _as(app, accounts["worker"])
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=40)
    pid = _start(worker, t0)
    (x, y), _ = _road_walk(db_session, 2)
    jump = [
        {"lon": x, "lat": y, "t": (t0 + timedelta(seconds=1)).isoformat()},
        {"lon": x + 0.01, "lat": y, "t": (t0 + timedelta(seconds=11)).isoformat()},  # ~95 m/s
    ]
    res = worker.post(f"/api/patrols/{pid}/positions", json={"points": jump[:1] + jump[1:]})
    assert [d["reason"] for d in res.get_json()["dropped"]] == ["speed"]
    assert client.put("/api/visit-settings", json={"patrol_max_speed_mps": 150}).status_code == 200
    later = [{**jump[1], "t": (t0 + timedelta(seconds=21)).isoformat()}]
    assert (
        worker.post(f"/api/patrols/{pid}/positions", json={"points": later}).get_json()["accepted"]
        == 1
    )
    bad = client.put("/api/visit-settings", json={"track_days": 0})
    assert bad.status_code == 400 and bad.get_json()["error"]["param"] == "track_days"
    good = client.put("/api/visit-settings", json={"track_days": 30, "visit_position_days": 90})
    assert (good.get_json()["track_days"], good.get_json()["visit_position_days"]) == (30, 90)
