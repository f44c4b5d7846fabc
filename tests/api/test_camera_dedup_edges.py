"""Camera events at the edges of the dedup window (30 minutes by default, inclusive): exactly at
the window, just past it, after the case was closed or cancelled, with a changed window setting,
and a burst of simultaneous events from one camera (one case, every event counted)."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta

from sqlalchemy import create_engine, text

from tests.api.case_helpers import CENTRE, act, ok
from tests.committed import committed_state_restored

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
CAMERA, KIND = "CAM-AH-0001", "non_motor_parking"


def fire(client, at: datetime, camera: str = CAMERA, kind: str = KIND):  # type: ignore[no-untyped-def]
    res = client.post(
        "/api/camera-events", json={"camera": camera, "event_type": kind, "time": at.isoformat()}
    )
    assert res.status_code in (200, 201), res.get_json()
    return res.get_json()


def test_exactly_at_the_window_merges_and_a_second_later_opens_a_new_case(client) -> None:  # type: ignore[no-untyped-def]
    first = fire(client, T0)["case"]
    at_edge = fire(client, T0 + timedelta(minutes=30))
    assert at_edge["merged"] is True and at_edge["case"]["id"] == first["id"]
    # The window runs from the last event: 30 minutes after the edge event still merges …
    again = fire(client, T0 + timedelta(minutes=60))
    assert again["merged"] is True and again["case"]["id"] == first["id"]
    # … one second more does not.
    late = fire(client, T0 + timedelta(minutes=90, seconds=1))
    assert late["merged"] is False and late["case"]["id"] != first["id"]


def test_a_closed_or_cancelled_case_is_not_joined(client) -> None:  # type: ignore[no-untyped-def]
    first = fire(client, T0)["case"]
    ok(act(client, first["id"], "cancel", CENTRE, note="误报", reason="not_a_problem"))
    after_cancel = fire(client, T0 + timedelta(minutes=5))
    assert after_cancel["merged"] is False and after_cancel["case"]["id"] != first["id"]
    second = after_cancel["case"]
    # Walk the new case to its end; a firing within the window then opens a third case.
    case = ok(
        act(
            client,
            second["id"],
            "accept",
            {"role": "worker", "worker_id": second["assignee"]["id"]},
        )
    )
    case = ok(
        act(
            client,
            case["id"],
            "resolve",
            {"role": "worker", "worker_id": case["assignee"]["id"]},
            note="已劝离",
            lon=case["point"]["lon"],
            lat=case["point"]["lat"],
        )
    )
    if case["status"] == "resolved":
        case = ok(act(client, case["id"], "verify", CENTRE))
    case = ok(act(client, case["id"], "close", CENTRE, note="结案"))
    assert case["status"] == "closed"
    after_close = fire(client, T0 + timedelta(minutes=10))
    assert after_close["merged"] is False and after_close["case"]["id"] not in (
        first["id"],
        second["id"],
    )


def test_a_changed_window_setting_is_used_for_the_next_event(client) -> None:  # type: ignore[no-untyped-def]
    res = client.put("/api/case-settings", json={"camera_dedup_minutes": 10})
    assert res.status_code == 200 and res.get_json()["camera_dedup_minutes"] == 10
    first = fire(client, T0)["case"]
    assert fire(client, T0 + timedelta(minutes=10))["case"]["id"] == first["id"]
    fresh = fire(client, T0 + timedelta(minutes=21))
    assert fresh["merged"] is False
    res = client.put("/api/case-settings", json={"camera_dedup_minutes": 120})
    assert res.status_code == 200
    assert fire(client, T0 + timedelta(minutes=120))["case"]["id"] == fresh["case"]["id"]


def test_a_burst_of_simultaneous_events_opens_one_case_and_counts_them_all(
    live_server, database_url
) -> None:  # type: ignore[no-untyped-def]
    n = 8
    barrier = threading.Barrier(n)
    answers: list[tuple[int, dict]] = [(0, {})] * n
    at = datetime.now(UTC).replace(microsecond=0)

    def one(i: int) -> None:
        req = urllib.request.Request(
            f"{live_server}/api/camera-events",
            method="POST",
            data=json.dumps(
                {
                    "camera": "CAM-AH-0002",
                    "event_type": "street_vending",
                    "time": (at + timedelta(seconds=i)).isoformat(),
                }
            ).encode(),
            headers={"Content-Type": "application/json", "Accept": "application/json"},
        )
        barrier.wait()
        try:
            with urllib.request.urlopen(req, timeout=60) as res:
                answers[i] = (res.status, json.loads(res.read()))
        except urllib.error.HTTPError as err:
            answers[i] = (err.code, json.loads(err.read()))

    with committed_state_restored(database_url):
        threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=90)
        statuses = sorted(s for s, _ in answers)
        assert statuses == [200] * (n - 1) + [201], answers
        ids = {body["case"]["id"] for _, body in answers}
        assert len(ids) == 1
        engine = create_engine(database_url)
        try:
            with engine.connect() as conn:
                count = conn.execute(
                    text('SELECT camera_event_count FROM "case" WHERE id = :i'), {"i": ids.pop()}
                ).scalar_one()
        finally:
            engine.dispose()
        assert count == n
