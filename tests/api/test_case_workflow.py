"""The case state machine, exhaustively: every state × every action.

Allowed actions change the state and are recorded (who, when, where, note); the rest get 409
listing the allowed ones. The expected table is written out here by hand from the field's loop
(上报 → 派单 → 接单 → 处置反馈 → 核查 → 评价结案, with 退回, 转派, 上报升级, 重新派单, 作废, 合并) and the
README, not read from the code: a change to the code's table fails these tests.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text

from app.services import cases as svc
from tests.api.case_helpers import CENTRE, RESIDENT, act, handler_of, ok, report, walk_to

STATES = ["reported", "dispatched", "accepted", "resolved", "verified", "closed", "cancelled"]
ACTIONS = [
    "accept",
    "cancel",
    "close",
    "dispatch",
    "escalate",
    "merge",
    "rate",
    "reopen",
    "resolve",
    "return",
    "transfer",
    "verify",
]
# (state, action) -> (next state, who may act). Everything not here is refused with 409.
HANDLING = ("handler", "supervisor", "centre")
EXPECTED: dict[tuple[str, str], tuple[str, tuple[str, ...]]] = {
    ("reported", "dispatch"): ("dispatched", ("centre", "system")),
    ("reported", "cancel"): ("cancelled", ("centre",)),
    ("reported", "merge"): ("cancelled", ("centre",)),
    ("dispatched", "accept"): ("accepted", ("handler",)),
    ("dispatched", "escalate"): ("dispatched", HANDLING),
    ("dispatched", "transfer"): ("dispatched", ("handler", "centre")),
    ("dispatched", "return"): ("reported", ("handler",)),
    ("dispatched", "cancel"): ("cancelled", ("centre",)),
    ("dispatched", "merge"): ("cancelled", ("centre",)),
    ("accepted", "resolve"): ("resolved", ("handler",)),
    ("accepted", "escalate"): ("dispatched", HANDLING),
    ("accepted", "transfer"): ("dispatched", ("handler", "centre")),
    ("accepted", "return"): ("reported", ("handler",)),
    ("accepted", "cancel"): ("cancelled", ("centre",)),
    ("accepted", "merge"): ("cancelled", ("centre",)),
    ("resolved", "verify"): ("verified", ("supervisor", "centre", "system")),
    ("resolved", "reopen"): ("dispatched", ("supervisor", "centre")),
    ("verified", "rate"): ("closed", ("resident",)),
    ("verified", "close"): ("closed", ("centre", "system")),
}


def _allowed(state: str) -> list[str]:
    return sorted(a for (s, a) in EXPECTED if s == state)


def _fields(client, action: str, case: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:  # type: ignore[no-untyped-def]
    """A permitted actor and the fields the action needs."""
    handler = handler_of(case) if case["assignee"] or case["department"] else None
    if action == "dispatch":
        return CENTRE, {}
    if action in ("accept", "resolve", "return"):
        return handler or CENTRE, {"note": "处置说明", "lon": 117.22875, "lat": 31.81491}
    if action == "escalate":
        return handler or CENTRE, {"note": "需微网格长协调"}
    if action == "transfer":
        return CENTRE, {"note": "转邻近网格", "worker_id": 6}
    if action in ("verify", "close"):
        return CENTRE, {"note": "核查属实"}
    if action == "reopen":
        return CENTRE, {"note": "现场核查未修复"}
    if action == "rate":
        return RESIDENT, {"satisfaction": 4, "solved": True, "note": "满意"}
    if action == "cancel":
        return CENTRE, {"note": "非问题", "reason": "not_a_problem"}
    if action == "merge":
        target = report(client, description="另一处路灯")["case"]
        return CENTRE, {"note": "重复", "into": target["code"]}
    raise AssertionError(action)


@pytest.mark.parametrize("action", ACTIONS)
@pytest.mark.parametrize("state", STATES)
def test_every_state_and_action(client, db_session, state: str, action: str) -> None:  # type: ignore[no-untyped-def]
    case = walk_to(client, state)
    assert case["status"] == state
    actor, fields = _fields(client, action, case)
    before = db_session.execute(
        text("SELECT count(*) FROM case_event WHERE case_id = :id"), {"id": case["id"]}
    ).scalar()
    res = act(client, case["id"], action, actor, **fields)
    step = EXPECTED.get((state, action))
    if step is None:
        assert res.status_code == 409, res.get_json()
        err = res.get_json()["error"]
        assert err["code"] == "illegal_transition"
        assert err["state"] == state and err["action"] == action
        assert sorted(err["allowed"]) == _allowed(state)
        after = db_session.execute(
            text("SELECT count(*) FROM case_event WHERE case_id = :id"), {"id": case["id"]}
        ).scalar()
        assert after == before  # nothing recorded
        return
    assert res.status_code == 200, res.get_json()
    changed = res.get_json()["case"]
    assert changed["status"] == step[0]
    assert changed["version"] > case["version"]
    event = db_session.execute(
        text(
            """SELECT action, from_status, to_status, actor_role, at, note, ST_X(geom) AS lon
               FROM case_event WHERE case_id = :id ORDER BY id DESC LIMIT 1"""
        ),
        {"id": case["id"]},
    ).one()
    assert (event.action, event.from_status, event.to_status) == (action, state, step[0])
    assert event.actor_role == actor["role"]
    assert event.at is not None and event.lon is not None  # when and where
    if "note" in fields and action != "rate":
        assert event.note == fields["note"]


def test_the_code_s_table_is_the_expected_one() -> None:
    assert sorted(svc.STATES) == sorted(STATES) and sorted(svc.ACTIONS) == sorted(ACTIONS)
    got = {k: (t.to, tuple(sorted(t.who))) for k, t in svc.TRANSITIONS.items()}
    assert got == {k: (to, tuple(sorted(who))) for k, (to, who) in EXPECTED.items()}


def test_workflow_endpoint_lists_the_table(client) -> None:  # type: ignore[no-untyped-def]
    body = client.get("/api/cases/workflow").get_json()
    listed = {
        (t["from"], t["action"]): (t["to"], tuple(sorted(t["who"]))) for t in body["transitions"]
    }
    assert listed == {k: (to, tuple(sorted(who))) for k, (to, who) in EXPECTED.items()}


@pytest.mark.parametrize("step", sorted(EXPECTED), ids=lambda k: f"{k[0]}-{k[1]}")
def test_who_may_take_each_step(client, step: tuple[str, str]) -> None:  # type: ignore[no-untyped-def]
    """Each part an actor can play on a case, tried on every allowed step: those the table names
    succeed, the others get 403 and leave the case as it was."""
    state, action = step
    to, who = EXPECTED[step]
    for part in ("centre", "handler", "supervisor", "resident", "stranger"):
        case = walk_to(client, state)
        detail = client.get(f"/api/cases/{case['id']}").get_json()
        chief = detail["routing"]["fallback"][0]["worker_id"]
        holder = case["assignee"]["id"] if case["assignee"] else None
        actors = {
            "centre": CENTRE,
            "handler": handler_of(case) if holder else None,
            "supervisor": {"role": "micro_chief", "worker_id": chief},
            "resident": RESIDENT,
            "stranger": {"role": "worker", "worker_id": 10**6},
        }
        actor = actors[part]
        if actor is None:
            continue  # nobody holds a reported, resolved, verified or closed case
        _, fields = _fields(client, action, case)
        res = act(client, case["id"], action, actor, **fields)
        if part in who:
            assert res.status_code == 200, (part, res.get_json())
            assert res.get_json()["case"]["status"] == to
        else:
            assert res.status_code == 403, (part, res.status_code, res.get_json())
            assert client.get(f"/api/cases/{case['id']}").get_json()["status"] == state


def test_only_the_holder_may_handle(client) -> None:  # type: ignore[no-untyped-def]
    case = report(client)["case"]
    other = {"role": "worker", "worker_id": case["assignee"]["id"] + 1}
    res = act(client, case["id"], "accept", other)
    assert res.status_code == 403
    assert res.get_json()["error"]["needs"] == ["handler"]
    res = act(client, case["id"], "verify", RESIDENT)
    assert res.status_code == 409  # the state is checked before the person


def test_resident_cannot_verify_and_worker_cannot_rate(client) -> None:  # type: ignore[no-untyped-def]
    case = walk_to(client, "resolved")
    assert act(client, case["id"], "verify", RESIDENT).status_code == 403
    assert act(client, case["id"], "verify", handler_of(case)).status_code == 403
    case = ok(act(client, case["id"], "verify", CENTRE))
    res = act(client, case["id"], "rate", handler_of(case), satisfaction=5)
    assert res.status_code == 403


def test_stale_version_is_a_conflict(client) -> None:  # type: ignore[no-untyped-def]
    case = report(client)["case"]
    res = act(client, case["id"], "accept", handler_of(case), version=case["version"] - 1)
    assert res.status_code == 409
    assert res.get_json()["error"]["code"] == "stale_version"
    ok(act(client, case["id"], "accept", handler_of(case), version=case["version"]))


def test_notes_are_required_where_the_loop_needs_a_reason(client) -> None:  # type: ignore[no-untyped-def]
    case = walk_to(client, "accepted")
    res = act(client, case["id"], "resolve", handler_of(case))
    assert res.status_code == 422 and res.get_json()["error"]["field"] == "note"
    res = act(client, case["id"], "escalate", handler_of(case), note="  ")
    assert res.status_code == 422


def test_escalation_climbs_worker_chief_department(client) -> None:  # type: ignore[no-untyped-def]
    case = walk_to(client, "accepted", category="road_occupation")
    worker = case["assignee"]["id"]
    case = ok(
        act(client, case["id"], "escalate", handler_of(case), note="摊主不配合，请微网格长协调")
    )
    assert case["status"] == "dispatched" and case["escalation_level"] == 1
    chief = case["assignee"]["id"]
    assert chief != worker
    routing = client.get(f"/api/cases/{case['id']}").get_json()["routing"]
    assert chief == routing["fallback"][0]["worker_id"]  # the micro-grid chief
    # The chief supervises the grid and now holds the case: he escalates to the department.
    case = ok(
        act(
            client,
            case["id"],
            "escalate",
            {"role": "micro_chief", "worker_id": chief},
            note="需城管中队执法",
        )
    )
    assert case["escalation_level"] == 2 and case["assignee"] is None
    assert case["department"]["name"] == "安和城管中队"
    # The department accepts and resolves; no further escalation exists.
    dept = handler_of(case)
    res = act(client, case["id"], "escalate", dept, note="再上报")
    assert (
        res.status_code == 409
        and "already with a functional department" in res.get_json()["error"]["message"]
    )
    ok(act(client, case["id"], "accept", dept))
    case = ok(act(client, case["id"], "resolve", dept, note="已劝离摊贩"))
    assert case["status"] == "resolved"


def test_return_then_centre_reroutes_to_the_corrected_place(client) -> None:  # type: ignore[no-untyped-def]
    case = report(client)["case"]
    first_grid = case["grid"]["id"]
    case = ok(act(client, case["id"], "return", handler_of(case), note="地点不在本网格"))
    assert case["status"] == "reported" and case["assignee"] is None
    # The centre corrects the place (a point inside the village) and dispatches: routed anew.
    grids = client.get("/api/grids?level=4").get_json()["features"]
    target = next(f for f in grids if f["properties"]["name"].startswith("桃园村"))
    locate = client.get(f"/api/grids/{target['id']}").get_json()
    b = locate["properties"]["bounds"]
    x, y = (b[0] + b[2]) / 2, (b[1] + b[3]) / 2
    case = ok(act(client, case["id"], "dispatch", CENTRE, x=x, y=y))
    assert case["status"] == "dispatched" and case["assignee"] is not None
    assert case["grid"]["id"] != first_grid


def test_transfer_to_the_neighbouring_grid_owner(client, db_session) -> None:  # type: ignore[no-untyped-def]
    # A point on the edge two micro-grids share: reported into one, transferable to the other.
    row = db_session.execute(
        text(
            """SELECT ST_X(p) AS lon, ST_Y(p) AS lat FROM (
                 SELECT ST_LineInterpolatePoint(
                          ST_GeometryN(ST_LineMerge(ST_CollectionExtract(
                            ST_Intersection(a.geom, b.geom), 2)), 1), 0.5) AS p
                 FROM grid a JOIN grid b ON a.code < b.code
                 WHERE a.level = 4 AND b.level = 4 AND a.valid_to IS NULL AND b.valid_to IS NULL
                   AND a.parent_id = b.parent_id AND ST_Intersects(a.geom, b.geom)
                   AND ST_Dimension(ST_Intersection(a.geom, b.geom)) = 1
                 ORDER BY a.code, b.code LIMIT 1) s"""
        )
    ).one()
    case = report(client, x=row.lon, y=row.lat)["case"]
    first_grid = case["grid"]["id"]
    case = ok(act(client, case["id"], "transfer", handler_of(case), note="属相邻网格"))
    assert case["status"] == "dispatched"
    assert case["grid"]["id"] != first_grid
    event = client.get(f"/api/cases/{case['id']}").get_json()["events"][-1]
    assert (
        event["action"] == "transfer"
        and event["details"]["to"]["worker_id"] == case["assignee"]["id"]
    )


def test_transfer_without_a_neighbour_says_where(client, db_session) -> None:  # type: ignore[no-untyped-def]
    # The centre of the micro-grid with the widest inscribed circle: no other grid within 50 m.
    row = db_session.execute(
        text(
            """SELECT ST_X(c) AS lon, ST_Y(c) AS lat FROM (
                 SELECT (ST_MaximumInscribedCircle(geom)).center AS c,
                        (ST_MaximumInscribedCircle(geom)).radius AS r
                 FROM grid WHERE level = 4 AND valid_to IS NULL) s
               ORDER BY r DESC LIMIT 1"""
        )
    ).one()
    case = report(client, x=row.lon, y=row.lat)["case"]
    res = act(client, case["id"], "transfer", handler_of(case), note="转派")
    assert res.status_code == 409
    err = res.get_json()["error"]
    assert "no neighbouring grid owner within 50 m" in err["message"]
    assert err["location"]["type"] == "Point"


def test_category_without_review_is_verified_at_once(client) -> None:  # type: ignore[no-untyped-def]
    case = walk_to(client, "accepted", category="illegal_parking")
    res = act(client, case["id"], "resolve", handler_of(case), note="已挪走")
    assert res.status_code == 200
    body = res.get_json()
    assert body["case"]["status"] == "verified"
    assert [e["action"] for e in body["events"]] == ["resolve", "verify"]


def test_closed_and_fixed_are_separate_facts(client) -> None:  # type: ignore[no-untyped-def]
    case = walk_to(client, "verified")
    case = ok(
        act(client, case["id"], "rate", RESIDENT, satisfaction=2, solved=False, note="没修好")
    )
    assert case["status"] == "closed" and case["satisfaction"] == 2 and case["solved"] is False
    res = act(client, case["id"], "rate", RESIDENT, satisfaction=9)
    assert res.status_code == 409


def test_rating_is_checked(client) -> None:  # type: ignore[no-untyped-def]
    case = walk_to(client, "verified")
    for bad in (0, 6, "x", None):
        res = act(client, case["id"], "rate", RESIDENT, satisfaction=bad)
        assert res.status_code == 422, bad


def test_rating_timeout_closes_unrated_cases(client, db_session) -> None:  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime, timedelta

    case = walk_to(client, "verified")
    assert svc.close_unrated(db_session, now=datetime.now(UTC)) == []
    closed = svc.close_unrated(db_session, now=datetime.now(UTC) + timedelta(hours=73))
    assert case["code"] in closed
    view = svc.case_view(db_session, case["id"])
    assert view["status"] == "closed" and view["satisfaction"] is None
    assert view["events"][-1]["actor_role"] == "system"


def test_unknown_action_and_actor_are_bad_requests(client) -> None:  # type: ignore[no-untyped-def]
    case = report(client)["case"]
    assert act(client, case["id"], "teleport", CENTRE).status_code == 400
    assert act(client, case["id"], "accept", {"role": "mayor"}).status_code == 400
    # No actor named: the signed-in account acts (the administrator as the centre, which may
    # not accept a case for a worker).
    assert client.post(f"/api/cases/{case['id']}/actions/accept", json={}).status_code == 403
    assert act(client, "SJ00000000000000", "accept", CENTRE).status_code == 404


def test_dispatch_or_transfer_to_an_unknown_worker_is_refused(client) -> None:  # type: ignore[no-untyped-def]
    case = walk_to(client, "reported")
    res = act(client, case["id"], "dispatch", CENTRE, worker_id=999999)
    assert res.status_code == 422 and res.get_json()["error"]["field"] == "worker_id"
    case = ok(act(client, case["id"], "dispatch", CENTRE, worker_id=6))
    assert case["assignee"]["id"] == 6
    res = act(client, case["id"], "transfer", CENTRE, note="转派", worker_id=999999)
    assert res.status_code == 422 and "999999" in res.get_json()["error"]["message"]
    assert act(client, case["id"], "dispatch", CENTRE, worker_id="x").status_code == 400
