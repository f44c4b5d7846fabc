"""Personal data: masked everywhere, a full value only on an explicit, logged request by a role
that needs it; sensitive tags only to those responsible; exports limited and logged; logs clean."""

from __future__ import annotations

import logging

from sqlalchemy import text

from app.logmask import mask_text
from tests.api.case_helpers import POINT, report
from tests.auth.conftest import bearer

OWN_LEAF = "3401880010010101"


def _household(db_session, *, linked_to: int | None = None, tagged: bool = False):  # type: ignore[no-untyped-def]
    row = db_session.execute(
        text(
            """SELECT h.id, h.head_phone, h.head_name, h.tags, h.grid_id FROM household h
               JOIN grid g ON g.id = h.grid_id
               WHERE g.code = :leaf AND (CAST(:m AS integer) IS NULL OR h.linked_member_id = :m)
               ORDER BY h.id LIMIT 1"""
        ),
        {"leaf": OWN_LEAF, "m": linked_to},
    ).one()
    if tagged:
        db_session.execute(
            text("UPDATE household SET tags = '{elderly_alone}' WHERE id = :i"), {"i": row.id}
        )
    return row


def _audit(db_session, kind: str, object_type: str, object_id) -> list:  # type: ignore[no-untyped-def]
    return db_session.execute(
        text(
            "SELECT username, role, detail, before, after FROM audit_log "
            "WHERE kind = :k AND object_type = :t AND object_id = :o ORDER BY id"
        ),
        {"k": kind, "t": object_type, "o": str(object_id)},
    ).all()


def test_phones_are_masked_and_revealed_only_on_request_which_is_logged(
    app, db_session, accounts
) -> None:  # type: ignore[no-untyped-def]
    hh = _household(db_session)
    c = app.test_client()
    worker = bearer(accounts["worker"])
    shown = c.get(f"/api/households/{hh.id}", headers=worker).get_json()["properties"]
    assert shown["head_phone"] != hh.head_phone and "****" in shown["head_phone"]
    assert shown["head_name"] != hh.head_name
    (seen,) = _audit(db_session, "read_personal", "household", hh.id)  # the read is logged
    assert "head_phone(masked)" in seen.detail["fields"]
    full = c.post(
        f"/api/households/{hh.id}/reveal", json={"fields": ["head_phone"]}, headers=worker
    )
    assert full.status_code == 200 and full.get_json() == {"id": hh.id, "head_phone": hh.head_phone}
    _seen, entry = _audit(db_session, "read_personal", "household", hh.id)
    assert entry.username == "t-worker" and entry.detail["fields"] == ["head_phone"]
    assert hh.head_phone not in str(entry)  # the log names the field, not its value
    dept = c.post(
        f"/api/households/{hh.id}/reveal", json={}, headers=bearer(accounts["department"])
    )
    assert dept.status_code == 403
    bad = c.post(f"/api/households/{hh.id}/reveal", json={"fields": ["tags"]}, headers=worker)
    assert bad.status_code == 400


def test_sensitive_tags_go_only_to_those_responsible(app, db_session, accounts) -> None:  # type: ignore[no-untyped-def]
    hh = _household(db_session, tagged=True)
    c = app.test_client()
    seen = {}
    for role in ("worker", "micro_chief", "centre", "admin"):
        res = c.get(f"/api/households/{hh.id}", headers=bearer(accounts[role]))
        assert res.status_code == 200, (role, res.get_json())
        seen[role] = res.get_json()["properties"].get("tags")
    assert seen["worker"] == seen["micro_chief"] == seen["centre"] == ["elderly_alone"]
    assert seen["admin"] is None  # runs the system, answers for no household
    listed = c.get(
        f"/api/grids/{hh.grid_id}/households?limit=500", headers=bearer(accounts["worker"])
    ).get_json()["features"]
    assert next(f for f in listed if f["id"] == hh.id)["properties"]["tags"] == ["elderly_alone"]
    assert (
        "tags"
        not in c.get(
            f"/api/grids/{hh.grid_id}/households?limit=5", headers=bearer(accounts["admin"])
        ).get_json()["features"][0]["properties"]
    )


def test_a_party_member_sees_only_the_households_linked_to_him(app, db_session, accounts) -> None:  # type: ignore[no-untyped-def]
    member = accounts["party_member"]
    mine = _household(db_session, linked_to=member.worker_id)
    c = app.test_client()
    listed = c.get(
        f"/api/grids/{mine.grid_id}/households?limit=500", headers=bearer(member)
    ).get_json()
    linked = db_session.scalar(
        text("SELECT count(*) FROM household WHERE linked_member_id = :m AND grid_id = :g"),
        {"m": member.worker_id, "g": mine.grid_id},
    )
    assert listed["total"] == linked > 0
    assert all(f["properties"]["linked_member_id"] == member.worker_id for f in listed["features"])
    other = db_session.scalar(
        text(
            "SELECT id FROM household WHERE grid_id = :g AND linked_member_id IS DISTINCT FROM :m LIMIT 1"
        ),
        {"g": mine.grid_id, "m": member.worker_id},
    )
    assert c.get(f"/api/households/{other}", headers=bearer(member)).status_code == 404


def test_a_reporters_contact_is_masked_and_revealed_to_the_centre_on_request(
    app, client, db_session, accounts
) -> None:  # type: ignore[no-untyped-def]
    case = report(client, reporter_contact="13812345678", reporter_name="钱七")["case"]
    c = app.test_client()
    centre = bearer(accounts["centre"])
    view = c.get(f"/api/cases/{case['id']}", headers=centre).get_json()
    assert view["reporter_contact"] == "138****5678" and view["reporter_name"] != "钱七"
    listed = c.get("/api/cases?limit=5000", headers=centre).get_json()["items"]
    assert "13812345678" not in str(listed)
    full = c.post(
        f"/api/cases/{case['id']}/reveal", json={"fields": ["reporter_contact"]}, headers=centre
    )
    assert full.get_json()["reporter_contact"] == "13812345678"
    assert len(_audit(db_session, "read_personal", "case", case["id"])) == 1
    refused = c.post(
        f"/api/cases/{case['id']}/reveal", json={}, headers=bearer(accounts["party_member"])
    )
    assert refused.status_code == 403


def test_exports_of_personal_data_are_limited_and_logged(app, db_session, accounts) -> None:  # type: ignore[no-untyped-def]
    c = app.test_client()
    chief = c.get("/api/export/households?format=csv", headers=bearer(accounts["grid_chief"]))
    assert chief.status_code == 403
    masked = c.get("/api/export/households?format=csv", headers=bearer(accounts["centre"]))
    assert masked.status_code == 200
    # A phone of a household in the centre's street (the sample has a second one).
    phone = db_session.scalar(
        text(
            "SELECT h.head_phone FROM household h JOIN app_user u ON u.id = :u "
            "JOIN grid g ON g.id = h.grid_id "
            "WHERE h.head_phone IS NOT NULL AND u.grid_id = ANY(g.path) ORDER BY h.id LIMIT 1"
        ),
        {"u": accounts["centre"].user_id},
    )
    assert phone not in masked.get_data(as_text=True)
    full = c.get(
        "/api/export/households?format=csv&include_personal=true",
        headers=bearer(accounts["centre"]),
    )
    assert full.status_code == 200 and phone in full.get_data(as_text=True)
    entries = db_session.execute(
        text(
            "SELECT username, detail FROM audit_log WHERE kind = 'export' AND object_type = 'households' ORDER BY id"
        )
    ).all()
    assert [e.username for e in entries] == ["t-centre", "t-centre"]
    assert entries[-1].detail["fields"] == ["*"]
    assert c.get("/api/cases/export.csv", headers=bearer(accounts["worker"])).status_code == 403


def test_no_personal_number_reaches_the_logs(client, caplog) -> None:  # type: ignore[no-untyped-def]
    assert mask_text("call 13912345678 / 0551-65000110, ID 340104199001011234") == (
        "call 139****5678 / 0551-****0110, ID 340104********1234"
    )
    assert mask_text("grid 3401880010010101 at 117.2287344,31.8149002") == (
        "grid 3401880010010101 at 117.2287344,31.8149002"
    )  # codes and coordinates stay readable
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("app.anything").warning("reporter %s", "13912345678")
        case = report(client, reporter_contact="13700001111")["case"]
        client.post(f"/api/cases/{case['id']}/reveal", json={})
    text_of_logs = "\n".join(r.getMessage() for r in caplog.records)
    assert "13912345678" not in text_of_logs and "139****5678" in text_of_logs
    assert "13700001111" not in text_of_logs


def test_a_reported_point_is_routed_the_same_for_a_resident(anon_client) -> None:  # type: ignore[no-untyped-def]
    """A resident without an account reports; the answer carries no other person's data."""
    res = anon_client.post(
        "/api/cases",
        json={
            "x": POINT[0],
            "y": POINT[1],
            "category": "streetlight",
            "reporter_contact": "13600002222",
        },
    )
    assert res.status_code == 201
    body = res.get_json()
    assert body["responsible"]["grid"] is not None and "case" not in body
    assert "13600002222" not in str(body)
