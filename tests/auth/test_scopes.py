"""Lists and figures narrow to the caller's grids: cases, KPIs, the case ledger."""

from __future__ import annotations

from sqlalchemy import text

from tests.auth.conftest import bearer


def _point_in(db_session, code: str) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    return db_session.execute(
        text(
            "SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_PointOnSurface(geom) p FROM grid "
            "WHERE code = :c AND valid_to IS NULL) s"
        ),
        {"c": code},
    ).one()


def _report(client, db_session, code: str, what: str) -> dict:  # type: ignore[no-untyped-def]
    x, y = _point_in(db_session, code)
    res = client.post("/api/cases", json={"x": x, "y": y, "category": "garbage", "description": what})
    assert res.status_code == 201, res.get_json()
    return res.get_json()["case"]


def test_case_lists_kpis_and_ledgers_hold_only_ones_own_cases(app, client, db_session, accounts) -> None:  # type: ignore[no-untyped-def]
    own = _report(client, db_session, "3401880010010101", "本网格的垃圾")
    other = _report(client, db_session, "34018810120101", "桃园村的垃圾")
    escalated = _report(client, db_session, "3401880010010102", "交城管的垃圾")
    db_session.execute(
        text('UPDATE "case" SET department_id = :d, escalation_level = 2 WHERE id = :c'),
        {"d": accounts["department"].department_id, "c": escalated["id"]},
    )
    c = app.test_client()

    def listed(role: str) -> set[int]:
        res = c.get("/api/cases?limit=5000", headers=bearer(accounts[role]))
        assert res.status_code == 200, res.get_json()
        return {i["id"] for i in res.get_json()["items"]}

    everything = listed("admin")
    assert {own["id"], other["id"], escalated["id"]} <= everything
    for role in ("centre", "grid_chief", "micro_chief", "worker", "party_member"):
        seen = listed(role)
        assert own["id"] in seen and other["id"] not in seen, role
    assert escalated["id"] in listed("grid_chief")  # its grid is below the chief's
    assert escalated["id"] not in listed("micro_chief")  # another micro-grid
    dept_seen = listed("department")
    assert escalated["id"] in dept_seen and own["id"] not in dept_seen
    departments = db_session.scalars(
        text('SELECT DISTINCT department_id FROM "case" WHERE id = ANY(:ids)'), {"ids": sorted(dept_seen)}
    ).all()
    assert departments == [accounts["department"].department_id]  # only what was sent to it

    def total(role: str) -> int:
        res = c.get("/api/cases/kpis?group=all", headers=bearer(accounts[role]))
        assert res.status_code == 200, res.get_json()
        return sum(i["total"] for i in res.get_json()["items"])

    assert total("grid_chief") < total("admin")
    before = total("grid_chief")
    _report(client, db_session, "34018810120102", "又一起桃园村的")
    assert total("grid_chief") == before  # a case elsewhere does not move his figures
    ledger = c.get("/api/cases/export.csv", headers=bearer(accounts["grid_chief"])).get_data(as_text=True)
    assert own["code"] in ledger and other["code"] not in ledger
