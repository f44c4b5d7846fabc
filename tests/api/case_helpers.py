"""Shared helpers of the case tests: report a case, act on it, walk it into a given state."""

from __future__ import annotations

from typing import Any

# Inside 爱辉社区第一网格第1微网格 of the sample street.
POINT = (117.2287344, 31.8149002)


def report(client, **fields: Any) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """Report a case through the API and return the answer (asserting it was stored)."""
    body = {
        "x": POINT[0],
        "y": POINT[1],
        "category": "streetlight",
        "description": "路灯不亮",
        "source": "resident",
        "reporter_contact": "13912345678",
        **fields,
    }
    res = client.post("/api/cases", json=body)
    assert res.status_code in (200, 201), res.get_json()
    return res.get_json()


def act(client, ref: Any, action: str, actor: dict[str, Any], **fields: Any):  # type: ignore[no-untyped-def]
    """Post an action; return the response."""
    return client.post(f"/api/cases/{ref}/actions/{action}", json={"actor": actor, **fields})


def handler_of(case: dict[str, Any]) -> dict[str, Any]:
    """The actor who holds the case now."""
    if case["escalation_level"] == 2:
        return {"role": "department", "department_id": case["department"]["id"]}
    return {"role": "worker", "worker_id": case["assignee"]["id"]}


CENTRE = {"role": "centre", "name": "值班员"}
RESIDENT = {"role": "resident"}


def ok(res) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    assert res.status_code == 200, res.get_json()
    return res.get_json()["case"]


def walk_to(client, state: str, **report_fields: Any) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """Report a case and take it to ``state`` by permitted actions; return the case."""
    case = report(client, **report_fields)["case"]
    assert case["status"] == "dispatched"
    if state == "dispatched":
        return case
    if state == "reported":
        return ok(act(client, case["id"], "return", handler_of(case), note="不属于本网格"))
    if state == "cancelled":
        return ok(act(client, case["id"], "cancel", CENTRE, note="重复上报", reason="duplicate"))
    case = ok(act(client, case["id"], "accept", handler_of(case)))
    if state == "accepted":
        return case
    case = ok(act(client, case["id"], "resolve", handler_of(case), note="已更换灯泡"))
    if state == "resolved":
        return case
    case = ok(act(client, case["id"], "verify", CENTRE))
    if state == "verified":
        return case
    case = ok(act(client, case["id"], "rate", RESIDENT, satisfaction=5, solved=True))
    assert state == "closed"
    return case
