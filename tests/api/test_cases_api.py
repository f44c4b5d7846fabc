"""Case reports, lists, duplicates, merges, camera events, photos, exports and KPIs."""

from __future__ import annotations

import csv
import io
import threading
from datetime import UTC, datetime, timedelta

from openpyxl import load_workbook
from PIL import Image
from sqlalchemy import text
from sqlalchemy.orm import Session

from app.services import cases as svc
from tests.api.case_helpers import CENTRE, POINT, act, handler_of, ok, report, walk_to
from tests.cleanup import delete_cases


def _jpeg_with_gps() -> bytes:
    img = Image.new("RGB", (64, 48), (200, 30, 30))
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"  # Make
    exif[0x0112] = 6  # Orientation: rotate 90° clockwise to view
    gps = {1: "N", 2: (31.0, 48.0, 53.6), 3: "E", 4: (117.0, 13.0, 43.4)}
    exif[0x8825] = gps
    buf = io.BytesIO()
    img.save(buf, format="JPEG", exif=exif)
    return buf.getvalue()


def test_report_is_stored_routed_dispatched_with_deadline(client, db_session) -> None:  # type: ignore[no-untyped-def]
    body = report(client, crs="wgs84", address="馨苑小区1栋")
    case, routing = body["case"], body["routing"]
    assert body["created"] is True
    assert case["code"].startswith("SJ") and case["status"] == "dispatched"
    assert routing["grid"]["name"] == case["grid"]["name"] and routing["method"] == "inside"
    assert case["assignee"]["id"] == routing["owner"]["worker_id"]
    assert case["reported"] == {"x": POINT[0], "y": POINT[1], "crs": "wgs84"}
    assert case["reporter_contact"] == "139****5678"  # masked in answers and lists
    stored = db_session.execute(
        text('SELECT reporter_contact, deadline, created_at FROM "case" WHERE id = :id'),
        {"id": case["id"]},
    ).one()
    assert stored.reporter_contact == "13912345678"
    assert stored.deadline > stored.created_at
    events = client.get(f"/api/cases/{case['id']}").get_json()["events"]
    assert [e["action"] for e in events] == ["report", "dispatch"]


def test_report_in_gcj02_keeps_the_reported_coordinates(client) -> None:  # type: ignore[no-untyped-def]
    from gis.crs import wgs84_to_gcj02

    gx, gy = wgs84_to_gcj02(POINT[0], POINT[1])
    case = report(client, x=float(gx), y=float(gy), crs="gcj02")["case"]
    assert case["reported"]["crs"] == "gcj02" and case["reported"]["x"] == float(gx)
    assert (
        abs(case["point"]["lon"] - POINT[0]) < 1e-6 and abs(case["point"]["lat"] - POINT[1]) < 1e-6
    )


def test_bad_reports_are_refused_with_reasons(client) -> None:  # type: ignore[no-untyped-def]
    res = client.post("/api/cases", json={"x": 117.2, "y": 31.8, "category": "ufo"})
    assert res.status_code == 422 and "streetlight" in res.get_json()["error"]["message"]
    res = client.post("/api/cases", json={"x": 200, "y": 31.8, "category": "streetlight"})
    assert res.status_code == 400
    res = client.post("/api/cases", json={"y": 31.8, "category": "streetlight"})
    assert res.status_code == 400 and res.get_json()["error"]["param"] == "x"
    res = client.post(
        "/api/cases", json={"x": 117.2, "y": 31.8, "category": "streetlight", "source": "alien"}
    )
    assert res.status_code == 422


def test_same_idempotency_key_twice_creates_one_case(client, db_session) -> None:  # type: ignore[no-untyped-def]
    first = report(client, idempotency_key="app-42-001")
    again = client.post(
        "/api/cases",
        json={
            "x": POINT[0],
            "y": POINT[1],
            "category": "streetlight",
            "description": "路灯不亮",
            "source": "resident",
            "reporter_contact": "13912345678",
        },
        headers={"Idempotency-Key": "app-42-001"},
    )
    assert again.status_code == 200
    assert again.get_json()["created"] is False
    assert again.get_json()["case"]["id"] == first["case"]["id"]
    n = db_session.execute(
        text("SELECT count(*) FROM \"case\" WHERE idempotency_key = 'app-42-001'")
    ).scalar()
    assert n == 1
    # The same key for a different report is a conflict, not a silent replay.
    res = client.post(
        "/api/cases",
        json={"x": POINT[0], "y": POINT[1], "category": "noise", "idempotency_key": "app-42-001"},
    )
    assert res.status_code == 409 and res.get_json()["error"]["code"] == "idempotency_mismatch"


def test_concurrent_reports_with_one_key_store_one_case(app) -> None:  # type: ignore[no-untyped-def]
    engine = app.extensions["gridgov_db"].engine
    key = "concurrent-key-1"
    barrier = threading.Barrier(4)
    results: list[dict] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            with Session(engine) as s:
                barrier.wait()
                r = svc.create_case(
                    s,
                    svc.Report(x=POINT[0], y=POINT[1], category="garbage", idempotency_key=key),
                )
                s.commit()
                results.append(r)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    try:
        assert not errors, errors
        assert sorted(r["created"] for r in results) == [False, False, False, True]
        assert len({r["case"]["id"] for r in results}) == 1
    finally:
        with Session(engine) as s:
            ids = s.scalars(
                text('SELECT id FROM "case" WHERE idempotency_key = :k'), {"k": key}
            ).all()
            delete_cases(s, list(ids))
            s.commit()


def test_duplicates_within_50_m_are_suggested_and_merged(client) -> None:  # type: ignore[no-untyped-def]
    first = report(client)["case"]
    # About 30 m east: same category -> suggested; another category -> not.
    near = report(client, x=POINT[0] + 0.0003, description="又是那盏灯")
    assert [d["code"] for d in near["duplicates"]] == [first["code"]]
    assert 20 < near["duplicates"][0]["distance_m"] < 40
    other = report(client, x=POINT[0] + 0.0003, category="noise")
    assert other["duplicates"] == []
    far = report(client, x=POINT[0] + 0.0008)  # about 75 m
    assert first["code"] not in [d["code"] for d in far["duplicates"]]
    dup = near["case"]
    assert [d["code"] for d in client.get(f"/api/cases/{dup['id']}/duplicates").get_json()] == [
        first["code"],
        far["case"]["code"],
    ]
    merged = ok(act(client, dup["id"], "merge", CENTRE, into=first["code"], note="同一盏路灯"))
    assert merged["status"] == "cancelled" and merged["merged_into_id"] == first["id"]
    target = client.get(f"/api/cases/{first['id']}").get_json()
    assert target["merged"] == [{"id": dup["id"], "code": dup["code"]}]
    res = act(client, first["id"], "merge", CENTRE, into=first["id"])
    assert res.status_code == 422


def test_list_filters_and_overdue_first(client, db_session) -> None:  # type: ignore[no-untyped-def]
    a = report(client, category="fire_hazard")["case"]
    b = report(client, category="facility")["case"]
    # Make a overdue.
    db_session.execute(
        text("UPDATE \"case\" SET deadline = now() - interval '1 hour' WHERE id = :id"),
        {"id": a["id"]},
    )
    items = client.get("/api/cases?open=true").get_json()["items"]
    assert items[0]["id"] == a["id"] and items[0]["overdue"] is True
    assert all(not i["overdue"] for i in items[1:])
    only = client.get("/api/cases?overdue=true").get_json()
    assert [i["id"] for i in only["items"]] == [a["id"]]
    by_cat = client.get("/api/cases?category=facility").get_json()["items"]
    assert [i["id"] for i in by_cat] == [b["id"]]
    street = client.get("/api/grids?level=1").get_json()["features"][0]["id"]
    assert client.get(f"/api/cases?grid={street}").get_json()["total"] >= 2
    geo = client.get("/api/cases?format=geojson&status=dispatched").get_json()
    assert geo["type"] == "FeatureCollection" and geo["features"][0]["geometry"]["type"] == "Point"
    assert all(i["reporter_contact"] in (None, "139****5678") for i in items)
    assert client.get("/api/cases?status=nonsense").status_code == 400


def test_camera_events_merge_within_the_window(client, db_session) -> None:  # type: ignore[no-untyped-def]
    t0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    first = client.post(
        "/api/camera-events",
        json={"camera": "CAM-AH-0001", "event_type": "non_motor_parking", "time": t0.isoformat()},
    )
    assert first.status_code == 201, first.get_json()
    case = first.get_json()["case"]
    assert case["source"] == "camera" and case["category"] == "illegal_parking"
    assert case["status"] == "dispatched" and case["camera"]["code"] == "CAM-AH-0001"
    cam = db_session.execute(text("SELECT grid_id FROM camera WHERE code = 'CAM-AH-0001'")).scalar()
    assert case["grid"]["id"] == cam  # the camera's micro-grid
    for minutes in (5, 20, 45):  # each within 30 min of the previous firing
        res = client.post(
            "/api/camera-events",
            json={
                "camera": "CAM-AH-0001",
                "event_type": "non_motor_parking",
                "time": (t0 + timedelta(minutes=minutes)).isoformat(),
            },
        )
        assert res.status_code == 200 and res.get_json()["merged"] is True
        assert res.get_json()["case"]["id"] == case["id"]
    assert client.get(f"/api/cases/{case['id']}").get_json()["camera"]["event_count"] == 4
    # Another type at the same camera, or the same type after the window: a new case.
    other = client.post(
        "/api/camera-events",
        json={"camera": "CAM-AH-0001", "event_type": "garbage_overflow", "time": t0.isoformat()},
    )
    assert other.status_code == 201 and other.get_json()["case"]["id"] != case["id"]
    late = client.post(
        "/api/camera-events",
        json={
            "camera": "CAM-AH-0001",
            "event_type": "non_motor_parking",
            "time": (t0 + timedelta(minutes=45 + 31)).isoformat(),
        },
    )
    assert late.status_code == 201 and late.get_json()["case"]["id"] != case["id"]
    n = db_session.execute(
        text("SELECT count(*), count(*) FILTER (WHERE merged) FROM camera_event")
    ).one()
    assert tuple(n) == (6, 3)
    assert (
        client.post("/api/camera-events", json={"camera": "NOPE", "event_type": "x"}).status_code
        == 404
    )


def test_camera_review_setting_holds_camera_cases_for_the_centre(client) -> None:  # type: ignore[no-untyped-def]
    res = client.put("/api/case-settings", json={"camera_review_required": True})
    assert res.status_code == 200 and res.get_json()["camera_review_required"] is True
    body = client.post(
        "/api/camera-events", json={"camera": "CAM-AH-0002", "event_type": "street_vending"}
    ).get_json()
    case = body["case"]
    assert body["review_required"] is True
    assert case["status"] == "reported" and case["assignee"] is None
    assert case["grid"] is not None  # routed, waiting for review
    # A false alarm is cancelled; a real one dispatched to the grid's owner.
    ok(act(client, case["id"], "cancel", CENTRE, note="误报", reason="false_alarm"))
    body = client.post(
        "/api/camera-events", json={"camera": "CAM-AH-0003", "event_type": "street_vending"}
    ).get_json()
    case = ok(act(client, body["case"]["id"], "dispatch", CENTRE, note="核实属实"))
    assert case["status"] == "dispatched" and case["assignee"] is not None
    # Resident reports are not held.
    assert report(client)["case"]["status"] == "dispatched"
    assert (
        client.put("/api/case-settings", json={"camera_review_required": "yes"}).status_code == 400
    )
    assert client.put("/api/case-settings", json={"bogus": 1}).status_code == 400


def test_photos_are_reencoded_without_exif_or_gps(client) -> None:  # type: ignore[no-untyped-def]
    raw = _jpeg_with_gps()
    assert Image.open(io.BytesIO(raw)).getexif().get(0x8825)  # the upload does carry GPS
    res = client.post(
        "/api/cases",
        data={
            "x": str(POINT[0]),
            "y": str(POINT[1]),
            "category": "streetlight",
            "description": "照片",
            "photo": (io.BytesIO(raw), "lamp.jpg"),
        },
        content_type="multipart/form-data",
    )
    assert res.status_code == 201, res.get_json()
    case = client.get(f"/api/cases/{res.get_json()['case']['id']}").get_json()
    url = case["photos"][0]["url"]
    served = client.get(url)
    assert served.mimetype == "image/jpeg"
    img = Image.open(io.BytesIO(served.data))
    assert len(img.getexif()) == 0 and "exif" not in img.info
    assert b"PhoneMaker" not in served.data
    assert img.size == (48, 64)  # turned upright before the orientation tag was dropped
    # A handling photo on resolve, by multipart form.
    c = case
    ok(act(client, c["id"], "accept", handler_of(c)))
    res = client.post(
        f"/api/cases/{c['id']}/actions/resolve",
        data={
            "actor_role": "worker",
            "actor_worker_id": str(c["assignee"]["id"]),
            "note": "已修复",
            "lon": "117.22874",
            "lat": "31.81490",
            "photo": (io.BytesIO(raw), "done.jpg"),
        },
        content_type="multipart/form-data",
    )
    assert res.status_code == 200, res.get_json()
    detail = client.get(f"/api/cases/{c['id']}").get_json()
    assert (
        len(detail["photos"]) == 2 and detail["photos"][1]["event_id"] == detail["events"][-1]["id"]
    )
    assert detail["events"][-1]["point"] == {"lon": 117.22874, "lat": 31.8149}
    bad = client.post(
        "/api/cases",
        data={
            "x": "117.2287",
            "y": "31.8149",
            "category": "streetlight",
            "photo": (io.BytesIO(b"no"), "x.jpg"),
        },
        content_type="multipart/form-data",
    )
    assert bad.status_code == 422


def test_resident_page_api_shows_status_and_takes_the_rating(client) -> None:  # type: ignore[no-untyped-def]
    case = walk_to(client, "resolved")
    code = case["public_code"]
    public = client.get(f"/api/public/cases/{code}").get_json()
    assert public["status"] == "resolved" and public["can_rate"] is False
    assert public["code"] == code and case["code"] not in str(public)
    assert "reporter_contact" not in public and "assignee" not in public
    proof = {"phone": "13912345678"}  # the phone the report gave
    assert (
        client.post(f"/api/public/cases/{code}/rate", json={"satisfaction": 5, **proof}).status_code
        == 409
    )
    ok(act(client, case["id"], "verify", CENTRE))
    res = client.post(
        f"/api/public/cases/{code}/rate",
        json={"satisfaction": 5, "solved": True, "note": "很及时", **proof},
    )
    assert res.status_code == 200
    assert res.get_json()["status"] == "closed" and res.get_json()["satisfaction"] == 5
    assert client.get("/api/public/cases/SJ0").status_code == 404
    assert client.get(f"/api/public/cases/{case['code']}").status_code == 404
    assert client.get(f"/api/public/cases/{case['id']}").status_code == 404


def test_export_csv_and_excel_have_a_timestamp_for_every_state(client) -> None:  # type: ignore[no-untyped-def]
    closed = walk_to(client, "closed")
    res = client.get(f"/api/cases/export.csv?code={closed['code']}")
    assert res.status_code == 200 and "attachment" in res.headers["Content-Disposition"]
    text_ = res.data.decode("utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(text_)))
    assert len(rows) == 1
    row = rows[0]
    for state in ("已上报", "已派单", "处置中", "已反馈", "已核查", "已结案"):
        assert row[f"{state}时间"], state
    assert row["已作废时间"] == ""
    assert row["联系方式"] == "139****5678" and row["满意度"] == "5"
    xlsx = client.get(f"/api/cases/export.xlsx?code={closed['code']}")
    wb = load_workbook(io.BytesIO(xlsx.data))
    ws = wb.active
    header = [c.value for c in ws[1]]
    values = [c.value for c in ws[2]]
    assert header[0] == "事件编号" and values[0] == closed["code"]
    assert values[header.index("已结案时间")]
    assert client.get("/api/cases/export.pdf").status_code == 400


def test_kpis_per_grid_and_worker(client, db_session) -> None:  # type: ignore[no-untyped-def]
    closed = walk_to(client, "closed")
    open_ = report(client)["case"]
    walk_to(client, "cancelled")
    # One closed late: resolved after its deadline.
    late = walk_to(client, "closed")
    db_session.execute(
        text("UPDATE \"case\" SET deadline = resolved_at - interval '1 hour' WHERE id = :id"),
        {"id": late["id"]},
    )
    body = client.get("/api/cases/kpis?group=grid&level=4").get_json()
    item = next(i for i in body["items"] if i["key"] == closed["grid"]["id"])
    assert item["total"] == 3  # the cancelled case does not count
    assert item["closed"] == 2 and item["closure_rate"] == round(2 / 3, 4)
    assert item["on_time_closure_rate"] == 0.5
    assert item["satisfaction"] == 5.0 and item["satisfied_rate"] == 1.0
    assert item["avg_handling_hours"] is not None and item["avg_handling_hours"] >= 0
    workers = client.get("/api/cases/kpis?group=worker").get_json()["items"]
    mine = next(i for i in workers if i["key"] == open_["assignee"]["id"])
    assert mine["total"] == 3 and mine["name"] == open_["assignee"]["name"]
    overall = client.get("/api/cases/kpis?group=all").get_json()["items"][0]
    assert overall["total"] == 3 and overall["closed"] == 2
    assert client.get("/api/cases/kpis?group=planet").status_code == 400


def test_kpis_keep_closed_and_fixed_apart(client, db_session) -> None:  # type: ignore[no-untyped-def]
    fixed = walk_to(client, "verified")
    ok(act(client, fixed["id"], "rate", {"role": "resident"}, satisfaction=5, solved=True))
    unfixed = walk_to(client, "verified")
    ok(act(client, unfixed["id"], "rate", {"role": "resident"}, satisfaction=3, solved=False))
    walk_to(client, "verified")  # closed by the rating timeout: no answer about the problem
    svc.close_unrated(db_session, now=datetime.now(UTC) + timedelta(hours=100))
    overall = client.get("/api/cases/kpis?group=all").get_json()["items"][0]
    assert overall["total"] == 3 and overall["closed"] == 3 and overall["closure_rate"] == 1.0
    assert overall["solved"] == 1 and overall["solved_rate"] == 0.5
    assert overall["rated"] == 2 and overall["satisfaction"] == 4.0


def test_export_gives_each_state_the_time_it_was_reached(client, db_session) -> None:  # type: ignore[no-untyped-def]
    from zoneinfo import ZoneInfo

    t0 = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)  # 09:00 China time
    case = svc.create_case(
        db_session, svc.Report(x=POINT[0], y=POINT[1], category="streetlight"), now=t0
    )["case"]
    worker = svc.Actor("worker", worker_id=case["assignee"]["id"])
    centre = svc.Actor("centre")
    steps = [
        (1, "accept", worker, svc.ActionInput()),
        (2, "resolve", worker, svc.ActionInput(note="初次处置")),
        (3, "reopen", centre, svc.ActionInput(note="未修好")),  # back to dispatched
        (4, "accept", worker, svc.ActionInput()),
        (5, "resolve", worker, svc.ActionInput(note="再次处置")),
        (6, "verify", centre, svc.ActionInput()),
        (7, "rate", svc.Actor("resident"), svc.ActionInput(params={"satisfaction": 4})),
    ]
    for hours, action, actor, data in steps:
        svc.perform(db_session, case["id"], action, actor, data, now=t0 + timedelta(hours=hours))
    cst = ZoneInfo("Asia/Shanghai")

    def local(hours: int) -> str:
        return (t0 + timedelta(hours=hours)).astimezone(cst).strftime("%Y-%m-%d %H:%M:%S")

    res = client.get(f"/api/cases/export.csv?code={case['code']}")
    (row,) = list(csv.DictReader(io.StringIO(res.data.decode("utf-8-sig"))))
    # A state reached twice shows its latest time.
    assert row["已上报时间"] == local(0)
    assert row["已派单时间"] == local(3)
    assert row["处置中时间"] == local(4)
    assert row["已反馈时间"] == local(5)
    assert row["已核查时间"] == local(6)
    assert row["已结案时间"] == local(7)
    assert row["已作废时间"] == ""
    wb = load_workbook(io.BytesIO(client.get(f"/api/cases/export.xlsx?code={case['code']}").data))
    header, values = ([c.value for c in r] for r in wb.active.iter_rows(max_row=2))
    assert dict(zip(header, values, strict=True))["已反馈时间"] == local(5)
    assert dict(zip(header, values, strict=True))["已派单时间"] == local(3)


def test_camera_snapshots_are_kept_with_the_case(client, db_session) -> None:  # type: ignore[no-untyped-def]
    import base64

    def snap(colour: tuple[int, int, int]) -> str:
        buf = io.BytesIO()
        Image.new("RGB", (48, 36), colour).save(buf, format="JPEG")
        return base64.b64encode(buf.getvalue()).decode()

    t0 = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)
    body = {"camera": "CAM-AH-0004", "event_type": "garbage_overflow", "time": t0.isoformat()}
    first = client.post("/api/camera-events", json={**body, "snapshot_base64": snap((200, 0, 0))})
    assert first.status_code == 201, first.get_json()
    case = first.get_json()["case"]
    again = client.post(
        "/api/camera-events",
        data={
            **body,
            "time": (t0 + timedelta(minutes=3)).isoformat(),
            "snapshot": (io.BytesIO(base64.b64decode(snap((0, 0, 200)))), "s.jpg"),
        },
        content_type="multipart/form-data",
    )
    assert again.status_code == 200 and again.get_json()["case"]["id"] == case["id"]
    photos = client.get(f"/api/cases/{case['id']}").get_json()["photos"]
    assert len(photos) == 2
    shot = Image.open(io.BytesIO(client.get(photos[1]["url"]).data))
    assert shot.size == (48, 36) and shot.getpixel((24, 18))[2] > 150  # the second, blue one
    linked = db_session.execute(
        text("SELECT merged, photo_id FROM camera_event WHERE case_id = :id ORDER BY occurred_at"),
        {"id": case["id"]},
    ).all()
    assert [m for m, _ in linked] == [False, True]
    assert [p for _, p in linked] == [photos[0]["id"], photos[1]["id"]]
    bad = client.post("/api/camera-events", json={**body, "snapshot_base64": "***"})
    assert bad.status_code == 400 and bad.get_json()["error"]["param"] == "snapshot_base64"
